/**
 * SQL for the expiry scheduler (src/consent/expiry.ts): pages of the consent projection that may hold something
 * to expire, and fresh reads of one subject-channel inside the caller's transaction. SQL only.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { ConsentCurrentTable, Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

export type ProjectionKey = Pick<ConsentCurrentTable, 'subject_id' | 'channel' | 'purpose'>;
export type ExpiryRow = Pick<ConsentCurrentTable, 'subject_id' | 'channel' | 'purpose' | 'status' | 'state'>;

/**
 * The projection's `state` is canonical JSON (ledger/chain.ts `canonicalJson`: sorted keys, no spaces), so a
 * row without soft opt-in grants contains exactly this text.
 */
const NO_SOFT_OPT_IN = '%"softOptIn":{}%';

/**
 * Next page of a tenant's projection rows that can hold an expiry: a granted consent, or at least one soft
 * opt-in grant. Keyset pagination on the primary key order (subject, channel, purpose), so each page is an
 * index range and memory stays bounded whatever the tenant's size.
 */
export async function expiryCandidatePage(db: Db, tenantId: string, after: ProjectionKey | null, limit: number): Promise<ExpiryRow[]> {
  let query = db
    .selectFrom('consent_current')
    .select(['subject_id', 'channel', 'purpose', 'status', 'state'])
    .where('tenant_id', '=', tenantId)
    .where((eb) => eb.or([eb('status', '=', 'granted'), eb('state', 'not like', NO_SOFT_OPT_IN)]));
  if (after) query = query.where(sql<boolean>`(subject_id, channel, purpose) > (${after.subject_id}, ${after.channel}, ${after.purpose})`);
  return query.orderBy('subject_id').orderBy('channel').orderBy('purpose').limit(limit).execute();
}

/** Purposes of one subject-channel's projection rows. */
export async function purposesOf(db: Db, tenantId: string, subjectId: string, channel: string): Promise<string[]> {
  const rows = await db
    .selectFrom('consent_current')
    .select('purpose')
    .where('tenant_id', '=', tenantId)
    .where('subject_id', '=', subjectId)
    .where('channel', '=', channel)
    .execute();
  return rows.map((r) => r.purpose);
}

/** The current state (canonical JSON) of one projection row, or undefined when there is none. */
export async function stateOf(db: Db, tenantId: string, key: ProjectionKey): Promise<string | undefined> {
  const row = await db
    .selectFrom('consent_current')
    .select('state')
    .where('tenant_id', '=', tenantId)
    .where('subject_id', '=', key.subject_id)
    .where('channel', '=', key.channel)
    .where('purpose', '=', key.purpose)
    .executeTakeFirst();
  return row?.state;
}
