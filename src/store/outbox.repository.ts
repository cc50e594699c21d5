/**
 * Outbox SQL (migration 0009). The caller owns the transaction (style.md §15).
 *
 * A claimed row carries a lease: `claimed_until` (and `run_at`, so the row leaves the due range of the
 * (status, run_at) index) is set to the end of the lease. A dispatcher that dies leaves the row due again when
 * the lease ends. `claimed_until` is also the claim's fencing token: outcomes, renewals and releases only touch
 * rows still holding the token, so a dispatcher whose lease was taken over cannot overwrite the new claim.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Dialect } from './database';
import { hasExactlyColumns, PrecompiledQuery } from './precompiled';
import type { Database, OutboxTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Rows per multi-row INSERT: 17 columns each, far below SQLite's and PostgreSQL's parameter limits. */
const INSERT_CHUNK = 500;

const OUTBOX_COLUMNS = [
  'id', 'tenant_id', 'platform', 'operation', 'idempotency_key', 'subject_id', 'payload', 'source_seq', 'status', 'attempts', 'run_at', 'claimed_until', 'last_error', 'created_at', 'updated_at', 'done_at', 'note',
] as const satisfies ReadonlyArray<keyof OutboxTable>;
const insertOutboxRow = new PrecompiledQuery(OUTBOX_COLUMNS, (db, row) =>
  db
    .insertInto('outbox')
    .values(row as unknown as OutboxTable)
    .onConflict((oc) => oc.columns(['tenant_id', 'idempotency_key']).doNothing()),
);

/**
 * Insert-first (style.md §10): rows whose (tenant_id, idempotency_key) exists are skipped. Returns how many were new.
 * One row (the common case) takes a precompiled statement.
 */
export async function insertOutboxRows(db: Db, dialect: Dialect, rows: readonly OutboxTable[]): Promise<number> {
  if (rows.length === 1 && hasExactlyColumns(rows[0]!, OUTBOX_COLUMNS)) {
    return Number((await insertOutboxRow.execute(db, dialect, rows[0]!)).numAffectedRows ?? 0);
  }
  let inserted = 0;
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const result = await db
      .insertInto('outbox')
      .values(rows.slice(i, i + INSERT_CHUNK))
      .onConflict((oc) => oc.columns(['tenant_id', 'idempotency_key']).doNothing())
      .executeTakeFirst();
    inserted += Number(result.numInsertedOrUpdatedRows ?? 0);
  }
  return inserted;
}

function byRunAtThenId(a: OutboxTable, b: OutboxTable): number {
  if (a.run_at !== b.run_at) return a.run_at < b.run_at ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Claim up to `limit` due rows (pending, `run_at` ≤ now: new, backed off, or whose lease ended) until `leaseUntil`.
 * Returns them as claimed (`claimed_until` = `run_at` = `leaseUntil`), oldest due first. Keep the transaction
 * short: it only claims.
 * - PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent dispatchers take different rows and never wait.
 * - SQLite: one UPDATE under the single writer lock is the claim.
 */
export async function claimDue(trx: Transaction<Database>, dialect: Dialect, now: string, leaseUntil: string, limit: number, platforms: readonly string[] | null = null): Promise<OutboxTable[]> {
  if (platforms !== null && platforms.length === 0) return [];
  let due = trx.selectFrom('outbox').select('id').where('status', '=', 'pending').where('run_at', '<=', now);
  if (platforms !== null) due = due.where('platform', 'in', [...platforms]);
  due = due.orderBy('run_at').orderBy('id').limit(limit);
  const claim = { claimed_until: leaseUntil, run_at: leaseUntil, updated_at: now };
  let rows: OutboxTable[];
  if (dialect === 'postgres') {
    const locked = await due.forUpdate().skipLocked().execute();
    if (locked.length === 0) return [];
    rows = await trx
      .updateTable('outbox')
      .set(claim)
      .where(
        'id',
        'in',
        locked.map((r) => r.id),
      )
      .returningAll()
      .execute();
  } else {
    rows = await trx
      .updateTable('outbox')
      .set(claim)
      .where('id', 'in', due)
      .returningAll()
      .execute();
  }
  // The order they were due in: RETURNING gives no order guarantee, and run_at is now the lease for all.
  return rows.sort(byRunAtThenId);
}

/**
 * Extend the lease of claimed rows still holding `token`. Returns the ids renewed (a row whose lease was taken
 * over by another dispatcher, or already recorded, is not).
 */
export async function renewLease(db: Db, ids: readonly string[], token: string, leaseUntil: string, now: string): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .updateTable('outbox')
    .set({ claimed_until: leaseUntil, run_at: leaseUntil, updated_at: now })
    .where('id', 'in', [...ids])
    .where('status', '=', 'pending')
    .where('claimed_until', '=', token)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Give claimed rows back, due now (a stopping dispatcher releases what it did not get to). */
export async function releaseClaims(db: Db, ids: readonly string[], token: string, now: string): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await db
    .updateTable('outbox')
    .set({ claimed_until: null, run_at: now, updated_at: now })
    .where('id', 'in', [...ids])
    .where('status', '=', 'pending')
    .where('claimed_until', '=', token)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Mark delivered rows done (with the platform's note, if any). Returns how many still held the claim. */
export async function markDone(db: Db, ids: readonly string[], token: string, now: string, note: string | null = null): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await db
    .updateTable('outbox')
    .set({ status: 'done', done_at: now, updated_at: now, claimed_until: null, last_error: null, note })
    .where('id', 'in', [...ids])
    .where('status', '=', 'pending')
    .where('claimed_until', '=', token)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface FailureUpdate {
  readonly id: string;
  readonly attempts: number;
  readonly dead: boolean;
  readonly error: string;
  /** Next attempt (ignored when dead). */
  readonly runAt: string;
}

/** Record a failed attempt (retry later, or dead). Returns whether the row still held the claim. */
export async function markFailed(db: Db, update: FailureUpdate, token: string, now: string): Promise<boolean> {
  const result = await db
    .updateTable('outbox')
    .set({
      status: update.dead ? 'dead' : 'pending',
      attempts: update.attempts,
      last_error: update.error,
      run_at: update.dead ? now : update.runAt,
      claimed_until: null,
      updated_at: now,
    })
    .where('id', '=', update.id)
    .where('status', '=', 'pending')
    .where('claimed_until', '=', token)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export interface OutboxCount {
  tenant_id: string;
  platform: string;
  operation: string;
  status: string;
  count: number;
  oldest: string | null;
  next_run_at: string | null;
  claimed: number;
}

export async function countOutbox(db: Db): Promise<OutboxCount[]> {
  const rows = await db
    .selectFrom('outbox')
    .select((eb) => [
      'tenant_id',
      'platform',
      'operation',
      'status',
      eb.fn.countAll<number>().as('count'),
      eb.fn.min('created_at').as('oldest'),
      eb.fn.min('run_at').as('next_run_at'),
      eb.fn.count<number>('claimed_until').as('claimed'),
    ])
    .groupBy(['tenant_id', 'platform', 'operation', 'status'])
    .orderBy('tenant_id')
    .orderBy('platform')
    .orderBy('operation')
    .orderBy('status')
    .execute();
  return rows.map((r) => ({
    tenant_id: r.tenant_id,
    platform: r.platform,
    operation: r.operation,
    status: r.status,
    count: Number(r.count),
    oldest: (r.oldest as string | null) ?? null,
    next_run_at: (r.next_run_at as string | null) ?? null,
    claimed: Number(r.claimed),
  }));
}

export async function listDead(db: Db, filter: { tenantId?: string; limit: number }): Promise<OutboxTable[]> {
  let query = db.selectFrom('outbox').selectAll().where('status', '=', 'dead');
  if (filter.tenantId) query = query.where('tenant_id', '=', filter.tenantId);
  return query.orderBy('created_at').orderBy('id').limit(filter.limit).execute();
}

/** Put dead rows back in the queue with fresh attempts (their last error is kept until the next attempt). */
export async function requeueDead(db: Db, filter: { tenantId?: string; ids?: readonly string[] }, now: string): Promise<number> {
  let query = db
    .updateTable('outbox')
    .set({ status: 'pending', attempts: 0, run_at: now, claimed_until: null, updated_at: now })
    .where('status', '=', 'dead');
  if (filter.tenantId) query = query.where('tenant_id', '=', filter.tenantId);
  if (filter.ids) {
    if (filter.ids.length === 0) return 0;
    query = query.where('id', 'in', [...filter.ids]);
  }
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Delete done rows delivered before the cutoff (payloads hold personal data). */
export async function pruneDone(db: Db, doneBefore: string): Promise<number> {
  const result = await db.deleteFrom('outbox').where('status', '=', 'done').where('done_at', '<', doneBefore).executeTakeFirst();
  return Number(result.numDeletedRows);
}
