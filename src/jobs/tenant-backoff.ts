/**
 * Per-tenant backoff of a background job (backfill, reconciliation poll): a tenant whose run failed sits out its
 * turns until its wait has passed, so one tenant's broken credentials or an outage neither stops the job nor gets
 * retried on every tick. Each job chooses its wait from the number of failures in a row.
 */
export class TenantBackoff {
  readonly #nowMs: () => number;
  readonly #failing = new Map<string, { failures: number; untilMs: number }>();

  /** `nowMs`: monotonic milliseconds (injected for tests). */
  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
  }

  /** Whether the tenant is still waiting after a failure. */
  waiting(tenantId: string): boolean {
    const failing = this.#failing.get(tenantId);
    return failing !== undefined && this.#nowMs() < failing.untilMs;
  }

  succeeded(tenantId: string): void {
    this.#failing.delete(tenantId);
  }

  /** Record one more failure in a row; the wait is `waitMsFor(failures)`. */
  failed(tenantId: string, waitMsFor: (failures: number) => number): { failures: number; waitMs: number } {
    const failures = (this.#failing.get(tenantId)?.failures ?? 0) + 1;
    const waitMs = waitMsFor(failures);
    this.#failing.set(tenantId, { failures, untilMs: this.#nowMs() + waitMs });
    return { failures, waitMs };
  }
}
