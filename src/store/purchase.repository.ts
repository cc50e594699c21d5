/**
 * SQL of the soft opt-in job on purchase rows (migration 0008). The caller owns the transaction.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, PurchaseTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Purchases whose soft opt-in evaluation is due, oldest first. */
export async function duePurchases(db: Db, now: string, limit: number): Promise<PurchaseTable[]> {
  return db
    .selectFrom('purchase')
    .selectAll()
    .where('soi_status', '=', 'pending')
    .where((eb) => eb.or([eb('soi_next_at', 'is', null), eb('soi_next_at', '<=', now)]))
    .orderBy('created_at')
    .orderBy('order_id')
    .limit(limit)
    .execute();
}

export async function finishPurchase(db: Db, tenantId: string, orderId: string, status: 'done' | 'failed', outcome: string): Promise<void> {
  await db
    .updateTable('purchase')
    .set({ soi_status: status, soi_outcome: outcome, soi_next_at: null, soi_attempts: sql<number>`soi_attempts + 1` })
    .where('tenant_id', '=', tenantId)
    .where('order_id', '=', orderId)
    .execute();
}

export async function postponePurchase(db: Db, tenantId: string, orderId: string, nextAt: string, outcome: string): Promise<void> {
  await db
    .updateTable('purchase')
    .set({ soi_next_at: nextAt, soi_outcome: outcome, soi_attempts: sql<number>`soi_attempts + 1` })
    .where('tenant_id', '=', tenantId)
    .where('order_id', '=', orderId)
    .execute();
}

/** Evaluated purchases of a subject, newest first (for `explain`). */
export async function purchasesOf(db: Db, tenantId: string, subjectId: string, limit: number): Promise<PurchaseTable[]> {
  return db.selectFrom('purchase').selectAll().where('tenant_id', '=', tenantId).where('subject_id', '=', subjectId).orderBy('paid_at', 'desc').limit(limit).execute();
}
