/**
 * `POST /webhooks/hubspot` (issue 3 §1–6): a JSON array of up to 100 events per request. Checks, in order, with
 * nothing written unless all pass:
 *
 * 1. size limit on the raw bytes (413) · 2. signature over the raw bytes: v3 with its 5-minute window both ways,
 * or v1/v2 (401) · 3. content type (415) · 4. JSON array of 1–100 events with their routing fields (400) ·
 * 5. v1/v2 only when every event's tenant allows legacy signatures (401) · 6. per event: tenant by `portalId`;
 * unknown or uninstalled tenants and unhandled types are counted, not stored; `contact.privacyDeletion` is always
 * recorded · 7. one transaction for the whole batch, insert-first per event: a batch retried whole adds nothing.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { AppError } from '../../src/domain/errors';
import { type NewDelivery, type NewPrivacyRequest, type UnroutedDelivery } from '../../src/inbox/inbox';
import { countWebhooks } from '../../src/metrics/routes';
import { requireFeature, type RouteModule } from '../../src/server/app';
import type { Tenant } from '../../src/tenants/tenants';
import { isJsonContentType, parseJson, readRawBody } from '../../src/server/body';
import { activeSecrets } from '../_shared/compare';
import type { WebhookDeps } from '../_shared/deps';
import { deliveryKeyOf, isHandledType, isPrivacyType, MAX_EVENTS_PER_BATCH, routedEventSchema, type RoutedEvent } from './events';
import { checkHubspotSignature, SIGNATURE_MESSAGES } from './verify';

export const HUBSPOT_WEBHOOK_PATH = '/webhooks/hubspot';

function parseBatch(value: unknown): Array<{ event: RoutedEvent; original: unknown }> {
  if (!Array.isArray(value)) throw new AppError('bad_request', 'HubSpot webhook body must be a JSON array of events');
  if (value.length === 0) throw new AppError('bad_request', 'HubSpot webhook batch is empty');
  if (value.length > MAX_EVENTS_PER_BATCH) throw new AppError('bad_request', `HubSpot webhook batch has ${value.length} events; at most ${MAX_EVENTS_PER_BATCH}`);
  const problems: string[] = [];
  const events = value.map((original, index) => {
    const result = routedEventSchema.safeParse(original);
    if (!result.success) {
      for (const issue of result.error.issues.slice(0, 5)) problems.push(`[${index}].${issue.path.join('.')}: ${issue.message}`);
      return undefined;
    }
    if (result.data.objectId === undefined && result.data.primaryObjectId === undefined) problems.push(`[${index}].objectId: required`);
    return { event: result.data, original };
  });
  if (problems.length > 0) throw new AppError('bad_request', 'malformed HubSpot events; nothing was stored', { details: problems.slice(0, 20) });
  return events as Array<{ event: RoutedEvent; original: unknown }>;
}

async function handle(deps: WebhookDeps, ctx: Context): Promise<void> {
  const { config } = deps;
  const raw = await readRawBody(ctx, config.webhookBodyLimitBytes);
  const signature = checkHubspotSignature(
    { method: ctx.method, uri: `${config.appUrl}${ctx.originalUrl}`, raw, header: (name) => ctx.get(name), nowMs: deps.clock.now().getTime() },
    activeSecrets(config.hubspot.clientSecret, config.hubspot.clientSecretPrevious),
  );
  if (!signature.ok) throw new AppError('unauthorized', SIGNATURE_MESSAGES[signature.reason]);
  if (!isJsonContentType(ctx)) throw new AppError('unsupported_media_type', 'webhook body must be application/json');
  const parsed = parseJson(raw);
  if (!parsed.ok) throw new AppError('bad_request', parsed.message);
  const events = parseBatch(parsed.value);

  const tenants = new Map<string, Tenant | undefined>();
  for (const { event } of events) {
    if (!tenants.has(event.portalId)) tenants.set(event.portalId, await deps.tenants.byPortal(event.portalId));
  }
  if (signature.version !== 'v3') {
    // v1/v2 have no timestamp, so a captured request replays forever: only where the merchant opted in.
    const refused = [...tenants.values()].some((t) => t === undefined || t.status !== 'active' || t.settings.allowLegacyHubspotSignatures !== true);
    if (refused) throw new AppError('unauthorized', `${signature.version} signatures are not accepted for this portal (setting allowLegacyHubspotSignatures)`);
  }

  const deliveries: NewDelivery[] = [];
  const privacyRequests: NewPrivacyRequest[] = [];
  const unrouted: UnroutedDelivery[] = [];
  for (const { event, original } of events) {
    const tenant = tenants.get(event.portalId);
    const active = tenant !== undefined && tenant.status === 'active';
    const key = deliveryKeyOf(event);
    const payload = JSON.stringify(original);
    if (isPrivacyType(event.subscriptionType)) {
      privacyRequests.push({ tenantId: tenant?.id ?? null, platform: 'hubspot', account: event.portalId, deliveryKey: key, topic: event.subscriptionType, payload });
    } else if (!active) {
      unrouted.push({ platform: 'hubspot', account: event.portalId, topic: event.subscriptionType, reason: tenant ? 'tenant_uninstalled' : 'unknown_tenant' });
    } else if (!isHandledType(event.subscriptionType)) {
      unrouted.push({ platform: 'hubspot', account: event.portalId, topic: event.subscriptionType, reason: 'unhandled_topic' });
    } else {
      deliveries.push({ tenantId: tenant.id, platform: 'hubspot', deliveryKey: key, topic: event.subscriptionType, payload, meta: { signatureVersion: signature.version } });
    }
  }
  const result = await deps.inbox.accept({ deliveries, privacyRequests, unrouted });
  if (result.accepted > 0) deps.onAccepted?.();
  ctx.status = 200;
  ctx.body = { status: 'ok', accepted: result.accepted + result.privacyRecorded, duplicates: result.duplicates, ignored: result.unrouted };
}

export function hubspotWebhookRoutes(deps: WebhookDeps): RouteModule {
  const router = new Router();
  router.post(HUBSPOT_WEBHOOK_PATH, countWebhooks(deps.metrics, 'hubspot'), requireFeature(deps.config, 'hubspot'), (ctx) => handle(deps, ctx));
  return { router };
}
