/**
 * The webhook inbox (issue 3 §6): verified deliveries are stored before the 200 and processed afterwards.
 * The request path calls `acceptDeliveries` once per request: one transaction, insert-first on the UNIQUE
 * (platform, delivery_key), no outbound HTTP. A duplicate adds nothing.
 */
import type { Clock, IdGenerator } from '../ports';
import type { Store } from '../store/database';
import * as repo from '../store/inbox.repository';
import type { InboxTable, PrivacyRequestTable } from '../store/schema';

export type Platform = 'shopify' | 'hubspot';

export interface NewDelivery {
  readonly tenantId: string;
  readonly platform: Platform;
  readonly deliveryKey: string;
  readonly topic: string;
  /** The delivery's JSON text. */
  readonly payload: string;
  readonly meta: Readonly<Record<string, string>>;
}

export interface NewPrivacyRequest {
  readonly tenantId: string | null;
  readonly platform: Platform;
  readonly account: string;
  readonly deliveryKey: string;
  readonly topic: string;
  readonly payload: string;
}

/** Why a delivery was counted instead of stored (issue 3 §5). */
export type UnroutedReason = 'unknown_tenant' | 'tenant_uninstalled' | 'unhandled_topic';

export interface UnroutedDelivery {
  readonly platform: Platform;
  readonly account: string;
  readonly topic: string;
  readonly reason: UnroutedReason;
}

export interface AcceptBatch {
  readonly deliveries: readonly NewDelivery[];
  readonly privacyRequests: readonly NewPrivacyRequest[];
  readonly unrouted: readonly UnroutedDelivery[];
}

export interface AcceptResult {
  readonly accepted: number;
  readonly duplicates: number;
  readonly privacyRecorded: number;
  readonly unrouted: number;
}

export interface InboxDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

/** Store one request's deliveries in one transaction (all or nothing). */
export async function acceptDeliveries(store: Store, deps: InboxDeps, batch: AcceptBatch): Promise<AcceptResult> {
  const now = deps.clock.now().toISOString();
  const rows: InboxTable[] = batch.deliveries.map((d) => ({
    id: deps.ids.next(),
    tenant_id: d.tenantId,
    platform: d.platform,
    delivery_key: d.deliveryKey,
    topic: d.topic,
    payload: d.payload,
    meta: JSON.stringify(d.meta),
    status: 'pending',
    attempts: 0,
    run_at: now,
    last_error: null,
    outcome: null,
    received_at: now,
    processed_at: null,
  }));
  const privacy: PrivacyRequestTable[] = batch.privacyRequests.map((p) => ({
    id: deps.ids.next(),
    tenant_id: p.tenantId,
    platform: p.platform,
    account: p.account,
    delivery_key: p.deliveryKey,
    topic: p.topic,
    payload: p.payload,
    status: 'open',
    received_at: now,
  }));
  if (rows.length === 0 && privacy.length === 0 && batch.unrouted.length === 0) {
    return { accepted: 0, duplicates: 0, privacyRecorded: 0, unrouted: 0 };
  }
  return store.db.transaction().execute(async (trx) => {
    const accepted = await repo.insertInboxRows(trx, rows);
    const privacyRecorded = await repo.insertPrivacyRequests(trx, privacy);
    for (const u of batch.unrouted) await repo.countUnrouted(trx, { ...u, last_seen_at: now });
    return {
      accepted,
      duplicates: rows.length - accepted + (privacy.length - privacyRecorded),
      privacyRecorded,
      unrouted: batch.unrouted.length,
    };
  });
}

export interface InboxStats {
  readonly byTenant: ReadonlyArray<{ tenantId: string; status: string; count: number; oldestReceivedAt: string | null }>;
  readonly privacyRequests: ReadonlyArray<{ topic: string; status: string; count: number }>;
  readonly unrouted: ReadonlyArray<{ platform: string; account: string; topic: string; reason: string; count: number; lastSeenAt: string }>;
}

export async function inboxStats(store: Store): Promise<InboxStats> {
  const [counts, privacy, unrouted] = await Promise.all([repo.countInbox(store.db), repo.countPrivacyRequests(store.db), repo.listUnrouted(store.db)]);
  return {
    byTenant: counts.map((c) => ({ tenantId: c.tenant_id, status: c.status, count: c.count, oldestReceivedAt: c.oldest })),
    privacyRequests: privacy,
    unrouted: unrouted.map((u) => ({ platform: u.platform, account: u.account, topic: u.topic, reason: u.reason, count: u.count, lastSeenAt: u.last_seen_at })),
  };
}

export interface DeadDelivery {
  readonly id: string;
  readonly tenantId: string;
  readonly platform: string;
  readonly topic: string;
  readonly deliveryKey: string;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly receivedAt: string;
}

export async function listDeadDeliveries(store: Store, filter: { tenantId?: string; limit?: number } = {}): Promise<DeadDelivery[]> {
  const rows = await repo.listDead(store.db, { tenantId: filter.tenantId, limit: filter.limit ?? 100 });
  return rows.map((r) => ({
    id: r.id,
    tenantId: r.tenant_id,
    platform: r.platform,
    topic: r.topic,
    deliveryKey: r.delivery_key,
    attempts: Number(r.attempts),
    lastError: r.last_error,
    receivedAt: r.received_at,
  }));
}

/** Replay dead-lettered deliveries (all of a tenant, or the given ids). Returns how many were re-queued. */
export async function retryDeadDeliveries(store: Store, deps: Pick<InboxDeps, 'clock'>, filter: { tenantId?: string; ids?: readonly string[] }): Promise<number> {
  return repo.requeueDead(store.db, filter, deps.clock.now().toISOString());
}
