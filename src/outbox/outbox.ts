/**
 * The outbox (issue 5 §1): every write owed to a platform is a row, enqueued in the same transaction as the
 * change that causes it (a ledger append, a settings change), and delivered afterwards by the dispatcher
 * (dispatcher.ts), outside any transaction, with retries as rows (style.md §9) and dead letters.
 *
 * Enqueueing is insert-first on UNIQUE (tenant_id, idempotency_key) (style.md §10): enqueueing the same write
 * again (a re-processed delivery, a re-run backfill) adds nothing. The key must name the write, not the attempt,
 * e.g. `hubspot:subscription:<subject>:<type>:<ledger seq>`. Idempotency lasts while the row exists: done rows
 * are pruned after the dispatcher's retention (7 days by default).
 *
 * Delivery is at least once: a dispatcher that dies after the platform applied a write but before the outcome
 * was recorded delivers it again once its lease ends. Platform writes are idempotent by nature (they set a state:
 * setting a subscription status, a property or a consent state twice has the effect of setting it once), and
 * handlers send the state the row describes, never a delta.
 */
import type { Kysely, Transaction } from 'kysely';
import { AppError } from '../domain/errors';
import type { Clock, IdGenerator } from '../ports';
import { systemClock } from '../ports';
import type { Dialect, Store } from '../store/database';
import * as repo from '../store/outbox.repository';
import type { Database, OutboxTable } from '../store/schema';

export type OutboxPlatform = 'hubspot' | 'shopify';

export const OUTBOX_PLATFORMS: readonly OutboxPlatform[] = ['hubspot', 'shopify'];

/** One write to enqueue. */
export interface OutboxItem {
  readonly tenantId: string;
  readonly platform: OutboxPlatform;
  /** Picks the dispatcher's handler, with the platform (e.g. `contact_properties`, `subscription`, `customer_consent`). */
  readonly operation: string;
  /** Names the write (not the attempt); unique per tenant. */
  readonly idempotencyKey: string;
  readonly subjectId: string | null;
  /** JSON-serialisable description of the write: the state to set, never a delta. */
  readonly payload: unknown;
  /** Ledger seq of the event that caused it, or null. */
  readonly sourceSeq: number | null;
}

export interface OutboxDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

/** A claimed row as handlers see it: the enqueued item (payload parsed) with its row id and attempts. */
export interface OutboxRow extends OutboxItem {
  readonly id: string;
  /** Failed attempts before this one (0 on the first). */
  readonly attempts: number;
  readonly createdAt: string;
}

const MAX_KEY_LENGTH = 512;

function validate(items: readonly OutboxItem[]): string[] {
  const problems: string[] = [];
  items.forEach((item, i) => {
    if (typeof item.tenantId !== 'string' || item.tenantId === '') problems.push(`items[${i}].tenantId: required`);
    if (!OUTBOX_PLATFORMS.includes(item.platform)) problems.push(`items[${i}].platform: must be hubspot or shopify`);
    if (typeof item.operation !== 'string' || !/^[a-z][a-z0-9_.:-]{0,99}$/.test(item.operation)) problems.push(`items[${i}].operation: lower-case name, at most 100 characters`);
    if (typeof item.idempotencyKey !== 'string' || item.idempotencyKey === '' || item.idempotencyKey.length > MAX_KEY_LENGTH) {
      problems.push(`items[${i}].idempotencyKey: 1 to ${MAX_KEY_LENGTH} characters`);
    }
    if (item.sourceSeq !== null && !(Number.isSafeInteger(item.sourceSeq) && item.sourceSeq >= 1)) problems.push(`items[${i}].sourceSeq: a ledger seq (≥ 1) or null`);
  });
  return problems;
}

function serialise(payload: unknown, i: number): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    throw new AppError('validation_failed', 'invalid outbox items', { details: [`items[${i}].payload: not serialisable (${(err as Error).message})`] });
  }
  if (text === undefined) throw new AppError('validation_failed', 'invalid outbox items', { details: [`items[${i}].payload: not serialisable`] });
  return text;
}

/**
 * Enqueue writes inside the caller's transaction (the one that records their cause), so a write is owed exactly
 * when its cause is committed. Insert-first: an item whose (tenant, idempotency key) is already in the outbox
 * (in any status) is skipped. Returns how many rows were inserted.
 */
export async function enqueueInTransaction(
  trx: Transaction<Database> | Kysely<Database>,
  dialect: Dialect,
  deps: OutboxDeps,
  items: readonly OutboxItem[],
): Promise<number> {
  if (items.length === 0) return 0;
  const problems = validate(items);
  if (problems.length > 0) throw new AppError('validation_failed', 'invalid outbox items', { details: problems });
  const now = deps.clock.now().toISOString();
  const rows: OutboxTable[] = items.map((item, i) => ({
    id: deps.ids.next(),
    tenant_id: item.tenantId,
    platform: item.platform,
    operation: item.operation,
    idempotency_key: item.idempotencyKey,
    subject_id: item.subjectId,
    payload: serialise(item.payload, i),
    source_seq: item.sourceSeq,
    status: 'pending',
    attempts: 0,
    run_at: now,
    claimed_until: null,
    last_error: null,
    created_at: now,
    updated_at: now,
    done_at: null,
    note: null,
  }));
  return repo.insertOutboxRows(trx, dialect, rows);
}

/** Enqueue in a transaction of its own (backfill, tooling). Prefer `enqueueInTransaction` next to the cause. */
export async function enqueueOutbox(store: Store, deps: OutboxDeps, items: readonly OutboxItem[]): Promise<number> {
  return store.db.transaction().execute((trx) => enqueueInTransaction(trx, store.dialect, deps, items));
}

export interface OutboxStats {
  readonly byTenant: ReadonlyArray<{
    readonly tenantId: string;
    readonly platform: string;
    readonly operation: string;
    readonly status: string;
    readonly count: number;
    readonly oldestCreatedAt: string | null;
    /** Pending rows: the earliest next attempt (or lease end). */
    readonly nextRunAt: string | null;
    /** Pending rows currently claimed by a dispatcher (or by one that died, until its lease ends). */
    readonly claimed: number;
  }>;
}

export async function outboxStats(store: Store): Promise<OutboxStats> {
  const counts = await repo.countOutbox(store.db);
  return {
    byTenant: counts.map((c) => ({
      tenantId: c.tenant_id,
      platform: c.platform,
      operation: c.operation,
      status: c.status,
      count: c.count,
      oldestCreatedAt: c.oldest,
      nextRunAt: c.status === 'pending' ? c.next_run_at : null,
      claimed: c.claimed,
    })),
  };
}

export interface DeadOutboxItem {
  readonly id: string;
  readonly tenantId: string;
  readonly platform: string;
  readonly operation: string;
  readonly idempotencyKey: string;
  readonly subjectId: string | null;
  readonly sourceSeq: number | null;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly createdAt: string;
  /** When it was dead-lettered. */
  readonly updatedAt: string;
}

export async function listDeadOutbox(store: Store, filter: { tenantId?: string; limit?: number } = {}): Promise<DeadOutboxItem[]> {
  const rows = await repo.listDead(store.db, { ...(filter.tenantId ? { tenantId: filter.tenantId } : {}), limit: filter.limit ?? 100 });
  return rows.map((r) => ({
    id: r.id,
    tenantId: r.tenant_id,
    platform: r.platform,
    operation: r.operation,
    idempotencyKey: r.idempotency_key,
    subjectId: r.subject_id,
    sourceSeq: r.source_seq === null ? null : Number(r.source_seq),
    attempts: Number(r.attempts),
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }));
}

/**
 * Re-queue dead rows with fresh attempts: the given ids, or `'all'` (of one tenant with `tenantId`). Returns how
 * many were re-queued; ids that are not dead (or not of the tenant) are skipped.
 */
export async function retryDeadOutbox(store: Store, which: readonly string[] | 'all', options: { tenantId?: string; clock?: Clock } = {}): Promise<number> {
  const now = (options.clock ?? systemClock).now().toISOString();
  return repo.requeueDead(store.db, { ...(options.tenantId ? { tenantId: options.tenantId } : {}), ...(which === 'all' ? {} : { ids: which }) }, now);
}

/** Delete done rows delivered before `before` (their payloads hold personal data). Returns how many. */
export async function pruneDoneOutbox(store: Store, before: Date): Promise<number> {
  return repo.pruneDone(store.db, before.toISOString());
}
