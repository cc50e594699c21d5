/**
 * `POST /webhooks/shopify` and `POST /webhooks/shopify/compliance` (issue 3 §1–6). Order of checks, each
 * answered before the next runs, and nothing written unless every check passes:
 *
 * 1. size limit on the raw bytes (413) · 2. HMAC over those bytes, current or previous secret (401) ·
 * 3. required headers (400) · 4. content type (415) · 5. JSON, depth-limited, an object (400) ·
 * 6. known topic for this endpoint (400) · 7. shop domain (400), and any shop domain in the signed body must be
 * the header's (401: a signed body of one shop replayed under another's header) · 8. tenant: unknown or
 * uninstalled → 200 `ignored` with a counter, except compliance topics, which are always recorded ·
 * 9. a customer id another tenant already knows → 401 (Shopify ids are global) · 10. one transaction,
 * insert-first on the webhook id: 200 `accepted` or 200 `duplicate`.
 *
 * The request path makes no outbound HTTP call; the worker does the rest.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { AppError } from '../../src/domain/errors';
import { normalizeIdentity } from '../../src/domain/identity';
import { type AcceptBatch } from '../../src/inbox/inbox';
import { countWebhooks } from '../../src/metrics/routes';
import { requireFeature, type RouteModule } from '../../src/server/app';
import { normalizeShopDomain } from '../../src/tenants/tenants';
import { isJsonContentType, parseJson, readRawBody } from '../../src/server/body';
import { activeSecrets } from '../_shared/compare';
import type { WebhookDeps } from '../_shared/deps';
import { isComplianceTopic, isNormalTopic } from './topics';
import { checkShopifyHmac, readShopifyHeaders, type ShopifyHeaders } from './verify';

export const SHOPIFY_WEBHOOK_PATH = '/webhooks/shopify';
export const SHOPIFY_COMPLIANCE_PATH = '/webhooks/shopify/compliance';

type Endpoint = 'normal' | 'compliance';

/** Shop domains a signed body may carry; each must equal the header's. */
function bodyShopDomains(body: Record<string, unknown>): string[] {
  return ['shop_domain', 'myshopify_domain'].map((key) => body[key]).filter((v): v is string => typeof v === 'string' && v !== '');
}

/** Shopify customer ids a body names (consent topics, customers/*, orders' nested customer). */
function customerIds(topic: string, body: Record<string, unknown>): string[] {
  const ids: unknown[] = [];
  if (topic.startsWith('customers_')) ids.push(body.customer_id, body.id);
  else if (topic.startsWith('customers/') && !isComplianceTopic(topic)) ids.push(body.id);
  else if (topic.startsWith('orders/')) ids.push((body.customer as Record<string, unknown> | null | undefined)?.id);
  return ids.filter((v): v is string | number => typeof v === 'number' || typeof v === 'string').map(String);
}

function metaOf(headers: ShopifyHeaders): Record<string, string> {
  const meta: Record<string, string> = { apiVersion: headers.apiVersion, shopDomain: headers.shopDomain };
  if (headers.eventId) meta.eventId = headers.eventId;
  if (headers.triggeredAt) meta.triggeredAt = headers.triggeredAt;
  if (headers.name) meta.name = headers.name;
  return meta;
}

async function handle(deps: WebhookDeps, endpoint: Endpoint, ctx: Context): Promise<void> {
  const { config } = deps;
  const raw = await readRawBody(ctx, config.webhookBodyLimitBytes);

  const hmac = checkShopifyHmac(raw, (name) => ctx.get(name), activeSecrets(config.shopify.apiSecret, config.shopify.apiSecretPrevious));
  if (!hmac.ok) {
    throw new AppError('unauthorized', hmac.reason === 'missing_hmac' ? 'missing X-Shopify-Hmac-Sha256 header' : 'HMAC signature does not match the body');
  }
  const read = readShopifyHeaders((name) => ctx.get(name));
  if (!read.ok) throw new AppError('bad_request', `missing required headers: ${read.missing.join(', ')}`);
  const headers = read.headers;
  if (!isJsonContentType(ctx)) throw new AppError('unsupported_media_type', 'webhook body must be application/json');
  const parsed = parseJson(raw);
  if (!parsed.ok) throw new AppError('bad_request', parsed.message);
  if (parsed.value === null || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
    throw new AppError('bad_request', 'Shopify webhook body must be a JSON object');
  }
  const body = parsed.value as Record<string, unknown>;

  const compliance = isComplianceTopic(headers.topic);
  if (endpoint === 'compliance' ? !compliance : !(compliance || isNormalTopic(headers.topic))) {
    throw new AppError('bad_request', `topic ${headers.topic} is not handled at ${ctx.path}`);
  }
  const shopDomain = normalizeShopDomain(headers.shopDomain);
  if (shopDomain === null) throw new AppError('bad_request', 'X-Shopify-Shop-Domain is not a *.myshopify.com domain');
  if (bodyShopDomains(body).some((d) => normalizeShopDomain(d) !== shopDomain)) {
    throw new AppError('unauthorized', 'the signed body belongs to another shop than X-Shopify-Shop-Domain');
  }

  const tenant = await deps.tenants.byShop(shopDomain);
  const active = tenant !== undefined && tenant.status === 'active';
  const payload = raw.toString('utf8');
  const batch: AcceptBatch = compliance
    ? {
        deliveries: [],
        privacyRequests: [{ tenantId: tenant?.id ?? null, platform: 'shopify', account: shopDomain, deliveryKey: headers.webhookId, topic: headers.topic, payload }],
        unrouted: [],
      }
    : active
      ? {
          deliveries: [{ tenantId: tenant.id, platform: 'shopify', deliveryKey: headers.webhookId, topic: headers.topic, payload, meta: metaOf(headers) }],
          privacyRequests: [],
          unrouted: [],
        }
      : {
          deliveries: [],
          privacyRequests: [],
          unrouted: [{ platform: 'shopify', account: shopDomain, topic: headers.topic, reason: tenant ? 'tenant_uninstalled' : 'unknown_tenant' }],
        };

  if (active && !compliance) {
    for (const id of customerIds(headers.topic, body)) {
      const identity = normalizeIdentity('shopify_customer', id);
      if (identity && (await deps.tenants.heldByOtherTenant(tenant.id, identity))) {
        throw new AppError('unauthorized', 'the signed body names a customer of another shop');
      }
    }
  }

  const result = await deps.inbox.accept(batch);
  if (result.accepted > 0) deps.onAccepted?.();
  ctx.status = 200;
  if (batch.unrouted.length > 0) {
    ctx.body = { status: 'ignored', reason: batch.unrouted[0]!.reason };
  } else {
    ctx.body = { status: result.accepted + result.privacyRecorded > 0 ? 'accepted' : 'duplicate' };
  }
}

export function shopifyWebhookRoutes(deps: WebhookDeps): RouteModule {
  const router = new Router();
  const gate = requireFeature(deps.config, 'shopify');
  const count = countWebhooks(deps.metrics, 'shopify');
  router.post(SHOPIFY_WEBHOOK_PATH, count, gate, (ctx) => handle(deps, 'normal', ctx));
  router.post(SHOPIFY_COMPLIANCE_PATH, count, gate, (ctx) => handle(deps, 'compliance', ctx));
  return { router };
}
