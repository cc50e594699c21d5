/**
 * Reconciliation poll (issue 5 §5(b); design.md "Data flow": HubSpot has no subscription webhooks). Per active
 * tenant, every `reconciliationIntervalMinutes`, the HubSpot contacts modified since the tenant's cursor are read
 * (search API, oldest first), then their email subscription statuses, and what differs from the ledger is
 * recorded as observation events (source `hubspot`, never affirmative):
 *
 * | HubSpot says (type mapped to purpose P)             | ledger of P                        | recorded                  |
 * |-----------------------------------------------------|------------------------------------|---------------------------|
 * | NOT_SUBSCRIBED, with a timestamp                    | granted, pending or live soft opt-in | `withdraw` P at that time |
 * | every mapped type NOT_SUBSCRIBED (or unsubscribe-all) | `*` granted, pending or soft opt-in | also `withdraw` `*`       |
 * | SUBSCRIBED (not on legitimate interest)             | no grant                           | `grant` P, evidence       |
 * |                                                     |                                    | `{affirmative: false, note: 'observed in HubSpot at T'}` |
 *
 * A grant observed after a withdrawal is recorded but changes nothing (conflict rule 3, src/domain/fold.ts): a
 * poll never re-subscribes anyone. Observations equal to a write of ours (src/sync/echo.ts) are dropped. What is
 * not recorded, and why:
 * - NOT_SUBSCRIBED without a timestamp: the port reports HubSpot's NOT_SPECIFIED ("never set") as not subscribed
 *   too, and only a real opt-out carries the time it happened. Recording those would withdraw every subscriber
 *   of a type HubSpot was never told about (a purpose mapped after the grant, a write that failed).
 * - NOT_SUBSCRIBED while a subscription write of ours for that type is still pending in the outbox and was enqueued
 *   after the opt-out's time: HubSpot does not know our change yet. The observation is deferred: the delivery key
 *   then names it, so the next poll of the same state records it if it still holds.
 * - an opt-out older than the grant it would contradict (the grant is newer, rule 2 keeps it), and a
 *   subscription older than the withdrawal it would contradict.
 *
 * One transaction per contact (identities: HubSpot contact id + email, united like a webhook's), delivery key
 * `reconcile:<tenant>:<contact>:<statuses hash>`, so polling the same state again appends nothing. The cursor
 * (`sync_cursor` `reconcile:hubspot`, the newest `lastmodifieddate` recorded) advances only after the contacts
 * before it are recorded; a new cycle starts 30 s before it, because search lags writes (hubspot.md §5).
 *
 * The job runs on its own loop (src/jobs/scheduler.ts); one run does a bounded slice (`sliceMs`, shared by the
 * tenants) and the next tick continues from the cursor without the overlap. Reads are retried in the call
 * (src/sync/retry.ts); a run that still fails after part of its cycle was recorded keeps the cycle: the cursor
 * stays where the recorded contacts put it, this process takes it up again after a short backoff (another
 * process after the lease), and nothing recorded is read again. Pages are read by keyset (`since` = the newest time recorded),
 * not by HubSpot's offsets, which shift while contacts are being modified (by our own property writes too) and
 * would skip contacts.
 */
import { createHash } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { TenantSettings } from '../config/manifest';
import { EMPTY_STATE, type ConsentState, type NewConsentEvent } from '../domain/consent';
import type { SubjectlessEvent } from '../domain/inbound';
import { normalizeIdentity, type Identity } from '../domain/identity';
import { toIsoTimestamp } from '../domain/time';
import type { BackgroundJob } from '../jobs/scheduler';
import { canonicalJson } from '../ledger/chain';
import { appendInTransaction } from '../ledger/ledger';
import type { Clock, IdGenerator, Logger } from '../ports';
import type { Store } from '../store/database';
import * as cursors from '../store/cursor.repository';
import * as identities from '../store/identity.repository';
import * as ledgerRepo from '../store/ledger.repository';
import type { Database } from '../store/schema';
import * as writeLog from '../store/sync-write.repository';
import { resolveAndUnite } from '../subjects/merge';
import { listTenants, type Tenant } from '../tenants/tenants';
import { TenantBackoff } from '../jobs/tenant-backoff';
import { CursorLease } from './cursor-lease';
import { hubspotSubscriptionFingerprint } from './echo';
import { SYNC_OPERATIONS, type HubspotSubscriptionPayload } from './policy';
import { PlatformCallError, type HubspotContactStatus, type HubspotPort } from './ports';
import { DEFAULT_READ_RETRY, withReadRetries, type ReadRetryPolicy } from './retry';

/**
 * How much later than our write's logged time HubSpot may date its echo (ms): the log is written after HubSpot
 * answered, so an echo is normally older; this covers clocks that disagree. A real opt-out of that type within
 * this minute is the state HubSpot already shows (our NOT_SUBSCRIBED), so nothing is lost.
 */
export const ECHO_CLOCK_TOLERANCE_MS = 60_000;

/** `sync_cursor` name of the poll. */
export const RECONCILE_CURSOR = 'reconcile:hubspot';
/** How far before the cursor a new cycle starts: HubSpot search lags writes by "a few moments" (hubspot.md §5). */
export const SEARCH_OVERLAP_MS = 30_000;
/** Emails whose statuses are read (and recorded) before the cursor moves and the slice's time is checked. */
export const DEFAULT_STATUS_CHUNK = 20;
/** How long one run of the job may work (ms) before the next tenant's turn. */
export const DEFAULT_SLICE_MS = 10_000;
/** How often the job looks for due tenants (ms). */
export const DEFAULT_TICK_MS = 5_000;
/** A cycle left unfinished by a worker that stopped is taken over by another after this long (ms). */
export const DEFAULT_LEASE_MS = 5 * 60_000;

export interface ReconcileDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  readonly hubspot: HubspotPort;
}

// ---------------------------------------------------------------- what an observation means (pure)

/** A pending subscription write of ours (outbox), by type, with the time it was enqueued. */
export interface InFlightWrite {
  readonly subscriptionTypeId: string;
  readonly enqueuedAt: string;
}

export interface ObservationInput {
  readonly settings: Pick<TenantSettings, 'purposes'>;
  readonly status: HubspotContactStatus;
  /** Email projection states of the subject by purpose (`*` included); absent purposes fold like `*`. */
  readonly states: ReadonlyMap<string, ConsentState>;
  /** Fingerprints (src/sync/echo.ts) of our own writes among this contact's statuses, with the latest time each was written. */
  readonly ownWrites: ReadonlyMap<string, string>;
  /** Our subscribe writes still pending for this subject. */
  readonly inFlight: readonly InFlightWrite[];
  /** When the statuses were read. */
  readonly observedAt: string;
  /** `sourceDeliveryId` of the events. */
  readonly deliveryKey: string;
}

export interface ObservationPlan {
  readonly events: SubjectlessEvent[];
  /** Subscription types whose opt-out waits for our pending write (see the module comment). */
  readonly deferred: string[];
  /** What was seen but not recorded, and why (for logs and tests). */
  readonly notes: string[];
}

type Status = HubspotContactStatus['statuses'][number];

const LEGAL_BASES_NOT_CONSENT = /^(LEGITIMATE_INTEREST|PERFORMANCE_OF_CONTRACT)/;

function stateOf(states: ReadonlyMap<string, ConsentState>, purpose: string): ConsentState {
  return states.get(purpose) ?? states.get('*') ?? EMPTY_STATE;
}

/** Something an opt-out contradicts: a grant, a pending sign-up, or a live soft opt-in. */
function sendable(state: ConsentState, at: string): boolean {
  if (state.status === 'granted' || state.status === 'pending') return true;
  return !state.softOptInEnded && Object.values(state.softOptIn).some((g) => g.validUntil === null || g.validUntil > at);
}

/** The grant (or sign-up) the state rests on is newer than `at`: an opt-out at `at` does not change it (rule 2). */
function grantNewerThan(state: ConsentState, at: string): boolean {
  const since = state.status === 'granted' ? state.grantedAt : state.status === 'pending' ? state.pendingSince : null;
  return since !== null && since > at;
}

function newest(times: readonly string[]): string {
  return times.reduce((a, b) => (b > a ? b : a));
}

/**
 * The events one contact's statuses call for, against the subject's ledger state. Pure; see the module comment
 * for the table and what is left out.
 */
export function planHubspotObservation(input: ObservationInput): ObservationPlan {
  const { settings, status, states, ownWrites, inFlight, observedAt } = input;
  const events: SubjectlessEvent[] = [];
  const deferred = new Set<string>();
  const notes: string[] = [];
  const byType = new Map<string, Status>();
  for (const s of status.statuses) byType.set(s.subscriptionTypeId, s);
  const timeOf = (s: Status): string | null => (s.timestamp === null ? null : toIsoTimestamp(s.timestamp));
  // A status equal to one of our writes is its echo only if it is not newer than that write: a subscription
  // fingerprint carries no time, and a person who opts out after we once wrote NOT_SUBSCRIBED for that type must
  // not be taken for our echo (that would lose the withdrawal).
  const echo = (s: Status): boolean => {
    const writtenAt = ownWrites.get(hubspotSubscriptionFingerprint(status.email, s.subscriptionTypeId, s.subscribed));
    if (writtenAt === undefined) return false;
    const at = timeOf(s);
    return at === null || Date.parse(at) <= Date.parse(writtenAt) + ECHO_CLOCK_TOLERANCE_MS;
  };
  const note = `observed in HubSpot at ${observedAt}`;
  const event = (purpose: string, kind: 'grant' | 'withdraw', occurredAt: string, types: readonly string[]): SubjectlessEvent => ({
    channel: 'email',
    purpose,
    kind,
    basis: kind === 'grant' ? 'consent' : null,
    occurredAt,
    source: 'hubspot',
    sourceDeliveryId: input.deliveryKey,
    evidence: { affirmative: false, note, hubspotSubscriptionTypeIds: [...types].sort() },
  });

  /** Opt-outs of these types that count: not ours, timed, not waiting for our pending write. */
  const credibleOptOuts = (types: readonly string[]): Array<{ type: string; at: string }> => {
    const out: Array<{ type: string; at: string }> = [];
    for (const type of types) {
      const s = byType.get(type);
      if (s === undefined || s.subscribed || echo(s)) continue;
      const at = timeOf(s);
      if (at === null) {
        notes.push(`type ${type}: not subscribed without a time (not specified?): not an opt-out`);
        continue;
      }
      if (inFlight.some((w) => w.subscriptionTypeId === type && w.enqueuedAt >= at)) {
        deferred.add(type);
        continue;
      }
      out.push({ type, at });
    }
    return out;
  };

  const withdrawn = new Set<string>();
  for (const purpose of settings.purposes) {
    const types = [...new Set(purpose.hubspotSubscriptionTypeIds)];
    if (types.length === 0) continue;
    const state = stateOf(states, purpose.id);
    const optOuts = credibleOptOuts(types);
    if (optOuts.length > 0) {
      const at = newest(optOuts.map((o) => o.at));
      if (!sendable(state, observedAt)) notes.push(`${purpose.id}: opt-out already reflected (${state.status})`);
      else if (grantNewerThan(state, at)) notes.push(`${purpose.id}: opt-out at ${at} is older than the grant`);
      else {
        events.push(event(purpose.id, 'withdraw', at, optOuts.map((o) => o.type)));
        withdrawn.add(purpose.id);
      }
      continue;
    }
    const subscribed = types.map((t) => byType.get(t)).filter((s): s is Status => s !== undefined && s.subscribed);
    const observed = subscribed.filter((s) => !echo(s) && !(s.legalBasis !== null && LEGAL_BASES_NOT_CONSENT.test(s.legalBasis)));
    if (observed.length === 0) {
      if (subscribed.length > 0) notes.push(`${purpose.id}: subscribed by our own write or on legitimate interest`);
      continue;
    }
    if (state.status === 'granted') continue;
    const at = newest(observed.map((s) => timeOf(s) ?? observedAt));
    if ((state.status === 'withdrawn' || state.status === 'erased') && state.withdrawnAt !== null && at <= state.withdrawnAt) {
      notes.push(`${purpose.id}: subscription at ${at} is older than the withdrawal`);
      continue;
    }
    events.push(event(purpose.id, 'grant', at, observed.map((s) => s.subscriptionTypeId)));
  }

  // Every mapped type opted out (one by one, or by unsubscribe-all, which the port folds into each type).
  const mapped = [...new Set(settings.purposes.flatMap((p) => p.hubspotSubscriptionTypeIds))];
  const everyTypeOut = mapped.length > 0 && mapped.every((t) => byType.get(t)?.subscribed === false);
  if (everyTypeOut) {
    const optOuts = credibleOptOuts(mapped);
    const confirmed = mapped.every((t) => optOuts.some((o) => o.type === t) || echo(byType.get(t)!));
    const state = stateOf(states, '*');
    if (optOuts.length > 0 && confirmed && !mapped.some((t) => deferred.has(t))) {
      const at = newest(optOuts.map((o) => o.at));
      if (sendable(state, observedAt) && !grantNewerThan(state, at)) events.push(event('*', 'withdraw', at, mapped));
    }
  }
  return { events, deferred: [...deferred].sort(), notes: [...new Set(notes)] };
}

/** Hash of what was observed (and deferred): the same state polled again gets the same delivery key. */
export function statusesHash(status: HubspotContactStatus, deferred: readonly string[] = []): string {
  const statuses = [...status.statuses]
    .map((s) => ({ type: s.subscriptionTypeId, subscribed: s.subscribed, at: s.timestamp, basis: s.legalBasis }))
    .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  return createHash('sha256')
    .update(canonicalJson({ email: status.email.trim().toLowerCase(), statuses, deferred: [...deferred].sort() }))
    .digest('hex')
    .slice(0, 32);
}

// ---------------------------------------------------------------- recording one contact

export interface RecordOutcome {
  /** Events appended (0 when nothing differed, or the same state was recorded before). */
  readonly appended: number;
  readonly deferred: number;
  /** The contact named no usable email (nothing read, nothing written). */
  readonly skipped: boolean;
}

async function emailStates(trx: Transaction<Database>, tenantId: string, subjectId: string): Promise<Map<string, ConsentState>> {
  const states = new Map<string, ConsentState>();
  for (const row of await ledgerRepo.projectionOf(trx, tenantId, subjectId)) {
    if (row.channel === 'email') states.set(row.purpose, JSON.parse(row.state) as ConsentState);
  }
  return states;
}

async function inFlightOf(trx: Transaction<Database>, tenantId: string, subjectId: string): Promise<InFlightWrite[]> {
  const rows = await cursors.pendingSubscriptionWrites(trx, tenantId, [subjectId], SYNC_OPERATIONS.hubspotSubscription);
  return rows
    .map((r) => ({ payload: JSON.parse(r.payload) as HubspotSubscriptionPayload, enqueuedAt: r.created_at }))
    .filter((r) => r.payload.subscribed)
    .map((r) => ({ subscriptionTypeId: r.payload.subscriptionTypeId, enqueuedAt: r.enqueuedAt }));
}

/**
 * Record one contact's statuses in one transaction: identities (HubSpot contact id, email) linked or united like
 * a webhook's, then the events of `planHubspotObservation` appended under `<keyPrefix>:<statuses hash>`. A person
 * the ledger does not know, with nothing to record, is not created.
 */
export async function recordHubspotStatus(
  deps: Pick<ReconcileDeps, 'store' | 'clock' | 'ids'>,
  tenant: Tenant,
  input: { readonly contactId: string | null; readonly status: HubspotContactStatus; readonly observedAt: string; readonly keyPrefix: string },
): Promise<RecordOutcome> {
  const email = normalizeIdentity('email', input.status.email);
  if (email === null) return { appended: 0, deferred: 0, skipped: true };
  const contact = input.contactId === null ? null : normalizeIdentity('hubspot_contact', input.contactId);
  const ids: Identity[] = contact === null ? [email] : [contact, email];
  const { store } = deps;
  return store.db.transaction().execute(async (trx) => {
    const known = await identities.findSubjectIds(trx, tenant.id, ids);
    const knownSubjects = new Set(known.values());
    const fingerprints = input.status.statuses.map((s) => hubspotSubscriptionFingerprint(email.value, s.subscriptionTypeId, s.subscribed));
    const ownWrites = await writeLog.writeTimes(trx, tenant.id, fingerprints);
    const plan = (states: ReadonlyMap<string, ConsentState>, inFlight: readonly InFlightWrite[], key: (deferred: readonly string[]) => string) => {
      const first = planHubspotObservation({ settings: tenant.settings, status: input.status, states, ownWrites, inFlight, observedAt: input.observedAt, deliveryKey: key([]) });
      if (first.deferred.length === 0) return { ...first, deliveryKey: key([]) };
      // The key names what was deferred, so a later poll of the same state (write landed or died) records it.
      const deliveryKey = key(first.deferred);
      return { ...first, deliveryKey, events: first.events.map((e) => ({ ...e, sourceDeliveryId: deliveryKey })) };
    };
    const keyOf = (deferred: readonly string[]) => `${input.keyPrefix}:${statusesHash(input.status, deferred)}`;

    if (knownSubjects.size === 0) {
      const fresh = plan(new Map(), [], keyOf);
      if (fresh.events.length === 0) return { appended: 0, deferred: fresh.deferred.length, skipped: false };
    }
    const united = await resolveAndUnite(trx, deps, tenant.id, ids, 'identities_united');
    const identitiesChanged = united.created || united.mergedSubjectIds.length > 0 || known.size < ids.length;
    const changed = identitiesChanged ? [united.subjectId, ...united.mergedSubjectIds] : [];
    if (united.carryOver.length > 0) {
      // Carried over first (own key-less append), so the diff below sees the united history.
      await appendInTransaction(trx, store.dialect, deps, { tenantId: tenant.id, deliveryKey: null, events: united.carryOver, changedSubjects: changed });
    }
    const result = plan(await emailStates(trx, tenant.id, united.subjectId), await inFlightOf(trx, tenant.id, united.subjectId), keyOf);
    const events: NewConsentEvent[] = result.events.map((e) => ({ ...e, subjectId: united.subjectId }));
    if (events.length > 0) {
      const appended = await appendInTransaction(trx, store.dialect, deps, { tenantId: tenant.id, deliveryKey: result.deliveryKey, events, changedSubjects: changed });
      return { appended: appended.events.length, deferred: result.deferred.length, skipped: false };
    }
    if (identitiesChanged && united.carryOver.length === 0) {
      await appendInTransaction(trx, store.dialect, deps, { tenantId: tenant.id, deliveryKey: null, events: [], changedSubjects: changed });
    }
    return { appended: 0, deferred: result.deferred.length, skipped: false };
  });
}

// ---------------------------------------------------------------- the poll

/** The poll's cursor (`sync_cursor.value`, JSON). */
export interface ReconcilePosition {
  /** Newest `lastmodifieddate` whose contacts (and every earlier one) are recorded. */
  readonly modifiedAt: string;
  /** The last cycle read to the end: the next one starts `SEARCH_OVERLAP_MS` earlier; otherwise exactly here. */
  readonly caughtUp: boolean;
  /**
   * Contacts with an observation deferred for a pending write of ours: read again at the start of every cycle
   * until nothing is deferred, whether or not they change again (a write that dies would otherwise leave the
   * opt-out unread until the contact's next change). At most `MAX_RECHECK`, the newest kept.
   */
  readonly recheck?: readonly RecheckEntry[];
}

export interface RecheckEntry {
  readonly contactId: string;
  readonly email: string;
}

export const MAX_RECHECK = 1000;

export interface PollOptions {
  /** Monotonic ms after which the poll stops at the next chunk boundary (and continues at the next run). */
  readonly deadlineMs?: number;
  readonly nowMs?: () => number;
  /** Emails per statuses call and cursor step. Default `DEFAULT_STATUS_CHUNK`. */
  readonly chunkSize?: number;
  /** Poll even if the tenant's interval has not passed (CLI, tests). */
  readonly force?: boolean;
  /** `updated_at` this process last wrote to the cursor: it may continue its own unfinished cycle at once. */
  readonly ownedUpdatedAt?: string;
  readonly leaseMs?: number;
  /** Retries of each HubSpot read. Default `DEFAULT_READ_RETRY`. */
  readonly retry?: ReadRetryPolicy;
}

/**
 * A run that failed after part of its cycle was recorded. The cursor keeps `updatedAt` (this run's stamp), so
 * the process that knows it (`PollOptions.ownedUpdatedAt`) may go on at once; the error is `cause`.
 */
export class PollInterrupted extends Error {
  readonly updatedAt: string;
  constructor(cause: unknown, updatedAt: string) {
    super(`reconciliation poll interrupted: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'PollInterrupted';
    this.updatedAt = updatedAt;
  }
}

export interface PollResult {
  /** `not_due`: interval not over, or another worker holds the cycle. `more`: stopped at the deadline. */
  readonly outcome: 'not_due' | 'done' | 'more' | 'lost';
  readonly contacts: number;
  readonly appended: number;
  readonly deferred: number;
  /** The cursor after the run (null when not run). */
  readonly position: ReconcilePosition | null;
  /** `updated_at` of the cursor as this run left it. */
  readonly updatedAt: string | null;
}

function parsePosition(value: string): ReconcilePosition | null {
  try {
    const parsed = JSON.parse(value) as Partial<ReconcilePosition>;
    const at = typeof parsed.modifiedAt === 'string' ? toIsoTimestamp(parsed.modifiedAt) : null;
    const recheck = Array.isArray(parsed.recheck)
      ? parsed.recheck.filter((e): e is RecheckEntry => typeof e?.contactId === 'string' && typeof e.email === 'string').slice(-MAX_RECHECK)
      : [];
    return at === null ? null : { modifiedAt: at, caughtUp: parsed.caughtUp === true, ...(recheck.length > 0 ? { recheck } : {}) };
  } catch {
    return null;
  }
}

function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function later(a: string, b: string): string {
  return b > a ? b : a;
}

/**
 * One run of the poll for one tenant: claims the cursor (compare-and-set), reads pages and records them chunk by
 * chunk, and moves the cursor after each chunk. Without `force`, a caught-up tenant is polled only when its
 * `reconciliationIntervalMinutes` has passed since the cursor's last write.
 */
export async function pollTenant(deps: ReconcileDeps, tenant: Tenant, options: PollOptions = {}): Promise<PollResult> {
  const { store, clock, hubspot } = deps;
  const nowMs = options.nowMs ?? (() => performance.now());
  const deadline = options.deadlineMs ?? Infinity;
  const chunkSize = options.chunkSize ?? DEFAULT_STATUS_CHUNK;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const intervalMs = tenant.settings.reconciliationIntervalMinutes * 60_000;
  const notDue: PollResult = { outcome: 'not_due', contacts: 0, appended: 0, deferred: 0, position: null, updatedAt: null };
  // Without subscription types mapped to purposes there is nothing a status could mean.
  if (!tenant.settings.purposes.some((p) => p.hubspotSubscriptionTypeIds.length > 0)) return notDue;
  const now = clock.now();

  // Claim.
  const row = await cursors.readCursor(store.db, tenant.id, RECONCILE_CURSOR);
  // What `updated_at` goes back to when the run fails: the tenant is then due again (after the job's backoff).
  const released = row?.updated_at ?? new Date(0).toISOString();
  // First poll of the tenant: from now on (the backfill reads everyone's current statuses).
  let position: ReconcilePosition = (row === undefined ? null : parsePosition(row.value)) ?? { modifiedAt: now.toISOString(), caughtUp: true };
  if (row !== undefined) {
    const age = now.getTime() - Date.parse(row.updated_at);
    const mine = options.ownedUpdatedAt !== undefined && options.ownedUpdatedAt === row.updated_at;
    const due = options.force === true || (position.caughtUp ? age >= intervalMs : mine || age >= leaseMs);
    if (!due) return notDue;
  }
  const lease = await CursorLease.take(store, clock, tenant.id, RECONCILE_CURSOR, row, row?.value ?? JSON.stringify(position));
  if (lease === null) return notDue;

  let since = position.caughtUp ? new Date(Date.parse(position.modifiedAt) - SEARCH_OVERLAP_MS).toISOString() : position.modifiedAt;
  // The cursor the cycle started from, and how far this cycle has recorded. A cycle that started in the overlap
  // saves its own progress (not the older cursor's time), so an interruption there skips nothing of the overlap.
  const floor = position.modifiedAt;
  let reached = since;
  let after: string | null = null;
  let contacts = 0;
  let appended = 0;
  let deferred = 0;
  /** Contacts recorded in this run, by id, at the time they were recorded (keyset paging returns some again). */
  const recorded = new Map<string, string>();

  const recheck = new Map((position.recheck ?? []).map((e) => [e.contactId, e]));
  const save = async (progress: Omit<ReconcilePosition, 'recheck'>): Promise<boolean> => {
    const waiting = [...recheck.values()].slice(-MAX_RECHECK);
    const next: ReconcilePosition = { ...progress, ...(waiting.length > 0 ? { recheck: waiting } : {}) };
    if (!(await lease.save(JSON.stringify(next)))) return false;
    position = next;
    return true;
  };
  const result = (outcome: PollResult['outcome']): PollResult => ({ outcome, contacts, appended, deferred, position, updatedAt: lease.token });

  const policy = options.retry ?? DEFAULT_READ_RETRY;
  const logRetry = (call: string) => (err: unknown, attempt: number) =>
    deps.logger.debug({ tenantId: tenant.id, call, attempt, error: err instanceof Error ? err.message : String(err) }, 'reconciliation read failed; retrying');
  /** Read and record these contacts' statuses; a contact with something deferred is kept for a recheck. */
  const recordContacts = async (list: ReadonlyArray<{ id: string; email: string }>): Promise<void> => {
    if (list.length === 0) return;
    const observedAt = clock.now().toISOString();
    const emails = list.map((c) => c.email);
    const statuses = await withReadRetries(() => hubspot.subscriptionStatuses(tenant, emails), policy, logRetry('subscriptionStatuses'));
    const byEmail = new Map(statuses.map((s) => [s.email.trim().toLowerCase(), s]));
    for (const c of list) {
      const status = byEmail.get(c.email.trim().toLowerCase());
      if (status === undefined) continue;
      const outcome = await recordHubspotStatus(deps, tenant, { contactId: c.id, status, observedAt, keyPrefix: `reconcile:${tenant.id}:${c.id}` });
      appended += outcome.appended;
      deferred += outcome.deferred;
      recheck.delete(c.id);
      if (outcome.deferred > 0) recheck.set(c.id, { contactId: c.id, email: c.email });
    }
  };

  const readPages = async (): Promise<PollResult> => {
    // A new cycle first reads again the contacts whose observation was deferred (see `ReconcilePosition.recheck`).
    if (position.caughtUp && recheck.size > 0) {
      for (const part of chunked([...recheck.values()], chunkSize)) await recordContacts(part.map((e) => ({ id: e.contactId, email: e.email })));
      if (!(await save({ modifiedAt: position.modifiedAt, caughtUp: true }))) return result('lost');
    }
    for (;;) {
      const page = await withReadRetries(() => hubspot.contactsModifiedSince(tenant, since, after), policy, logRetry('contactsModifiedSince'));
      const fresh = page.contacts.filter((c) => recorded.get(c.id) !== c.modifiedAt);
      for (let i = 0; i < fresh.length; i += chunkSize) {
        const chunk = fresh.slice(i, i + chunkSize);
        await recordContacts(chunk.flatMap((c) => (c.email !== null && normalizeIdentity('email', c.email) !== null ? [{ id: c.id, email: c.email }] : [])));
        contacts += chunk.length;
        for (const c of chunk) recorded.set(c.id, c.modifiedAt);
        // Contacts come oldest first: everything up to the chunk's newest time is recorded.
        reached = chunk.reduce((at, c) => later(at, c.modifiedAt), reached);
        if (!(await save({ modifiedAt: reached, caughtUp: false }))) return result('lost');
        const more = i + chunkSize < fresh.length || page.next !== null;
        if (more && nowMs() >= deadline) return result('more');
      }
      if (page.next === null) {
        if (!(await save({ modifiedAt: later(reached, floor), caughtUp: true }))) return result('lost');
        return result('done');
      }
      const newestOnPage = page.contacts.at(-1)?.modifiedAt;
      if (newestOnPage !== undefined && newestOnPage > since) {
        // Keyset: the next page starts at the newest time seen (its contacts come again and are skipped).
        since = newestOnPage;
        after = null;
        for (const [id, at] of recorded) if (at < since) recorded.delete(id);
      } else {
        // A whole page of contacts sharing one millisecond: only HubSpot's own paging gets past it.
        after = page.next;
      }
    }
  };

  try {
    return await readPages();
  } catch (err) {
    // Nothing of a new cycle recorded yet: hand the cursor back as it was, so the tenant is due again as before.
    if (position.caughtUp) {
      await lease.handBack(JSON.stringify(position), released);
      throw err;
    }
    // Part of the cycle is recorded (the cursor says how far): keep it, to be taken up again from there.
    throw new PollInterrupted(err, lease.token);
  }
}

// ---------------------------------------------------------------- the job

export interface ReconcileJobOptions {
  readonly tickMs?: number;
  readonly sliceMs?: number;
  readonly chunkSize?: number;
  readonly leaseMs?: number;
  readonly nowMs?: () => number;
  readonly retry?: ReadRetryPolicy;
}

/**
 * How long a tenant's poll waits after `failures` failed runs in a row (ms), at most its interval: 5 s doubling
 * when HubSpot failed in a way worth retrying soon (5xx, timeouts, resets, rate limits: the reads were already
 * retried in the call, so this is an unlucky streak or a short outage), 1 min doubling otherwise (auth, not
 * configured, a malformed answer: a person has to act first).
 */
export function pollBackoffMs(err: unknown, failures: number, intervalMs: number): number {
  const cause = err instanceof PollInterrupted ? err.cause : err;
  const transient = cause instanceof PlatformCallError && cause.retryable;
  const first = transient ? Math.max(5_000, cause.retryAfterMs ?? 0) : 60_000;
  return Math.min(first * 2 ** Math.min(failures - 1, 20), Math.max(intervalMs, first));
}

/**
 * BackgroundJob `reconcile`: every `tickMs`, polls each active tenant whose interval has passed (or whose cycle
 * this process left unfinished), within one slice of `sliceMs` shared by all tenants, oldest cursor first. A
 * tenant whose poll fails (platform down, not configured) is retried after a backoff (`pollBackoffMs`); the
 * failure is logged and never stops the job. Returns the events appended.
 */
export function reconcileJob(deps: ReconcileDeps, options: ReconcileJobOptions = {}): BackgroundJob {
  const nowMs = options.nowMs ?? (() => performance.now());
  const owned = new Map<string, string>();
  const backoff = new TenantBackoff(nowMs);
  const logger = deps.logger.child({ component: 'reconcile' });
  return {
    name: 'reconcile',
    intervalMs: options.tickMs ?? DEFAULT_TICK_MS,
    async run() {
      const deadlineMs = nowMs() + (options.sliceMs ?? DEFAULT_SLICE_MS);
      const tenants = (await listTenants(deps.store)).filter((t) => t.status === 'active');
      const order = new Map((await cursors.cursorsNamed(deps.store.db, RECONCILE_CURSOR)).map((r) => [r.tenant_id, r.updated_at]));
      tenants.sort((a, b) => (order.get(a.id) ?? '').localeCompare(order.get(b.id) ?? ''));
      let appended = 0;
      let ran = 0;
      for (const tenant of tenants) {
        // At least one tenant per run, however short the slice.
        if (ran > 0 && nowMs() >= deadlineMs) break;
        if (backoff.waiting(tenant.id)) continue;
        ran += 1;
        try {
          const ownedUpdatedAt = owned.get(tenant.id);
          const result = await pollTenant(deps, tenant, {
            deadlineMs,
            nowMs,
            ...(ownedUpdatedAt !== undefined ? { ownedUpdatedAt } : {}),
            ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
            ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
            ...(options.retry !== undefined ? { retry: options.retry } : {}),
          });
          backoff.succeeded(tenant.id);
          if (result.outcome === 'more' && result.updatedAt !== null) owned.set(tenant.id, result.updatedAt);
          else owned.delete(tenant.id);
          appended += result.appended;
          if (result.outcome !== 'not_due') logger.debug({ tenantId: tenant.id, ...result }, 'reconciliation poll ran');
        } catch (err) {
          // An interrupted cycle stays this process's to go on with; any other failure hands the cursor back.
          if (err instanceof PollInterrupted) owned.set(tenant.id, err.updatedAt);
          else owned.delete(tenant.id);
          const { failures, waitMs } = backoff.failed(tenant.id, (n) => pollBackoffMs(err, n, tenant.settings.reconciliationIntervalMinutes * 60_000));
          logger.warn({ tenantId: tenant.id, err, failures, retryInMs: waitMs }, 'reconciliation poll failed; the cursor stays where the last recorded contacts left it');
        }
      }
      return appended;
    },
  };
}
