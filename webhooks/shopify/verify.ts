/**
 * Shopify webhook verification (shopify.md §1.1–1.2): HMAC-SHA256 of the raw body bytes, base64, keyed with the
 * app's client secret, compared in constant time; the previous secret is accepted too during a rotation (the
 * library's `webhooks.validate()` checks one secret only). Expected failures are values (style.md §5).
 */
import { hmacSha256Base64, safeEqual } from '../_shared/compare';

export interface ShopifyHeaders {
  readonly topic: string;
  readonly shopDomain: string;
  readonly webhookId: string;
  readonly apiVersion: string;
  readonly eventId: string | null;
  readonly triggeredAt: string | null;
  readonly name: string | null;
}

export type HmacCheck = { ok: true; secretIndex: number } | { ok: false; reason: 'missing_hmac' | 'invalid_hmac' };
export type HeaderCheck = { ok: true; headers: ShopifyHeaders } | { ok: false; missing: string[] };

type HeaderReader = (name: string) => string;

/**
 * Read a Shopify header. The "Events" developer preview sends the same headers without the `X-` prefix
 * (shopify.md §1.1), so both spellings are read.
 */
function header(get: HeaderReader, name: string): string {
  return (get(`X-Shopify-${name}`) || get(`Shopify-${name}`)).trim();
}

export function checkShopifyHmac(raw: Buffer, get: HeaderReader, secrets: readonly string[]): HmacCheck {
  const received = header(get, 'Hmac-Sha256');
  if (received === '') return { ok: false, reason: 'missing_hmac' };
  for (const [index, secret] of secrets.entries()) {
    if (safeEqual(hmacSha256Base64(secret, raw), received)) return { ok: true, secretIndex: index };
  }
  return { ok: false, reason: 'invalid_hmac' };
}

/** The headers every delivery carries (library `validate()` requires the same four). */
export function readShopifyHeaders(get: HeaderReader): HeaderCheck {
  const topic = header(get, 'Topic');
  const shopDomain = header(get, 'Shop-Domain');
  const webhookId = header(get, 'Webhook-Id');
  const apiVersion = header(get, 'API-Version');
  const missing = [
    ['X-Shopify-Topic', topic],
    ['X-Shopify-Shop-Domain', shopDomain],
    ['X-Shopify-Webhook-Id', webhookId],
    ['X-Shopify-API-Version', apiVersion],
  ]
    .filter(([, value]) => value === '')
    .map(([name]) => name!);
  if (missing.length > 0) return { ok: false, missing };
  return {
    ok: true,
    headers: {
      topic: topic.toLowerCase(),
      shopDomain,
      webhookId,
      apiVersion,
      eventId: header(get, 'Event-Id') || null,
      triggeredAt: header(get, 'Triggered-At') || null,
      name: header(get, 'Name') || null,
    },
  };
}
