/**
 * Cached product facts (`product`, migration 0006). SQL only; the caller owns the transaction. Both writers
 * keep the newest facts: a row is only overwritten by facts at least as new (by the product's own update time),
 * so a stale webhook retry or a lookup that raced a newer webhook never rolls a row back (shopify.md §1.4:
 * resolve by `updated_at`, never by arrival order).
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database, ProductTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Keys per `IN` list: far below SQLite's and PostgreSQL's bound-parameter limits. */
const IN_CHUNK = 500;

export async function findProducts(db: Db, tenantId: string, productIds: readonly string[]): Promise<ProductTable[]> {
  const rows: ProductTable[] = [];
  const unique = [...new Set(productIds)];
  for (let i = 0; i < unique.length; i += IN_CHUNK) {
    const chunk = unique.slice(i, i + IN_CHUNK);
    rows.push(...(await db.selectFrom('product').selectAll().where('tenant_id', '=', tenantId).where('product_id', 'in', chunk).execute()));
  }
  return rows;
}

/**
 * Facts read through the Admin API: the row becomes complete and fresh (`stale` 0), unless it already holds
 * newer facts (a webhook that arrived while the lookup ran; the row then stays stale and is refetched next
 * time). Returns whether the row was written.
 */
export async function upsertFetched(db: Db, row: ProductTable): Promise<boolean> {
  const result = await db
    .insertInto('product')
    .values(row)
    .onConflict((oc) =>
      oc
        .columns(['tenant_id', 'product_id'])
        .doUpdateSet({
          product_type: row.product_type,
          vendor: row.vendor,
          tags: row.tags,
          taxonomy_category_id: row.taxonomy_category_id,
          taxonomy_category_name: row.taxonomy_category_name,
          collections: row.collections,
          source_updated_at: row.source_updated_at,
          fetched_at: row.fetched_at,
          stale: row.stale,
          updated_at: row.updated_at,
        })
        .where((eb) =>
          eb.or([
            eb('product.source_updated_at', 'is', null),
            // A null incoming time compares as unknown: never overwrites a row that has one.
            eb('product.source_updated_at', '<=', eb.ref('excluded.source_updated_at')),
          ]),
        ),
    )
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** The facts a products/* webhook carries (REST shape); taxonomy and collections are not among them. */
export type WebhookProductRow = Pick<ProductTable, 'tenant_id' | 'product_id' | 'product_type' | 'vendor' | 'tags' | 'source_updated_at' | 'updated_at'>;

/**
 * A products/create or products/update delivery: record what it says and mark the row stale so the next lookup
 * refetches taxonomy and collections. Only a strictly newer `updated_at` changes an existing row (an equal one is
 * the same version, already known). Returns whether the row was written.
 */
export async function upsertFromWebhook(db: Db, row: WebhookProductRow): Promise<boolean> {
  const result = await db
    .insertInto('product')
    .values({ ...row, taxonomy_category_id: null, taxonomy_category_name: null, collections: null, fetched_at: null, stale: 1 })
    .onConflict((oc) =>
      oc
        .columns(['tenant_id', 'product_id'])
        .doUpdateSet({
          product_type: row.product_type,
          vendor: row.vendor,
          tags: row.tags,
          source_updated_at: row.source_updated_at,
          stale: 1,
          updated_at: row.updated_at,
        })
        .where((eb) => eb.or([eb('product.source_updated_at', 'is', null), eb('product.source_updated_at', '<', eb.ref('excluded.source_updated_at'))])),
    )
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}
