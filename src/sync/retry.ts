/**
 * In-call retries of platform reads made by the background jobs (reconciliation poll, backfill). Writes are not
 * retried here: they are outbox rows with durable retries (src/outbox/dispatcher.ts). A read is cheap to repeat,
 * and repeating it at once keeps a job's run going through the odd 5xx, timeout or reset instead of ending it and
 * waiting for the job's next turn.
 *
 * Only `PlatformCallError`s marked retryable are retried (5xx, 429, timeouts, resets, Shopify THROTTLED); a
 * `Retry-After` (or throttle state) is honoured by waiting at least that long, unless it is longer than
 * `maxRetryAfterMs`, in which case the error is thrown at once and the job's own backoff takes over. Backoff
 * between attempts: exponential with full jitter (library `exponential-backoff`).
 */
import { backOff } from 'exponential-backoff';
import { PlatformCallError } from './ports';

export interface ReadRetryPolicy {
  /** Attempts in all, the first included. Default 5. */
  readonly attempts: number;
  /** Ceiling of the first wait (ms), doubled each attempt. Default 250. */
  readonly baseMs: number;
  /** Ceiling of any wait (ms). Default 4000. */
  readonly capMs: number;
  /** A longer Retry-After is not waited for here (ms). Default 10000. */
  readonly maxRetryAfterMs: number;
  /**
   * No retry starts later than this after the first attempt (ms). Default 60000: a job's read then ends well
   * within the 5-minute lease of the cycle it belongs to, whatever the timeouts and Retry-Afters.
   */
  readonly budgetMs: number;
}

export const DEFAULT_READ_RETRY: ReadRetryPolicy = { attempts: 5, baseMs: 250, capMs: 4000, maxRetryAfterMs: 10_000, budgetMs: 60_000 };

/** No retries (tests that count calls). */
export const NO_READ_RETRY: ReadRetryPolicy = { attempts: 1, baseMs: 0, capMs: 0, maxRetryAfterMs: 0, budgetMs: 0 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether `err` is worth trying again now (within `maxRetryAfterMs`). */
export function retryableRead(err: unknown, policy: Pick<ReadRetryPolicy, 'maxRetryAfterMs'>): boolean {
  return err instanceof PlatformCallError && err.retryable && (err.retryAfterMs ?? 0) <= policy.maxRetryAfterMs;
}

/**
 * `read()` with retries per `policy`; `onRetry` is told of each failure that is retried (for logs). The last
 * error is thrown when the attempts run out or an error is not retryable.
 */
export function withReadRetries<T>(read: () => Promise<T>, policy: ReadRetryPolicy = DEFAULT_READ_RETRY, onRetry?: (err: unknown, attempt: number) => void): Promise<T> {
  if (policy.attempts <= 1) return read();
  const started = performance.now();
  return backOff(read, {
    numOfAttempts: policy.attempts,
    startingDelay: policy.baseMs,
    timeMultiple: 2,
    maxDelay: policy.capMs,
    jitter: 'full',
    // Called after every failure, the last included (`attempt` = failures so far): no wait after the last one.
    retry: async (err: unknown, attempt: number) => {
      if (attempt >= policy.attempts || !retryableRead(err, policy)) return false;
      const asked = (err as PlatformCallError).retryAfterMs ?? 0;
      if (performance.now() - started + asked > policy.budgetMs) return false;
      onRetry?.(err, attempt);
      // The library's own wait follows; this one covers what the platform asked for beyond it.
      if (asked > 0) await sleep(asked);
      return true;
    },
  });
}
