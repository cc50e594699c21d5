/**
 * Queue depth SQL for the scrape-time gauges (prometheus.ts): one COUNT … GROUP BY per queue, over the
 * (status, run_at) indexes' leading column; no per-tenant grouping (the label sets stay small). The same pass
 * gives each group's earliest run_at, so the queues' lag costs no query of its own.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema';

export interface InboxDepthRow {
  readonly platform: string;
  readonly status: string;
  readonly count: number;
  /**
   * The group's earliest `run_at`: for pending rows, when the row waiting longest became due (a claimed outbox row
   * carries its lease end, a retried row its next attempt). ISO-8601 UTC text of one length, so text order is time order.
   */
  readonly earliestRunAt: string;
}

export interface OutboxDepthRow extends InboxDepthRow {
  readonly operation: string;
}

export async function inboxDepth(db: Kysely<Database>): Promise<InboxDepthRow[]> {
  const rows = await db
    .selectFrom('inbox')
    .select((eb) => ['platform', 'status', eb.fn.countAll<number>().as('count'), eb.fn.min('run_at').as('earliest_run_at')])
    .groupBy(['platform', 'status'])
    .execute();
  return rows.map((r) => ({ platform: r.platform, status: r.status, count: Number(r.count), earliestRunAt: r.earliest_run_at }));
}

export async function outboxDepth(db: Kysely<Database>): Promise<OutboxDepthRow[]> {
  const rows = await db
    .selectFrom('outbox')
    .select((eb) => ['platform', 'operation', 'status', eb.fn.countAll<number>().as('count'), eb.fn.min('run_at').as('earliest_run_at')])
    .groupBy(['platform', 'operation', 'status'])
    .execute();
  return rows.map((r) => ({ platform: r.platform, operation: r.operation, status: r.status, count: Number(r.count), earliestRunAt: r.earliest_run_at }));
}
