/**
 * SQL of the sync's bookkeeping (migration 0012): per-tenant cursors of the reconciliation poll and the backfill
 * (`sync_cursor`), and the one outbox read the poll needs (writes of ours still on their way). SQL only; the
 * caller owns the transaction (style.md §15).
 *
 * A cursor row is claimed by compare-and-set on `updated_at`: whoever moves it from the value it read to a new
 * one owns the work until the next write, so two workers (PostgreSQL) never run the same tenant's poll or backfill
 * at once, and a worker that lost the row (another one took it over) notices at its next write.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database, SyncCursorTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

export async function readCursor(db: Db, tenantId: string, name: string): Promise<SyncCursorTable | undefined> {
  return db.selectFrom('sync_cursor').selectAll().where('tenant_id', '=', tenantId).where('name', '=', name).executeTakeFirst();
}

/** Every tenant's cursor of this name. */
export async function cursorsNamed(db: Db, name: string): Promise<SyncCursorTable[]> {
  return db.selectFrom('sync_cursor').selectAll().where('name', '=', name).orderBy('tenant_id').execute();
}

/** Insert-first: false when the tenant already has a cursor of this name (someone else created it first). */
export async function insertCursor(db: Db, row: SyncCursorTable): Promise<boolean> {
  const result = await db
    .insertInto('sync_cursor')
    .values(row)
    .onConflict((oc) => oc.columns(['tenant_id', 'name']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Compare-and-set: writes `value` and `updatedAt` only if the row still has `expectedUpdatedAt`. */
export async function swapCursor(db: Db, tenantId: string, name: string, expectedUpdatedAt: string, value: string, updatedAt: string): Promise<boolean> {
  const result = await db
    .updateTable('sync_cursor')
    .set({ value, updated_at: updatedAt })
    .where('tenant_id', '=', tenantId)
    .where('name', '=', name)
    .where('updated_at', '=', expectedUpdatedAt)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Pending (not done, not dead) HubSpot subscription writes of these subjects: `payload` is the outbox JSON
 * (src/sync/policy.ts `HubspotSubscriptionPayload`). Uses `outbox_subject_idx`.
 */
export async function pendingSubscriptionWrites(
  db: Db,
  tenantId: string,
  subjectIds: readonly string[],
  operation: string,
): Promise<Array<{ subject_id: string | null; payload: string; created_at: string }>> {
  if (subjectIds.length === 0) return [];
  return db
    .selectFrom('outbox')
    .select(['subject_id', 'payload', 'created_at'])
    .where('tenant_id', '=', tenantId)
    .where('subject_id', 'in', [...subjectIds])
    .where('status', '=', 'pending')
    .where('operation', '=', operation)
    .execute();
}
