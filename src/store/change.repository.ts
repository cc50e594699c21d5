/**
 * SQL of the gate's change feed (migration 0007): which subjects' decision inputs changed, in commit order.
 * The caller owns the transaction.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from './database';
import { PrecompiledQuery } from './precompiled';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

const insertHeadIfMissing = new PrecompiledQuery(['tenant_id', 'hash', 'updated_at'], (db, a) =>
  db
    .insertInto('ledger_head')
    .values({ tenant_id: a.tenant_id as string, seq: 0, hash: a.hash as string, updated_at: a.updated_at as string })
    .onConflict((oc) => oc.column('tenant_id').doNothing()),
);

/** Takes the head's row lock on PostgreSQL (the same lock the ledger append holds) until commit. */
const bumpChangeSeq = new PrecompiledQuery(['tenant_id'], (db, a) =>
  db
    .updateTable('ledger_head')
    .set({ change_seq: sql<number>`change_seq + 1` })
    .where('tenant_id', '=', a.tenant_id as string)
    .returning('change_seq'),
);

const insertChange = new PrecompiledQuery(['tenant_id', 'seq', 'subject_id', 'created_at'], (db, a) =>
  db
    .insertInto('subject_change')
    .values({ tenant_id: a.tenant_id as string, seq: a.seq as number, subject_id: a.subject_id as string, created_at: a.created_at as string })
    .onConflict((oc) => oc.doNothing()),
);

/** Next change seq of the tenant, locked for this transaction. `genesis` creates a missing head row. */
export async function nextChangeSeq(db: Db, dialect: Dialect, tenantId: string, genesis: string, now: string): Promise<number> {
  await insertHeadIfMissing.execute(db, dialect, { tenant_id: tenantId, hash: genesis, updated_at: now });
  const { rows } = await bumpChangeSeq.execute(db, dialect, { tenant_id: tenantId });
  if (rows[0]?.change_seq === undefined) throw new Error(`ledger head of tenant ${tenantId} is missing`);
  return Number(rows[0].change_seq);
}

export async function insertChanges(db: Db, dialect: Dialect, tenantId: string, seq: number, subjectIds: Iterable<string>, now: string): Promise<void> {
  for (const subjectId of subjectIds) await insertChange.execute(db, dialect, { tenant_id: tenantId, seq, subject_id: subjectId, created_at: now });
}

const selectChangeSeq = new PrecompiledQuery(['tenant_id'], (db, a) => db.selectFrom('ledger_head').select('change_seq').where('tenant_id', '=', a.tenant_id as string));

/** The tenant's last committed change seq (0 when nothing was ever recorded). */
export async function currentChangeSeq(db: Db, dialect: Dialect, tenantId: string): Promise<number> {
  const { rows } = await selectChangeSeq.execute(db, dialect, { tenant_id: tenantId });
  return Number(rows[0]?.change_seq ?? 0);
}

/** Subjects changed after `after` up to and including `upTo`; at most `limit` + 1 rows are read. */
export async function changedSubjects(db: Db, tenantId: string, after: number, upTo: number, limit: number): Promise<string[]> {
  const rows = await db
    .selectFrom('subject_change')
    .select('subject_id')
    .where('tenant_id', '=', tenantId)
    .where('seq', '>', after)
    .where('seq', '<=', upTo)
    .limit(limit + 1)
    .execute();
  return rows.map((r) => r.subject_id);
}

/** Delete feed rows recorded before `before` (ISO time); returns how many. */
export async function pruneChanges(db: Db, before: string): Promise<number> {
  const result = await db.deleteFrom('subject_change').where('created_at', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}
