/**
 * Shopify's cost-based leaky bucket for the Admin GraphQL API, one per app and shop (shopify.md §3.5;
 * shopify.dev/docs/api/usage/limits#graphql-admin-api-rate-limits): a request whose requested cost exceeds what is
 * available is refused as THROTTLED without running; otherwise the requested cost is taken at once and the
 * difference to the actual cost is refunded after execution. The bucket refills at `restoreRate` points per
 * second, up to `maximumAvailable`, on the simulator's clock (a fixed test clock never refills it).
 */
import type { SimulatorClock } from './types';

export interface ThrottleSettings {
  /** Bucket size. Default 1,000 (Shopify's Standard plan bucket; shopify.md §3.5 notes the size is unpublished). */
  readonly maximumAvailable: number;
  /** Points restored per second. Default 50. */
  readonly restoreRate: number;
}

export interface ThrottleStatus {
  readonly maximumAvailable: number;
  readonly currentlyAvailable: number;
  readonly restoreRate: number;
}

export const DEFAULT_THROTTLE: ThrottleSettings = { maximumAvailable: 1000, restoreRate: 50 };

export class LeakyBucket {
  #maximum: number;
  #rate: number;
  #available: number;
  #at: number;

  constructor(
    settings: ThrottleSettings,
    private readonly clock: SimulatorClock,
  ) {
    this.#maximum = settings.maximumAvailable;
    this.#rate = settings.restoreRate;
    this.#available = settings.maximumAvailable;
    this.#at = clock.now().getTime();
  }

  #refill(): void {
    const now = this.clock.now().getTime();
    if (now > this.#at) this.#available = Math.min(this.#maximum, this.#available + ((now - this.#at) / 1000) * this.#rate);
    this.#at = Math.max(this.#at, now);
  }

  /** Take `cost` points when they are available; false (nothing taken) when the request must be throttled. */
  take(cost: number): boolean {
    this.#refill();
    if (cost > this.#available) return false;
    this.#available -= cost;
    return true;
  }

  /** Give back the part of the requested cost that the query did not use. */
  refund(points: number): void {
    this.#refill();
    this.#available = Math.min(this.#maximum, this.#available + Math.max(0, points));
  }

  /** Change the bucket (tests, /_sim); `currentlyAvailable` defaults to keeping the current level (capped). */
  configure(settings: Partial<ThrottleSettings> & { readonly currentlyAvailable?: number }): void {
    this.#refill();
    if (settings.maximumAvailable !== undefined) this.#maximum = settings.maximumAvailable;
    if (settings.restoreRate !== undefined) this.#rate = settings.restoreRate;
    this.#available = Math.min(this.#maximum, settings.currentlyAvailable ?? this.#available);
  }

  /** As Shopify reports it in `extensions.cost.throttleStatus` (whole points, rounded down). */
  status(): ThrottleStatus {
    this.#refill();
    return { maximumAvailable: this.#maximum, currentlyAvailable: Math.floor(this.#available), restoreRate: this.#rate };
  }
}
