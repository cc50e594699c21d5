/**
 * Webhook bodies in Shopify's REST shape (shopify.md §2, §2.2): snake_case, numeric ids, lower-case enum values
 * (except SMS `consent_collected_from`, which stays `SHOPIFY`/`OTHER`), timestamps in the shop's UTC offset
 * without fractions. Since API 2025-01 customer payloads carry neither consent fields nor tags (shopify.md §0.1):
 * consent travels only in the two consent topics.
 */
import type { Address, Customer, Order, OrderAddress, Product, Shop } from './types';

/** `2026-05-02T10:14:03+02:00`: REST timestamps are in the shop's time zone, whole seconds. */
export function restTime(date: Date, utcOffsetMinutes: number): string {
  const shifted = new Date(Math.floor(date.getTime() / 1000) * 1000 + utcOffsetMinutes * 60_000);
  const sign = utcOffsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(utcOffsetMinutes);
  const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${shifted.toISOString().slice(0, 19)}${offset}`;
}

/** GraphQL `DateTime`: UTC, whole seconds (`2026-05-02T08:20:11Z`). */
export function graphqlTime(date: Date | null): string | null {
  return date === null ? null : `${date.toISOString().slice(0, 19)}Z`;
}

const regionNames = new Intl.DisplayNames(['en'], { type: 'region' });

export function countryName(code: string | null): string | null {
  if (code === null) return null;
  try {
    return regionNames.of(code) ?? null;
  } catch {
    return null;
  }
}

function lower<T extends string>(value: T | null): string | null {
  return value === null ? null : value.toLowerCase();
}

function addressPayload(address: Address, customerId: number) {
  const name = [address.firstName, address.lastName].filter((p) => p !== null && p !== '').join(' ');
  return {
    id: address.id,
    customer_id: customerId,
    first_name: address.firstName,
    last_name: address.lastName,
    company: address.company,
    address1: address.address1,
    address2: null,
    city: address.city,
    province: address.province,
    country: countryName(address.countryCode),
    zip: address.zip,
    phone: address.phone,
    name,
    province_code: null,
    country_code: address.countryCode,
    country_name: countryName(address.countryCode),
    default: true,
  };
}

/** customers/create, customers/update. */
export function customerPayload(shop: Shop, customer: Customer) {
  const t = (d: Date) => restTime(d, shop.utcOffsetMinutes);
  const address = customer.address === null ? null : addressPayload(customer.address, customer.id);
  return {
    id: customer.id,
    email: customer.email,
    created_at: t(customer.createdAt),
    updated_at: t(customer.updatedAt),
    first_name: customer.firstName,
    last_name: customer.lastName,
    state: customer.state,
    note: null,
    verified_email: customer.verifiedEmail,
    multipass_identifier: null,
    tax_exempt: false,
    phone: customer.phone,
    currency: 'EUR',
    addresses: address === null ? [] : [address],
    tax_exemptions: [],
    admin_graphql_api_id: `gid://shopify/Customer/${customer.id}`,
    default_address: address,
  };
}

/** customers_email_marketing_consent/update. */
export function emailConsentPayload(shop: Shop, customer: Customer) {
  const c = customer.emailConsent;
  return {
    customer_id: customer.id,
    email_address: customer.email,
    email_marketing_consent: {
      state: c.state.toLowerCase(),
      opt_in_level: lower(c.optInLevel),
      consent_updated_at: c.updatedAt === null ? null : restTime(c.updatedAt, shop.utcOffsetMinutes),
    },
  };
}

/** customers_marketing_consent/update (SMS); the customer id is `id` in the documented payload. */
export function smsConsentPayload(shop: Shop, customer: Customer) {
  const c = customer.smsConsent;
  return {
    id: customer.id,
    phone: customer.phone,
    sms_marketing_consent: {
      state: c.state.toLowerCase(),
      opt_in_level: lower(c.optInLevel),
      consent_updated_at: c.updatedAt === null ? null : restTime(c.updatedAt, shop.utcOffsetMinutes),
      consent_collected_from: c.collectedFrom,
    },
  };
}

function orderAddressPayload(address: OrderAddress) {
  return {
    first_name: address.firstName,
    last_name: address.lastName,
    company: address.company,
    address1: address.address1,
    address2: null,
    city: address.city,
    zip: address.zip,
    province: null,
    country: countryName(address.countryCode),
    country_code: address.countryCode,
    province_code: null,
    phone: null,
    name: [address.firstName, address.lastName].filter((p) => p !== null && p !== '').join(' '),
  };
}

/** orders/create, orders/paid (@shopify/shopify-api rest/admin/2026-04/order.ts fields that matter, shopify.md §2). */
export function orderPayload(shop: Shop, order: Order, customer: Customer | null) {
  const t = (d: Date) => restTime(d, shop.utcOffsetMinutes);
  const total = order.lineItems.reduce((sum, li) => sum + Number(li.price) * li.quantity, 0).toFixed(2);
  return {
    id: order.id,
    admin_graphql_api_id: `gid://shopify/Order/${order.id}`,
    name: `#${order.number}`,
    number: order.number - 1000,
    order_number: order.number,
    email: order.email,
    contact_email: order.email,
    phone: order.phone,
    buyer_accepts_marketing: order.buyerAcceptsMarketing,
    customer_locale: order.customerLocale,
    currency: order.currency,
    presentment_currency: order.currency,
    financial_status: order.financialStatus,
    fulfillment_status: null,
    confirmed: true,
    test: false,
    cancelled_at: null,
    cancel_reason: null,
    created_at: t(order.createdAt),
    updated_at: t(order.updatedAt),
    processed_at: t(order.processedAt),
    subtotal_price: total,
    total_price: total,
    total_tax: '0.00',
    tags: '',
    note: null,
    note_attributes: order.noteAttributes.map((a) => ({ name: a.name, value: a.value })),
    billing_address: order.billingAddress === null ? null : orderAddressPayload(order.billingAddress),
    shipping_address: order.billingAddress === null ? null : orderAddressPayload(order.billingAddress),
    customer:
      customer === null
        ? null
        : {
            id: customer.id,
            email: customer.email,
            phone: customer.phone,
            first_name: customer.firstName,
            last_name: customer.lastName,
            state: customer.state,
            verified_email: customer.verifiedEmail,
            created_at: t(customer.createdAt),
            updated_at: t(customer.updatedAt),
            admin_graphql_api_id: `gid://shopify/Customer/${customer.id}`,
            default_address: customer.address === null ? null : addressPayload(customer.address, customer.id),
          },
    line_items: order.lineItems.map((li) => ({
      id: li.id,
      admin_graphql_api_id: `gid://shopify/LineItem/${li.id}`,
      product_id: li.productId,
      variant_id: li.variantId,
      title: li.title,
      variant_title: li.variantTitle,
      name: li.variantTitle === null ? li.title : `${li.title} - ${li.variantTitle}`,
      vendor: li.vendor,
      sku: li.sku,
      quantity: li.quantity,
      price: li.price,
      requires_shipping: true,
      taxable: true,
      gift_card: false,
      product_exists: li.productId !== null,
    })),
  };
}

/** products/create, products/update: `tags` is one comma-separated string in REST. */
export function productPayload(shop: Shop, product: Product) {
  const t = (d: Date) => restTime(d, shop.utcOffsetMinutes);
  return {
    id: product.id,
    admin_graphql_api_id: `gid://shopify/Product/${product.id}`,
    title: product.title,
    body_html: null,
    vendor: product.vendor,
    product_type: product.productType,
    handle: product.handle,
    status: 'active',
    tags: product.tags.join(', '),
    created_at: t(product.createdAt),
    updated_at: t(product.updatedAt),
    published_at: t(product.createdAt),
    published_scope: 'web',
    variants: product.variants.map((v, i) => ({
      id: v.id,
      product_id: product.id,
      title: v.title,
      price: v.price,
      sku: v.sku,
      position: i + 1,
      admin_graphql_api_id: `gid://shopify/ProductVariant/${v.id}`,
    })),
    options: [{ name: 'Title', position: 1, values: product.variants.map((v) => v.title) }],
    images: [],
    image: null,
  };
}

/** app/uninstalled: the Shop resource. */
export function shopPayload(shop: Shop) {
  return {
    id: shop.id,
    name: shop.name,
    email: shop.email,
    domain: shop.domain,
    myshopify_domain: shop.domain,
    plan_name: 'basic',
    plan_display_name: 'Basic',
    currency: 'EUR',
  };
}
