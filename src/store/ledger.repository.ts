/**
 * Ledger and projection SQL. There is deliberately no update or delete of `consent_event` here: the ledger is
 * append-only through the code (and the database refuses it, see migrations).
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { ConsentCurrentTable, ConsentEventTable, Database, LedgerHeadTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** SQLite allows 32,766 bound variables per statement; 15 columns × 500 rows stays well below. */
const INSERT_CHUNK = 500;

/** Insert-first idempotency for a source delivery; false when the delivery was appended before. */
export async function claimDelivery(
  db: Db,
  row: { tenant_id: string; delivery_key: string; event_count: number; created_at: string },
): Promise<boolean> {
  const result = await db
    .insertInto('ledger_delivery')
    .values({ ...row, first_seq: null })
    .onConflict((oc) => oc.columns(['tenant_id', 'delivery_key']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function setDeliveryFirstSeq(db: Db, tenantId: string, deliveryKey: string, firstSeq: number): Promise<void> {
  await db.updateTable('ledger_delivery').set({ first_seq: firstSeq }).where('tenant_id', '=', tenantId).where('delivery_key', '=', deliveryKey).execute();
}

/**
 * Lock the tenant's chain head for this transaction and return it. PostgreSQL: a row lock (FOR UPDATE), so
 * concurrent appenders queue up instead of forking the chain. SQLite: the preceding insert already took the
 * database write lock, which serialises writers.
 */
export async function lockHead(db: Db, dialect: 'sqlite' | 'postgres', tenantId: string, genesis: string, now: string): Promise<LedgerHeadTable> {
  await db
    .insertInto('ledger_head')
    .values({ tenant_id: tenantId, seq: 0, hash: genesis, updated_at: now })
    .onConflict((oc) => oc.column('tenant_id').doNothing())
    .execute();
  let query = db.selectFrom('ledger_head').selectAll().where('tenant_id', '=', tenantId);
  if (dialect === 'postgres') query = query.forUpdate();
  return query.executeTakeFirstOrThrow();
}

export async function readHead(db: Db, tenantId: string): Promise<LedgerHeadTable | undefined> {
  return db.selectFrom('ledger_head').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
}

export async function setHead(db: Db, head: LedgerHeadTable): Promise<void> {
  await db.updateTable('ledger_head').set({ seq: head.seq, hash: head.hash, updated_at: head.updated_at }).where('tenant_id', '=', head.tenant_id).execute();
}

export async function insertEvents(db: Db, rows: readonly ConsentEventTable[]): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await db.insertInto('consent_event').values(rows.slice(i, i + INSERT_CHUNK)).execute();
  }
}

export async function eventsOfSubjectChannel(db: Db, tenantId: string, subjectId: string, channel: string): Promise<ConsentEventTable[]> {
  return db
    .selectFrom('consent_event')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('subject_id', '=', subjectId)
    .where('channel', '=', channel)
    .orderBy('seq')
    .execute();
}

/** A page of the chain in order, for verification (keyset pagination on seq). */
export async function eventPage(db: Db, tenantId: string, afterSeq: number, limit: number): Promise<ConsentEventTable[]> {
  return db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenantId).where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
}

/** A page ordered by (subject, channel, seq), for rebuilding the projection group by group. */
export async function eventPageBySubject(
  db: Db,
  tenantId: string,
  after: { subject_id: string; channel: string; seq: number } | null,
  limit: number,
): Promise<ConsentEventTable[]> {
  let query = db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenantId);
  if (after) {
    query = query.where(sql<boolean>`(subject_id, channel, seq) > (${after.subject_id}, ${after.channel}, ${after.seq})`);
  }
  return query.orderBy('subject_id').orderBy('channel').orderBy('seq').limit(limit).execute();
}

export async function replaceProjection(db: Db, tenantId: string, subjectId: string, channel: string, rows: readonly ConsentCurrentTable[]): Promise<void> {
  await db.deleteFrom('consent_current').where('tenant_id', '=', tenantId).where('subject_id', '=', subjectId).where('channel', '=', channel).execute();
  if (rows.length > 0) await db.insertInto('consent_current').values([...rows]).execute();
}

export async function projectionOf(db: Db, tenantId: string, subjectId?: string): Promise<ConsentCurrentTable[]> {
  let query = db.selectFrom('consent_current').selectAll().where('tenant_id', '=', tenantId);
  if (subjectId !== undefined) query = query.where('subject_id', '=', subjectId);
  return query.orderBy('subject_id').orderBy('channel').orderBy('purpose').execute();
}

export async function deleteProjection(db: Db, tenantId: string): Promise<void> {
  await db.deleteFrom('consent_current').where('tenant_id', '=', tenantId).execute();
}

export async function tenantIdsWithEvents(db: Db): Promise<string[]> {
  const rows = await db.selectFrom('ledger_head').select('tenant_id').orderBy('tenant_id').execute();
  return rows.map((r) => r.tenant_id);
}

/** Every event of one subject of the given kinds, in chain order (merge carry-over). */
export async function eventsOfSubjectByKind(db: Db, tenantId: string, subjectId: string, kinds: readonly string[]): Promise<ConsentEventTable[]> {
  if (kinds.length === 0) return [];
  return db
    .selectFrom('consent_event')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('subject_id', '=', subjectId)
    .where('kind', 'in', [...kinds])
    .orderBy('seq')
    .execute();
}
