/**
 * Subjects and their identities. SQL only; the caller owns the transaction (style.md §15).
 */
import type { Kysely, Transaction } from 'kysely';
import type { Identity } from '../domain/identity';
import type { Dialect } from './database';
import { PrecompiledQuery } from './precompiled';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

export async function findSubjectIds(db: Db, tenantId: string, identities: readonly Identity[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (identities.length === 0) return found;
  const rows = await db
    .selectFrom('subject_identity')
    .select(['kind', 'value', 'subject_id'])
    .where('tenant_id', '=', tenantId)
    .where((eb) => eb.or(identities.map((i) => eb.and([eb('kind', '=', i.kind), eb('value', '=', i.value)]))))
    .execute();
  for (const row of rows) found.set(`${row.kind}:${row.value}`, row.subject_id);
  return found;
}

export async function insertSubject(db: Db, row: { id: string; tenant_id: string; created_at: string }): Promise<void> {
  await db.insertInto('subject').values(row).execute();
}

/** Insert-first: an identity already claimed (by a concurrent worker, say) is left as it is. */
export async function insertIdentities(
  db: Db,
  tenantId: string,
  subjectId: string,
  identities: readonly Identity[],
  createdAt: string,
): Promise<void> {
  if (identities.length === 0) return;
  await db
    .insertInto('subject_identity')
    .values(identities.map((i) => ({ tenant_id: tenantId, kind: i.kind, value: i.value, subject_id: subjectId, created_at: createdAt })))
    .onConflict((oc) => oc.columns(['tenant_id', 'kind', 'value']).doNothing())
    .execute();
}

/** Move every identity of one subject to another (a merge). */
export async function moveIdentities(db: Db, tenantId: string, fromSubjectId: string, toSubjectId: string): Promise<void> {
  await db.updateTable('subject_identity').set({ subject_id: toSubjectId }).where('tenant_id', '=', tenantId).where('subject_id', '=', fromSubjectId).execute();
}

/** Delete one identity; returns the subject it belonged to, or null when it was not linked. */
export async function deleteIdentity(db: Db, tenantId: string, identity: Identity): Promise<string | null> {
  const row = await db
    .deleteFrom('subject_identity')
    .where('tenant_id', '=', tenantId)
    .where('kind', '=', identity.kind)
    .where('value', '=', identity.value)
    .returning('subject_id')
    .executeTakeFirst();
  return row?.subject_id ?? null;
}

/** Insert-first: false when the subject was merged before. */
export async function insertMerge(
  db: Db,
  row: { tenant_id: string; merged_subject_id: string; into_subject_id: string; reason: string; merged_at: string },
): Promise<boolean> {
  const result = await db
    .insertInto('subject_merge')
    .values(row)
    .onConflict((oc) => oc.columns(['tenant_id', 'merged_subject_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

const identityOfOtherTenant = new PrecompiledQuery(['kind', 'value', 'tenantId'], (db, a) =>
  db
    .selectFrom('subject_identity')
    .select('tenant_id')
    .where('kind', '=', a.kind as string)
    .where('value', '=', a.value as string)
    .where('tenant_id', '<>', a.tenantId as string)
    .limit(1),
);

/** Whether a tenant other than `tenantId` knows this identity (Shopify ids are global across shops). Precompiled: webhook request path. */
export async function isIdentityHeldByOtherTenant(db: Db, dialect: Dialect, tenantId: string, identity: Identity): Promise<boolean> {
  const result = await identityOfOtherTenant.execute(db, dialect, { kind: identity.kind, value: identity.value, tenantId });
  return result.rows.length > 0;
}
