/** Tenant rows. SQL only; the caller owns the transaction. */
import type { Kysely, Transaction } from 'kysely';
import type { Dialect } from './database';
import { PrecompiledQuery } from './precompiled';
import type { Database, TenantTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Insert-first: false when the shop domain or the portal id is already linked. */
export async function insertTenant(db: Db, row: TenantTable): Promise<boolean> {
  const result = await db.insertInto('tenant').values(row).onConflict((oc) => oc.doNothing()).executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function findTenant(db: Db, by: { id?: string; shopDomain?: string; portalId?: string }): Promise<TenantTable | undefined> {
  let query = db.selectFrom('tenant').selectAll();
  if (by.id !== undefined) query = query.where('id', '=', by.id);
  else if (by.shopDomain !== undefined) query = query.where('shop_domain', '=', by.shopDomain);
  else if (by.portalId !== undefined) query = query.where('hubspot_portal_id', '=', by.portalId);
  else return undefined;
  return query.executeTakeFirst();
}

const selectSettings = new PrecompiledQuery(['id'], (db, a) => db.selectFrom('tenant').select('settings').where('id', '=', a.id as string));

/** A tenant's settings JSON (the ledger reads it on every append to plan platform writes). */
export async function tenantSettingsJson(db: Db, dialect: Dialect, id: string): Promise<string | undefined> {
  const { rows } = await selectSettings.execute(db, dialect, { id });
  return rows[0]?.settings;
}

export async function listTenants(db: Db): Promise<TenantTable[]> {
  return db.selectFrom('tenant').selectAll().orderBy('shop_domain').execute();
}

export async function updateTenant(
  db: Db,
  id: string,
  changes: Partial<Pick<TenantTable, 'settings' | 'status' | 'shopify_credentials' | 'hubspot_credentials' | 'updated_at'>>,
): Promise<void> {
  await db.updateTable('tenant').set(changes).where('id', '=', id).execute();
}
