/** SQL of the write log behind echo suppression (migration 0011). The caller owns the transaction. */
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Log writes; a fingerprint written again keeps the latest time (time-less fingerprints are compared with it). */
export async function recordWrites(db: Db, tenantId: string, fingerprints: readonly string[], now: string): Promise<void> {
  if (fingerprints.length === 0) return;
  await db
    .insertInto('sync_write')
    .values([...new Set(fingerprints)].map((fingerprint) => ({ tenant_id: tenantId, fingerprint, written_at: now })))
    .onConflict((oc) => oc.columns(['tenant_id', 'fingerprint']).doUpdateSet({ written_at: now }).where('sync_write.written_at', '<', now))
    .execute();
}

/** The latest time each of these fingerprints was written (absent: never, or pruned). */
export async function writeTimes(db: Db, tenantId: string, fingerprints: readonly string[]): Promise<Map<string, string>> {
  if (fingerprints.length === 0) return new Map();
  const rows = await db.selectFrom('sync_write').select(['fingerprint', 'written_at']).where('tenant_id', '=', tenantId).where('fingerprint', 'in', [...fingerprints]).execute();
  return new Map(rows.map((r) => [r.fingerprint, r.written_at]));
}

export async function knownWrites(db: Db, tenantId: string, fingerprints: readonly string[]): Promise<Set<string>> {
  if (fingerprints.length === 0) return new Set();
  const rows = await db.selectFrom('sync_write').select('fingerprint').where('tenant_id', '=', tenantId).where('fingerprint', 'in', [...fingerprints]).execute();
  return new Set(rows.map((r) => r.fingerprint));
}

export async function pruneWrites(db: Db, before: string): Promise<number> {
  const result = await db.deleteFrom('sync_write').where('written_at', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}
