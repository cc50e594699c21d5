/**
 * Admission for platform calls (the `RateLimiter` port of src/sync/ports.ts, issue 5): HubSpot allows a public
 * app 110 requests per rolling 10 s per portal and 5 searches per second (hubspot.md §8); Shopify's GraphQL
 * budget is a leaky bucket per shop (shopify.md §3.5). A call is made only after `acquire` resolves.
 *
 * - `MemoryRateLimiter`: one process (SQLite deployments, tests). An exact sliding log per key.
 * - `DatabaseRateLimiter`: every worker of a deployment shares admission through the `rate_limit_slot` table,
 *   so several `consent-bridge worker` processes on PostgreSQL never exceed a limit together.
 *
 * Both are FIFO per key within a process: a caller waiting for a large cost is not overtaken by later small
 * ones. Across processes there is no ordering, only the limit. A key must always carry the same `max` and
 * `windowMs` (put the window into the key, e.g. `hubspot:<portal>:10s`).
 */
import type { Store } from '../store/database';
import * as repo from '../store/rate-limit.repository';
import type { RateLimit, RateLimiter } from './ports';

/** One admission, for metrics and tests: when (on the limiter's clock), how much, and how long the caller waited. */
export interface Admission {
  readonly key: string;
  readonly cost: number;
  /** Admission time on the limiter's clock: monotonic ms (memory), the database server's epoch ms (PostgreSQL), or `epochMs` (SQLite). */
  readonly atMs: number;
  /** Time the caller spent in `acquire`, on the local monotonic clock. */
  readonly waitedMs: number;
}

function checkRequest(limit: RateLimit, cost: number): void {
  if (!Number.isInteger(limit.max) || limit.max < 1) throw new RangeError(`rate limit ${limit.key}: max must be a positive integer`);
  if (!Number.isFinite(limit.windowMs) || limit.windowMs <= 0) throw new RangeError(`rate limit ${limit.key}: windowMs must be positive`);
  if (!Number.isInteger(cost) || cost < 1) throw new RangeError(`rate limit ${limit.key}: cost must be a positive integer`);
  // Never admissible: waiting would be forever.
  if (cost > limit.max) throw new RangeError(`rate limit ${limit.key}: cost ${cost} exceeds the limit's max ${limit.max}`);
}

/** Runs tasks one after another per key, in call order; a failing task does not stop the ones behind it. */
class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const result = (this.#tails.get(key) ?? Promise.resolve()).then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

export interface MemoryRateLimiterDeps {
  /** Monotonic milliseconds (`performance.now` in production). */
  readonly nowMs: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly onAdmit?: (admission: Admission) => void;
}

/**
 * One process: the exact rolling window. An admission at `t` occupies its units during `[t, t + windowMs)`; a
 * caller is admitted when the units admitted in the last `windowMs` plus its cost fit in `max`, otherwise it
 * sleeps until enough of the oldest admissions leave the window.
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly #deps: MemoryRateLimiterDeps;
  readonly #queue = new KeyedQueue();
  /** Admissions still inside their window, oldest first, per key. */
  readonly #logs = new Map<string, Array<{ at: number; cost: number }>>();

  constructor(deps: MemoryRateLimiterDeps) {
    this.#deps = deps;
  }

  acquire(limit: RateLimit, cost = 1): Promise<void> {
    checkRequest(limit, cost);
    const startedAt = this.#deps.nowMs();
    return this.#queue.run(limit.key, async () => {
      for (;;) {
        const now = this.#deps.nowMs();
        const log = this.#logs.get(limit.key) ?? [];
        while (log.length > 0 && log[0]!.at + limit.windowMs <= now) log.shift();
        let used = 0;
        for (const entry of log) used += entry.cost;
        if (used + cost <= limit.max) {
          log.push({ at: now, cost });
          this.#logs.set(limit.key, log);
          this.#deps.onAdmit?.({ key: limit.key, cost, atMs: now, waitedMs: now - startedAt });
          return;
        }
        // The earliest moment enough units have left the window.
        let freed = 0;
        let until = now;
        for (const entry of log) {
          freed += entry.cost;
          until = entry.at + limit.windowMs;
          if (used - freed + cost <= limit.max) break;
        }
        await this.#deps.sleep(Math.max(1, until - now));
      }
    });
  }
}

export interface DatabaseRateLimiterDeps {
  readonly store: Store;
  /**
   * Wall-clock epoch milliseconds (`Date.now`), used on SQLite, where every process runs on the machine that
   * holds the file. PostgreSQL uses the database server's clock instead, so workers on several hosts agree.
   */
  readonly epochMs: () => number;
  /** Local monotonic milliseconds, for `Admission.waitedMs` only. */
  readonly nowMs: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly onAdmit?: (admission: Admission) => void;
}

export interface DatabaseRateLimiterOptions {
  /**
   * Fixed buckets per window. Default 10 (1 s buckets for HubSpot's 10 s). The window is approximated
   * conservatively: every bucket that overlaps the last `windowMs` counts in full, so a limit is never exceeded
   * but sustained throughput can be up to one bucket (1/10) below `max`. More buckets: closer, more rows.
   */
  readonly bucketsPerWindow?: number;
}

/**
 * Several processes: admission through `rate_limit_slot(key, window_start, used)`. Each admission adds its cost
 * to the bucket of its time, if the buckets overlapping the last `windowMs` plus the cost stay within `max`:
 *
 * - PostgreSQL: a short transaction holding a per-key advisory lock (`repo.lockKey`), the database clock read
 *   under it, then the conditional upsert. Admissions of a key are therefore totally ordered and timed by one
 *   clock, and each sees every earlier one: no rolling window ever holds more than `max`.
 * - SQLite: the conditional upsert is one statement, atomic under the database write lock; no transaction is
 *   held across awaits (better-sqlite3 is synchronous, so a lock held between awaits would block other
 *   connections of the same process until their busy timeout).
 *
 * Refused: sleep until the oldest bucket(s) holding enough units leave the window, then try again. Buckets out
 * of the window are deleted on every admission of their key. Within a process callers of one key queue up
 * (FIFO), so only one of them at a time talks to the database.
 */
export class DatabaseRateLimiter implements RateLimiter {
  readonly #deps: DatabaseRateLimiterDeps;
  readonly #buckets: number;
  readonly #queue = new KeyedQueue();

  constructor(deps: DatabaseRateLimiterDeps, options: DatabaseRateLimiterOptions = {}) {
    const buckets = options.bucketsPerWindow ?? 10;
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError('bucketsPerWindow must be a positive integer');
    this.#deps = deps;
    this.#buckets = buckets;
  }

  acquire(limit: RateLimit, cost = 1): Promise<void> {
    checkRequest(limit, cost);
    const startedAt = this.#deps.nowMs();
    return this.#queue.run(limit.key, async () => {
      for (;;) {
        const attempt = await this.#attempt(limit, cost);
        if (attempt.admitted) {
          this.#deps.onAdmit?.({ key: limit.key, cost, atMs: attempt.atMs, waitedMs: this.#deps.nowMs() - startedAt });
          return;
        }
        await this.#deps.sleep(Math.max(1, attempt.retryInMs));
      }
    });
  }

  /**
   * One admission attempt. Bucket `b` (length `size`) counts while the current bucket start is at most
   * `b + buckets × size`; since `buckets × size ≥ windowMs`, the counted buckets cover the whole last window.
   */
  async #attempt(limit: RateLimit, cost: number): Promise<{ admitted: true; atMs: number } | { admitted: false; retryInMs: number }> {
    const { store } = this.#deps;
    const size = Math.ceil(limit.windowMs / this.#buckets);
    const span = this.#buckets * size;
    const decide = async (db: Parameters<typeof repo.admitIfRoom>[0], now: number) => {
      const bucketStart = Math.floor(now / size) * size;
      const fromStart = bucketStart - span;
      await repo.pruneBuckets(db, limit.key, fromStart);
      if (await repo.admitIfRoom(db, { key: limit.key, bucketStart, fromStart, cost, max: limit.max })) return { admitted: true as const, atMs: now };
      const buckets = await repo.bucketsFrom(db, limit.key, fromStart);
      let used = 0;
      for (const b of buckets) used += b.used;
      let freed = 0;
      let leavesAt = now;
      for (const b of buckets) {
        if (used - freed + cost <= limit.max) break;
        freed += b.used;
        leavesAt = b.window_start + span + size;
      }
      return { admitted: false as const, retryInMs: leavesAt - now };
    };
    if (store.dialect === 'postgres') {
      return store.db.transaction().execute(async (trx) => {
        await repo.lockKey(trx, limit.key);
        return decide(trx, await repo.databaseNowMs(trx));
      });
    }
    return decide(store.db, this.#deps.epochMs());
  }
}
