/**
 * Shopify delivery → domain effects (the mapping table of the README, issue 3 §8). Pure: no I/O, no clock.
 *
 * | topic                                      | effect                                                             |
 * |--------------------------------------------|--------------------------------------------------------------------|
 * | customers_email_marketing_consent/update   | email event at `consent_updated_at` (see STATE_TO_KIND)            |
 * | customers_marketing_consent/update         | the same for SMS, keeping `consent_collected_from`                 |
 * | customers/create, customers/update         | identities + country/company; no consent change (API ≥ 2025-01)   |
 * | orders/paid                                | purchase fact (order, date, lines, country, buyer_accepts_marketing) |
 * | orders/create                              | identities only (no sale yet)                                      |
 * | products/create, products/update           | product facts (type, vendor, tags, updated_at) cached, row stale   |
 * | app/uninstalled                            | tenant uninstalled, tokens discarded                               |
 */
import type { z } from 'zod';
import { ALL_PURPOSES, type Channel, type EventKind, type LegalBasis, type OptInLevel } from '../../src/domain/consent';
import {
  PermanentDeliveryError,
  type InboundDelivery,
  type InboundEffect,
  type ProductUpdateFacts,
  type CustomerTags,
  type ProfileFacts,
  type PurchaseFact,
  type SubjectlessEvent,
} from '../../src/domain/inbound';
import { normalizeIdentity, type Identity } from '../../src/domain/identity';
import { toIsoTimestamp } from '../../src/domain/time';
import { customerSchema, emailConsentSchema, orderSchema, productSchema, shopSchema, smsConsentSchema } from './topics';

/**
 * Shopify consent state → ledger event kind. `not_subscribed` grants nothing (it is the absence of consent, and
 * never a withdrawal); `redacted` is Shopify's erasure marker; `invalid` marks an undeliverable address.
 */
export const STATE_TO_KIND: Readonly<Record<string, { kind: EventKind; basis: LegalBasis | null } | null>> = {
  subscribed: { kind: 'grant', basis: 'consent' },
  pending: { kind: 'pending', basis: 'consent' },
  unsubscribed: { kind: 'withdraw', basis: null },
  not_subscribed: null,
  redacted: { kind: 'erase', basis: null },
  invalid: { kind: 'address_invalid', basis: null },
};

function parse<T extends z.ZodType>(schema: T, payload: unknown, topic: string): z.infer<T> {
  const result = schema.safeParse(payload);
  if (!result.success) {
    throw new PermanentDeliveryError(
      `${topic} payload does not match its schema`,
      result.error.issues.slice(0, 10).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
    );
  }
  return result.data;
}

function timestamp(value: string | null | undefined, field: string): string | null {
  if (value === null || value === undefined || value === '') return null;
  const iso = toIsoTimestamp(value);
  if (iso === null) throw new PermanentDeliveryError(`${field} is not a timestamp`);
  return iso;
}

function identities(customerId: string | null | undefined, email?: string | null, phone?: string | null): Identity[] {
  const found: Identity[] = [];
  const add = (identity: Identity | null) => {
    if (identity && !found.some((i) => i.kind === identity.kind && i.value === identity.value)) found.push(identity);
  };
  if (customerId) add(normalizeIdentity('shopify_customer', customerId));
  if (email) add(normalizeIdentity('email', email));
  if (phone) add(normalizeIdentity('phone', phone));
  return found;
}

function country(code: string | null | undefined): string | null {
  const upper = (code ?? '').trim().toUpperCase();
  return /^[A-Z]{2}$/.test(upper) ? upper : null;
}

/**
 * When the consent changed: Shopify's `consent_updated_at`, else the delivery's `X-Shopify-Triggered-At`, else
 * its receipt time (never arrival order for ordering when the source gives a time, conflict rule 1).
 */
function consentTime(delivery: InboundDelivery, consentUpdatedAt: string | null | undefined): string {
  return (
    timestamp(consentUpdatedAt, 'consent_updated_at') ?? timestamp(delivery.meta.triggeredAt, 'X-Shopify-Triggered-At') ?? delivery.receivedAt
  );
}

function consentEffect(
  delivery: InboundDelivery,
  channel: Channel,
  ids: Identity[],
  consent: { state: string; opt_in_level?: OptInLevel | null; consent_updated_at?: string | null; consent_collected_from?: string | null },
): InboundEffect[] {
  if (ids.length === 0) throw new PermanentDeliveryError(`${delivery.topic} names no customer`);
  const mapping = STATE_TO_KIND[consent.state];
  if (mapping === null || mapping === undefined) {
    return [{ kind: 'identify', identities: ids, profile: null }, { kind: 'skip', reason: `${channel} ${consent.state}: no consent change` }];
  }
  const affirmativeState = mapping.kind === 'grant' || mapping.kind === 'pending';
  const event: SubjectlessEvent = {
    channel,
    purpose: ALL_PURPOSES,
    kind: mapping.kind,
    basis: mapping.basis,
    occurredAt: consentTime(delivery, consent.consent_updated_at),
    source: 'shopify',
    sourceDeliveryId: delivery.deliveryKey,
    evidence: {
      // A Shopify state change to subscribed/pending is the customer's act recorded by the store (the
      // checkout box, a form, the customer account); Shopify's consent_updated_at dates it.
      ...(affirmativeState ? { affirmative: true, capturePoint: `shopify:${channel}_marketing_consent` } : {}),
      ...(consent.opt_in_level ? { optInLevel: consent.opt_in_level } : {}),
      ...(consent.consent_collected_from ? { collectedFrom: consent.consent_collected_from } : {}),
      shopifyState: consent.state,
      ...(delivery.meta.apiVersion ? { apiVersion: delivery.meta.apiVersion } : {}),
    },
  };
  return [{ kind: 'consent', identities: ids, events: [event] }];
}

function profileOf(address: { country_code?: string | null; company?: string | null } | null | undefined, updatedAt: string | null): ProfileFacts | null {
  if (!address || updatedAt === null) return null;
  const company = (address.company ?? '').trim();
  return { country: country(address.country_code), company: company === '' ? null : company, sourceUpdatedAt: updatedAt };
}

/** The customer's tags, when the payload carries the field (REST: "a, b"); see `CustomerTags`. */
function customerTagsOf(tags: string | readonly string[] | null | undefined, updatedAt: string | null): { customerTags: CustomerTags } | Record<string, never> {
  if (tags === undefined || tags === null || updatedAt === null) return {};
  return { customerTags: { tags: splitProductTags(tags), sourceUpdatedAt: updatedAt } };
}

function attributesOf(list: ReadonlyArray<{ name: string; value: unknown }> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { name, value } of list ?? []) out[name] = value === null || value === undefined ? '' : String(value);
  return out;
}

/** REST `tags` (products, customers): one comma-separated string ("a, b"); each tag trimmed, empty ones dropped, each once. */
export function splitProductTags(tags: string | readonly string[] | null | undefined): string[] {
  const list = typeof tags === 'string' ? tags.split(',') : (tags ?? []);
  return [...new Set(list.map((t) => t.trim()).filter((t) => t !== ''))];
}

export function mapShopifyDelivery(delivery: InboundDelivery): readonly InboundEffect[] {
  switch (delivery.topic) {
    case 'customers_email_marketing_consent/update': {
      const body = parse(emailConsentSchema, delivery.payload, delivery.topic);
      return consentEffect(delivery, 'email', identities(body.customer_id, body.email_address), body.email_marketing_consent);
    }
    case 'customers_marketing_consent/update': {
      const body = parse(smsConsentSchema, delivery.payload, delivery.topic);
      return consentEffect(delivery, 'sms', identities(body.id ?? body.customer_id, null, body.phone), body.sms_marketing_consent);
    }
    case 'customers/create':
    case 'customers/update': {
      const body = parse(customerSchema, delivery.payload, delivery.topic);
      const updatedAt = timestamp(body.updated_at, 'updated_at');
      return [{ kind: 'identify', identities: identities(body.id, body.email, body.phone), profile: profileOf(body.default_address, updatedAt), ...customerTagsOf(body.tags, updatedAt) }];
    }
    case 'orders/create':
    case 'orders/paid': {
      const body = parse(orderSchema, delivery.payload, delivery.topic);
      const ids = identities(body.customer?.id, body.email ?? body.customer?.email, body.phone ?? body.customer?.phone);
      if (ids.length === 0) return [{ kind: 'skip', reason: 'order names no customer, email or phone' }];
      const customerUpdatedAt = timestamp(body.customer?.updated_at, 'customer.updated_at');
      const profile = profileOf(body.customer?.default_address, customerUpdatedAt);
      const tags = customerTagsOf(body.customer?.tags, customerUpdatedAt);
      if (delivery.topic === 'orders/create') return [{ kind: 'identify', identities: ids, profile, ...tags }];
      const orderedAt = timestamp(body.created_at, 'created_at')!;
      const purchase: PurchaseFact = {
        orderId: body.id,
        orderedAt,
        // orders/paid fires when the order is paid; its updated_at is that moment (processed_at, created_at as fallbacks).
        paidAt: timestamp(body.updated_at, 'updated_at') ?? timestamp(body.processed_at, 'processed_at') ?? orderedAt,
        country: country(body.billing_address?.country_code) ?? country(body.customer?.default_address?.country_code),
        buyerAcceptsMarketing: body.buyer_accepts_marketing ?? null,
        lines: body.line_items.map((line) => ({ productId: line.product_id ?? null, variantId: line.variant_id ?? null, quantity: line.quantity ?? 1 })),
        attributes: attributesOf(body.note_attributes),
      };
      return [{ kind: 'purchase', identities: ids, purchase, profile, ...tags }];
    }
    case 'products/create':
    case 'products/update': {
      const body = parse(productSchema, delivery.payload, delivery.topic);
      const nonEmpty = (value: string | null | undefined) => (value === null || value === undefined || value.trim() === '' ? null : value);
      const product: ProductUpdateFacts = {
        productId: body.id,
        productType: nonEmpty(body.product_type),
        vendor: nonEmpty(body.vendor),
        tags: splitProductTags(body.tags),
        updatedAt: timestamp(body.updated_at, 'updated_at')!,
      };
      return [{ kind: 'product', product }];
    }
    case 'app/uninstalled':
      parse(shopSchema, delivery.payload, delivery.topic);
      return [{ kind: 'uninstall' }];
    default:
      throw new PermanentDeliveryError(`no mapping for Shopify topic ${delivery.topic}`);
  }
}
