/**
 * The simulated shops and what happens in them: customers, consent, products, collections, orders, tokens. Every
 * change that Shopify reports by webhook is announced through `emit` (topic + REST payload); the simulator
 * delivers it. Consent follows Shopify's rules (shopify.md §3.1, §6):
 * - the state reflects the consent record with the newest `consentUpdatedAt`: an older change leaves the newer
 *   record in place (whole seconds, as Shopify's DateTime);
 * - a change that alters nothing (same state, level and time) sends no webhook.
 */
import { randomBytes } from 'node:crypto';
import { customerPayload, emailConsentPayload, orderPayload, productPayload, shopPayload, smsConsentPayload } from './payloads';
import type {
  Address,
  CollectedFrom,
  ConsentRecord,
  Customer,
  EmailMarketingState,
  MarketingChannel,
  OptInLevel,
  Order,
  OrderAddress,
  Product,
  Shop,
  SimulatorClock,
} from './types';

/** A refused store action: `status` is the HTTP status the /_sim API answers with. */
export class SimError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'SimError';
  }
}

export type Emit = (shop: Shop, topic: string, payload: unknown) => void;

export interface ShopOptions {
  /** `*.myshopify.com`. */
  readonly domain: string;
  /** An Admin API token the app holds (e.g. `shpat_…`). */
  readonly accessToken: string;
  /** When it expires (ISO); default never (a legacy non-expiring offline token). */
  readonly accessTokenExpiresAt?: string | null;
  /** The refresh token paired with the access token (expiring offline tokens, shopify.md §0.6); none by default. */
  readonly refreshToken?: string | null;
  readonly name?: string;
  readonly email?: string;
  /** Minutes east of UTC for REST timestamps. Default 0. */
  readonly utcOffsetMinutes?: number;
  /** The merchant requires double opt-in for email marketing. Default false. */
  readonly doubleOptIn?: boolean;
}

export interface AddressInput {
  readonly country?: string | null;
  readonly company?: string | null;
  readonly firstName?: string | null;
  readonly lastName?: string | null;
  readonly address1?: string | null;
  readonly city?: string | null;
  readonly zip?: string | null;
  readonly province?: string | null;
}

export interface CustomerInput extends AddressInput {
  readonly email?: string | null;
  readonly phone?: string | null;
  readonly locale?: string | null;
  readonly tags?: readonly string[];
  /** The "accepts email marketing" box ticked when the customer is created (single opt-in, or PENDING with double opt-in). */
  readonly acceptsEmailMarketing?: boolean;
  readonly acceptsSmsMarketing?: boolean;
  readonly at?: string;
}

export type CustomerPatch = Omit<CustomerInput, 'acceptsEmailMarketing' | 'acceptsSmsMarketing'>;

export interface MarketingInput {
  /** Ticked (true) or unticked (false) box. */
  readonly subscribed: boolean;
  readonly optInLevel?: OptInLevel;
  /** SMS only; default SHOPIFY (captured in Shopify). */
  readonly collectedFrom?: CollectedFrom;
  /** When it happened (ISO); default now. */
  readonly at?: string;
}

export interface ProductInput {
  readonly title?: string;
  readonly handle?: string;
  readonly productType?: string;
  readonly vendor?: string;
  readonly tags?: readonly string[] | string;
  /** A standard-taxonomy category: `aa-1-2`, its GID, or `{id, fullName}`. */
  readonly category?: string | { readonly id: string; readonly fullName?: string } | null;
  /** Collection handles (created on first use), or `{handle, title}`. */
  readonly collections?: ReadonlyArray<string | { readonly handle: string; readonly title?: string }>;
  readonly sku?: string | null;
  readonly price?: string | number;
  readonly at?: string;
}

export interface LineItemInput {
  readonly productId?: number | string | null;
  readonly variantId?: number | string | null;
  readonly title?: string;
  readonly quantity?: number;
  readonly price?: string | number;
}

export interface OrderInput {
  /** An existing customer; otherwise the customer is found by email/phone or created (customers/create). */
  readonly customerId?: number | string;
  readonly email?: string | null;
  readonly phone?: string | null;
  readonly firstName?: string | null;
  readonly lastName?: string | null;
  /** e.g. `de-DE`. */
  readonly locale?: string | null;
  readonly lineItems: readonly LineItemInput[];
  readonly billingAddress?: AddressInput | null;
  /** Checkout attributes, e.g. an objection checkbox `{ "no_marketing": "yes" }`. */
  readonly noteAttributes?: Readonly<Record<string, string | number | boolean>> | ReadonlyArray<{ readonly name: string; readonly value: unknown }>;
  /** The checkout's email marketing box (buyer_accepts_marketing; subscribes the customer when ticked). */
  readonly acceptsEmailMarketing?: boolean;
  /** The checkout's SMS marketing box (needs a phone). */
  readonly acceptsSmsMarketing?: boolean;
  /** Pay at once (orders/create, then orders/paid). Default true. */
  readonly pay?: boolean;
  readonly currency?: string;
  readonly at?: string;
}

export interface ConsentChange {
  readonly state: EmailMarketingState;
  /** undefined: keep the current level (SINGLE_OPT_IN when subscribing without one). */
  readonly optInLevel?: OptInLevel | null;
  readonly at: Date;
  readonly collectedFrom?: CollectedFrom | null;
}

const SHOP_DOMAIN = /^[a-z0-9][a-z0-9-]*\.myshopify\.com$/;
const E164 = /^\+[1-9]\d{6,14}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const TAXONOMY_ID = /^[a-z]{2}(-\d+)*$/;
const TAXONOMY_GID_PREFIX = 'gid://shopify/TaxonomyCategory/';

function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/**
 * The record after `change`, or null when Shopify keeps the current one because it is newer (the state
 * "reflects the consent record with the most recent consentUpdatedAt", shopify.md §3.1).
 */
export function applyConsentChange(current: ConsentRecord, channel: MarketingChannel, change: ConsentChange): ConsentRecord | null {
  const at = wholeSeconds(change.at);
  if (current.updatedAt !== null && at.getTime() < current.updatedAt.getTime()) return null;
  const affirmative = change.state === 'SUBSCRIBED' || change.state === 'PENDING';
  const optInLevel = change.optInLevel !== undefined ? change.optInLevel : affirmative ? (current.optInLevel ?? 'SINGLE_OPT_IN') : current.optInLevel;
  const collectedFrom = channel === 'sms' ? (change.collectedFrom ?? current.collectedFrom ?? 'OTHER') : null;
  return { state: change.state, optInLevel, updatedAt: at, collectedFrom };
}

function sameRecord(a: ConsentRecord, b: ConsentRecord): boolean {
  return a.state === b.state && a.optInLevel === b.optInLevel && a.updatedAt?.getTime() === b.updatedAt?.getTime() && a.collectedFrom === b.collectedFrom;
}

const NEVER: ConsentRecord = { state: 'NOT_SUBSCRIBED', optInLevel: null, updatedAt: null, collectedFrom: null };

function text(value: string | null | undefined): string | null {
  const trimmed = value?.trim() ?? '';
  return trimmed === '' ? null : trimmed;
}

function countryCode(value: string | null | undefined): string | null {
  const code = text(value)?.toUpperCase() ?? null;
  if (code !== null && !/^[A-Z]{2}$/.test(code)) throw new SimError(400, `country ${JSON.stringify(value)} is not an ISO 3166-1 alpha-2 code`);
  return code;
}

function handleOf(title: string): string {
  return (
    title
      .toLowerCase()
      .normalize('NFKD')
      .replace(/[\u0300-\u036f]/g, '')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'item'
  );
}

function money(value: string | number | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new SimError(400, `price ${JSON.stringify(value)} is not an amount`);
  return n.toFixed(2);
}

function numericId(value: number | string, what: string): number {
  const s = String(value).trim();
  const gid = /^gid:\/\/shopify\/\w+\/(\d+)$/.exec(s);
  const digits = gid ? gid[1]! : s;
  if (!/^\d{1,16}$/.test(digits)) throw new SimError(400, `${what} id ${JSON.stringify(value)} is not a numeric id`);
  return Number(digits);
}

/** Per-kind id sequences: numeric ids in Shopify's ranges, ascending, unique across shops. */
class Ids {
  readonly #next = new Map<string, number>();
  static readonly #BASE: Record<string, number> = {
    shop: 54_838_000_000,
    customer: 7_301_122_000_000,
    address: 9_400_011_000_000,
    product: 8_800_900_000_000,
    variant: 4_500_600_000_000,
    collection: 4_180_000_000_000,
    order: 6_100_200_000_000,
    lineItem: 15_500_600_000_000,
  };

  next(kind: string): number {
    const n = (this.#next.get(kind) ?? Ids.#BASE[kind] ?? 1_000_000) + 1;
    this.#next.set(kind, n);
    return n;
  }
}

export interface StoreDeps {
  readonly clock: SimulatorClock;
  readonly emit: Emit;
  /** Lifetime of tokens issued by a refresh (seconds). */
  readonly accessTokenTtlSeconds: number;
  readonly refreshTokenTtlSeconds: number;
}

export class ShopifyStore {
  readonly shops = new Map<string, Shop>();
  readonly #ids = new Ids();

  constructor(private readonly deps: StoreDeps) {}

  #now(at?: string | Date): Date {
    if (at === undefined) return this.deps.clock.now();
    const date = at instanceof Date ? at : new Date(at);
    if (Number.isNaN(date.getTime())) throw new SimError(400, `at ${JSON.stringify(at)} is not a timestamp`);
    return date;
  }

  /** Announce a webhook; an uninstalled app receives nothing but app/uninstalled. */
  #emit(shop: Shop, topic: string, payload: unknown): void {
    if (shop.installed || topic === 'app/uninstalled') this.deps.emit(shop, topic, payload);
  }

  // ---------------------------------------------------------------- shops and tokens

  addShop(options: ShopOptions): Shop {
    const domain = options.domain.trim().toLowerCase();
    if (!SHOP_DOMAIN.test(domain)) throw new SimError(400, `shop domain ${JSON.stringify(options.domain)} is not a *.myshopify.com domain`);
    if (this.shops.has(domain)) throw new SimError(409, `shop ${domain} exists`);
    if (options.accessToken === '') throw new SimError(400, 'accessToken must not be empty');
    const expires = options.accessTokenExpiresAt ? this.#now(options.accessTokenExpiresAt) : null;
    const shop: Shop = {
      id: this.#ids.next('shop'),
      domain,
      name: options.name ?? domain.replace('.myshopify.com', ''),
      email: options.email ?? `owner@${domain}`,
      utcOffsetMinutes: options.utcOffsetMinutes ?? 0,
      doubleOptIn: options.doubleOptIn ?? false,
      installed: true,
      accessTokens: new Map([[options.accessToken, { expiresAt: expires }]]),
      refreshToken: options.refreshToken ? { token: options.refreshToken, expiresAt: null } : null,
      customers: new Map(),
      products: new Map(),
      collections: new Map(),
      orders: new Map(),
      nextOrderNumber: 1001,
      counters: { graphqlRequests: 0, throttled: 0 },
    };
    this.shops.set(domain, shop);
    return shop;
  }

  shop(domain: string): Shop {
    const shop = this.shops.get(domain.trim().toLowerCase());
    if (shop === undefined) throw new SimError(404, `no shop ${domain}`);
    return shop;
  }

  /** Whether `token` is a live Admin API token of an installed shop. */
  tokenValid(shop: Shop, token: string): boolean {
    if (!shop.installed) return false;
    const issued = shop.accessTokens.get(token);
    return issued !== undefined && (issued.expiresAt === null || issued.expiresAt.getTime() > this.deps.clock.now().getTime());
  }

  /**
   * Rotate the token pair (grant_type refresh_token): the used refresh token dies; the previous access token stays
   * valid until its own expiry. Null when the refresh token is not the shop's live one.
   */
  refresh(shop: Shop, refreshToken: string): { accessToken: string; refreshToken: string; expiresIn: number; refreshExpiresIn: number } | null {
    const now = this.deps.clock.now().getTime();
    const current = shop.refreshToken;
    if (!shop.installed || current === null || current.token !== refreshToken || (current.expiresAt !== null && current.expiresAt.getTime() <= now)) return null;
    const accessToken = `shpat_sim_${randomBytes(12).toString('hex')}`;
    const next = `shprt_sim_${randomBytes(12).toString('hex')}`;
    const { accessTokenTtlSeconds: ttl, refreshTokenTtlSeconds: refreshTtl } = this.deps;
    shop.accessTokens.set(accessToken, { expiresAt: new Date(now + ttl * 1000) });
    shop.refreshToken = { token: next, expiresAt: new Date(now + refreshTtl * 1000) };
    return { accessToken, refreshToken: next, expiresIn: ttl, refreshExpiresIn: refreshTtl };
  }

  /** The merchant uninstalls the app: tokens die, app/uninstalled is sent. */
  uninstall(shop: Shop): void {
    if (!shop.installed) throw new SimError(409, `the app is not installed on ${shop.domain}`);
    shop.installed = false;
    shop.accessTokens.clear();
    shop.refreshToken = null;
    this.#emit(shop, 'app/uninstalled', shopPayload(shop));
  }

  /** The merchant installs the app again with a new token (pair). */
  install(shop: Shop, tokens: { accessToken: string; refreshToken?: string | null }): void {
    if (shop.installed) throw new SimError(409, `the app is installed on ${shop.domain}`);
    if (tokens.accessToken === '') throw new SimError(400, 'accessToken must not be empty');
    shop.installed = true;
    shop.accessTokens.set(tokens.accessToken, { expiresAt: null });
    shop.refreshToken = tokens.refreshToken ? { token: tokens.refreshToken, expiresAt: null } : null;
  }

  // ---------------------------------------------------------------- customers

  customer(shop: Shop, id: number | string): Customer {
    const customer = shop.customers.get(numericId(id, 'customer'));
    if (customer === undefined) throw new SimError(404, `no customer ${id} in ${shop.domain}`);
    return customer;
  }

  #checkIdentity(shop: Shop, email: string | null, phone: string | null, self: number | null): void {
    if (email !== null && !EMAIL.test(email)) throw new SimError(400, `email ${JSON.stringify(email)} is invalid`);
    if (phone !== null && !E164.test(phone)) throw new SimError(400, `phone ${JSON.stringify(phone)} is not in E.164 format (+4915112345678)`);
    for (const other of shop.customers.values()) {
      if (other.id === self) continue;
      if (email !== null && other.email?.toLowerCase() === email.toLowerCase()) throw new SimError(409, 'Email has already been taken');
      if (phone !== null && other.phone === phone) throw new SimError(409, 'Phone has already been taken');
    }
  }

  #address(existing: Address | null, input: AddressInput): Address | null {
    const keys: Array<keyof AddressInput> = ['country', 'company', 'firstName', 'lastName', 'address1', 'city', 'zip', 'province'];
    if (!keys.some((k) => input[k] !== undefined)) return existing;
    const address: Address = existing ?? {
      id: this.#ids.next('address'),
      firstName: null,
      lastName: null,
      company: null,
      address1: null,
      city: null,
      province: null,
      zip: null,
      countryCode: null,
      phone: null,
    };
    if (input.country !== undefined) address.countryCode = countryCode(input.country);
    if (input.company !== undefined) address.company = text(input.company);
    if (input.firstName !== undefined) address.firstName = text(input.firstName);
    if (input.lastName !== undefined) address.lastName = text(input.lastName);
    if (input.address1 !== undefined) address.address1 = text(input.address1);
    if (input.city !== undefined) address.city = text(input.city);
    if (input.zip !== undefined) address.zip = text(input.zip);
    if (input.province !== undefined) address.province = text(input.province);
    return address;
  }

  /** A customer is added (admin, account sign-up): customers/create, then consent topics for ticked boxes. */
  createCustomer(shop: Shop, input: CustomerInput): Customer {
    const email = text(input.email);
    const phone = text(input.phone);
    if (email === null && phone === null) throw new SimError(400, 'a customer needs an email or a phone');
    this.#checkIdentity(shop, email, phone, null);
    const at = this.#now(input.at);
    const customer: Customer = {
      id: this.#ids.next('customer'),
      email,
      phone,
      firstName: text(input.firstName),
      lastName: text(input.lastName),
      locale: text(input.locale),
      tags: [...(input.tags ?? [])],
      state: 'disabled',
      verifiedEmail: email !== null,
      createdAt: wholeSeconds(at),
      updatedAt: wholeSeconds(at),
      address: null,
      emailConsent: NEVER,
      smsConsent: NEVER,
    };
    customer.address = this.#address(null, input);
    shop.customers.set(customer.id, customer);
    this.#emit(shop, 'customers/create', customerPayload(shop, customer));
    if (input.acceptsEmailMarketing) this.setMarketing(shop, customer, 'email', { subscribed: true, at: at.toISOString() });
    if (input.acceptsSmsMarketing) this.setMarketing(shop, customer, 'sms', { subscribed: true, at: at.toISOString() });
    return customer;
  }

  /** customers/update (never carrying consent, shopify.md §0.1). */
  updateCustomer(shop: Shop, customer: Customer, patch: CustomerPatch): Customer {
    const email = patch.email === undefined ? customer.email : text(patch.email);
    const phone = patch.phone === undefined ? customer.phone : text(patch.phone);
    if (email === null && phone === null) throw new SimError(400, 'a customer needs an email or a phone');
    this.#checkIdentity(shop, email, phone, customer.id);
    if (email !== customer.email) {
      customer.email = email;
      // A new address starts without consent: since 2025-04 consent belongs to the CustomerEmailAddress /
      // CustomerPhoneNumber (shopify.md §3.2). UNVERIFIED: whether Shopify also sends a consent webhook then.
      customer.emailConsent = NEVER;
    }
    if (phone !== customer.phone) {
      customer.phone = phone;
      customer.smsConsent = NEVER;
    }
    if (patch.firstName !== undefined) customer.firstName = text(patch.firstName);
    if (patch.lastName !== undefined) customer.lastName = text(patch.lastName);
    if (patch.locale !== undefined) customer.locale = text(patch.locale);
    if (patch.tags !== undefined) customer.tags = [...patch.tags];
    customer.address = this.#address(customer.address, patch);
    customer.updatedAt = wholeSeconds(this.#now(patch.at));
    this.#emit(shop, 'customers/update', customerPayload(shop, customer));
    return customer;
  }

  /**
   * Apply a consent change with Shopify's rules and send the consent topic when the record changed. Returns
   * whether it was applied (false: Shopify keeps a newer record).
   */
  changeConsent(shop: Shop, customer: Customer, channel: MarketingChannel, change: ConsentChange): boolean {
    const current = channel === 'email' ? customer.emailConsent : customer.smsConsent;
    const next = applyConsentChange(current, channel, change);
    if (next === null) return false;
    if (sameRecord(current, next)) return true;
    if (channel === 'email') customer.emailConsent = next;
    else customer.smsConsent = next;
    const updated = this.deps.clock.now();
    if (updated.getTime() > customer.updatedAt.getTime()) customer.updatedAt = wholeSeconds(updated);
    this.#emit(
      shop,
      channel === 'email' ? 'customers_email_marketing_consent/update' : 'customers_marketing_consent/update',
      channel === 'email' ? emailConsentPayload(shop, customer) : smsConsentPayload(shop, customer),
    );
    return true;
  }

  /**
   * The customer (or the merchant for them) ticks or unticks a marketing box. Ticked email with the shop's
   * double opt-in setting gives PENDING (confirmed opt-in outstanding) until `confirmEmail`.
   */
  setMarketing(shop: Shop, customer: Customer, channel: MarketingChannel, input: MarketingInput): Customer {
    if (channel === 'email' && customer.email === null) throw new SimError(400, `customer ${customer.id} has no email address`);
    if (channel === 'sms' && customer.phone === null) throw new SimError(400, `customer ${customer.id} has no phone number`);
    const at = this.#now(input.at);
    let change: ConsentChange;
    if (!input.subscribed) change = { state: 'UNSUBSCRIBED', at };
    else if (channel === 'email' && shop.doubleOptIn && input.optInLevel === undefined) change = { state: 'PENDING', optInLevel: 'CONFIRMED_OPT_IN', at };
    else change = { state: 'SUBSCRIBED', optInLevel: input.optInLevel ?? 'SINGLE_OPT_IN', at };
    this.changeConsent(shop, customer, channel, channel === 'sms' ? { ...change, collectedFrom: input.collectedFrom ?? 'SHOPIFY' } : change);
    return customer;
  }

  /** The customer clicks the double opt-in confirmation link: PENDING → SUBSCRIBED (CONFIRMED_OPT_IN). */
  confirmEmail(shop: Shop, customer: Customer, at?: string): Customer {
    if (customer.emailConsent.state !== 'PENDING') throw new SimError(409, `customer ${customer.id}'s email consent is ${customer.emailConsent.state}, not PENDING`);
    this.changeConsent(shop, customer, 'email', { state: 'SUBSCRIBED', optInLevel: 'CONFIRMED_OPT_IN', at: this.#now(at) });
    return customer;
  }

  /** The customer follows an unsubscribe link (email, SMS STOP, or both). */
  unsubscribe(shop: Shop, customer: Customer, channel: MarketingChannel | 'all', at?: string): Customer {
    const when = this.#now(at);
    for (const c of channel === 'all' ? (['email', 'sms'] as const) : [channel]) {
      const has = c === 'email' ? customer.email !== null : customer.phone !== null;
      if (has) this.changeConsent(shop, customer, c, { state: 'UNSUBSCRIBED', at: when, ...(c === 'sms' ? { collectedFrom: 'SHOPIFY' as const } : {}) });
      else if (channel !== 'all') throw new SimError(400, `customer ${customer.id} has no ${c === 'email' ? 'email address' : 'phone number'}`);
    }
    return customer;
  }

  // ---------------------------------------------------------------- products

  product(shop: Shop, id: number | string): Product {
    const product = shop.products.get(numericId(id, 'product'));
    if (product === undefined) throw new SimError(404, `no product ${id} in ${shop.domain}`);
    return product;
  }

  #category(input: ProductInput['category']): Product['category'] {
    if (input === null || input === undefined) return null;
    const raw = typeof input === 'string' ? input : input.id;
    const id = raw.trim().startsWith(TAXONOMY_GID_PREFIX) ? raw.trim().slice(TAXONOMY_GID_PREFIX.length) : raw.trim();
    if (!TAXONOMY_ID.test(id)) throw new SimError(400, `category ${JSON.stringify(raw)} is not a standard-taxonomy id (aa-1-2)`);
    const fullName = (typeof input === 'string' ? undefined : input.fullName) ?? id;
    return { id, fullName, name: fullName.split('>').pop()!.trim() };
  }

  #collections(shop: Shop, input: ProductInput['collections']): number[] {
    const ids: number[] = [];
    for (const entry of input ?? []) {
      const handle = handleOf(typeof entry === 'string' ? entry : entry.handle);
      const title = typeof entry === 'string' ? entry : (entry.title ?? entry.handle);
      let found = [...shop.collections.values()].find((c) => c.handle === handle);
      if (found === undefined) {
        found = { id: this.#ids.next('collection'), handle, title };
        shop.collections.set(found.id, found);
      }
      if (!ids.includes(found.id)) ids.push(found.id);
    }
    return ids;
  }

  static tagsOf(tags: ProductInput['tags']): string[] {
    const list = typeof tags === 'string' ? tags.split(',') : (tags ?? []);
    return [...new Set(list.map((t) => t.trim()).filter((t) => t !== ''))];
  }

  /** products/create. */
  createProduct(shop: Shop, input: ProductInput): Product {
    const at = wholeSeconds(this.#now(input.at));
    const title = text(input.title) ?? 'Untitled product';
    const product: Product = {
      id: this.#ids.next('product'),
      title,
      handle: handleOf(input.handle ?? title),
      productType: input.productType?.trim() ?? '',
      vendor: input.vendor?.trim() ?? shop.name,
      tags: ShopifyStore.tagsOf(input.tags),
      category: this.#category(input.category),
      collectionIds: this.#collections(shop, input.collections),
      variants: [{ id: this.#ids.next('variant'), title: 'Default Title', sku: text(input.sku), price: money(input.price, '10.00') }],
      createdAt: at,
      updatedAt: at,
    };
    shop.products.set(product.id, product);
    this.#emit(shop, 'products/create', productPayload(shop, product));
    return product;
  }

  /** products/update. */
  updateProduct(shop: Shop, product: Product, patch: Omit<ProductInput, 'sku' | 'price' | 'handle'>): Product {
    if (patch.title !== undefined) product.title = text(patch.title) ?? product.title;
    if (patch.productType !== undefined) product.productType = patch.productType.trim();
    if (patch.vendor !== undefined) product.vendor = patch.vendor.trim();
    if (patch.tags !== undefined) product.tags = ShopifyStore.tagsOf(patch.tags);
    if (patch.category !== undefined) product.category = this.#category(patch.category);
    if (patch.collections !== undefined) product.collectionIds = this.#collections(shop, patch.collections);
    product.updatedAt = wholeSeconds(this.#now(patch.at));
    this.#emit(shop, 'products/update', productPayload(shop, product));
    return product;
  }

  // ---------------------------------------------------------------- orders

  order(shop: Shop, id: number | string): Order {
    const order = shop.orders.get(numericId(id, 'order'));
    if (order === undefined) throw new SimError(404, `no order ${id} in ${shop.domain}`);
    return order;
  }

  /**
   * A checkout completes: the customer is found (by id, email or phone) or created (customers/create); ticked
   * marketing boxes subscribe them (consent topics); orders/create; then, when paid, orders/paid.
   */
  createOrder(shop: Shop, input: OrderInput): Order {
    const at = wholeSeconds(this.#now(input.at));
    if (input.lineItems.length === 0) throw new SimError(400, 'an order needs at least one line item');
    const lineItems = input.lineItems.map((li) => this.#lineItem(shop, li));
    let customer: Customer;
    if (input.customerId !== undefined) {
      customer = this.customer(shop, input.customerId);
    } else {
      const email = text(input.email);
      const phone = text(input.phone);
      if (email === null && phone === null) throw new SimError(400, 'an order needs a customerId, an email or a phone');
      const found = [...shop.customers.values()].find(
        (c) => (email !== null && c.email?.toLowerCase() === email.toLowerCase()) || (email === null && phone !== null && c.phone === phone),
      );
      customer =
        found ??
        this.createCustomer(shop, {
          ...(input.billingAddress ? { ...input.billingAddress } : {}),
          email,
          phone,
          firstName: input.firstName ?? input.billingAddress?.firstName ?? null,
          lastName: input.lastName ?? input.billingAddress?.lastName ?? null,
          locale: input.locale ?? null,
          at: at.toISOString(),
        });
    }
    const email = text(input.email) ?? customer.email;
    const phone = text(input.phone) ?? customer.phone;
    if (input.acceptsEmailMarketing) {
      if (customer.email === null) throw new SimError(400, 'the email marketing box needs a customer with an email address');
      if (customer.emailConsent.state !== 'SUBSCRIBED') this.setMarketing(shop, customer, 'email', { subscribed: true, at: at.toISOString() });
    }
    if (input.acceptsSmsMarketing) {
      if (customer.phone === null) throw new SimError(400, 'the SMS marketing box needs a customer with a phone number');
      if (customer.smsConsent.state !== 'SUBSCRIBED') this.setMarketing(shop, customer, 'sms', { subscribed: true, collectedFrom: 'SHOPIFY', at: at.toISOString() });
    }
    const billing = input.billingAddress ? this.#orderAddress(input.billingAddress) : null;
    const attributes = Array.isArray(input.noteAttributes)
      ? (input.noteAttributes as ReadonlyArray<{ name: string; value: unknown }>).map((a) => ({ name: a.name, value: String(a.value ?? '') }))
      : Object.entries(input.noteAttributes ?? {}).map(([name, value]) => ({ name, value: String(value) }));
    const order: Order = {
      id: this.#ids.next('order'),
      number: shop.nextOrderNumber++,
      email,
      phone,
      customerId: customer.id,
      buyerAcceptsMarketing: input.acceptsEmailMarketing ?? false,
      customerLocale: text(input.locale) ?? customer.locale,
      financialStatus: 'pending',
      currency: input.currency ?? 'EUR',
      noteAttributes: attributes,
      lineItems,
      billingAddress: billing,
      createdAt: at,
      updatedAt: at,
      processedAt: at,
    };
    shop.orders.set(order.id, order);
    this.#emit(shop, 'orders/create', orderPayload(shop, order, customer));
    if (input.pay ?? true) this.payOrder(shop, order, at.toISOString());
    return order;
  }

  /** The payment is captured: orders/paid. */
  payOrder(shop: Shop, order: Order, at?: string): Order {
    if (order.financialStatus === 'paid') throw new SimError(409, `order ${order.id} is paid already`);
    order.financialStatus = 'paid';
    order.updatedAt = wholeSeconds(this.#now(at));
    const customer = order.customerId === null ? null : (shop.customers.get(order.customerId) ?? null);
    this.#emit(shop, 'orders/paid', orderPayload(shop, order, customer));
    return order;
  }

  #lineItem(shop: Shop, input: LineItemInput) {
    const quantity = input.quantity ?? 1;
    if (!Number.isInteger(quantity) || quantity < 1) throw new SimError(400, `quantity ${JSON.stringify(input.quantity)} is not a positive integer`);
    if (input.productId === undefined || input.productId === null) {
      // A custom line item: no product behind it.
      return { id: this.#ids.next('lineItem'), productId: null, variantId: null, title: input.title ?? 'Custom item', variantTitle: null, vendor: null, sku: null, quantity, price: money(input.price, '0.00') };
    }
    const product = this.product(shop, input.productId);
    const variant = input.variantId === undefined || input.variantId === null ? product.variants[0]! : product.variants.find((v) => v.id === numericId(input.variantId!, 'variant'));
    if (variant === undefined) throw new SimError(404, `product ${product.id} has no variant ${input.variantId}`);
    return {
      id: this.#ids.next('lineItem'),
      productId: product.id,
      variantId: variant.id,
      title: input.title ?? product.title,
      variantTitle: variant.title === 'Default Title' ? null : variant.title,
      vendor: product.vendor,
      sku: variant.sku,
      quantity,
      price: money(input.price, variant.price),
    };
  }

  #orderAddress(input: AddressInput): OrderAddress {
    return {
      firstName: text(input.firstName),
      lastName: text(input.lastName),
      company: text(input.company),
      address1: text(input.address1),
      city: text(input.city),
      zip: text(input.zip),
      countryCode: countryCode(input.country),
    };
  }
}
