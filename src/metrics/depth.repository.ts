/**
 * Queue depth SQL for the scrape-time gauges (prometheus.ts): one COUNT … GROUP BY per queue, over the
 * (status, run_at) indexes' leading column; no per-tenant grouping (the label sets stay small).
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema';

export interface InboxDepthRow {
  readonly platform: string;
  readonly status: string;
  readonly count: number;
}

export interface OutboxDepthRow {
  readonly platform: string;
  readonly operation: string;
  readonly status: string;
  readonly count: number;
}

export async function inboxDepth(db: Kysely<Database>): Promise<InboxDepthRow[]> {
  const rows = await db
    .selectFrom('inbox')
    .select((eb) => ['platform', 'status', eb.fn.countAll<number>().as('count')])
    .groupBy(['platform', 'status'])
    .execute();
  return rows.map((r) => ({ platform: r.platform, status: r.status, count: Number(r.count) }));
}

export async function outboxDepth(db: Kysely<Database>): Promise<OutboxDepthRow[]> {
  const rows = await db
    .selectFrom('outbox')
    .select((eb) => ['platform', 'operation', 'status', eb.fn.countAll<number>().as('count')])
    .groupBy(['platform', 'operation', 'status'])
    .execute();
  return rows.map((r) => ({ platform: r.platform, operation: r.operation, status: r.status, count: Number(r.count) }));
}
