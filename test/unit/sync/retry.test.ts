/**
 * In-call retries of platform reads (src/sync/retry.ts): which failures are retried, how often, and that a
 * Retry-After is waited for (or, past the policy's limit, left to the job's own backoff).
 */
import { PlatformCallError } from '../../../src/sync/ports';
import { NO_READ_RETRY, retryableRead, withReadRetries, type ReadRetryPolicy } from '../../../src/sync/retry';

const fast: ReadRetryPolicy = { attempts: 4, baseMs: 1, capMs: 2, maxRetryAfterMs: 100, budgetMs: 10_000 };
const serverError = () => new PlatformCallError('hubspot', 'HubSpot answered 502', { status: 502, retryable: true, kind: 'server_error' });
const authError = () => new PlatformCallError('hubspot', 'HubSpot answered 401', { status: 401, retryable: false, kind: 'auth' });

/** A read failing with the given errors in turn, then answering `ok`. */
function flaky(errors: Error[]): { read: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    read: async () => {
      const err = errors[calls];
      calls += 1;
      if (err !== undefined) throw err;
      return 'ok';
    },
    calls: () => calls,
  };
}

describe('withReadRetries', () => {
  it('retries retryable platform errors until the read answers, telling onRetry of each', async () => {
    const reads = flaky([serverError(), serverError()]);
    const retried: number[] = [];
    await expect(withReadRetries(reads.read, fast, (_err, attempt) => retried.push(attempt))).resolves.toBe('ok');
    expect(reads.calls()).toBe(3);
    expect(retried).toHaveLength(2);
  });

  it('gives up after the policy’s attempts with the last error, without waiting or reporting a retry after it', async () => {
    const reads = flaky([serverError(), serverError(), serverError(), new PlatformCallError('hubspot', 'fourth', { retryable: true, retryAfterMs: 100, kind: 'rate_limited' })]);
    const retried: number[] = [];
    await expect(withReadRetries(reads.read, fast, (_err, attempt) => retried.push(attempt))).rejects.toThrow('fourth');
    expect(reads.calls()).toBe(4);
    // No fourth "retrying" (its Retry-After would be slept in the same branch).
    expect(retried).toEqual([1, 2, 3]);
  });

  it('starts no retry past the budget', async () => {
    const slow = (ms: number) => new PlatformCallError('hubspot', `429 after ${ms}`, { status: 429, retryable: true, retryAfterMs: ms, kind: 'rate_limited' });
    const reads = flaky([slow(30), slow(30), slow(30)]);
    await expect(withReadRetries(reads.read, { ...fast, budgetMs: 50 })).rejects.toThrow('429 after 30');
    expect(reads.calls()).toBe(2); // 30 ms waited once; a second wait would end past 50 ms
  });

  it('does not retry what cannot get better by itself: auth, programming errors', async () => {
    const auth = flaky([authError()]);
    await expect(withReadRetries(auth.read, fast)).rejects.toThrow('401');
    expect(auth.calls()).toBe(1);
    const bug = flaky([new TypeError('not a timestamp')]);
    await expect(withReadRetries(bug.read, fast)).rejects.toThrow(TypeError);
    expect(bug.calls()).toBe(1);
  });

  it('waits at least a Retry-After within the limit, and leaves a longer one to the job', async () => {
    const limited = (ms: number) => new PlatformCallError('hubspot', `429 retry after ${ms}`, { status: 429, retryable: true, retryAfterMs: ms, kind: 'rate_limited' });
    const short = flaky([limited(60)]);
    const started = performance.now();
    await expect(withReadRetries(short.read, fast)).resolves.toBe('ok');
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
    expect(short.calls()).toBe(2);

    const long = flaky([limited(101)]);
    await expect(withReadRetries(long.read, fast)).rejects.toThrow('429 retry after 101');
    expect(long.calls()).toBe(1);
    expect(retryableRead(limited(101), fast)).toBe(false);
    expect(retryableRead(limited(100), fast)).toBe(true);
  });

  it('NO_READ_RETRY makes one attempt', async () => {
    const reads = flaky([serverError()]);
    await expect(withReadRetries(reads.read, NO_READ_RETRY)).rejects.toThrow('502');
    expect(reads.calls()).toBe(1);
  });
});
