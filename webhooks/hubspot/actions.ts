/**
 * `POST /hubspot/actions/check-consent` (issue 4 §9): HubSpot's custom workflow action "Check marketing consent"
 * (hubspot.md §6). A workflow calls it for one contact before "Send email" and branches on `consent_allowed`; the
 * action itself cannot stop a send. Checks, in order, with nothing written unless all pass:
 *
 * 1. size limit on the raw bytes (413) · 2. HubSpot's signature over the raw bytes: v3 with its 5-minute window
 * when present, else v2; v1 refused (401) · 3. content type (415) · 4. the execution request's fields we rely on
 * (400, every problem listed) · 5. tenant by `origin.portalId`: unknown 404 `not_found`, uninstalled 403
 * `forbidden` (a 4xx, so HubSpot records the failure and does not retry, hubspot.md §6) · 6. the decision, from
 * local state only (the send gate, no outbound call), answered once per `callbackId`.
 *
 * Answer: 200 `{"outputFields":{"consent_allowed":"yes"|"no","consent_reason":…,"consent_basis":…|"none",
 * "hs_execution_state":"SUCCESS"}}`. A blocked contact is a successful execution with `consent_allowed: "no"`:
 * the workflow must continue to its branch, so the state is SUCCESS either way.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { TenantSettings } from '../../src/config/manifest';
import { checkRecipients, parseGateRequest } from '../../src/gate/gate';
import type { Reason } from '../../src/rules/decide';
import type { Logger } from '../../src/ports';
import { requireFeature, type RouteModule } from '../../src/server/app';
import type { Store } from '../../src/store/database';
import { insertWorkflowActionCall } from '../../src/store/workflow-action.repository';
import type { Tenant } from '../../src/tenants/tenants';
import { sha256Hex } from '../_shared/compare';
import type { WebhookDeps } from '../_shared/deps';
import {
  activeTenantOfPortal,
  badActionRequest,
  contactObjectType,
  executionEnvelope,
  numericId,
  optionalInput,
  readSignedActionBody,
  storedActionAnswer,
  subscriptionTypeId,
} from './action-common';

export { WORKFLOW_ACTION_BODY_LIMIT_BYTES } from './action-common';

export const HUBSPOT_CHECK_CONSENT_PATH = '/hubspot/actions/check-consent';

/** Channels the action offers (manifest.json `workflowActions[].inputFields` channel options). */
export const ACTION_CHANNELS = ['email', 'sms', 'whatsapp'] as const;

/** Same shapes the gate accepts (src/gate/gate.ts), checked here so a problem names the input field. */
const PURPOSE_ID = /^(\*|[a-z0-9][a-z0-9_-]{0,63})$/;
const CATEGORY_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_CATEGORIES = 100;

const inputFieldsSchema = z
  .looseObject({
    channel: z.enum(ACTION_CHANNELS),
    /** A purpose id of the tenant's settings, or `*`. */
    purpose: optionalInput(z.string().trim().regex(PURPOSE_ID, 'must be a purpose id of the settings (a-z, 0-9, _ and -) or *')),
    /** A HubSpot subscription type id; mapped to a purpose through the settings (`purposes[].hubspotSubscriptionTypeIds`). */
    subscription_type: optionalInput(subscriptionTypeId),
    /** Category groups the message promotes, comma-separated (soft opt-in must cover each one). */
    category: optionalInput(
      z
        .string()
        .max(MAX_CATEGORIES * 65)
        .transform((text) => text.split(',').map((c) => c.trim()).filter((c) => c !== ''))
        .pipe(z.array(z.string().regex(CATEGORY_ID, 'each category must be a category group id (a-z, 0-9, _ and -)')).max(MAX_CATEGORIES)),
    ),
  })
  .refine((inputs) => inputs.purpose === undefined || inputs.subscription_type === undefined, {
    message: 'give purpose or subscription_type, not both',
    path: ['purpose'],
  });

/**
 * The execution request (hubspot.md §6: `{callbackId, origin:{portalId, actionDefinitionId, …}, context,
 * object:{objectId, objectType, properties?}, inputFields}`). Strict about the fields the answer depends on,
 * loose about the rest (HubSpot adds fields such as `extensionDefinitionId` without notice).
 */
export const checkConsentRequestSchema = z.looseObject({
  ...executionEnvelope,
  object: z.looseObject({ objectId: numericId, objectType: contactObjectType }),
  inputFields: inputFieldsSchema,
});

export interface CheckConsentCall {
  readonly callbackId: string;
  readonly portalId: string;
  readonly contactId: string;
  readonly channel: (typeof ACTION_CHANNELS)[number];
  readonly purpose: string | undefined;
  readonly subscriptionType: string | undefined;
  readonly categories: readonly string[];
}

/** Validate a parsed body; every problem is listed in one 400 (`bad_request`, like the gate API). */
export function parseCheckConsentRequest(body: unknown): CheckConsentCall {
  const result = checkConsentRequestSchema.safeParse(body);
  if (!result.success) throw badActionRequest(result.error);
  const { callbackId, origin, object, inputFields } = result.data;
  return {
    callbackId,
    portalId: origin.portalId,
    contactId: object.objectId,
    channel: inputFields.channel,
    purpose: inputFields.purpose,
    subscriptionType: inputFields.subscription_type,
    categories: inputFields.category ?? [],
  };
}

/** Reasons this action adds to the gate's (README "Reason"): the request names a purpose the settings do not know. */
export const PURPOSE_BLOCK_REASONS = ['purpose_unknown', 'subscription_type_unmapped', 'subscription_type_ambiguous'] as const;
export type PurposeBlockReason = (typeof PURPOSE_BLOCK_REASONS)[number];

export type PurposeResolution = { readonly ok: true; readonly purpose: string } | { readonly ok: false; readonly reason: PurposeBlockReason };

/**
 * The gate purpose for the action's inputs. Never guessed: the gate reads the purpose's own consent row and then
 * the `*` row, so deciding an unknown purpose (or a subscription type mapped to none) as `*` would miss a
 * withdrawal recorded for the real purpose and could allow a send the contact refused. Such a call is answered
 * "no" with a reason naming the configuration problem, which the merchant fixes in the settings:
 *
 * - `subscription_type`: the one purpose whose `hubspotSubscriptionTypeIds` lists it; none → `subscription_type_unmapped`,
 *   several → `subscription_type_ambiguous`;
 * - `purpose`: `*` or a purpose id of the settings, else `purpose_unknown`;
 * - neither: `*` (any marketing purpose), as the gate API defaults.
 */
export function resolvePurpose(settings: Pick<TenantSettings, 'purposes'>, call: Pick<CheckConsentCall, 'purpose' | 'subscriptionType'>): PurposeResolution {
  if (call.subscriptionType !== undefined) {
    const mapped = settings.purposes.filter((p) => p.hubspotSubscriptionTypeIds.includes(call.subscriptionType!));
    if (mapped.length === 0) return { ok: false, reason: 'subscription_type_unmapped' };
    if (mapped.length > 1) return { ok: false, reason: 'subscription_type_ambiguous' };
    return { ok: true, purpose: mapped[0]!.id };
  }
  if (call.purpose === undefined || call.purpose === '*') return { ok: true, purpose: '*' };
  return settings.purposes.some((p) => p.id === call.purpose) ? { ok: true, purpose: call.purpose } : { ok: false, reason: 'purpose_unknown' };
}

export interface CheckConsentAnswer {
  readonly outputFields: {
    readonly consent_allowed: 'yes' | 'no';
    readonly consent_reason: Reason | PurposeBlockReason;
    /** The allowing legal basis (`consent`, `soft_opt_in`, `legitimate_interest`, `contract`), else `none`. */
    readonly consent_basis: string;
    /**
     * hubspot.md §6: optional; without it a 2xx already counts as success. Sent explicitly so the workflow goes on
     * to its branch for a "no" as well (FAIL_CONTINUE would mark the execution failed; BLOCK would wait for a callback).
     */
    readonly hs_execution_state: 'SUCCESS';
  };
}

function answerOf(allowed: boolean, reason: Reason | PurposeBlockReason, basis: string | null): CheckConsentAnswer {
  return { outputFields: { consent_allowed: allowed ? 'yes' : 'no', consent_reason: reason, consent_basis: basis ?? 'none', hs_execution_state: 'SUCCESS' } };
}

/** The decision for the call, from local state only (the send gate reads the store; no outbound call). */
export async function decideCheckConsent(store: Store, tenant: Tenant, call: CheckConsentCall, now: Date): Promise<CheckConsentAnswer> {
  const purpose = resolvePurpose(tenant.settings, call);
  if (!purpose.ok) return answerOf(false, purpose.reason, null);
  const request = parseGateRequest({ channel: call.channel, purpose: purpose.purpose, categories: call.categories, recipients: [{ hubspotContactId: call.contactId }] });
  const [result] = (await checkRecipients(store, tenant, request, now)).results;
  if (result === undefined) throw new Error('the gate answered no result for one recipient');
  return answerOf(result.allowed, result.reason, result.basis);
}

/** What the answer depends on. A callback id reused with other inputs is refused rather than answered wrongly. */
function fingerprintOf(call: CheckConsentCall): string {
  return sha256Hex(JSON.stringify([call.contactId, call.channel, call.purpose ?? null, call.subscriptionType ?? null, call.categories]));
}

/**
 * Answer each callback id once (insert-first, style.md §10). HubSpot retries an execution after a 5xx, a 429 or
 * a timeout (hubspot.md §6), and the retry gets the stored answer unchanged even if consent changed since, so one
 * execution never yields two different decisions. The decision is made before the insert (the row holds it); a
 * concurrent duplicate's insert does nothing and it returns the winner's answer.
 */
export async function answerOnce(
  store: Store,
  tenantId: string,
  call: CheckConsentCall,
  now: Date,
  decideAnswer: () => Promise<CheckConsentAnswer>,
): Promise<{ answer: CheckConsentAnswer; replayed: boolean }> {
  const fingerprint = fingerprintOf(call);
  const answer = await decideAnswer();
  const row = { tenant_id: tenantId, callback_id: call.callbackId, request_fingerprint: fingerprint, answer: JSON.stringify(answer), created_at: now.toISOString() };
  if (await insertWorkflowActionCall(store.db, row)) return { answer, replayed: false };
  return { answer: await storedActionAnswer<CheckConsentAnswer>(store.db, tenantId, call.callbackId, fingerprint), replayed: true };
}

async function handle(deps: WebhookDeps, ctx: Context): Promise<void> {
  // Checks 1–5 are shared with "Record consent change" (action-common.ts).
  const call = parseCheckConsentRequest(await readSignedActionBody(deps, ctx));
  const tenant = await activeTenantOfPortal(deps, call.portalId);

  const now = deps.clock.now();
  const { answer, replayed } = await answerOnce(deps.store, tenant.id, call, now, () => decideCheckConsent(deps.store, tenant, call, now));
  // A replay returns the stored answer: no new decision, so it is not counted again.
  if (!replayed) deps.metrics?.gateDecisions('hubspot_action', [{ allowed: answer.outputFields.consent_allowed === 'yes', reason: answer.outputFields.consent_reason }]);
  // No personal data: the contact id stays out of the log; the callback id lets HubSpot support find the execution.
  const logger = (ctx.state.logger as Logger | undefined) ?? deps.logger;
  logger.debug(
    { tenantId: tenant.id, callbackId: call.callbackId, allowed: answer.outputFields.consent_allowed, reason: answer.outputFields.consent_reason, replayed },
    'workflow action answered',
  );
  ctx.status = 200;
  ctx.body = answer;
}

export function hubspotActionRoutes(deps: WebhookDeps): RouteModule {
  const router = new Router();
  router.post(HUBSPOT_CHECK_CONSENT_PATH, requireFeature(deps.config, 'hubspot'), (ctx) => handle(deps, ctx));
  return { router };
}
