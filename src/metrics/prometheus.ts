/**
 * The prom-client implementation of `Metrics` (issue 5 §7). Each instance has its own `Registry`, never
 * prom-client's global one, so several apps in one process (tests) never share or collide on a metric.
 *
 * Queue depths are not counted as rows move: they are read at scrape time with one COUNT … GROUP BY per queue
 * (depth.repository.ts), which also gives each queue's lag: the age of its oldest pending row
 * (`consent_bridge_queue_oldest_pending_seconds`, the figure to alert on). A scrape waits at most `collectTimeoutMs`
 * for them; past that (or when the database fails) the gauges keep their last values,
 * `consent_bridge_metrics_collect_errors_total` says so and `consent_bridge_queue_depth_collected_timestamp_seconds`
 * tells how old they are. A query that outlives the scrape is not started again by the next one: that scrape waits
 * on the same query, so a slow database gets at most one depth query at a time from this process.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Kysely } from 'kysely';
import { TimedOut, withinTime } from '../jobs/time-limit';
import type { Logger } from '../ports';
import type { Database } from '../store/schema';
import { inboxDepth, outboxDepth, type InboxDepthRow, type OutboxDepthRow } from './depth.repository';
import type { GateDecisionSample, GateDecisionSource, Metrics, MetricsPlatform, OutboxChunkOutcome, PlatformCallOutcome } from './metrics';

/** One tenant's backfill progress: customers processed so far. */
export interface BackfillProgress {
  readonly tenant: string;
  readonly customers: number;
}

/** Read at each scrape (the backfill provides it); what it does not list is not reported. */
export type BackfillProgressSource = () => readonly BackfillProgress[] | Promise<readonly BackfillProgress[]>;

export interface PrometheusMetricsOptions {
  /** The database whose inbox and outbox depths are reported; without it, no depth gauges. */
  readonly store?: { readonly db: Kysely<Database> };
  readonly logger: Logger;
  /**
   * Process metrics (`process_*`, `nodejs_*`: CPU, memory, event-loop lag, GC, handles) on this registry.
   * Default true. Each registration starts an event-loop delay monitor and a GC observer that live as long as
   * the process, so code that makes many short-lived instances (tests) turns it off.
   */
  readonly defaultMetrics?: boolean;
  /** Longest a scrape waits for the depth queries and the backfill source (ms). Default 2000. */
  readonly collectTimeoutMs?: number;
  /** The backfill's progress, for `consent_bridge_backfill_customers{tenant}`. */
  readonly progressSource?: BackfillProgressSource;
  /** Wall clock in ms (the depth timestamp, the queues' age). Default `Date.now`; `serve` passes the runtime's clock. */
  readonly nowMs?: () => number;
}

export const DEFAULT_COLLECT_TIMEOUT_MS = 2000;

/**
 * Sync lag buckets (seconds): a write normally goes out within the dispatcher's poll interval (1 s); retries
 * after a platform failure back off up to an hour per attempt, so the tail reaches hours.
 */
export const SYNC_LAG_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

const PLATFORMS: readonly MetricsPlatform[] = ['shopify', 'hubspot'];
const QUEUE_STATUSES = ['pending', 'done', 'dead'] as const;

type Raced<T> = { readonly ok: true; readonly value: T } | { readonly ok: false };

/** `promise`'s value, or `{ok:false}` after `ms` (the promise keeps running). Rejects as the promise does. */
async function within<T>(promise: Promise<T>, ms: number): Promise<Raced<T>> {
  try {
    return { ok: true, value: await withinTime(promise, ms, 'a scrape-time collection') };
  } catch (err) {
    if (err instanceof TimedOut) return { ok: false };
    throw err;
  }
}

export class PrometheusMetrics implements Metrics {
  readonly registry = new Registry();
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #nowMs: () => number;
  readonly #store: { readonly db: Kysely<Database> } | undefined;

  readonly #webhooksReceived: Counter<'platform'>;
  readonly #webhooksRejected: Counter<'platform' | 'reason'>;
  readonly #platformCalls: Counter<'platform' | 'outcome' | 'status'>;
  readonly #rateLimited: Counter<'platform'>;
  readonly #gateDecisions: Counter<'source' | 'reason' | 'allowed'>;
  readonly #syncLag: Histogram<'platform' | 'operation'>;
  readonly #outboxOutcomes: Counter<'platform' | 'operation' | 'outcome'>;
  readonly #collectErrors: Counter<'collector' | 'reason'>;
  readonly #inboxRows: Gauge<'platform' | 'status'> | undefined;
  readonly #outboxRows: Gauge<'platform' | 'operation' | 'status'> | undefined;
  readonly #deadLetters: Gauge<'queue'> | undefined;
  readonly #depthCollectedAt: Gauge | undefined;
  readonly #oldestPending: Gauge<'queue' | 'platform'> | undefined;
  readonly #backfill: Gauge<'tenant'>;
  readonly #progressSource: BackfillProgressSource | undefined;

  /** (platform, operation) pairs seen in the outbox: reported with 0 once drained instead of vanishing. */
  readonly #outboxPairs = new Map<string, { platform: string; operation: string }>();
  /** The depth queries in flight (possibly from an earlier, timed-out scrape). */
  #depthQuery: Promise<void> | undefined;
  /** This scrape's collections (depths, backfill), shared by the collect of every scrape-time metric. */
  #scrape: Promise<void> | undefined;

  constructor(options: PrometheusMetricsOptions) {
    this.#logger = options.logger;
    this.#timeoutMs = options.collectTimeoutMs ?? DEFAULT_COLLECT_TIMEOUT_MS;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#store = options.store;
    this.#progressSource = options.progressSource;
    const registers = [this.registry];
    // Each metric filled at scrape time waits for the same collections (the registry reads metrics concurrently).
    const scraped = { collect: () => this.#collectAll() };

    this.#webhooksReceived = new Counter({
      name: 'consent_bridge_webhooks_received_total',
      help: 'Webhook requests received, refused ones included (counted before any check).',
      labelNames: ['platform'],
      registers,
    });
    this.#webhooksRejected = new Counter({
      name: 'consent_bridge_webhooks_rejected_total',
      help: 'Webhook requests refused, by reason: the error code (unauthorized, bad_request, payload_too_large, unsupported_media_type, feature_disabled, …) or the status class.',
      labelNames: ['platform', 'reason'],
      registers,
    });
    this.#platformCalls = new Counter({
      name: 'consent_bridge_platform_calls_total',
      help: 'Requests sent to a platform API, by outcome (ok, or the failure kind: rate_limited, server_error, timeout, connection, auth, client_error, malformed) and HTTP status (none without an answer).',
      labelNames: ['platform', 'outcome', 'status'],
      registers,
    });
    this.#rateLimited = new Counter({
      name: 'consent_bridge_platform_rate_limited_total',
      help: 'Platform requests answered with a rate limit (HubSpot 429, Shopify 429 or THROTTLED).',
      labelNames: ['platform'],
      registers,
    });
    this.#gateDecisions = new Counter({
      name: 'consent_bridge_gate_decisions_total',
      help: 'Send gate decisions (one per recipient), by source (api, hubspot_action), reason and whether sending is allowed.',
      labelNames: ['source', 'reason', 'allowed'],
      registers,
    });
    this.#syncLag = new Histogram({
      name: 'consent_bridge_sync_lag_seconds',
      help: 'Time from enqueueing a platform write (outbox row created) to the dispatcher marking it done.',
      labelNames: ['platform', 'operation'],
      buckets: SYNC_LAG_BUCKETS,
      registers,
    });
    this.#outboxOutcomes = new Counter({
      name: 'consent_bridge_outbox_outcomes_total',
      help: 'Outbox rows handled by the dispatcher, by outcome: done, retry (failed, tried again later), dead (dead-lettered).',
      labelNames: ['platform', 'operation', 'outcome'],
      registers,
    });
    this.#collectErrors = new Counter({
      name: 'consent_bridge_metrics_collect_errors_total',
      help: 'Scrape-time collections that failed or timed out (the affected gauges keep their last values).',
      labelNames: ['collector', 'reason'],
      registers,
      ...scraped,
    });
    if (options.store) {
      this.#inboxRows = new Gauge({
        name: 'consent_bridge_inbox_rows',
        help: 'Inbox rows (stored webhook deliveries) by platform and status (pending, done, dead), read at scrape time.',
        labelNames: ['platform', 'status'],
        registers,
        ...scraped,
      });
      this.#outboxRows = new Gauge({
        name: 'consent_bridge_outbox_rows',
        help: 'Outbox rows (platform writes) by platform, operation and status (pending, done, dead), read at scrape time.',
        labelNames: ['platform', 'operation', 'status'],
        registers,
        ...scraped,
      });
      this.#deadLetters = new Gauge({
        name: 'consent_bridge_dead_letters',
        help: 'Dead-lettered rows waiting for `inbox retry` / `outbox retry`, by queue (inbox, outbox), read at scrape time.',
        labelNames: ['queue'],
        registers,
        ...scraped,
      });
      this.#oldestPending = new Gauge({
        name: 'consent_bridge_queue_oldest_pending_seconds',
        help: 'Age of the oldest pending row of the queue, by platform: inbox (webhook deliveries for the worker) since it was received, outbox (platform writes for the dispatcher) since it was enqueued; 0 when none is pending. Rows waiting for a retry or being sent count; dead letters do not. Growing means that queue falls behind. Read at scrape time.',
        labelNames: ['queue', 'platform'],
        registers,
        ...scraped,
      });
      this.#depthCollectedAt = new Gauge({
        name: 'consent_bridge_queue_depth_collected_timestamp_seconds',
        help: 'When the queue depth gauges were last read from the database (Unix time).',
        registers,
        ...scraped,
      });
    }
    this.#backfill = new Gauge({
      name: 'consent_bridge_backfill_customers',
      help: 'Customers processed so far by the backfill, per tenant being backfilled.',
      labelNames: ['tenant'],
      registers,
      ...scraped,
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The text exposition of every metric (runs the scrape-time collections). */
  async render(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  webhookReceived(platform: MetricsPlatform): void {
    this.#webhooksReceived.inc({ platform });
  }

  webhookRejected(platform: MetricsPlatform, reason: string): void {
    this.#webhooksRejected.inc({ platform, reason });
  }

  platformCall(platform: MetricsPlatform, outcome: PlatformCallOutcome): void {
    this.#platformCalls.inc({ platform, outcome: outcome.kind, status: outcome.status === null ? 'none' : String(outcome.status) });
    if (outcome.kind === 'rate_limited') this.#rateLimited.inc({ platform });
  }

  /** Counted per (reason, allowed) of the request, not per recipient: a gate request has up to 10,000. */
  gateDecisions(source: GateDecisionSource, decisions: Iterable<GateDecisionSample>): void {
    const counts = new Map<string, { reason: string; allowed: boolean; n: number }>();
    for (const d of decisions) {
      const key = `${d.allowed ? 'y' : 'n'}${d.reason}`;
      const entry = counts.get(key);
      if (entry) entry.n += 1;
      else counts.set(key, { reason: d.reason, allowed: d.allowed, n: 1 });
    }
    for (const { reason, allowed, n } of counts.values()) this.#gateDecisions.inc({ source, reason, allowed: String(allowed) }, n);
  }

  outboxRecorded(platform: string, operation: string, outcome: OutboxChunkOutcome): void {
    const labels = { platform, operation };
    for (const seconds of outcome.lagSeconds) this.#syncLag.observe(labels, Math.max(0, seconds));
    if (outcome.done > 0) this.#outboxOutcomes.inc({ ...labels, outcome: 'done' }, outcome.done);
    if (outcome.retried > 0) this.#outboxOutcomes.inc({ ...labels, outcome: 'retry' }, outcome.retried);
    if (outcome.dead > 0) this.#outboxOutcomes.inc({ ...labels, outcome: 'dead' }, outcome.dead);
  }

  #collectAll(): Promise<void> {
    this.#scrape ??= Promise.all([this.#awaitDepth(), this.#collectBackfill()])
      .then(() => undefined)
      .finally(() => {
        this.#scrape = undefined;
      });
    return this.#scrape;
  }

  async #awaitDepth(): Promise<void> {
    if (this.#store === undefined) return;
    this.#depthQuery ??= this.#queryDepth().finally(() => {
      this.#depthQuery = undefined;
    });
    const raced = await within(this.#depthQuery, this.#timeoutMs);
    if (!raced.ok) {
      this.#collectErrors.inc({ collector: 'queue_depth', reason: 'timeout' });
      this.#logger.warn({ timeoutMs: this.#timeoutMs }, 'queue depth queries did not answer in time; /metrics shows the last values');
    }
  }

  /** Never rejects: a failure is counted and logged, and the gauges keep their values. */
  async #queryDepth(): Promise<void> {
    const store = this.#store;
    if (store === undefined) return;
    try {
      const [inbox, outbox] = await Promise.all([inboxDepth(store.db), outboxDepth(store.db)]);
      this.#applyDepth(inbox, outbox, this.#nowMs());
    } catch (err) {
      this.#collectErrors.inc({ collector: 'queue_depth', reason: 'error' });
      this.#logger.warn({ err }, 'queue depth queries failed; /metrics shows the last values');
    }
  }

  #applyDepth(inbox: readonly InboxDepthRow[], outbox: readonly OutboxDepthRow[], nowMs: number): void {
    const inboxRows = this.#inboxRows!;
    const outboxRows = this.#outboxRows!;
    inboxRows.reset();
    for (const platform of PLATFORMS) for (const status of QUEUE_STATUSES) inboxRows.set({ platform, status }, 0);
    for (const r of inbox) inboxRows.set({ platform: r.platform, status: r.status }, r.count);

    outboxRows.reset();
    for (const r of outbox) this.#outboxPairs.set(JSON.stringify([r.platform, r.operation]), { platform: r.platform, operation: r.operation });
    for (const pair of this.#outboxPairs.values()) for (const status of QUEUE_STATUSES) outboxRows.set({ ...pair, status }, 0);
    for (const r of outbox) outboxRows.set({ platform: r.platform, operation: r.operation, status: r.status }, r.count);

    const dead = (rows: readonly { status: string; count: number }[]) => rows.reduce((n, r) => (r.status === 'dead' ? n + r.count : n), 0);
    this.#deadLetters!.set({ queue: 'inbox' }, dead(inbox));
    this.#deadLetters!.set({ queue: 'outbox' }, dead(outbox));

    // Per platform, the oldest pending row (for the outbox, over its operations).
    for (const [queue, rows] of [['inbox', inbox], ['outbox', outbox]] as const) {
      for (const platform of PLATFORMS) {
        const times = rows.filter((r) => r.platform === platform && r.status === 'pending').map((r) => Date.parse(r.oldestEnqueuedAt));
        const oldest = Math.min(...times.filter(Number.isFinite));
        this.#oldestPending!.set({ queue, platform }, Number.isFinite(oldest) ? Math.max(0, (nowMs - oldest) / 1000) : 0);
      }
    }
    this.#depthCollectedAt!.set(nowMs / 1000);
  }

  async #collectBackfill(): Promise<void> {
    const source = this.#progressSource;
    if (source === undefined) return;
    try {
      const raced = await within(Promise.resolve().then(source), this.#timeoutMs);
      if (!raced.ok) {
        this.#collectErrors.inc({ collector: 'backfill', reason: 'timeout' });
        return;
      }
      this.#backfill.reset();
      for (const p of raced.value) this.#backfill.set({ tenant: p.tenant }, p.customers);
    } catch (err) {
      this.#collectErrors.inc({ collector: 'backfill', reason: 'error' });
      this.#logger.warn({ err }, 'backfill progress could not be read for /metrics');
    }
  }
}

export function createPrometheusMetrics(options: PrometheusMetricsOptions): PrometheusMetrics {
  return new PrometheusMetrics(options);
}
