/**
 * The outbox dispatcher (issue 5 §1): claims due outbox rows, hands them to the handler of their
 * (platform, operation) in chunks, and records each row's outcome. Runs inside `serve` and in
 * `consent-bridge worker`; several dispatchers on PostgreSQL never take the same row.
 *
 * One step:
 * 1. claim up to `batchSize` due rows in a short transaction (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite's
 *    single writer) with a lease of `leaseMs`: a row whose lease ended is due again (a dispatcher died);
 * 2. group them per (tenant, platform, operation), in chunks of the handler's `maxBatch`;
 * 3. call the handler for each chunk OUTSIDE any transaction (platform calls take seconds; no lock is held);
 * 4. record the chunk's outcomes in a short transaction: ok → done; a retryable failure → attempts + 1 and a
 *    next attempt after a capped exponential backoff with full jitter (never before the platform's Retry-After);
 *    a failure that is not retryable, or the `maxAttempts`-th, → dead with its error (`outbox dlq`, `outbox retry`).
 *
 * Delivery is at least once (see outbox.ts): a row is redelivered when its dispatcher dies between the platform
 * call and the outcome, or when a chunk outlives the lease (leases are renewed between chunks, so only one
 * handler call longer than `leaseMs` can do that). Outcomes are fenced by the lease: a dispatcher whose lease
 * was taken over records nothing for those rows.
 */
import { PlatformCallError, type ItemOutcome } from '../sync/ports';
import type { Metrics } from '../metrics/metrics';
import type { Clock, Logger } from '../ports';
import type { Store } from '../store/database';
import * as repo from '../store/outbox.repository';
import type { OutboxTable } from '../store/schema';
import { pruneDoneOutbox, type OutboxPlatform, type OutboxRow } from './outbox';
import { WakeableSleep } from '../jobs/wakeable-sleep';

/** Delivers one kind of write. The handler resolves the tenant (and its credentials) itself. */
export interface OutboxHandler {
  readonly platform: OutboxPlatform;
  readonly operation: string;
  /** Most rows per `handle` call (HubSpot batch endpoints: 100). */
  readonly maxBatch: number;
  /**
   * Deliver rows of one tenant, all of this platform and operation. Returns an outcome per row, keyed by the row
   * id (a row without an outcome is retried; a failed item's `retryAfterMs` is honoured; an ok item's `note` is
   * kept on the row). Throw a `PlatformCallError` when the whole call failed: it applies to every row (retryable
   * per its flag, honouring `retryAfterMs`); any other thrown error is retried.
   */
  handle(tenantId: string, rows: readonly OutboxRow[]): Promise<ItemOutcome[]>;
}

export interface DispatcherOptions {
  /** Rows claimed per step. Default 200. */
  readonly batchSize: number;
  /**
   * Attempts before a row is dead-lettered. Default 10: with the default backoff the ceilings of the 9 waits add
   * up to about 43 min (full jitter: about 21 min expected), so a longer platform outage dead-letters rows and
   * `outbox retry --all` replays them; raise it (15 reaches the 1 h cap, about 5.4 h of ceilings) to ride out more.
   */
  readonly maxAttempts: number;
  /** How long a claim lasts (ms) before the rows are due again. Must exceed one handler call. Default 60 s. */
  readonly leaseMs: number;
  /** Idle poll interval (ms). Default 1000; `notify()` wakes the loop at once. */
  readonly pollIntervalMs: number;
  /** Backoff: ceiling `backoffBaseMs · 2^(attempt-1)` capped at `backoffCapMs`, full jitter. Default 5 s. */
  readonly backoffBaseMs: number;
  /** Default 1 h. */
  readonly backoffCapMs: number;
  /** Done rows are deleted this long after delivery (ms); 0 = never. Default 7 days. */
  readonly doneRetentionMs: number;
  /** How often the loop prunes done rows (ms). Default 1 h. */
  readonly pruneIntervalMs: number;
}

export const DEFAULT_DISPATCHER_OPTIONS: DispatcherOptions = {
  batchSize: 200,
  maxAttempts: 10,
  leaseMs: 60_000,
  pollIntervalMs: 1000,
  backoffBaseMs: 5000,
  backoffCapMs: 3_600_000,
  doneRetentionMs: 7 * 86_400_000,
  pruneIntervalMs: 3_600_000,
};

export interface DispatcherDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Jitter source in [0, 1); injected so tests are deterministic. Default `Math.random`. */
  readonly random?: () => number;
  readonly handlers: readonly OutboxHandler[];
  /**
   * The platforms this dispatcher writes to (default: all). Rows for the others are not claimed: they stay
   * pending, neither retried nor dead-lettered, until a process configured for their platform takes them (a
   * platform without credentials in this process, src/main.ts).
   */
  readonly platforms?: readonly string[];
  /** Outcomes and sync lag (created → done) per chunk recorded. Default: not counted. */
  readonly metrics?: Pick<Metrics, 'outboxRecorded'>;
}

/**
 * Delay before the next attempt after `attempt` failures (attempt ≥ 1): full jitter, uniform in
 * [0, min(cap, base · 2^(attempt-1))], but never under min(1 s, base) so a failing row never spins.
 */
export function outboxRetryDelayMs(attempt: number, random: number, options: Pick<DispatcherOptions, 'backoffBaseMs' | 'backoffCapMs'> = DEFAULT_DISPATCHER_OPTIONS): number {
  const ceiling = Math.min(options.backoffBaseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30), options.backoffCapMs);
  return Math.max(Math.round(ceiling * random), Math.min(1000, options.backoffBaseMs));
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.slice(0, 2000);
}

interface Claim {
  /** The lease end as stored on the rows: their fencing token. */
  token: string;
  rows: OutboxTable[];
}

interface Chunk {
  readonly tenantId: string;
  readonly platform: string;
  readonly operation: string;
  readonly handler: OutboxHandler | undefined;
  rows: OutboxTable[];
  token: string;
}

/** A row's failure as decided from the handler's answer. */
interface Failure {
  readonly error: string;
  readonly retryable: boolean;
  readonly retryAfterMs: number | null;
}

export class OutboxDispatcher {
  readonly #deps: DispatcherDeps;
  readonly #options: DispatcherOptions;
  readonly #handlers = new Map<string, OutboxHandler>();
  #running = false;
  #stopping = false;
  #loop: Promise<void> | undefined;
  /** The idle wait between steps, cut short by notify and stop. */
  readonly #idle = new WakeableSleep();
  #wakeRequested = false;
  #lastPrune = -Infinity;

  constructor(deps: DispatcherDeps, options: Partial<DispatcherOptions> = {}) {
    this.#deps = deps;
    this.#options = { ...DEFAULT_DISPATCHER_OPTIONS, ...options };
    for (const handler of deps.handlers) {
      const key = `${handler.platform}:${handler.operation}`;
      if (this.#handlers.has(key)) throw new Error(`two outbox handlers for ${key}`);
      if (!Number.isInteger(handler.maxBatch) || handler.maxBatch < 1) throw new Error(`outbox handler ${key}: maxBatch must be a positive integer`);
      this.#handlers.set(key, handler);
    }
    if (this.#options.leaseMs <= 0 || this.#options.batchSize < 1 || this.#options.maxAttempts < 1) throw new Error('outbox dispatcher: leaseMs, batchSize and maxAttempts must be positive');
  }

  #nowIso(): string {
    return this.#deps.clock.now().toISOString();
  }

  #leaseEnd(): string {
    return new Date(this.#deps.clock.now().getTime() + this.#options.leaseMs).toISOString();
  }

  async #claim(): Promise<Claim> {
    const { store } = this.#deps;
    const now = this.#nowIso();
    const token = this.#leaseEnd();
    // A lease must be newer than any earlier one on these rows (it is the fencing token): a row is only due
    // again once its lease ended, so a later claim's end is later as long as the clock does not go back.
    const rows = await store.db.transaction().execute((trx) => repo.claimDue(trx, store.dialect, now, token, this.#options.batchSize, this.#deps.platforms ?? null));
    return { token, rows };
  }

  #chunks(claim: Claim): Chunk[] {
    const groups = new Map<string, Chunk[]>();
    for (const row of claim.rows) {
      const key = JSON.stringify([row.tenant_id, row.platform, row.operation]);
      const handler = this.#handlers.get(`${row.platform}:${row.operation}`);
      const max = handler?.maxBatch ?? this.#options.batchSize;
      let chunks = groups.get(key);
      if (chunks === undefined) groups.set(key, (chunks = []));
      let last = chunks[chunks.length - 1];
      if (last === undefined || last.rows.length >= max) {
        last = { tenantId: row.tenant_id, platform: row.platform, operation: row.operation, handler, rows: [], token: claim.token };
        chunks.push(last);
      }
      last.rows.push(row);
    }
    return [...groups.values()].flat();
  }

  /**
   * Before a chunk: if less than half the lease is left, extend it for every row of the step not yet handled.
   * Rows whose lease was lost (taken over after it ended) are dropped from their chunk.
   */
  async #renewIfNeeded(pending: Chunk[]): Promise<void> {
    const token = pending[0]?.token;
    if (token === undefined) return;
    const now = this.#deps.clock.now().getTime();
    if (Date.parse(token) - now > this.#options.leaseMs / 2) return;
    const ids = pending.flatMap((c) => c.rows.map((r) => r.id));
    const newToken = this.#leaseEnd();
    const kept = new Set(await repo.renewLease(this.#deps.store.db, ids, token, newToken, this.#nowIso()));
    if (kept.size < ids.length) this.#deps.logger.warn({ lost: ids.length - kept.size }, 'outbox lease ended before these rows were handled; another dispatcher has them');
    for (const chunk of pending) {
      chunk.rows = chunk.rows.filter((r) => kept.has(r.id));
      chunk.token = newToken;
    }
  }

  /**
   * Claim due rows, deliver them chunk by chunk and record the outcomes. Returns how many rows got an outcome
   * (0 = nothing was due). A stop requested meanwhile lets the chunk in flight finish and releases the rest.
   */
  async stepOnce(): Promise<number> {
    const claim = await this.#claim();
    if (claim.rows.length === 0) return 0;
    const chunks = this.#chunks(claim);
    let recorded = 0;
    for (let i = 0; i < chunks.length; i++) {
      if (this.#stopping) {
        const rest = chunks.slice(i);
        const released = await repo.releaseClaims(this.#deps.store.db, rest.flatMap((c) => c.rows.map((r) => r.id)), rest[0]!.token, this.#nowIso());
        this.#deps.logger.info({ released }, 'outbox dispatcher stopping: claimed rows released');
        break;
      }
      await this.#renewIfNeeded(chunks.slice(i));
      const chunk = chunks[i]!;
      if (chunk.rows.length === 0) continue;
      recorded += await this.#dispatch(chunk);
    }
    return recorded;
  }

  /** Call the chunk's handler (no transaction open) and record what happened to each row. */
  async #dispatch(chunk: Chunk): Promise<number> {
    const { logger } = this.#deps;
    const failures = new Map<string, Failure>();
    const delivered: string[] = [];
    const notes = new Map<string, string>();
    const handler = chunk.handler;
    if (handler === undefined) {
      for (const row of chunk.rows) {
        failures.set(row.id, { error: `no outbox handler for ${chunk.platform} operation ${chunk.operation}`, retryable: false, retryAfterMs: null });
      }
    } else {
      const rows: OutboxRow[] = [];
      for (const row of chunk.rows) {
        try {
          rows.push(rowOf(row));
        } catch {
          failures.set(row.id, { error: 'stored payload is not JSON', retryable: false, retryAfterMs: null });
        }
      }
      if (rows.length > 0) {
        try {
          const outcomes = await handler.handle(chunk.tenantId, rows);
          const byId = new Map<string, ItemOutcome>();
          for (const outcome of Array.isArray(outcomes) ? outcomes : []) byId.set(outcome.key, outcome);
          for (const row of rows) {
            const outcome = byId.get(row.id);
            if (outcome === undefined) failures.set(row.id, { error: 'the handler returned no outcome for this row', retryable: true, retryAfterMs: null });
            else if (outcome.ok) {
              delivered.push(row.id);
              if (outcome.note) notes.set(row.id, outcome.note.slice(0, 2000));
            } else failures.set(row.id, { error: outcome.error.slice(0, 2000), retryable: outcome.retryable, retryAfterMs: outcome.retryAfterMs ?? null });
          }
        } catch (err) {
          const failure: Failure =
            err instanceof PlatformCallError
              ? { error: errorText(err), retryable: err.retryable, retryAfterMs: err.retryAfterMs }
              : { error: errorText(err), retryable: true, retryAfterMs: null };
          for (const row of rows) failures.set(row.id, failure);
          // The rows' retry line below says what failed; the stack is for debugging.
          logger.debug({ tenantId: chunk.tenantId, platform: chunk.platform, operation: chunk.operation, rows: rows.length, err }, 'outbox handler call failed');
        }
      }
    }
    return this.#record(chunk, delivered, notes, failures);
  }

  async #record(chunk: Chunk, delivered: readonly string[], notes: ReadonlyMap<string, string>, failures: ReadonlyMap<string, Failure>): Promise<number> {
    const { store, clock, logger } = this.#deps;
    const random = this.#deps.random ?? Math.random;
    const nowDate = clock.now();
    const now = nowDate.toISOString();
    const updates: Array<repo.FailureUpdate & { retryInMs: number | null }> = [];
    for (const row of chunk.rows) {
      const failure = failures.get(row.id);
      if (failure === undefined) continue;
      const attempts = Number(row.attempts) + 1;
      const dead = !failure.retryable || attempts >= this.#options.maxAttempts;
      const delay = dead ? null : Math.max(outboxRetryDelayMs(attempts, random(), this.#options), failure.retryAfterMs ?? 0);
      updates.push({ id: row.id, attempts, dead, error: failure.error, runAt: new Date(nowDate.getTime() + (delay ?? 0)).toISOString(), retryInMs: delay });
    }
    const { done, kept } = await store.db.transaction().execute(async (trx) => {
      let doneCount = await repo.markDone(trx, delivered.filter((id) => !notes.has(id)), chunk.token, now);
      for (const [id, note] of notes) doneCount += await repo.markDone(trx, [id], chunk.token, now, note);
      const keptIds = new Set<string>();
      for (const update of updates) if (await repo.markFailed(trx, update, chunk.token, now)) keptIds.add(update.id);
      return { done: doneCount, kept: keptIds };
    });
    const lost = delivered.length - done + (updates.length - kept.size);
    if (lost > 0) logger.warn({ tenantId: chunk.tenantId, operation: chunk.operation, lost }, 'outbox outcomes not recorded: the lease ended and another dispatcher took the rows');
    if (this.#deps.metrics) this.#deps.metrics.outboxRecorded(chunk.platform, chunk.operation, outcomeMetrics(chunk.rows, delivered, done, updates.filter((u) => kept.has(u.id)), nowDate));
    // Dead letters one line each (someone has to act on each); retries one line per distinct error, so a platform
    // that is down or not configured logs one warning per chunk, not one per row.
    const retries = new Map<string, Array<(typeof updates)[number]>>();
    for (const update of updates) {
      if (!kept.has(update.id)) continue;
      const fields = { outboxId: update.id, tenantId: chunk.tenantId, platform: chunk.platform, operation: chunk.operation, attempts: update.attempts, error: update.error };
      if (update.dead) logger.error(fields, 'outbox write dead-lettered (see `consent-bridge outbox dlq`)');
      else {
        const same = retries.get(update.error);
        if (same === undefined) retries.set(update.error, [update]);
        else same.push(update);
      }
    }
    for (const [error, same] of retries) {
      const delays = same.map((u) => u.retryInMs ?? 0);
      logger.warn(
        {
          tenantId: chunk.tenantId,
          platform: chunk.platform,
          operation: chunk.operation,
          rows: same.length,
          outboxIds: same.slice(0, 5).map((u) => u.id),
          attempts: Math.max(...same.map((u) => u.attempts)),
          error,
          retryInMs: { min: Math.min(...delays), max: Math.max(...delays) },
        },
        same.length === 1 ? 'outbox write failed; will retry' : 'outbox writes failed; will retry',
      );
    }
    for (const [id, note] of notes) logger.info({ outboxId: id, tenantId: chunk.tenantId, platform: chunk.platform, operation: chunk.operation, note }, 'outbox write done with a note from the platform');
    if (done > 0) logger.debug({ tenantId: chunk.tenantId, platform: chunk.platform, operation: chunk.operation, done }, 'outbox writes delivered');
    return done + kept.size;
  }

  /**
   * At start and then with every prune: say how many writes wait for a platform this dispatcher does not write
   * to (`platforms`), so they are not forgotten (they are neither retried nor dead-lettered).
   */
  async #warnAboutWaitingWrites(): Promise<void> {
    const platforms = this.#deps.platforms;
    if (platforms === undefined) return;
    const waiting = new Map<string, number>();
    for (const c of await repo.countOutbox(this.#deps.store.db)) {
      if (c.status === 'pending' && !platforms.includes(c.platform)) waiting.set(c.platform, (waiting.get(c.platform) ?? 0) + c.count);
    }
    for (const [platform, rows] of waiting) {
      this.#deps.logger.warn({ platform, rows }, 'outbox writes wait for a process configured for their platform (this one is not; see `outbox stats`)');
    }
  }

  /** Step until nothing is due (tests, `worker --once`). Returns how many rows got an outcome. */
  async drain(): Promise<number> {
    let handled = 0;
    for (let step = await this.stepOnce(); step > 0; step = await this.stepOnce()) handled += step;
    return handled;
  }

  /** Delete done rows past `doneRetentionMs`. */
  async prune(): Promise<number> {
    if (this.#options.doneRetentionMs <= 0) return 0;
    return pruneDoneOutbox(this.#deps.store, new Date(this.#deps.clock.now().getTime() - this.#options.doneRetentionMs));
  }

  /** Wake the loop now (after enqueueing). */
  notify(): void {
    this.#wakeRequested = true;
    this.#idle.wake();
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopping = false;
    this.#loop = this.#run();
  }

  /** Stop taking rows; the chunk in flight finishes and its outcomes are recorded, the rest of the step is released. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#stopping = true;
    this.#idle.wake();
    await this.#loop;
    this.#stopping = false;
  }

  async #run(): Promise<void> {
    const { logger } = this.#deps;
    let failures = 0;
    while (this.#running) {
      let handled = 0;
      this.#wakeRequested = false;
      try {
        if (Date.now() - this.#lastPrune >= this.#options.pruneIntervalMs) {
          this.#lastPrune = Date.now();
          const removed = await this.prune();
          if (removed > 0) logger.info({ removed }, 'outbox pruned');
          await this.#warnAboutWaitingWrites();
        }
        handled = await this.stepOnce();
        failures = 0;
      } catch (err) {
        failures += 1;
        logger.error({ err, failures }, 'outbox dispatcher cannot reach the database; backing off');
      }
      // Busy: step again at once. Idle: wait for the poll interval or a notify() (one that came during the step
      // counts). Database failing: back off, notify or not.
      if (this.#running && (failures > 0 || (handled === 0 && !this.#wakeRequested))) {
        const waitMs = failures > 0 ? Math.min(this.#options.pollIntervalMs * 2 ** failures, 30_000) : this.#options.pollIntervalMs;
        await this.#idle.sleep(waitMs);
      }
    }
  }
}

/** For metrics: lag of the rows marked done (only when all delivered ones were: else which were is unknown). */
function outcomeMetrics(rows: readonly OutboxTable[], delivered: readonly string[], done: number, recorded: ReadonlyArray<{ dead: boolean }>, now: Date) {
  const ids = new Set(done === delivered.length ? delivered : []);
  const lagSeconds = rows.filter((r) => ids.has(r.id)).map((r) => (now.getTime() - Date.parse(r.created_at)) / 1000);
  return { done, lagSeconds, retried: recorded.filter((u) => !u.dead).length, dead: recorded.filter((u) => u.dead).length };
}

function rowOf(row: OutboxTable): OutboxRow {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    platform: row.platform as OutboxPlatform,
    operation: row.operation,
    idempotencyKey: row.idempotency_key,
    subjectId: row.subject_id,
    payload: JSON.parse(row.payload) as unknown,
    sourceSeq: row.source_seq === null ? null : Number(row.source_seq),
    attempts: Number(row.attempts),
    createdAt: row.created_at,
  };
}
