/**
 * A `sync_cursor` row held by one process at a time (the reconciliation poll, the backfill): whoever last wrote
 * its `updated_at` holds it, and every write is a compare-and-set on that value, so a process that lost the row
 * to another (after the lease ran out) finds out at its next write instead of overwriting newer progress. Each
 * write's `updated_at` is later than the one before, even if the clock is not.
 */
import type { Clock } from '../ports';
import type { Store } from '../store/database';
import * as cursors from '../store/cursor.repository';
import type { SyncCursorTable } from '../store/schema';

/** `now`, or 1 ms after `previous` when the clock has not moved past it. */
function stampAfter(now: Date, previous: string): string {
  const stamp = now.toISOString();
  return stamp > previous ? stamp : new Date(Date.parse(previous) + 1).toISOString();
}

export class CursorLease {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #tenantId: string;
  readonly #name: string;
  #token: string;

  private constructor(store: Store, clock: Clock, tenantId: string, name: string, token: string) {
    this.#store = store;
    this.#clock = clock;
    this.#tenantId = tenantId;
    this.#name = name;
    this.#token = token;
  }

  /**
   * Take the cursor as `row` was read (undefined: none yet, then it is created) with `value` as its content.
   * Null when another process wrote it first.
   */
  static async take(store: Store, clock: Clock, tenantId: string, name: string, row: SyncCursorTable | undefined, value: string): Promise<CursorLease | null> {
    const now = clock.now();
    if (row === undefined) {
      const token = now.toISOString();
      return (await cursors.insertCursor(store.db, { tenant_id: tenantId, name, value, updated_at: token })) ? new CursorLease(store, clock, tenantId, name, token) : null;
    }
    const token = stampAfter(now, row.updated_at);
    return (await cursors.swapCursor(store.db, tenantId, name, row.updated_at, value, token)) ? new CursorLease(store, clock, tenantId, name, token) : null;
  }

  /** The `updated_at` this process last wrote: the holder's token. */
  get token(): string {
    return this.#token;
  }

  /** Write `value`; false when the cursor was taken over meanwhile (nothing written). */
  async save(value: string): Promise<boolean> {
    const stamp = stampAfter(this.#clock.now(), this.#token);
    if (!(await cursors.swapCursor(this.#store.db, this.#tenantId, this.#name, this.#token, value, stamp))) return false;
    this.#token = stamp;
    return true;
  }

  /** Write `value` with `updatedAt` as it was before the claim (after a failed run); a failure here is ignored. */
  async handBack(value: string, updatedAt: string): Promise<void> {
    await cursors.swapCursor(this.#store.db, this.#tenantId, this.#name, this.#token, value, updatedAt).catch(() => false);
  }
}
