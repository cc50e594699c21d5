/** Answers to HubSpot custom workflow action executions (migration 0005). SQL only; the caller owns the transaction. */
import type { Kysely, Transaction } from 'kysely';
import type { Database, WorkflowActionCallTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Insert-first (style.md §10): false when this tenant already answered the callback id, in which case nothing is
 * written and the caller reads the stored answer. Never check-then-insert: two concurrent deliveries of one
 * execution both try the insert, and exactly one row survives on either database.
 */
export async function insertWorkflowActionCall(db: Db, row: WorkflowActionCallTable): Promise<boolean> {
  const result = await db
    .insertInto('workflow_action_call')
    .values(row)
    .onConflict((oc) => oc.columns(['tenant_id', 'callback_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function findWorkflowActionCall(db: Db, tenantId: string, callbackId: string): Promise<WorkflowActionCallTable | undefined> {
  return db.selectFrom('workflow_action_call').selectAll().where('tenant_id', '=', tenantId).where('callback_id', '=', callbackId).executeTakeFirst();
}
