/**
 * SQL for the send gate: API keys and the batched reads a decision needs. The caller owns the transaction.
 */
import type { Kysely, Transaction } from 'kysely';
import type { ApiKeyTable, ConsentCurrentTable, Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Rows per `IN (…)` list: far below SQLite's 32,766 bound variables and PostgreSQL's 65,535. */
export const IN_CHUNK = 1000;

export async function insertApiKey(db: Db, row: ApiKeyTable): Promise<void> {
  await db.insertInto('api_key').values(row).execute();
}

export async function findActiveApiKey(db: Db, hash: string): Promise<ApiKeyTable | undefined> {
  return db.selectFrom('api_key').selectAll().where('hash', '=', hash).where('revoked_at', 'is', null).executeTakeFirst();
}

export async function listApiKeys(db: Db, tenantId: string): Promise<ApiKeyTable[]> {
  return db.selectFrom('api_key').selectAll().where('tenant_id', '=', tenantId).orderBy('created_at').orderBy('id').execute();
}

export async function revokeApiKey(db: Db, tenantId: string, id: string, now: string): Promise<boolean> {
  const result = await db.updateTable('api_key').set({ revoked_at: now }).where('tenant_id', '=', tenantId).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Subject ids of identities of one kind (values already normalised). */
export async function subjectsByIdentity(db: Db, tenantId: string, kind: string, values: readonly string[]): Promise<Array<{ value: string; subject_id: string }>> {
  if (values.length === 0) return [];
  return db.selectFrom('subject_identity').select(['value', 'subject_id']).where('tenant_id', '=', tenantId).where('kind', '=', kind).where('value', 'in', [...values]).execute();
}

/** Projection rows (every channel and purpose) of these subjects. */
export async function projectionRows(db: Db, tenantId: string, subjectIds: readonly string[]): Promise<Array<Pick<ConsentCurrentTable, 'subject_id' | 'channel' | 'purpose' | 'state'>>> {
  if (subjectIds.length === 0) return [];
  return db
    .selectFrom('consent_current')
    .select(['subject_id', 'channel', 'purpose', 'state'])
    .where('tenant_id', '=', tenantId)
    .where('subject_id', 'in', [...subjectIds])
    .execute();
}

export async function profilesOf(db: Db, tenantId: string, subjectIds: readonly string[]): Promise<Array<{ subject_id: string; country: string | null; company: string | null; tags?: string | null | undefined }>> {
  if (subjectIds.length === 0) return [];
  return db.selectFrom('subject_profile').select(['subject_id', 'country', 'company', 'tags']).where('tenant_id', '=', tenantId).where('subject_id', 'in', [...subjectIds]).execute();
}

/** Countries of paid orders (billing, else customer), newest first per subject. */
export async function purchaseCountries(db: Db, tenantId: string, subjectIds: readonly string[]): Promise<Array<{ subject_id: string; country: string; paid_at: string }>> {
  if (subjectIds.length === 0) return [];
  const rows = await db
    .selectFrom('purchase')
    .select(['subject_id', 'country', 'paid_at'])
    .where('tenant_id', '=', tenantId)
    .where('subject_id', 'in', [...subjectIds])
    .where('country', 'is not', null)
    .orderBy('paid_at', 'desc')
    .execute();
  return rows as Array<{ subject_id: string; country: string; paid_at: string }>;
}

/** Every identity of these subjects. */
export async function identitiesOf(db: Db, tenantId: string, subjectIds: readonly string[]): Promise<Array<{ subject_id: string; kind: string; value: string }>> {
  if (subjectIds.length === 0) return [];
  return db.selectFrom('subject_identity').select(['subject_id', 'kind', 'value']).where('tenant_id', '=', tenantId).where('subject_id', 'in', [...subjectIds]).execute();
}

export async function eventsByIds(db: Db, tenantId: string, ids: readonly string[]) {
  if (ids.length === 0) return [];
  return db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', [...ids]).orderBy('seq').execute();
}
