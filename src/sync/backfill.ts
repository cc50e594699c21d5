/**
 * Backfill (issue 5 §6; design.md "backfill at install"): every Shopify customer's identities, country and
 * email/SMS consent enter the ledger, then the HubSpot subscription statuses of their emails, recorded like the
 * reconciliation poll does (src/sync/reconcile.ts).
 *
 * Paging: by id range, never by cursor. Customers come sorted by id; after each chunk the last recorded id is
 * saved (`sync_cursor` `backfill:shopify`) and the next page is asked for with `id:>lastId` and no cursor (the
 * query documented on `ShopifyConsentPort.customersPage`, built by the connector's `customerIdRangeQuery`), so
 * the backfill passes Shopify's 25,000-object cursor limit (shopify.md §3.3) and resumes after a crash exactly
 * after the last customer recorded. A customer recorded twice (a crash between its transaction and the cursor
 * write) appends nothing the second time: one transaction per customer, delivery key
 * `backfill:<tenant>:shopify:<customer>:<hash of its consent state>`.
 *
 * | Shopify state  | recorded (channel email or sms, purpose `*`, at `consentUpdatedAt`)                       |
 * |----------------|--------------------------------------------------------------------------------------------|
 * | SUBSCRIBED     | `grant`, evidence `{affirmative: false, note: 'backfill: Shopify state at T', optInLevel}` |
 * | PENDING        | `pending` (never sendable, rule 5)                                                          |
 * | UNSUBSCRIBED   | `withdraw`                                                                                 |
 * | NOT_SUBSCRIBED | nothing (the absence of consent, never a withdrawal)                                       |
 * | REDACTED       | `erase`; INVALID: `address_invalid` (as the webhook mapping)                               |
 *
 * Only what differs from the ledger is recorded (a grant the ledger already has, a withdrawal it already
 * reflects, are left out), and our own consent writes coming back are dropped (src/sync/echo.ts). A backfill is
 * an observation, never an affirmative act: after a withdrawal its grants change nothing (conflict rule 3), so
 * running it again never re-subscribes anyone, in the ledger, in HubSpot or in Shopify.
 *
 * Progress (customers, pages, HubSpot statuses) is saved in the cursor after each chunk and reported to
 * `onProgress`; `backfillProgress(store)` reads it for every tenant (GET /metrics).
 */
import { createHash } from 'node:crypto';
import type { TenantSettings } from '../config/manifest';
import { EMPTY_STATE, type Channel, type ConsentState, type EventKind, type LegalBasis, type NewConsentEvent, type OptInLevel } from '../domain/consent';
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
import * as subjects from '../store/subject.repository';
import * as writeLog from '../store/sync-write.repository';
import { resolveAndUnite } from '../subjects/merge';
import { listTenants, type Tenant } from '../tenants/tenants';
import { shopifyConsentFingerprint } from './echo';
import type { HubspotPort, ShopifyConsentPort, ShopifyCustomerConsent } from './ports';
import { TenantBackoff } from '../jobs/tenant-backoff';
import { CursorLease } from './cursor-lease';
import { recordHubspotStatus } from './reconcile';
import { DEFAULT_READ_RETRY, withReadRetries, type ReadRetryPolicy } from './retry';

/** `sync_cursor` name of the backfill. */
export const BACKFILL_CURSOR = 'backfill:shopify';
/** Customers recorded, and HubSpot statuses read, per step (the cursor moves after each). */
export const DEFAULT_BACKFILL_CHUNK = 100;
/** In the background job: smaller steps, so tenants take turns (see `backfillJob`). */
export const DEFAULT_JOB_CHUNK = 20;
export const DEFAULT_JOB_SLICE_MS = 2_000;
export const DEFAULT_JOB_TICK_MS = 5_000;
/** An unfinished backfill whose cursor has not moved for this long is taken over by another process. */
export const DEFAULT_BACKFILL_LEASE_MS = 5 * 60_000;

export interface BackfillDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  readonly hubspot: HubspotPort;
  readonly shopify: ShopifyConsentPort;
  /** The `query` of the customers after this id (connectors/shopify `customerIdRangeQuery`). */
  readonly rangeQuery: (lastCustomerId: string) => string;
}

/** One tenant's backfill, as saved in its cursor. `tenant` is the tenant id (the /metrics label). */
export interface BackfillProgress {
  readonly tenant: string;
  /** Customers recorded. */
  readonly customers: number;
  /** Shopify pages read to their end. */
  readonly pages: number;
  /** Emails whose HubSpot subscription statuses were read and recorded (HubSpot knew a status). */
  readonly hubspotStatuses: number;
  readonly lastCustomerId: string | null;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** Null while running (or stopped part-way: it resumes from `lastCustomerId`). */
  readonly finishedAt: string | null;
}

type SavedState = Omit<BackfillProgress, 'tenant' | 'updatedAt'>;

function parseState(value: string): SavedState | null {
  try {
    const v = JSON.parse(value) as Partial<SavedState>;
    const count = (n: unknown): number => (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : 0);
    if (typeof v.startedAt !== 'string') return null;
    return {
      customers: count(v.customers),
      pages: count(v.pages),
      hubspotStatuses: count(v.hubspotStatuses),
      lastCustomerId: typeof v.lastCustomerId === 'string' && /^\d{1,20}$/.test(v.lastCustomerId) ? v.lastCustomerId : null,
      startedAt: v.startedAt,
      finishedAt: typeof v.finishedAt === 'string' ? v.finishedAt : null,
    };
  } catch {
    return null;
  }
}

/** Every tenant's backfill progress from the database (any process may be running it). */
export async function backfillProgress(store: Store): Promise<BackfillProgress[]> {
  const rows = await cursors.cursorsNamed(store.db, BACKFILL_CURSOR);
  return rows.flatMap((row) => {
    const state = parseState(row.value);
    return state === null ? [] : [{ tenant: row.tenant_id, ...state, updatedAt: row.updated_at }];
  });
}

// ---------------------------------------------------------------- one customer

const STATE_KINDS: Readonly<Record<string, { kind: EventKind; basis: LegalBasis | null } | null>> = {
  SUBSCRIBED: { kind: 'grant', basis: 'consent' },
  PENDING: { kind: 'pending', basis: 'consent' },
  UNSUBSCRIBED: { kind: 'withdraw', basis: null },
  NOT_SUBSCRIBED: null,
  REDACTED: { kind: 'erase', basis: null },
  INVALID: { kind: 'address_invalid', basis: null },
};

const OPT_IN_LEVELS: Readonly<Record<string, OptInLevel>> = { SINGLE_OPT_IN: 'single_opt_in', CONFIRMED_OPT_IN: 'confirmed_opt_in', UNKNOWN: 'unknown' };

/** A Shopify consent state as a ledger event (see the module table), or null for NOT_SUBSCRIBED and unknown states. */
export function shopifyStateEvent(customer: ShopifyCustomerConsent, channel: 'email' | 'sms', observedAt: string, deliveryKey: string): SubjectlessEvent | null {
  const consent = channel === 'email' ? customer.email_marketing : customer.sms_marketing;
  if (consent === null) return null;
  const state = consent.state.toUpperCase();
  const mapping = STATE_KINDS[state];
  if (mapping === null || mapping === undefined) return null;
  const optInLevel = consent.optInLevel === null ? undefined : OPT_IN_LEVELS[consent.optInLevel.toUpperCase()];
  return {
    channel,
    purpose: '*',
    kind: mapping.kind,
    basis: mapping.basis,
    // Shopify's own time of the consent change; a record without one is dated by the customer's last update.
    occurredAt: (consent.consentUpdatedAt !== null ? toIsoTimestamp(consent.consentUpdatedAt) : null) ?? customer.updatedAt,
    source: 'shopify',
    sourceDeliveryId: deliveryKey,
    evidence: { affirmative: false, note: `backfill: Shopify state at ${observedAt}`, shopifyState: state, ...(optInLevel !== undefined ? { optInLevel } : {}) },
  };
}

/** Whether the ledger's `*` state already says what the event would (then it is not recorded). */
function alreadyReflected(event: SubjectlessEvent, state: ConsentState): boolean {
  switch (event.kind) {
    case 'grant':
      // Granted already; or withdrawn after this subscription (rule 3 would ignore it anyway).
      return state.status === 'granted' || ((state.status === 'withdrawn' || state.status === 'erased') && state.withdrawnAt !== null && event.occurredAt <= state.withdrawnAt);
    case 'pending':
      return state.status === 'pending' || state.status === 'granted';
    case 'withdraw':
      return state.status === 'withdrawn' || state.status === 'erased';
    case 'erase':
      return state.status === 'erased';
    case 'address_invalid':
      return state.addressInvalid;
    default:
      return false;
  }
}

function consentHash(customer: ShopifyCustomerConsent): string {
  const pick = (m: ShopifyCustomerConsent['email_marketing']) => (m === null ? null : { state: m.state.toUpperCase(), level: m.optInLevel, at: m.consentUpdatedAt });
  return createHash('sha256')
    .update(canonicalJson({ email: pick(customer.email_marketing), sms: pick(customer.sms_marketing) }))
    .digest('hex')
    .slice(0, 32);
}

function identitiesOf(customer: ShopifyCustomerConsent): Identity[] {
  const found: Identity[] = [];
  for (const identity of [
    normalizeIdentity('shopify_customer', customer.customerId),
    customer.email === null ? null : normalizeIdentity('email', customer.email),
    customer.phone === null ? null : normalizeIdentity('phone', customer.phone),
  ]) {
    if (identity !== null) found.push(identity);
  }
  return found;
}

/**
 * Record one customer in one transaction: identities (united like a customers/update webhook's), country (only
 * when newer than what is known; a company from a webhook is kept), and the consent events that differ from the
 * ledger. Returns the events appended.
 */
export async function recordShopifyCustomer(deps: Pick<BackfillDeps, 'store' | 'clock' | 'ids'>, tenant: Tenant, customer: ShopifyCustomerConsent, observedAt: string): Promise<number> {
  const ids = identitiesOf(customer);
  if (ids[0]?.kind !== 'shopify_customer') throw new Error(`Shopify customer id ${JSON.stringify(customer.customerId)} is not numeric`);
  const { store } = deps;
  const now = deps.clock.now().toISOString();
  const deliveryKey = `backfill:${tenant.id}:shopify:${customer.customerId}:${consentHash(customer)}`;
  return store.db.transaction().execute(async (trx) => {
    const known = await identities.findSubjectIds(trx, tenant.id, ids);
    const united = await resolveAndUnite(trx, deps, tenant.id, ids, 'identities_united');
    let changed = united.created || united.mergedSubjectIds.length > 0 || known.size < ids.length;

    const country = /^[A-Z]{2}$/.test((customer.countryCode ?? '').toUpperCase()) ? customer.countryCode!.toUpperCase() : null;
    if (country !== null) {
      const profile = await subjects.findProfile(trx, tenant.id, united.subjectId);
      if (profile === undefined || (profile.source_updated_at < customer.updatedAt && profile.country !== country)) {
        await subjects.upsertProfile(trx, { tenant_id: tenant.id, subject_id: united.subjectId, country, company: profile?.company ?? null, source_updated_at: customer.updatedAt, updated_at: now });
        changed = true;
      }
    }
    const touched = changed ? [united.subjectId, ...united.mergedSubjectIds] : [];
    if (united.carryOver.length > 0) {
      await appendInTransaction(trx, store.dialect, deps, { tenantId: tenant.id, deliveryKey: null, events: united.carryOver, changedSubjects: touched });
    }

    const states = new Map<string, ConsentState>();
    for (const row of await ledgerRepo.projectionOf(trx, tenant.id, united.subjectId)) {
      if (row.purpose === '*') states.set(row.channel, JSON.parse(row.state) as ConsentState);
    }
    const candidates = (['email', 'sms'] as const)
      .map((channel) => shopifyStateEvent(customer, channel, observedAt, deliveryKey))
      .filter((e): e is SubjectlessEvent => e !== null && !alreadyReflected(e, states.get(e.channel) ?? EMPTY_STATE));
    const fingerprintOf = (e: SubjectlessEvent): string | null => {
      const consent = e.channel === 'email' ? customer.email_marketing : customer.sms_marketing;
      return consent?.consentUpdatedAt ? shopifyConsentFingerprint(customer.customerId, e.channel as Channel, consent.state, consent.consentUpdatedAt) : null;
    };
    const own = await writeLog.knownWrites(trx, tenant.id, candidates.map(fingerprintOf).filter((f): f is string => f !== null));
    const events: NewConsentEvent[] = candidates.filter((e) => !own.has(fingerprintOf(e) ?? '')).map((e) => ({ ...e, subjectId: united.subjectId }));

    if (events.length > 0) {
      const result = await appendInTransaction(trx, store.dialect, deps, { tenantId: tenant.id, deliveryKey, events, changedSubjects: touched });
      return result.events.length;
    }
    if (touched.length > 0 && united.carryOver.length === 0) {
      await appendInTransaction(trx, store.dialect, deps, { tenantId: tenant.id, deliveryKey: null, events: [], changedSubjects: touched });
    }
    return 0;
  });
}

// ---------------------------------------------------------------- the run

/** Customers read from Shopify but not yet recorded, kept between runs of the job (saves re-reading a page). */
export interface PageCarry {
  readonly afterCustomerId: string | null;
  readonly customers: readonly ShopifyCustomerConsent[];
  readonly more: boolean;
}

export interface BackfillOptions {
  /** Start again from the first customer (counts reset); recorded customers append nothing new. */
  readonly restart?: boolean;
  /** Called after each chunk with the saved progress. */
  readonly onProgress?: (progress: BackfillProgress) => void;
  /** Monotonic ms after which the run stops at the next chunk boundary. */
  readonly deadlineMs?: number;
  readonly nowMs?: () => number;
  /** Customers per step. Default `DEFAULT_BACKFILL_CHUNK` (100: one HubSpot batch). */
  readonly chunkSize?: number;
  /** `updated_at` this process last wrote to the cursor: it may continue at once. */
  readonly ownedUpdatedAt?: string;
  /**
   * Take the backfill over even if another process moved it within the lease (the CLI: an operator's run after a
   * killed one). The other process stops at its next cursor write; at most one chunk is read twice.
   */
  readonly takeOver?: boolean;
  readonly leaseMs?: number;
  readonly carry?: PageCarry;
  /** Retries of each platform read. Default `DEFAULT_READ_RETRY`. */
  readonly retry?: ReadRetryPolicy;
}

export interface BackfillResult {
  /**
   * `finished`: every customer recorded. `already_finished`: nothing to do (use `restart`). `more`: stopped at
   * the deadline. `busy`: another process is running it. `lost`: another process took it over mid-run.
   */
  readonly outcome: 'finished' | 'already_finished' | 'more' | 'busy' | 'lost';
  readonly progress: BackfillProgress | null;
  readonly carry: PageCarry | null;
}

function mappedTypes(settings: Pick<TenantSettings, 'purposes'>): boolean {
  return settings.purposes.some((p) => p.hubspotSubscriptionTypeIds.length > 0);
}

function emailKey(email: string): string {
  return createHash('sha256').update(email).digest('hex').slice(0, 16);
}

/**
 * Run (or resume) one tenant's backfill until it is finished or `deadlineMs` passes. Platform errors are thrown
 * after the progress so far was saved; running again resumes after the last customer recorded.
 */
export async function runBackfill(deps: BackfillDeps, tenant: Tenant, options: BackfillOptions = {}): Promise<BackfillResult> {
  const { store, clock } = deps;
  const nowMs = options.nowMs ?? (() => performance.now());
  const deadline = options.deadlineMs ?? Infinity;
  const chunkSize = options.chunkSize ?? DEFAULT_BACKFILL_CHUNK;
  const leaseMs = options.leaseMs ?? DEFAULT_BACKFILL_LEASE_MS;
  const retry = options.retry ?? DEFAULT_READ_RETRY;
  const now = clock.now();
  const fresh = (): SavedState => ({ customers: 0, pages: 0, hubspotStatuses: 0, lastCustomerId: null, startedAt: now.toISOString(), finishedAt: null });

  // Claim the cursor.
  const row = await cursors.readCursor(store.db, tenant.id, BACKFILL_CURSOR);
  // What `updated_at` goes back to when the run fails, so a new run (after the job's backoff) resumes at once.
  const released = row?.updated_at ?? new Date(0).toISOString();
  let state: SavedState;
  if (row === undefined) {
    state = fresh();
  } else {
    const saved = parseState(row.value);
    const progressOf = (s: SavedState): BackfillProgress => ({ tenant: tenant.id, ...s, updatedAt: row.updated_at });
    if (options.restart === true || saved === null) state = fresh();
    else if (saved.finishedAt !== null) return { outcome: 'already_finished', progress: progressOf(saved), carry: null };
    else {
      const mine = options.takeOver === true || (options.ownedUpdatedAt !== undefined && options.ownedUpdatedAt === row.updated_at);
      if (!mine && now.getTime() - Date.parse(row.updated_at) < leaseMs) return { outcome: 'busy', progress: progressOf(saved), carry: null };
      state = saved;
    }
  }
  const lease = await CursorLease.take(store, clock, tenant.id, BACKFILL_CURSOR, row, JSON.stringify(state));
  if (lease === null) return { outcome: 'busy', progress: null, carry: null };
  const progress = (): BackfillProgress => ({ tenant: tenant.id, ...state, updatedAt: lease.token });
  const save = async (next: SavedState): Promise<boolean> => {
    if (!(await lease.save(JSON.stringify(next)))) return false;
    state = next;
    return true;
  };

  const readPages = async (): Promise<BackfillResult> => {
    let carry = options.carry !== undefined && options.carry.afterCustomerId === state.lastCustomerId && options.restart !== true ? options.carry : null;
    for (;;) {
      let page: PageCarry;
      if (carry !== null && carry.customers.length > 0) page = carry;
      else {
        const query = state.lastCustomerId === null ? undefined : deps.rangeQuery(state.lastCustomerId);
        const read = await withReadRetries(() => deps.shopify.customersPage(tenant, null, query), retry);
        page = { afterCustomerId: state.lastCustomerId, customers: read.customers, more: read.next !== null };
        const last = page.customers.at(-1);
        if (state.lastCustomerId !== null && last !== undefined && BigInt(last.customerId) <= BigInt(state.lastCustomerId)) {
          throw new Error(`Shopify answered customers up to id ${last.customerId} for id:>${state.lastCustomerId}: not sorted by id, the backfill cannot go on`);
        }
      }
      carry = null;
      if (page.customers.length === 0) {
        if (!(await save({ ...state, finishedAt: clock.now().toISOString() }))) return { outcome: 'lost', progress: progress(), carry: null };
        options.onProgress?.(progress());
        return { outcome: 'finished', progress: progress(), carry: null };
      }
      const chunk = page.customers.slice(0, chunkSize);
      const rest = page.customers.slice(chunkSize);
      const observedAt = clock.now().toISOString();
      for (const customer of chunk) await recordShopifyCustomer(deps, tenant, customer, observedAt);

      let statuses = 0;
      const emails = [...new Set(chunk.map((c) => (c.email === null ? null : normalizeIdentity('email', c.email)?.value ?? null)).filter((e): e is string => e !== null))];
      if (emails.length > 0 && mappedTypes(tenant.settings)) {
        const contactIds = await withReadRetries(() => deps.hubspot.contactIdsByEmail(tenant, emails), retry);
        const observed = clock.now().toISOString();
        for (const status of await withReadRetries(() => deps.hubspot.subscriptionStatuses(tenant, emails), retry)) {
          if (status.statuses.length === 0) continue;
          const email = status.email.trim().toLowerCase();
          const contactId = contactIds.get(status.email) ?? contactIds.get(email) ?? null;
          await recordHubspotStatus(deps, tenant, { contactId, status, observedAt: observed, keyPrefix: `backfill:${tenant.id}:hubspot:${contactId ?? emailKey(email)}` });
          statuses += 1;
        }
      }

      const pageDone = rest.length === 0;
      const finished = pageDone && !page.more;
      const next: SavedState = {
        ...state,
        customers: state.customers + chunk.length,
        hubspotStatuses: state.hubspotStatuses + statuses,
        lastCustomerId: chunk.at(-1)!.customerId,
        pages: state.pages + (pageDone ? 1 : 0),
        finishedAt: finished ? clock.now().toISOString() : null,
      };
      if (!(await save(next))) return { outcome: 'lost', progress: progress(), carry: null };
      options.onProgress?.(progress());
      if (finished) return { outcome: 'finished', progress: progress(), carry: null };
      carry = pageDone ? null : { afterCustomerId: state.lastCustomerId, customers: rest, more: page.more };
      if (nowMs() >= deadline) return { outcome: 'more', progress: progress(), carry };
    }
  };

  try {
    return await readPages();
  } catch (err) {
    await lease.handBack(JSON.stringify(state), released);
    throw err;
  }
}

// ---------------------------------------------------------------- the job

export interface BackfillJobOptions {
  readonly tickMs?: number;
  readonly sliceMs?: number;
  readonly chunkSize?: number;
  readonly leaseMs?: number;
  readonly nowMs?: () => number;
  readonly retry?: ReadRetryPolicy;
}

/**
 * BackgroundJob `backfill`: starts the backfill of every active tenant that has none yet (no `backfill:shopify`
 * cursor), and resumes unfinished ones (this process's at once, another's after its lease). Each run does a
 * slice of `sliceMs` in chunks of `chunkSize` customers (so tenants take turns) and the next tick goes on; reads
 * are retried in the call (src/sync/retry.ts). A failing tenant (platform down or not configured) is retried
 * after a backoff of 1 min doubling to 30 min, by this process when it was running it. Returns the customers
 * recorded.
 */
export function backfillJob(deps: BackfillDeps, options: BackfillJobOptions = {}): BackgroundJob {
  const nowMs = options.nowMs ?? (() => performance.now());
  const owned = new Map<string, { updatedAt: string; carry: PageCarry | null }>();
  const backoff = new TenantBackoff(nowMs);
  const logger = deps.logger.child({ component: 'backfill' });
  return {
    name: 'backfill',
    intervalMs: options.tickMs ?? DEFAULT_JOB_TICK_MS,
    async run() {
      const deadlineMs = nowMs() + (options.sliceMs ?? DEFAULT_JOB_SLICE_MS);
      const saved = new Map((await cursors.cursorsNamed(deps.store.db, BACKFILL_CURSOR)).map((r) => [r.tenant_id, parseState(r.value)]));
      let recorded = 0;
      let ran = 0;
      for (const tenant of await listTenants(deps.store)) {
        const before = saved.get(tenant.id);
        if (tenant.status !== 'active' || (before !== undefined && before !== null && before.finishedAt !== null)) continue;
        // At least one tenant per run, however short the slice.
        if (ran > 0 && nowMs() >= deadlineMs) break;
        if (backoff.waiting(tenant.id)) continue;
        ran += 1;
        const mine = owned.get(tenant.id);
        try {
          const result = await runBackfill(deps, tenant, {
            deadlineMs,
            nowMs,
            chunkSize: options.chunkSize ?? DEFAULT_JOB_CHUNK,
            ...(mine !== undefined ? { ownedUpdatedAt: mine.updatedAt, ...(mine.carry !== null ? { carry: mine.carry } : {}) } : {}),
            ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
            ...(options.retry !== undefined ? { retry: options.retry } : {}),
          });
          backoff.succeeded(tenant.id);
          if (result.outcome === 'more' && result.progress !== null) owned.set(tenant.id, { updatedAt: result.progress.updatedAt, carry: result.carry });
          else owned.delete(tenant.id);
          if (result.progress !== null && (result.outcome === 'more' || result.outcome === 'finished')) recorded += Math.max(0, result.progress.customers - (before?.customers ?? 0));
          if (result.outcome === 'finished') logger.info({ tenantId: tenant.id, ...result.progress }, 'backfill finished');
        } catch (err) {
          // runBackfill handed the cursor back as this process last left it: still ours to resume (without the
          // page carried over, which is read again), not another process's after the lease.
          if (mine !== undefined) owned.set(tenant.id, { updatedAt: mine.updatedAt, carry: null });
          const { failures, waitMs } = backoff.failed(tenant.id, (n) => Math.min(60_000 * 2 ** (n - 1), 30 * 60_000));
          logger.warn({ tenantId: tenant.id, err, failures, retryInMs: waitMs }, 'backfill step failed; it resumes after the last customer recorded');
        }
      }
      return recorded;
    },
  };
}
