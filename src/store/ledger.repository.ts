/**
 * Ledger and projection SQL. There is deliberately no update or delete of `consent_event` here: the ledger is
 * append-only through the code (and the database refuses it, see migrations).
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from './database';
import { hasExactlyColumns, PrecompiledQuery } from './precompiled';
import type { ConsentCurrentTable, ConsentEventTable, Database, LedgerHeadTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** SQLite allows 32,766 bound variables per statement; 15 columns × 500 rows stays well below. */
const INSERT_CHUNK = 500;

// The statements of every append are precompiled (precompiled.ts): the inbox worker appends once per delivery.

const insertLedgerDelivery = new PrecompiledQuery(['tenant_id', 'delivery_key', 'event_count', 'created_at'], (db, row) =>
  db
    .insertInto('ledger_delivery')
    .values({ ...(row as { tenant_id: string; delivery_key: string; event_count: number; created_at: string }), first_seq: null })
    .onConflict((oc) => oc.columns(['tenant_id', 'delivery_key']).doNothing()),
);

/** Insert-first idempotency for a source delivery; false when the delivery was appended before. */
export async function claimDelivery(
  db: Db,
  dialect: Dialect,
  row: { tenant_id: string; delivery_key: string; event_count: number; created_at: string },
): Promise<boolean> {
  const result = await insertLedgerDelivery.execute(db, dialect, row);
  return Number(result.numAffectedRows ?? 0) > 0;
}

const updateDeliveryFirstSeq = new PrecompiledQuery(['tenantId', 'deliveryKey', 'firstSeq'], (db, a) =>
  db
    .updateTable('ledger_delivery')
    .set({ first_seq: a.firstSeq as number })
    .where('tenant_id', '=', a.tenantId as string)
    .where('delivery_key', '=', a.deliveryKey as string),
);

export async function setDeliveryFirstSeq(db: Db, dialect: Dialect, tenantId: string, deliveryKey: string, firstSeq: number): Promise<void> {
  await updateDeliveryFirstSeq.execute(db, dialect, { tenantId, deliveryKey, firstSeq });
}

/**
 * Lock the tenant's chain head for this transaction and return it. PostgreSQL: a row lock (FOR UPDATE), so
 * concurrent appenders queue up instead of forking the chain. SQLite: the preceding insert already took the
 * database write lock, which serialises writers.
 */
const insertGenesisHead = new PrecompiledQuery(['tenant_id', 'hash', 'updated_at'], (db, a) =>
  db
    .insertInto('ledger_head')
    .values({ tenant_id: a.tenant_id as string, seq: 0, hash: a.hash as string, updated_at: a.updated_at as string })
    .onConflict((oc) => oc.column('tenant_id').doNothing()),
);
const selectHead = new PrecompiledQuery(['tenantId'], (db, a) => db.selectFrom('ledger_head').selectAll().where('tenant_id', '=', a.tenantId as string));
const selectHeadForUpdate = new PrecompiledQuery(['tenantId'], (db, a) =>
  db.selectFrom('ledger_head').selectAll().where('tenant_id', '=', a.tenantId as string).forUpdate(),
);

export async function lockHead(db: Db, dialect: Dialect, tenantId: string, genesis: string, now: string): Promise<LedgerHeadTable> {
  await insertGenesisHead.execute(db, dialect, { tenant_id: tenantId, hash: genesis, updated_at: now });
  const { rows } = await (dialect === 'postgres' ? selectHeadForUpdate : selectHead).execute(db, dialect, { tenantId });
  if (rows[0] === undefined) throw new Error(`ledger head of tenant ${tenantId} is missing`);
  return rows[0];
}

export async function readHead(db: Db, tenantId: string): Promise<LedgerHeadTable | undefined> {
  return db.selectFrom('ledger_head').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
}

const updateHead = new PrecompiledQuery(['seq', 'hash', 'updated_at', 'tenant_id'], (db, a) =>
  db
    .updateTable('ledger_head')
    .set({ seq: a.seq as number, hash: a.hash as string, updated_at: a.updated_at as string })
    .where('tenant_id', '=', a.tenant_id as string),
);

export async function setHead(db: Db, dialect: Dialect, head: LedgerHeadTable): Promise<void> {
  await updateHead.execute(db, dialect, head);
}

const EVENT_COLUMNS = [
  'tenant_id', 'seq', 'id', 'subject_id', 'channel', 'purpose', 'kind', 'basis', 'occurred_at', 'received_at', 'source', 'source_delivery_id', 'evidence', 'prev_hash', 'hash',
] as const satisfies ReadonlyArray<keyof ConsentEventTable>;
const insertEventRow = new PrecompiledQuery(EVENT_COLUMNS, (db, row) => db.insertInto('consent_event').values(row as unknown as ConsentEventTable));

/** Append rows to the chain. One event (the common case: one delivery, one change) takes a precompiled statement. */
export async function insertEvents(db: Db, dialect: Dialect, rows: readonly ConsentEventTable[]): Promise<void> {
  if (rows.length === 1 && hasExactlyColumns(rows[0]!, EVENT_COLUMNS)) {
    await insertEventRow.execute(db, dialect, rows[0]!);
    return;
  }
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await db.insertInto('consent_event').values(rows.slice(i, i + INSERT_CHUNK)).execute();
  }
}

const selectSubjectChannelEvents = new PrecompiledQuery(['tenantId', 'subjectId', 'channel'], (db, a) =>
  db
    .selectFrom('consent_event')
    .selectAll()
    .where('tenant_id', '=', a.tenantId as string)
    .where('subject_id', '=', a.subjectId as string)
    .where('channel', '=', a.channel as string)
    .orderBy('seq'),
);

export async function eventsOfSubjectChannel(db: Db, dialect: Dialect, tenantId: string, subjectId: string, channel: string): Promise<ConsentEventTable[]> {
  return (await selectSubjectChannelEvents.execute(db, dialect, { tenantId, subjectId, channel })).rows;
}

const selectSubjectChannelProjection = new PrecompiledQuery(['tenantId', 'subjectId', 'channel'], (db, a) =>
  db
    .selectFrom('consent_current')
    .selectAll()
    .where('tenant_id', '=', a.tenantId as string)
    .where('subject_id', '=', a.subjectId as string)
    .where('channel', '=', a.channel as string),
);

/** The projection rows of one subject and channel, as stored. */
export async function projectionOfSubjectChannel(db: Db, dialect: Dialect, tenantId: string, subjectId: string, channel: string): Promise<ConsentCurrentTable[]> {
  return (await selectSubjectChannelProjection.execute(db, dialect, { tenantId, subjectId, channel })).rows;
}

const selectLastSeqBefore = new PrecompiledQuery(['tenantId', 'subjectId', 'channel', 'beforeSeq'], (db, a) =>
  db
    .selectFrom('consent_event')
    .select((eb) => eb.fn.max('seq').as('last_seq'))
    .where('tenant_id', '=', a.tenantId as string)
    .where('subject_id', '=', a.subjectId as string)
    .where('channel', '=', a.channel as string)
    .where('seq', '<', a.beforeSeq as number),
);

/** The last seq of one subject's events on a channel before `beforeSeq` (an index seek), or null when there are none. */
export async function lastSeqBefore(db: Db, dialect: Dialect, tenantId: string, subjectId: string, channel: string, beforeSeq: number): Promise<number | null> {
  const row = (await selectLastSeqBefore.execute(db, dialect, { tenantId, subjectId, channel, beforeSeq })).rows[0];
  return row?.last_seq === null || row?.last_seq === undefined ? null : Number(row.last_seq);
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

const deleteSubjectChannelProjection = new PrecompiledQuery(['tenantId', 'subjectId', 'channel'], (db, a) =>
  db
    .deleteFrom('consent_current')
    .where('tenant_id', '=', a.tenantId as string)
    .where('subject_id', '=', a.subjectId as string)
    .where('channel', '=', a.channel as string),
);

const PROJECTION_COLUMNS = ['tenant_id', 'subject_id', 'channel', 'purpose', 'status', 'basis', 'state', 'last_event_at', 'last_seq', 'fold_version'] as const satisfies ReadonlyArray<keyof ConsentCurrentTable>;
const insertProjectionRow = new PrecompiledQuery(PROJECTION_COLUMNS, (db, row) => db.insertInto('consent_current').values(row as unknown as ConsentCurrentTable));

export async function replaceProjection(
  db: Db,
  dialect: Dialect,
  tenantId: string,
  subjectId: string,
  channel: string,
  rows: readonly ConsentCurrentTable[],
): Promise<void> {
  await deleteSubjectChannelProjection.execute(db, dialect, { tenantId, subjectId, channel });
  if (rows.length === 1 && hasExactlyColumns(rows[0]!, PROJECTION_COLUMNS)) await insertProjectionRow.execute(db, dialect, rows[0]!);
  else if (rows.length > 0) await db.insertInto('consent_current').values([...rows]).execute();
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
  const rows = await db
    .selectFrom('consent_event')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('subject_id', '=', subjectId)
    .where('kind', 'in', [...kinds])
    .execute();
  // Sorted here: with ORDER BY seq, SQLite's planner scans the tenant's whole ledger by primary key to skip a sort.
  return rows.sort((a, b) => a.seq - b.seq);
}
