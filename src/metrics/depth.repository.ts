/**
 * Queue depth SQL for the scrape-time gauges (prometheus.ts): one COUNT … GROUP BY per queue, over the
 * (status, run_at) indexes' leading column; no per-tenant grouping (the label sets stay small). The same pass
 * gives each group's oldest row, so the queues' lag costs no query of its own.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema';

export interface InboxDepthRow {
  readonly platform: string;
  readonly status: string;
  readonly count: number;
  /**
   * When the group's oldest row entered the queue (inbox: `received_at`; outbox: `created_at`). Unlike `run_at`, no
   * claim's lease or retry's backoff moves it. ISO-8601 UTC text of one length, so text order is time order.
   */
  readonly oldestEnqueuedAt: string;
}

export interface OutboxDepthRow extends InboxDepthRow {
  readonly operation: string;
}

export async function inboxDepth(db: Kysely<Database>): Promise<InboxDepthRow[]> {
  const rows = await db
    .selectFrom('inbox')
    .select((eb) => ['platform', 'status', eb.fn.countAll<number>().as('count'), eb.fn.min('received_at').as('oldest')])
    .groupBy(['platform', 'status'])
    .execute();
  return rows.map((r) => ({ platform: r.platform, status: r.status, count: Number(r.count), oldestEnqueuedAt: r.oldest }));
}

export async function outboxDepth(db: Kysely<Database>): Promise<OutboxDepthRow[]> {
  const rows = await db
    .selectFrom('outbox')
    .select((eb) => ['platform', 'operation', 'status', eb.fn.countAll<number>().as('count'), eb.fn.min('created_at').as('oldest')])
    .groupBy(['platform', 'operation', 'status'])
    .execute();
  return rows.map((r) => ({ platform: r.platform, operation: r.operation, status: r.status, count: Number(r.count), oldestEnqueuedAt: r.oldest }));
}
