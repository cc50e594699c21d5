/**
 * A time limit on a promise (readiness probes, shutdown, scrape-time collections): the caller stops waiting, the
 * work itself keeps running.
 */

/** What `withinTime` rejects with when time ran out (other rejections are the promise's own). */
export class TimedOut extends Error {
  override readonly name = 'TimedOut';
}

/** `promise`, or a `TimedOut` rejection naming `what` after `ms` (the promise keeps running). */
export function withinTime<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimedOut(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
