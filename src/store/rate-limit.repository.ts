/** Rate-limit buckets (`rate_limit_slot`, migration 0010). SQL only; the caller owns the transaction. */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * PostgreSQL: serialise admissions of one key until the caller's transaction ends, with a transaction-level
 * advisory lock (released by commit or rollback, so a crash never leaves it held). The lock id is a hash of
 * the schema and the key, so deployments sharing a database in other schemas do not wait on each other; a hash
 * collision only makes two keys wait on each other, it never lets one through.
 */
export async function lockKey(trx: Transaction<Database>, key: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(current_schema() || ':rate_limit:' || ${key}, 0))`.execute(trx);
}

/** PostgreSQL: the database server's clock in epoch milliseconds (one clock for every worker, whatever host). */
export async function databaseNowMs(db: Db): Promise<number> {
  const { rows } = await sql<{ now_ms: string | number }>`select floor(extract(epoch from clock_timestamp()) * 1000)::bigint as now_ms`.execute(db);
  return Number(rows[0]!.now_ms);
}

/**
 * Add `cost` units to bucket `bucketStart` of `key` only if the units of the key's buckets from `fromStart` on,
 * plus `cost`, stay within `max`: one statement, so the check and the write are atomic on SQLite (the statement
 * runs under the database write lock). On PostgreSQL the caller holds `lockKey`, because a statement there
 * reads a snapshot and two could otherwise both pass the check. True when admitted.
 */
export async function admitIfRoom(db: Db, a: { key: string; bucketStart: number; fromStart: number; cost: number; max: number }): Promise<boolean> {
  // SELECT … WHERE before ON CONFLICT: SQLite needs a WHERE clause there to parse the upsert unambiguously.
  const { rows } = await sql<{ used: number }>`
    insert into rate_limit_slot (key, window_start, used)
    select cast(${a.key} as text), cast(${a.bucketStart} as bigint), cast(${a.cost} as integer)
    where (select coalesce(sum(used), 0) from rate_limit_slot where key = ${a.key} and window_start >= ${a.fromStart}) + ${a.cost} <= ${a.max}
    on conflict (key, window_start) do update set used = rate_limit_slot.used + excluded.used
    returning used`.execute(db);
  return rows.length > 0;
}

/** Buckets of `key` from `fromStart` on, oldest first. */
export async function bucketsFrom(db: Db, key: string, fromStart: number): Promise<Array<{ window_start: number; used: number }>> {
  const rows = await db
    .selectFrom('rate_limit_slot')
    .select(['window_start', 'used'])
    .where('key', '=', key)
    .where('window_start', '>=', fromStart)
    .orderBy('window_start')
    .execute();
  return rows.map((r) => ({ window_start: Number(r.window_start), used: Number(r.used) }));
}

/** Delete the buckets of `key` that started before `beforeStart` (out of every window still counted). */
export async function pruneBuckets(db: Db, key: string, beforeStart: number): Promise<void> {
  await db.deleteFrom('rate_limit_slot').where('key', '=', key).where('window_start', '<', beforeStart).execute();
}
