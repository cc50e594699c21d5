/**
 * Rate limiters (src/sync/rate-limit.ts): the exact in-memory window on a virtual clock, and the shared
 * database limiter on SQLite and PostgreSQL, where several limiters on separate connections to one database
 * must never admit more than `max` units in any rolling window together.
 */
import fc from 'fast-check';
import type { Store } from '../../src/store/database';
import type { RateLimit } from '../../src/sync/ports';
import { DatabaseRateLimiter, MemoryRateLimiter, type Admission } from '../../src/sync/rate-limit';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

/** The largest number of units admitted in any half-open interval `[t, t + windowMs)`. */
function busiestWindow(admissions: readonly Admission[], windowMs: number): number {
  const sorted = [...admissions].sort((a, b) => a.atMs - b.atMs);
  let busiest = 0;
  for (const [i, first] of sorted.entries()) {
    let units = 0;
    for (const later of sorted.slice(i)) if (later.atMs < first.atMs + windowMs) units += later.cost;
    busiest = Math.max(busiest, units);
  }
  return busiest;
}

/** A virtual monotonic clock whose `sleep` advances time (one key at a time sleeps, so this is exact). */
function virtualTime(start = 1_000) {
  let now = start;
  const sleeps: number[] = [];
  return {
    nowMs: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
  };
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('MemoryRateLimiter', () => {
  const limit: RateLimit = { key: 'test:5/1s', max: 5, windowMs: 1_000 };

  it('admits max units per rolling window, then each caller when the oldest admission leaves the window', async () => {
    const time = virtualTime();
    const admissions: Admission[] = [];
    const limiter = new MemoryRateLimiter({ ...time, onAdmit: (a) => admissions.push(a) });
    await Promise.all(Array.from({ length: 12 }, () => limiter.acquire(limit)));
    expect(admissions.map((a) => a.atMs)).toEqual([1000, 1000, 1000, 1000, 1000, 2000, 2000, 2000, 2000, 2000, 3000, 3000]);
    expect(busiestWindow(admissions, limit.windowMs)).toBe(5);
  });

  it('is FIFO per key: a waiting large cost is not overtaken by later small ones', async () => {
    const time = virtualTime();
    const order: string[] = [];
    const limiter = new MemoryRateLimiter({ ...time, onAdmit: (a) => order.push(`${a.cost}@${a.atMs}`) });
    await limiter.acquire(limit, 4);
    await Promise.all([limiter.acquire(limit, 3), limiter.acquire(limit, 1)]);
    expect(order).toEqual(['4@1000', '3@2000', '1@2000']);
  });

  it('keeps keys apart', async () => {
    const time = virtualTime();
    const limiter = new MemoryRateLimiter(time);
    const other = { ...limit, key: 'test:other' };
    for (let i = 0; i < 5; i++) await limiter.acquire(limit);
    for (let i = 0; i < 5; i++) await limiter.acquire(other);
    expect(time.sleeps).toEqual([]);
  });

  it('refuses a cost that can never fit, and bad limits, at once', () => {
    const limiter = new MemoryRateLimiter(virtualTime());
    expect(() => limiter.acquire(limit, 6)).toThrow(/exceeds the limit's max 5/);
    expect(() => limiter.acquire(limit, 0)).toThrow(RangeError);
    expect(() => limiter.acquire({ ...limit, max: 0 }, 1)).toThrow(RangeError);
  });

  it('never exceeds max in any window, for any sequence of costs (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 5_000 }), fc.array(fc.integer({ min: 1, max: 10 }), { maxLength: 40 }), async (max, windowMs, costs) => {
        const time = virtualTime();
        const admissions: Admission[] = [];
        const limiter = new MemoryRateLimiter({ ...time, onAdmit: (a) => admissions.push(a) });
        const property = { key: 'p', max, windowMs };
        await Promise.all(costs.map((cost) => limiter.acquire(property, Math.min(cost, max))));
        expect(admissions).toHaveLength(costs.length);
        expect(busiestWindow(admissions, windowMs)).toBeLessThanOrEqual(max);
      }),
      { numRuns: 200 },
    );
  });

  it('works on the real clock', async () => {
    const admissions: Admission[] = [];
    const limiter = new MemoryRateLimiter({ nowMs: () => performance.now(), sleep: realSleep, onAdmit: (a) => admissions.push(a) });
    const started = performance.now();
    await Promise.all(Array.from({ length: 7 }, () => limiter.acquire({ key: 'real', max: 3, windowMs: 200 })));
    expect(performance.now() - started).toBeGreaterThanOrEqual(399);
    expect(busiestWindow(admissions, 200)).toBeLessThanOrEqual(3);
  });
});

describe.each(testDialects())('DatabaseRateLimiter on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let second: Store;
  const limiterOn = (s: Store, admissions: Admission[], extra: Partial<ConstructorParameters<typeof DatabaseRateLimiter>[0]> = {}) =>
    new DatabaseRateLimiter({ store: s, epochMs: () => Date.now(), nowMs: () => performance.now(), sleep: realSleep, onAdmit: (a) => admissions.push(a), ...extra });

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    // A second, separate connection (pool) to the same database: another worker process.
    second = db.open();
  });
  afterAll(async () => {
    await second.close();
    await store.close();
    await db.drop();
  });

  it('limiters on two connections never admit more than max in any rolling window together', async () => {
    const limit: RateLimit = { key: 'test:5/500ms', max: 5, windowMs: 500 };
    const admissions: Admission[] = [];
    const first = limiterOn(store, admissions);
    const other = limiterOn(second, admissions);
    const started = performance.now();
    await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? first : other).acquire(limit)));
    const elapsed = performance.now() - started;
    expect(admissions).toHaveLength(16);
    expect(busiestWindow(admissions, limit.windowMs)).toBeLessThanOrEqual(5);
    // 16 calls at 5 per window take at least three full windows after the first admission.
    expect(elapsed).toBeGreaterThanOrEqual(3 * limit.windowMs - 5);
  });

  it('counts costs, and keeps the window across both connections with mixed costs', async () => {
    const limit: RateLimit = { key: 'test:costs', max: 6, windowMs: 400 };
    const admissions: Admission[] = [];
    const first = limiterOn(store, admissions);
    const other = limiterOn(second, admissions);
    const costs = [3, 1, 2, 3, 1, 2, 3, 2, 1, 3];
    await Promise.all(costs.map((cost, i) => (i % 2 === 0 ? first : other).acquire(limit, cost)));
    expect(admissions.map((a) => a.cost).sort()).toEqual([...costs].sort());
    expect(busiestWindow(admissions, limit.windowMs)).toBeLessThanOrEqual(6);
  });

  it('deletes buckets that left the window', async () => {
    const limit: RateLimit = { key: 'test:prune', max: 2, windowMs: 200 };
    const limiter = limiterOn(store, []);
    for (let i = 0; i < 8; i++) await limiter.acquire(limit);
    const rows = await store.db.selectFrom('rate_limit_slot').select(['window_start', 'used']).where('key', '=', limit.key).execute();
    // At most the buckets of one window (10) plus the current one.
    expect(rows.length).toBeLessThanOrEqual(11);
    expect(rows.reduce((sum, r) => sum + Number(r.used), 0)).toBeLessThanOrEqual(8);
  });

  it('refuses a cost that can never fit', () => {
    expect(() => limiterOn(store, []).acquire({ key: 'test:big', max: 2, windowMs: 100 }, 3)).toThrow(RangeError);
  });

  if (dialect === 'sqlite') {
    // SQLite reads the injected wall clock, so waits can be checked exactly.
    it('sleeps until the oldest bucket leaves the (conservative) window', async () => {
      let now = 1_000_050;
      const sleeps: number[] = [];
      const admissions: Admission[] = [];
      const limiter = limiterOn(store, admissions, {
        epochMs: () => now,
        sleep: async (ms) => {
          sleeps.push(ms);
          now += ms;
        },
      });
      const limit: RateLimit = { key: 'test:exact', max: 2, windowMs: 1_000 };
      await Promise.all([limiter.acquire(limit), limiter.acquire(limit), limiter.acquire(limit)]);
      // Buckets of 100 ms: the first two fall in bucket 1_000_000, which counts until 1_000_000 + 1_000 + 100.
      expect(admissions.map((a) => a.atMs)).toEqual([1_000_050, 1_000_050, 1_001_100]);
      expect(sleeps).toEqual([1_050]);
    });
  }
});
