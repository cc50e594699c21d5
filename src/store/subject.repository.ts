/**
 * What the worker records about subjects besides consent: profiles (country, company) and purchases.
 * SQL only; the caller owns the transaction.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database, PurchaseTable, SubjectProfileTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Upsert where the newer source time wins: a stale retry of customers/update never overwrites a newer one. */
export async function upsertProfile(db: Db, row: SubjectProfileTable): Promise<void> {
  await db
    .insertInto('subject_profile')
    .values(row)
    .onConflict((oc) =>
      oc
        .columns(['tenant_id', 'subject_id'])
        .doUpdateSet({ country: row.country, company: row.company, source_updated_at: row.source_updated_at, updated_at: row.updated_at })
        .where('subject_profile.source_updated_at', '<', row.source_updated_at),
    )
    .execute();
}

export async function findProfile(db: Db, tenantId: string, subjectId: string): Promise<SubjectProfileTable | undefined> {
  return db.selectFrom('subject_profile').selectAll().where('tenant_id', '=', tenantId).where('subject_id', '=', subjectId).executeTakeFirst();
}

/** After a merge the survivor keeps its own profile when it has a newer one. */
export async function moveProfile(db: Db, tenantId: string, fromSubjectId: string, toSubjectId: string, now: string): Promise<void> {
  const from = await findProfile(db, tenantId, fromSubjectId);
  if (from) await upsertProfile(db, { ...from, subject_id: toSubjectId, updated_at: now });
}

/** Insert-first on (tenant, order id): a re-delivered orders/paid records nothing new. */
export async function insertPurchase(db: Db, row: PurchaseTable): Promise<boolean> {
  const result = await db
    .insertInto('purchase')
    .values(row)
    .onConflict((oc) => oc.columns(['tenant_id', 'order_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function movePurchases(db: Db, tenantId: string, fromSubjectId: string, toSubjectId: string): Promise<void> {
  await db.updateTable('purchase').set({ subject_id: toSubjectId }).where('tenant_id', '=', tenantId).where('subject_id', '=', fromSubjectId).execute();
}
