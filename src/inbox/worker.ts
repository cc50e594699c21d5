/**
 * The inbox worker (issue 3 §7): claims stored deliveries, maps them to domain effects with the platform's
 * mapper, and applies them (ledger + projection + inbox status in one transaction per delivery). Runs inside
 * `serve` by default and alone as `consent-bridge worker`; several workers on PostgreSQL never take the same
 * row (`FOR UPDATE SKIP LOCKED`).
 *
 * Retries are rows (style.md §9): a failure bumps `attempts` and moves `run_at` by a capped exponential backoff
 * with jitter; after `maxAttempts` the row is `dead` with its last error and waits for `inbox retry`. A payload
 * that can never be processed (schema mismatch) is dead at once. One bad row never blocks the others: it is
 * pushed into the future while the queue moves on.
 */
import type { Transaction } from 'kysely';
import { AppError } from '../domain/errors';
import { PermanentDeliveryError, type InboundDelivery, type InboundMapper, type MapperContext } from '../domain/inbound';
import type { Clock, IdGenerator, Logger } from '../ports';
import type { Store } from '../store/database';
import * as repo from '../store/inbox.repository';
import type { Database, InboxTable } from '../store/schema';
import { applyEffects, withTimesNotAfterReceipt } from './apply';
import { pruneProcessedDeliveries, type Platform } from './inbox';
import { pruneSubjectChanges } from '../ledger/changes';
import { WakeableSleep } from '../jobs/wakeable-sleep';

export interface WorkerOptions {
  /** Attempts before a row is dead-lettered. Default 8 (about 4 h of backoff, like Shopify's own retries). */
  readonly maxAttempts: number;
  /** Idle poll interval in ms. Default 500; an in-process `notify()` wakes the worker at once. */
  readonly pollIntervalMs: number;
  /** How often processed rows past their tenant's `inboxRetentionDays` are deleted (ms). Default 1 h. */
  readonly pruneIntervalMs: number;
  /**
   * Deliveries processed per transaction. Default 50: one commit (one fsync) for many rows. A batch that fails
   * is rolled back whole and its rows are redone one per transaction, so the failing one is isolated.
   */
  readonly batchSize: number;
  /**
   * Most time one batch may take before it commits (ms); 0 = no limit. Inside `serve` (5 ms, src/main.ts) the
   * worker shares the event loop and, on SQLite, the one writer with the webhook routes, so it works in short
   * slices and a webhook waits at most one slice for its commit. Rows left over stay pending for the next batch.
   */
  readonly sliceMs: number;
  /**
   * Inside `serve`: after a slice, how long the worker may wait for webhook requests still waiting for their
   * commit before it takes the next slice (ms, default 50). Acknowledging within the platforms' 5 s timeout
   * comes first; the worker still gets at least one slice per this interval, so it never starves.
   */
  readonly maxDeferMs: number;
  /**
   * Inside `serve`: while webhooks are arriving (`requestsActive`), rest this long after each slice (ms, default
   * 0 = never; `serve` uses 10). Without it the worker takes a slice between every two turns of the event loop,
   * and a webhook on a new connection, which needs several turns (accept, read, answer), waits one slice per
   * turn: after a burst, a backlog made the first answers on new connections take 100–400 ms. Resting gives the
   * request path at least half the loop while webhooks flow; the backlog drains in the quieter moments. A worker
   * more than `restUnlessBehindMs` behind (the oldest row of its last batch was received that long ago) does not
   * rest, so a steady stream can never grow the backlog without end.
   */
  readonly restWhileActiveMs: number;
  /** Default 60000. */
  readonly restUnlessBehindMs: number;
}

export const DEFAULT_WORKER_OPTIONS: WorkerOptions = { maxAttempts: 8, pollIntervalMs: 500, pruneIntervalMs: 3_600_000, batchSize: 50, sliceMs: 0, maxDeferMs: 50, restWhileActiveMs: 0, restUnlessBehindMs: 60_000 };

export interface WorkerDeps {
  readonly store: Store;
  readonly mappers: Readonly<Record<Platform, InboundMapper>>;
  readonly mapperContext: MapperContext;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  /** Jitter source in [0, 1); injected so tests are deterministic. */
  readonly random?: () => number;
  /** Inside `serve`: whether webhook requests are waiting for their inbox commit (see `maxDeferMs`). */
  readonly requestsWaiting?: () => boolean;
  /** Inside `serve`: whether webhooks arrived very recently (see `restWhileActiveMs`). */
  readonly requestsActive?: () => boolean;
  /** Monotonic milliseconds for slices and deferral. Default `performance.now`. */
  readonly nowMs?: () => number;
}

/**
 * Delay before attempt `attempt + 1` (attempt ≥ 1): 2^attempt seconds (2 s, 4 s, 8 s …), capped at 30 minutes,
 * scaled by a jitter factor in [0.5, 1) so that rows failing together do not retry together.
 */
export function retryDelayMs(attempt: number, random: number): number {
  const base = Math.min(2 ** Math.min(attempt, 20) * 1000, 30 * 60_000);
  return Math.round(base * (0.5 + random / 2));
}

export type StepResult = 'processed' | 'failed' | 'idle';

function isPermanent(err: unknown): boolean {
  return err instanceof PermanentDeliveryError || (err instanceof AppError && err.code === 'validation_failed');
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.slice(0, 2000);
}

export class InboxWorker {
  readonly #deps: WorkerDeps;
  readonly #options: WorkerOptions;
  #running = false;
  #loop: Promise<void> | undefined;
  /** The idle wait between polls, cut short by notify and stop. */
  readonly #idle = new WakeableSleep();
  #lastPrune = 0;

  constructor(deps: WorkerDeps, options: Partial<WorkerOptions> = {}) {
    this.#deps = deps;
    this.#options = { ...DEFAULT_WORKER_OPTIONS, ...options };
  }

  /** How long ago the oldest row of the last batch was received (ms; see `restUnlessBehindMs`). */
  #behindMs = 0;

  #nowMs(): number {
    return this.#deps.nowMs ? this.#deps.nowMs() : performance.now();
  }

  /**
   * Between slices: one event-loop turn, so sockets are read and the request path's group commit runs; while
   * webhooks are arriving, `restWhileActiveMs` more; then, while webhook requests are still waiting for their
   * commit, wait up to `maxDeferMs` more.
   */
  async #yieldToRequests(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    const rest = this.#options.restWhileActiveMs;
    if (rest > 0 && this.#behindMs < this.#options.restUnlessBehindMs && this.#deps.requestsActive?.() === true) {
      await new Promise<void>((resolve) => setTimeout(resolve, rest));
    }
    const waiting = this.#deps.requestsWaiting;
    if (waiting === undefined) return;
    const until = this.#nowMs() + this.#options.maxDeferMs;
    while (this.#running && waiting() && this.#nowMs() < until) await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }

  /** Map and apply one claimed row, and mark it done, inside the caller's transaction. */
  async #process(trx: Transaction<Database>, row: InboxTable): Promise<string> {
    const { store, clock } = this.#deps;
    const platform = row.platform as Platform;
    const mapper = this.#deps.mappers[platform];
    if (!mapper) throw new PermanentDeliveryError(`no mapper for platform ${row.platform}`);
    let payload: unknown;
    try {
      payload = JSON.parse(row.payload);
    } catch {
      throw new PermanentDeliveryError('stored payload is not JSON');
    }
    const delivery: InboundDelivery = {
      platform,
      topic: row.topic,
      deliveryKey: row.delivery_key,
      payload,
      meta: JSON.parse(row.meta) as Record<string, string>,
      receivedAt: row.received_at,
    };
    const effects = withTimesNotAfterReceipt(mapper(delivery, this.#deps.mapperContext), delivery.receivedAt);
    const outcome = await applyEffects(trx, store.dialect, this.#deps, { tenantId: row.tenant_id, ledgerKey: `${row.platform}:${row.delivery_key}` }, effects);
    await repo.markDone(trx, store.dialect, row.id, outcome, clock.now().toISOString());
    this.#deps.logger.debug({ inboxId: row.id, topic: row.topic, tenantId: row.tenant_id, outcome }, 'delivery processed');
    return outcome;
  }

  /** Process one due delivery in a transaction of its own, recording a failure on the row. */
  async step(): Promise<StepResult> {
    const { store, clock } = this.#deps;
    const now = clock.now().toISOString();
    let claimed: { id: string; attempts: number; topic: string; tenantId: string } | undefined;
    try {
      const processed = await store.db.transaction().execute(async (trx) => {
        const [row] = await repo.claimDue(trx, store.dialect, now, 1);
        if (!row) return false;
        claimed = { id: row.id, attempts: Number(row.attempts), topic: row.topic, tenantId: row.tenant_id };
        await this.#process(trx, row);
        return true;
      });
      return processed ? 'processed' : 'idle';
    } catch (err) {
      if (claimed === undefined) throw err; // the claim itself failed (database down): the caller backs off
      await this.#recordFailure(claimed, err);
      return 'failed';
    }
  }

  /**
   * Process up to `batchSize` due deliveries in one transaction. Returns how many rows were handled (0 = idle).
   * If any row fails, the whole batch rolls back and its rows are redone one per transaction.
   */
  async stepBatch(): Promise<number> {
    const { store, clock } = this.#deps;
    const now = clock.now().toISOString();
    let claimed = 0;
    try {
      return await store.db.transaction().execute(async (trx) => {
        const rows = await repo.claimDue(trx, store.dialect, now, this.#options.batchSize);
        claimed = rows.length;
        this.#behindMs = rows.length === 0 ? 0 : Date.parse(now) - Date.parse(rows[0]!.received_at);
        const deadline = this.#options.sliceMs > 0 ? this.#nowMs() + this.#options.sliceMs : Infinity;
        let processed = 0;
        for (const row of rows) {
          await this.#process(trx, row);
          processed += 1;
          // Unprocessed claimed rows stay pending (the claim changes nothing) and come in the next batch.
          if (this.#nowMs() >= deadline) break;
        }
        return processed;
      });
    } catch (err) {
      if (claimed === 0) throw err;
      let handled = 0;
      for (let i = 0; i < claimed; i++) if ((await this.step()) !== 'idle') handled += 1;
      return handled;
    }
  }

  async #recordFailure(claimed: { id: string; attempts: number; topic: string; tenantId: string }, err: unknown): Promise<void> {
    const { store, clock, logger } = this.#deps;
    const attempts = claimed.attempts + 1;
    const dead = isPermanent(err) || attempts >= this.#options.maxAttempts;
    const delay = retryDelayMs(attempts, (this.#deps.random ?? Math.random)());
    const now = clock.now();
    await repo.markFailed(store.db, claimed.id, {
      attempts,
      dead,
      error: errorText(err),
      runAt: new Date(now.getTime() + (dead ? 0 : delay)).toISOString(),
      now: now.toISOString(),
    });
    const fields = { inboxId: claimed.id, topic: claimed.topic, tenantId: claimed.tenantId, attempts, err };
    if (dead) logger.error(fields, 'delivery dead-lettered (see `consent-bridge inbox dlq`)');
    else logger.warn({ ...fields, retryInMs: delay }, 'delivery failed; will retry');
  }

  /** Process until nothing is due (tests, `worker --once`). Returns how many rows were handled. */
  async drain(): Promise<number> {
    let handled = 0;
    for (let batch = await this.stepBatch(); batch > 0; batch = await this.stepBatch()) handled += batch;
    return handled;
  }

  /** Delete processed rows older than each tenant's `inboxRetentionDays`, and gate change-feed rows past theirs. */
  async prune(): Promise<number> {
    await pruneSubjectChanges(this.#deps.store, this.#deps.clock.now());
    return pruneProcessedDeliveries(this.#deps.store, this.#deps.clock);
  }

  /** Wake the loop now (the webhook routes call it after storing a delivery). */
  notify(): void {
    this.#idle.wake();
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stop taking rows; the delivery in progress finishes (its transaction commits or rolls back). */
  async stop(): Promise<void> {
    this.#running = false;
    this.#idle.wake();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { logger } = this.#deps;
    let failures = 0;
    while (this.#running) {
      let handled = 0;
      try {
        if (Date.now() - this.#lastPrune >= this.#options.pruneIntervalMs) {
          this.#lastPrune = Date.now();
          const removed = await this.prune();
          if (removed > 0) logger.info({ removed }, 'inbox pruned');
        }
        handled = await this.stepBatch();
        failures = 0;
        if (handled > 0 && this.#options.sliceMs > 0) await this.#yieldToRequests();
      } catch (err) {
        failures += 1;
        logger.error({ err, failures }, 'inbox worker cannot reach the database; backing off');
      }
      if (handled === 0 || failures > 0) {
        const waitMs = failures > 0 ? Math.min(this.#options.pollIntervalMs * 2 ** failures, 30_000) : this.#options.pollIntervalMs;
        await this.#idle.sleep(waitMs);
      }
    }
  }
}
