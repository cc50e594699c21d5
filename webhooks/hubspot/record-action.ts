/**
 * `POST /hubspot/actions/record-consent-change` (issue 5 §5 (a)): HubSpot's custom workflow action "Record consent
 * change" (hubspot.md §6). HubSpot sends no webhook for subscription changes (hubspot.md §1.2), so the merchant's
 * workflow, enrolled on "subscription status changed" or "unsubscribed from all email", calls this action and the
 * change reaches the ledger, the gate and (through the sync policy) Shopify.
 *
 * Checks 1–5 are the "Check marketing consent" action's (action-common.ts: 413, 401 for a bad, missing or v1
 * signature, 415, 400 with every problem listed, 404 unknown portal, 403 uninstalled), and nothing is written
 * unless all pass. Then, in ONE transaction, answered once per `callbackId` (the `workflow_action_call` row):
 *
 * - the subscription type is mapped to the purposes whose `hubspotSubscriptionTypeIds` list it; no type ("all
 *   email", an unsubscribe from all) is purpose `*`; an unmapped type is `*` for an unsubscribe (a withdrawal the
 *   settings cannot place blocks every purpose rather than being lost) and refused for a subscribe (a subscription
 *   to a type the merchant never mapped is not marketing consent for every purpose): `subscription_type_unmapped`;
 * - `NOT_SUBSCRIBED` → a `withdraw` event; `SUBSCRIBED` → a `grant` (basis consent) that is an affirmative act only
 *   when the workflow says the contact did it on the preferences page: anything else is an observation, which
 *   never re-grants after a withdrawal (design.md conflict rule 3);
 * - an observation that only reflects one of our own subscription writes (src/sync/echo.ts) records nothing
 *   (`echo`, conflict rule 6);
 * - otherwise the contact (HubSpot contact id, and its `email` property when HubSpot sends it) is resolved and
 *   united, and the events appended with the ledger delivery key `hubspot-action:<callbackId>`; the ledger enqueues
 *   the platform writes the change owes (src/sync/policy.ts: Shopify for purpose `*` only, nothing back to HubSpot).
 *
 * Answer: 200 `{"outputFields":{"recorded":"yes"|"no","reason":…,"hs_execution_state":"SUCCESS"}}`.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Transaction } from 'kysely';
import { z } from 'zod';
import type { TenantSettings } from '../../src/config/manifest';
import { ALL_PURPOSES, type ConsentState, type Evidence, type NewConsentEvent } from '../../src/domain/consent';
import { AppError } from '../../src/domain/errors';
import { foldConsent } from '../../src/domain/fold';
import { normalizeIdentity, type Identity } from '../../src/domain/identity';
import { MAX_SOURCE_CLOCK_SKEW_MS, toIsoTimestamp } from '../../src/domain/time';
import { appendInTransaction, rowToEvent } from '../../src/ledger/ledger';
import type { Clock, IdGenerator, Logger } from '../../src/ports';
import { requireFeature, type RouteModule } from '../../src/server/app';
import type { Dialect, Store } from '../../src/store/database';
import { identitiesOf } from '../../src/store/gate.repository';
import { findSubjectIds } from '../../src/store/identity.repository';
import { eventsOfSubjectChannel } from '../../src/store/ledger.repository';
import type { Database } from '../../src/store/schema';
import { knownWrites } from '../../src/store/sync-write.repository';
import { findWorkflowActionCall, insertWorkflowActionCall } from '../../src/store/workflow-action.repository';
import { resolveAndUnite } from '../../src/subjects/merge';
import { hubspotSubscriptionFingerprint } from '../../src/sync/echo';
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

export const HUBSPOT_RECORD_CONSENT_CHANGE_PATH = '/hubspot/actions/record-consent-change';

/**
 * Channels the action records (manifest.json channel options). Email only: HubSpot's subscription API is email
 * only (hubspot.md §3.1); SMS consent reaches the ledger through the `consent_bridge_sms_consent` property webhook.
 */
export const RECORD_CHANNELS = ['email'] as const;

/** HubSpot's subscription statuses (v3 `status`, hubspot.md §3.1). */
export const SUBSCRIPTION_STATUSES = ['SUBSCRIBED', 'NOT_SUBSCRIBED'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

/**
 * Who made the change, as the workflow tells it: `preferences_page` is the contact's own act on HubSpot's
 * subscription preferences page (or an unsubscribe link); `workflow_or_import` a workflow, import, CRM edit or
 * integration; `unknown` (the default) is treated like the latter.
 */
export const CHANGE_SOURCES = ['preferences_page', 'workflow_or_import', 'unknown'] as const;
export type ChangeSource = (typeof CHANGE_SOURCES)[number];

/**
 * `reason` output values. `recorded`: the change is in the ledger and is what the contact's state now rests on;
 * `no_change`: recorded as evidence, but the state stays as it was (a subscription observed after an
 * unsubscribe, rule 3; or an older change than the one the state rests on); `echo`: it only reflects one of our
 * own writes, nothing recorded; `subscription_type_unmapped`: a subscribe to a type no purpose lists, nothing
 * recorded.
 */
export const RECORD_REASONS = ['recorded', 'no_change', 'echo', 'subscription_type_unmapped'] as const;
export type RecordReason = (typeof RECORD_REASONS)[number];

/** How far `changed_at` may lie ahead of our clock (HubSpot's clock may run fast): 5 minutes, as the objection API. */
export const MAX_CHANGED_AT_SKEW_MS = MAX_SOURCE_CLOCK_SKEW_MS;

/** Earliest `changed_at` accepted: an earlier one is almost surely epoch seconds sent as milliseconds. */
export const MIN_CHANGED_AT = '2000-01-01T00:00:00.000Z';

const ISO_DATE_TIME = z.iso.datetime({ offset: true });
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * A HubSpot date-time as the workflow may send it: epoch milliseconds (a number or digits, HubSpot's own form for
 * date properties), ISO-8601 with a zone, or a date (midnight UTC). Which form HubSpot sends for a `datetime`
 * input is UNVERIFIED, so all three are read.
 */
export function parseChangedAt(value: number | string): string | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? toIsoTimestamp(value) : null;
  const text = value.trim();
  if (/^\d{1,15}$/.test(text)) return toIsoTimestamp(Number(text));
  if (ISO_DATE_TIME.safeParse(text).success || ISO_DATE.test(text)) return toIsoTimestamp(text);
  return null;
}

const changedAtInput = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const iso = parseChangedAt(value);
  if (iso === null) {
    ctx.addIssue({ code: 'custom', message: 'must be a date-time: epoch milliseconds, ISO-8601 with a zone (2026-05-01T10:00:00Z) or a date (2026-05-01)' });
    return z.NEVER;
  }
  return iso;
});

/** Enumeration values compared as HubSpot shows them, whatever the case and surrounding spaces. */
const upper = (value: unknown) => (typeof value === 'string' ? value.trim().toUpperCase() : value);
const lower = (value: unknown) => (typeof value === 'string' ? value.trim().toLowerCase() : value);

const inputFieldsSchema = z.looseObject({
  channel: z.preprocess(
    lower,
    z.enum(RECORD_CHANNELS, { error: 'must be email (HubSpot has no SMS subscription API; SMS consent arrives through the consent_bridge_sms_consent property)' }),
  ),
  /** The HubSpot subscription type that changed; empty = "all email" (an unsubscribe from all). */
  subscription_type: optionalInput(subscriptionTypeId),
  status: z.preprocess(upper, z.enum(SUBSCRIPTION_STATUSES, { error: 'must be SUBSCRIBED or NOT_SUBSCRIBED' })),
  /** When the change happened in HubSpot; default the request time. */
  changed_at: optionalInput(changedAtInput),
  source: optionalInput(z.preprocess(lower, z.enum(CHANGE_SOURCES, { error: `must be one of ${CHANGE_SOURCES.join(', ')}` }))),
});

/** The execution request; `object.properties` holds what `objectRequestOptions.properties` asked for (`email`). */
export const recordConsentChangeRequestSchema = z.looseObject({
  ...executionEnvelope,
  context: z.looseObject({ workflowId: optionalInput(numericId) }).optional(),
  object: z.looseObject({ objectId: numericId, objectType: contactObjectType, properties: z.record(z.string(), z.unknown()).nullish() }),
  inputFields: inputFieldsSchema,
});

export interface RecordConsentChangeCall {
  readonly callbackId: string;
  readonly portalId: string;
  readonly workflowId: string | null;
  readonly contactId: string;
  /** The contact's `email` property, normalised; null when absent or not an address. */
  readonly email: string | null;
  readonly channel: (typeof RECORD_CHANNELS)[number];
  /** Undefined: "all email". */
  readonly subscriptionType: string | undefined;
  readonly status: SubscriptionStatus;
  /** The given `changed_at` in ledger form; undefined when not given (the request time is used). */
  readonly changedAt: string | undefined;
  readonly source: ChangeSource;
}

/** Validate a parsed body against the schema and the clock; every problem is listed in one 400. */
export function parseRecordConsentChangeRequest(body: unknown, now: Date): RecordConsentChangeCall {
  const result = recordConsentChangeRequestSchema.safeParse(body);
  if (!result.success) throw badActionRequest(result.error);
  const { callbackId, origin, context, object, inputFields } = result.data;
  const { changed_at: changedAt } = inputFields;
  if (changedAt !== undefined && Date.parse(changedAt) > now.getTime() + MAX_CHANGED_AT_SKEW_MS) {
    throw new AppError('bad_request', 'malformed HubSpot workflow action request', {
      details: [`inputFields.changed_at: ${changedAt} is in the future (more than ${MAX_CHANGED_AT_SKEW_MS / 60_000} minutes ahead of ${now.toISOString()})`],
    });
  }
  if (changedAt !== undefined && changedAt < MIN_CHANGED_AT) {
    throw new AppError('bad_request', 'malformed HubSpot workflow action request', {
      details: [`inputFields.changed_at: ${changedAt} is before ${MIN_CHANGED_AT.slice(0, 10)} (epoch seconds instead of milliseconds?)`],
    });
  }
  const rawEmail = object.properties?.email;
  // A missing or unusable email is not an error: the contact id identifies the person; the email only unites
  // records and finds echoes.
  const email = typeof rawEmail === 'string' && rawEmail.trim() !== '' ? (normalizeIdentity('email', rawEmail)?.value ?? null) : null;
  return {
    callbackId,
    portalId: origin.portalId,
    workflowId: context?.workflowId ?? null,
    contactId: object.objectId,
    email,
    channel: inputFields.channel,
    subscriptionType: inputFields.subscription_type,
    status: inputFields.status,
    changedAt,
    source: inputFields.source ?? 'unknown',
  };
}

export type PurposeMapping = { readonly ok: true; readonly purposes: readonly string[] } | { readonly ok: false; readonly reason: 'subscription_type_unmapped' };

/**
 * The purposes a change bears on. Every purpose listing the type (one, normally; several when the merchant mapped
 * one type to several purposes: an unsubscribe from it withdraws each). No type ("all email") is `*`. An unmapped
 * type is `*` for an unsubscribe (never lose a withdrawal) and refused for a subscribe.
 */
export function purposesOfChange(settings: Pick<TenantSettings, 'purposes'>, call: Pick<RecordConsentChangeCall, 'subscriptionType' | 'status'>): PurposeMapping {
  if (call.subscriptionType === undefined) return { ok: true, purposes: [ALL_PURPOSES] };
  const mapped = [...new Set(settings.purposes.filter((p) => p.hubspotSubscriptionTypeIds.includes(call.subscriptionType!)).map((p) => p.id))].sort();
  if (mapped.length > 0) return { ok: true, purposes: mapped };
  return call.status === 'NOT_SUBSCRIBED' ? { ok: true, purposes: [ALL_PURPOSES] } : { ok: false, reason: 'subscription_type_unmapped' };
}

/** The ledger delivery key of an execution: a second append under it appends nothing. */
export function actionDeliveryKey(callbackId: string): string {
  return `hubspot-action:${callbackId}`;
}

/** The events a change records for a subject, one per purpose. Pure. */
export function changeEvents(call: RecordConsentChangeCall, purposes: readonly string[], subjectId: string, occurredAt: string): NewConsentEvent[] {
  const evidence: Evidence = {
    capturePoint: call.workflowId === null ? 'hubspot:workflow' : `hubspot:workflow:${call.workflowId}`,
    subscriptionTypeId: call.subscriptionType ?? null,
    note: 'recorded by workflow action',
    reportedSource: call.source,
  };
  const base = { subjectId, channel: call.channel, occurredAt, source: 'hubspot' as const, sourceDeliveryId: actionDeliveryKey(call.callbackId) };
  return purposes.map((purpose) =>
    call.status === 'NOT_SUBSCRIBED'
      ? { ...base, purpose, kind: 'withdraw' as const, basis: null, evidence }
      : // Only the contact's own act on the preferences page re-grants after a withdrawal (conflict rule 3).
        { ...base, purpose, kind: 'grant' as const, basis: 'consent' as const, evidence: { ...evidence, affirmative: call.source === 'preferences_page' } },
  );
}

/**
 * Whether the local state already says what the observation says. A matching fingerprint alone is not enough:
 * it has no time (src/sync/echo.ts), so after our `NOT_SUBSCRIBED` write, a re-subscribe and a real unsubscribe
 * by the contact within the log's 7 days would match it and be lost. Our unsubscribes come from a withdrawal,
 * objection or erasure; our subscribes from a consent or a soft opt-in (src/sync/policy.ts).
 */
export function stateAlreadySays(status: SubscriptionStatus, state: ConsentState): boolean {
  if (status === 'NOT_SUBSCRIBED') return state.status === 'withdrawn' || state.status === 'erased';
  return state.status === 'granted' || (!state.softOptInEnded && Object.keys(state.softOptIn).length > 0);
}

export interface RecordConsentChangeAnswer {
  readonly outputFields: {
    readonly recorded: 'yes' | 'no';
    readonly reason: RecordReason;
    /** SUCCESS either way: a change not recorded (an echo) is a successful execution, and the workflow goes on. */
    readonly hs_execution_state: 'SUCCESS';
  };
}

function answerOf(recorded: boolean, reason: RecordReason): RecordConsentChangeAnswer {
  return { outputFields: { recorded: recorded ? 'yes' : 'no', reason, hs_execution_state: 'SUCCESS' } };
}

export interface RecordDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

async function statesOf(trx: Transaction<Database>, dialect: Dialect, tenantId: string, subjectId: string, purposes: readonly string[]): Promise<Map<string, ConsentState>> {
  const events = (await eventsOfSubjectChannel(trx, dialect, tenantId, subjectId, 'email')).map(rowToEvent);
  return new Map(purposes.map((purpose) => [purpose, foldConsent(events, purpose)]));
}

/**
 * Echo suppression (conflict rule 6): the change matches one of our own subscription writes (by the contact's
 * email, the type and the status) and the state already says the same. Looked up without creating anything.
 * "All email" never matches: we only ever write per subscription type.
 */
async function isEcho(trx: Transaction<Database>, dialect: Dialect, tenantId: string, call: RecordConsentChangeCall, identities: readonly Identity[], purposes: readonly string[]): Promise<boolean> {
  if (call.subscriptionType === undefined) return false;
  const found = await findSubjectIds(trx, tenantId, identities);
  const subjectId = identities.map((i) => found.get(`${i.kind}:${i.value}`)).find((s): s is string => s !== undefined);
  if (subjectId === undefined) return false;
  const emails = new Set<string>(call.email === null ? [] : [call.email]);
  for (const row of await identitiesOf(trx, tenantId, [subjectId])) if (row.kind === 'email') emails.add(row.value);
  const fingerprints = [...emails].map((email) => hubspotSubscriptionFingerprint(email, call.subscriptionType!, call.status === 'SUBSCRIBED'));
  if ((await knownWrites(trx, tenantId, fingerprints)).size === 0) return false;
  const states = await statesOf(trx, dialect, tenantId, subjectId, purposes);
  return purposes.every((purpose) => stateAlreadySays(call.status, states.get(purpose)!));
}

/** Thrown inside the transaction to roll it back when the callback id was answered already. */
class AnsweredBefore extends Error {}

/** The answer's inputs: a callback id reused with other inputs is refused rather than answered wrongly. */
function requestFingerprint(call: RecordConsentChangeCall): string {
  return sha256Hex(JSON.stringify(['record-consent-change', call.contactId, call.channel, call.subscriptionType ?? null, call.status, call.changedAt ?? null, call.source]));
}

/** Everything a first execution writes, in the caller's transaction. */
async function recordInTransaction(trx: Transaction<Database>, dialect: Dialect, deps: RecordDeps, tenant: Tenant, call: RecordConsentChangeCall, now: Date): Promise<RecordConsentChangeAnswer> {
  const mapping = purposesOfChange(tenant.settings, call);
  if (!mapping.ok) return answerOf(false, mapping.reason);
  const { purposes } = mapping;
  // The contact id first: its subject survives when the email names another record (they are one person).
  const identities: Identity[] = [{ kind: 'hubspot_contact', value: call.contactId }, ...(call.email === null ? [] : [{ kind: 'email' as const, value: call.email }])];
  if (await isEcho(trx, dialect, tenant.id, call, identities, purposes)) return answerOf(false, 'echo');

  const subject = await resolveAndUnite(trx, deps, tenant.id, identities, 'hubspot_workflow_action');
  const events = changeEvents(call, purposes, subject.subjectId, call.changedAt ?? now.toISOString());
  const appended = await appendInTransaction(trx, dialect, deps, {
    tenantId: tenant.id,
    deliveryKey: actionDeliveryKey(call.callbackId),
    // Carry-overs of a union last, so the first events appended are this change's.
    events: [...events, ...subject.carryOver],
    changedSubjects: [subject.subjectId, ...subject.mergedSubjectIds],
  });
  // Only a concurrent execution of the same callback id gets here (its answer row is committed with its append).
  if (appended.duplicate) throw new AnsweredBefore();
  const states = await statesOf(trx, dialect, tenant.id, subject.subjectId, purposes);
  const tookEffect = appended.events.slice(0, events.length).some((event) => states.get(event.purpose)?.evidenceEventIds.includes(event.id) === true);
  return answerOf(true, tookEffect ? 'recorded' : 'no_change');
}

/**
 * Record the change once per callback id (HubSpot retries an execution after a 5xx, a 429 or a timeout,
 * hubspot.md §6). The answer row is inserted in the same transaction as the events, so a retry finds either both
 * or neither; a retry gets the stored answer and records nothing. Two concurrent deliveries: the second's ledger
 * claim or answer insert waits for the first to commit (PostgreSQL; SQLite runs one transaction at a time), finds
 * the key taken, rolls back everything it did and returns the first's answer.
 */
export async function recordConsentChangeOnce(
  store: Store,
  deps: RecordDeps,
  tenant: Tenant,
  call: RecordConsentChangeCall,
  now: Date,
): Promise<{ answer: RecordConsentChangeAnswer; replayed: boolean }> {
  const fingerprint = requestFingerprint(call);
  try {
    const answer = await store.db.transaction().execute(async (trx) => {
      if ((await findWorkflowActionCall(trx, tenant.id, call.callbackId)) !== undefined) throw new AnsweredBefore();
      const result = await recordInTransaction(trx, store.dialect, deps, tenant, call, now);
      const row = { tenant_id: tenant.id, callback_id: call.callbackId, request_fingerprint: fingerprint, answer: JSON.stringify(result), created_at: now.toISOString() };
      if (!(await insertWorkflowActionCall(trx, row))) throw new AnsweredBefore();
      return result;
    });
    return { answer, replayed: false };
  } catch (err) {
    if (!(err instanceof AnsweredBefore)) throw err;
  }
  return { answer: await storedActionAnswer<RecordConsentChangeAnswer>(store.db, tenant.id, call.callbackId, fingerprint), replayed: true };
}

async function handle(deps: WebhookDeps, ctx: Context): Promise<void> {
  const body = await readSignedActionBody(deps, ctx);
  const now = deps.clock.now();
  const call = parseRecordConsentChangeRequest(body, now);
  const tenant = await activeTenantOfPortal(deps, call.portalId);
  const { answer, replayed } = await recordConsentChangeOnce(deps.store, deps, tenant, call, now);
  // No personal data: neither the contact id nor the email is logged; the callback id finds the execution.
  const logger = (ctx.state.logger as Logger | undefined) ?? deps.logger;
  logger.info(
    { tenantId: tenant.id, callbackId: call.callbackId, status: call.status, recorded: answer.outputFields.recorded, reason: answer.outputFields.reason, replayed },
    'workflow action recorded consent change',
  );
  ctx.status = 200;
  ctx.body = answer;
}

export function hubspotRecordActionRoutes(deps: WebhookDeps): RouteModule {
  const router = new Router();
  router.post(HUBSPOT_RECORD_CONSENT_CHANGE_PATH, requireFeature(deps.config, 'hubspot'), (ctx) => handle(deps, ctx));
  return { router };
}
