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

/**
 * Record a customer's tags where the newer source time wins (own time: `tags_updated_at`). A subject without a
 * profile row gets one with no country or company, dated at the epoch, so any real address still wins.
 */
export async function upsertTags(db: Db, row: { tenant_id: string; subject_id: string; tags: readonly string[]; source_updated_at: string; updated_at: string }): Promise<void> {
  const tags = JSON.stringify(row.tags);
  await db
    .insertInto('subject_profile')
    .values({ tenant_id: row.tenant_id, subject_id: row.subject_id, country: null, company: null, source_updated_at: new Date(0).toISOString(), updated_at: row.updated_at, tags, tags_updated_at: row.source_updated_at })
    .onConflict((oc) =>
      oc
        .columns(['tenant_id', 'subject_id'])
        .doUpdateSet({ tags, tags_updated_at: row.source_updated_at, updated_at: row.updated_at })
        .where((eb) => eb.or([eb('subject_profile.tags_updated_at', 'is', null), eb('subject_profile.tags_updated_at', '<', row.source_updated_at)])),
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
  if (from?.tags != null && from.tags_updated_at != null) {
    await upsertTags(db, { tenant_id: tenantId, subject_id: toSubjectId, tags: JSON.parse(from.tags) as string[], source_updated_at: from.tags_updated_at, updated_at: now });
  }
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
