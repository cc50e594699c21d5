/**
 * Inbox, privacy-request and unrouted-delivery SQL. The caller owns the transaction (style.md §15).
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from './database';
import { PrecompiledQuery } from './precompiled';
import type { Database, InboxTable, PrivacyRequestTable, UnroutedDeliveryTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

const INBOX_COLUMNS = [
  'id', 'tenant_id', 'platform', 'delivery_key', 'topic', 'payload', 'meta', 'status', 'attempts', 'run_at', 'last_error', 'outcome', 'received_at', 'processed_at',
] as const satisfies ReadonlyArray<keyof InboxTable>;

const insertInboxRow = new PrecompiledQuery(INBOX_COLUMNS, (db, row) =>
  db
    .insertInto('inbox')
    .values(row as unknown as InboxTable)
    .onConflict((oc) => oc.columns(['platform', 'delivery_key']).doNothing()),
);

/** The insert-first statement of one row, compiled for SQLite, to run on another connection (src/store/sqlite-offload.ts). */
export function compileInboxInsert(db: Db, row: InboxTable): { sql: string; parameters: readonly unknown[] } {
  const compiled = insertInboxRow.compile(db, 'sqlite', row);
  return { sql: compiled.sql, parameters: compiled.parameters };
}

/**
 * Insert-first (style.md §10): rows whose (platform, delivery_key) exists are skipped. Returns how many were
 * new. One precompiled statement per row (webhook request path).
 */
export async function insertInboxRows(db: Db, dialect: Dialect, rows: readonly InboxTable[]): Promise<number> {
  let inserted = 0;
  for (const row of rows) {
    const result = await insertInboxRow.execute(db, dialect, row);
    inserted += Number(result.numAffectedRows ?? 0);
  }
  return inserted;
}

/** Rows per multi-row insert: 14 parameters each, well under PostgreSQL's 65,535 per statement. */
export const INBOX_ROWS_PER_STATEMENT = 1000;

/**
 * Insert-first as above, as one multi-row statement per 1,000 rows (PostgreSQL's request path: one round trip
 * for a whole group commit instead of one per row). Returns the ids of the rows inserted; a row whose
 * (platform, delivery_key) exists, or came earlier in the same call, is skipped.
 */
export async function insertInboxRowsReturningIds(db: Db, rows: readonly InboxTable[]): Promise<Set<string>> {
  const inserted = new Set<string>();
  for (let i = 0; i < rows.length; i += INBOX_ROWS_PER_STATEMENT) {
    const result = await db
      .insertInto('inbox')
      .values(rows.slice(i, i + INBOX_ROWS_PER_STATEMENT))
      .onConflict((oc) => oc.columns(['platform', 'delivery_key']).doNothing())
      .returning('id')
      .execute();
    for (const row of result) inserted.add(row.id);
  }
  return inserted;
}

export async function insertPrivacyRequests(db: Db, rows: readonly PrivacyRequestTable[]): Promise<number> {
  if (rows.length === 0) return 0;
  const result = await db
    .insertInto('privacy_request')
    .values([...rows])
    .onConflict((oc) => oc.columns(['platform', 'delivery_key']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0);
}

export async function countUnrouted(db: Db, row: Omit<UnroutedDeliveryTable, 'count' | 'first_seen_at'>): Promise<void> {
  await db
    .insertInto('unrouted_delivery')
    .values({ ...row, count: 1, first_seen_at: row.last_seen_at })
    .onConflict((oc) =>
      oc.columns(['platform', 'account', 'topic', 'reason']).doUpdateSet({
        count: sql`unrouted_delivery.count + 1`,
        last_seen_at: row.last_seen_at,
      }),
    )
    .execute();
}

/**
 * Claim the next due pending row for processing inside the caller's transaction; the row stays claimed until
 * that transaction ends, so a crash simply releases it.
 * - PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several workers take different rows and never wait on each other.
 * - SQLite: the claim is a (no-op) UPDATE, so the transaction takes the write lock first and a second process
 *   waits (busy_timeout) instead of failing to upgrade a read lock.
 */
export async function claimDue(db: Transaction<Database>, dialect: Dialect, now: string, limit: number): Promise<InboxTable[]> {
  if (dialect === 'postgres') {
    return db
      .selectFrom('inbox')
      .selectAll()
      .where('status', '=', 'pending')
      .where('run_at', '<=', now)
      .orderBy('run_at')
      .orderBy('id')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
  }
  const rows = await db
    .updateTable('inbox')
    .set({ attempts: sql`attempts` })
    .where('id', 'in', (eb) =>
      eb.selectFrom('inbox').select('id').where('status', '=', 'pending').where('run_at', '<=', now).orderBy('run_at').orderBy('id').limit(limit),
    )
    .returningAll()
    .execute();
  // RETURNING gives no order guarantee.
  return rows.sort((a, b) => (a.run_at === b.run_at ? (a.id < b.id ? -1 : 1) : a.run_at < b.run_at ? -1 : 1));
}

const updateDone = new PrecompiledQuery(['outcome', 'now', 'id'], (db, a) =>
  db
    .updateTable('inbox')
    .set({ status: 'done', outcome: a.outcome as string, processed_at: a.now as string, last_error: null })
    .where('id', '=', a.id as string),
);

export async function markDone(db: Db, dialect: Dialect, id: string, outcome: string, now: string): Promise<void> {
  await updateDone.execute(db, dialect, { outcome, now, id });
}

/** Record a failed attempt; `dead` when attempts are used up. Only touches a row still pending. */
export async function markFailed(db: Db, id: string, update: { attempts: number; dead: boolean; error: string; runAt: string; now: string }): Promise<void> {
  await db
    .updateTable('inbox')
    .set({
      attempts: update.attempts,
      status: update.dead ? 'dead' : 'pending',
      last_error: update.error,
      run_at: update.runAt,
      processed_at: update.dead ? update.now : null,
    })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .execute();
}

export interface InboxCount {
  tenant_id: string;
  status: string;
  count: number;
  oldest: string | null;
}

export async function countInbox(db: Db): Promise<InboxCount[]> {
  const rows = await db
    .selectFrom('inbox')
    .select((eb) => ['tenant_id', 'status', eb.fn.countAll<number>().as('count'), eb.fn.min('received_at').as('oldest')])
    .groupBy(['tenant_id', 'status'])
    .orderBy('tenant_id')
    .orderBy('status')
    .execute();
  return rows.map((r) => ({ tenant_id: r.tenant_id, status: r.status, count: Number(r.count), oldest: (r.oldest as string | null) ?? null }));
}

export async function countPrivacyRequests(db: Db): Promise<Array<{ topic: string; status: string; count: number }>> {
  const rows = await db
    .selectFrom('privacy_request')
    .select((eb) => ['topic', 'status', eb.fn.countAll<number>().as('count')])
    .groupBy(['topic', 'status'])
    .orderBy('topic')
    .execute();
  return rows.map((r) => ({ topic: r.topic, status: r.status, count: Number(r.count) }));
}

export async function listUnrouted(db: Db): Promise<UnroutedDeliveryTable[]> {
  const rows = await db.selectFrom('unrouted_delivery').selectAll().orderBy('last_seen_at', 'desc').limit(100).execute();
  return rows.map((r) => ({ ...r, count: Number(r.count) }));
}

export async function listDead(db: Db, filter: { tenantId?: string; limit: number }): Promise<InboxTable[]> {
  let query = db.selectFrom('inbox').selectAll().where('status', '=', 'dead');
  if (filter.tenantId) query = query.where('tenant_id', '=', filter.tenantId);
  return query.orderBy('received_at').limit(filter.limit).execute();
}

/** Put dead rows back in the queue with fresh attempts. */
export async function requeueDead(db: Db, filter: { tenantId?: string; ids?: readonly string[] }, now: string): Promise<number> {
  let query = db
    .updateTable('inbox')
    .set({ status: 'pending', attempts: 0, run_at: now, processed_at: null })
    .where('status', '=', 'dead');
  if (filter.tenantId) query = query.where('tenant_id', '=', filter.tenantId);
  if (filter.ids) {
    if (filter.ids.length === 0) return 0;
    query = query.where('id', 'in', [...filter.ids]);
  }
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Delete processed rows of a tenant older than the cutoff (they hold personal data; the ledger keeps the facts). */
export async function pruneDone(db: Db, tenantId: string, processedBefore: string): Promise<number> {
  const result = await db
    .deleteFrom('inbox')
    .where('tenant_id', '=', tenantId)
    .where('status', '=', 'done')
    .where('processed_at', '<', processedBefore)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
