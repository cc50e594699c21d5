/**
 * Webhook delivery as Shopify does it (shopify.md §1): a POST of the JSON body to the app's URL with the
 * `X-Shopify-*` headers, the HMAC being the base64 HMAC-SHA256 of the raw body keyed with the app's client secret
 * (§1.2). Any 2xx is success; anything else (or no answer within the timeout) is retried with the original
 * payload and the same webhook id (§1.3), here a few times with a short doubling backoff instead of 8 times over
 * 4 hours. Deliveries go out one at a time in the order the events happened (Shopify does not promise an order;
 * a sandbox is easier to follow this way; `redeliver` sends a duplicate to exercise at-least-once delivery).
 * Every delivery and every attempt's answer is kept in a log.
 */
import { createHmac, randomUUID } from 'node:crypto';
import type { SimulatorClock } from './types';

export interface DeliveryAttempt {
  readonly at: string;
  /** HTTP status, or null when no answer came (connection refused, timeout). */
  readonly status: number | null;
  readonly error: string | null;
  /** The answer's body (first 500 characters). */
  readonly response: string | null;
  readonly durationMs: number;
}

export interface WebhookDelivery {
  readonly webhookId: string;
  readonly eventId: string;
  readonly topic: string;
  readonly shop: string;
  readonly apiVersion: string;
  readonly triggeredAt: string;
  /** The raw body as sent (and signed). */
  readonly body: string;
  /** Set when this is a re-sent duplicate of an earlier delivery. */
  readonly duplicateOf: string | null;
  url: string | null;
  /** `no_target`: no app URL was set when the event happened. */
  status: 'pending' | 'delivered' | 'failed' | 'no_target' | 'cancelled';
  readonly attempts: DeliveryAttempt[];
}

export interface WebhookRetryOptions {
  /** Attempts in all, the first included. Default 4. */
  readonly attempts: number;
  /** Wait before the first retry, doubled after each (ms). Default 100. */
  readonly backoffMs: number;
  /** An attempt without an answer after this long fails (ms). Default 5,000 (Shopify's total timeout, §1.3). */
  readonly timeoutMs: number;
  /**
   * Wait before each delivery (ms). Default 0, which still defers it to a later turn of the event loop: a
   * webhook caused by an API call never reaches the app before the call's own answer.
   */
  readonly delayMs: number;
}

export const DEFAULT_WEBHOOK_RETRY: WebhookRetryOptions = { attempts: 4, backoffMs: 100, timeoutMs: 5000, delayMs: 0 };

export interface WebhookSenderDeps {
  apiSecret: string;
  readonly apiVersion: string;
  readonly clock: SimulatorClock;
  readonly retry: WebhookRetryOptions;
  readonly fetch: (url: string, init: RequestInit) => Promise<Response>;
  /** Deliveries kept in the log (oldest dropped first). Default 10,000. */
  readonly maxLog: number;
  readonly onAttempt: (ok: boolean) => void;
}

export function signWebhook(body: string, secret: string): string {
  return createHmac('sha256', secret).update(body, 'utf8').digest('base64');
}

export class WebhookSender {
  readonly log: WebhookDelivery[] = [];
  #target: string | null = null;
  #tail: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #abort = new AbortController();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(private readonly deps: WebhookSenderDeps) {}

  get target(): string | null {
    return this.#target;
  }

  setTarget(url: string | null): void {
    if (url !== null) new URL(url); // throws on a malformed URL
    this.#target = url;
  }

  setSecret(secret: string): void {
    this.deps.apiSecret = secret;
  }

  /** Record an event's delivery and queue it. */
  enqueue(shop: string, topic: string, payload: unknown): WebhookDelivery {
    return this.#queue({
      webhookId: randomUUID(),
      eventId: randomUUID(),
      topic,
      shop,
      apiVersion: this.deps.apiVersion,
      triggeredAt: this.deps.clock.now().toISOString(),
      body: JSON.stringify(payload),
      duplicateOf: null,
      url: this.#target,
      status: 'pending',
      attempts: [],
    });
  }

  /** Send a delivery again with the same webhook id, event id and body (a duplicate, as at-least-once allows). */
  redeliver(webhookId: string): WebhookDelivery | null {
    const original = this.log.find((d) => d.webhookId === webhookId && d.duplicateOf === null);
    if (original === undefined) return null;
    return this.#queue({ ...original, duplicateOf: original.webhookId, url: this.#target, status: 'pending', attempts: [] });
  }

  #queue(delivery: WebhookDelivery): WebhookDelivery {
    if (delivery.url === null || this.#stopped) {
      delivery.status = this.#stopped ? 'cancelled' : 'no_target';
      this.#record(delivery);
      return delivery;
    }
    this.#record(delivery);
    this.#tail = this.#tail.then(() => this.#deliver(delivery));
    return delivery;
  }

  #record(delivery: WebhookDelivery): void {
    this.log.push(delivery);
    if (this.log.length > this.deps.maxLog) this.log.splice(0, this.log.length - this.deps.maxLog);
  }

  /** Resolves once every queued delivery has finished (delivered or given up). */
  async flush(): Promise<void> {
    for (;;) {
      const tail = this.#tail;
      await tail;
      if (tail === this.#tail) return;
    }
  }

  /** Stop sending: pending deliveries are cancelled, in-flight requests aborted. */
  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const onAbort = () => resolve();
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#abort.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      this.#timers.add(timer);
      this.#abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  async #deliver(delivery: WebhookDelivery): Promise<void> {
    const { retry } = this.deps;
    await this.#sleep(retry.delayMs);
    const headers = {
      'Content-Type': 'application/json',
      'User-Agent': 'Shopify-Captain-Hook',
      'X-Shopify-Topic': delivery.topic,
      'X-Shopify-Hmac-Sha256': signWebhook(delivery.body, this.deps.apiSecret),
      'X-Shopify-Shop-Domain': delivery.shop,
      'X-Shopify-API-Version': delivery.apiVersion,
      'X-Shopify-Webhook-Id': delivery.webhookId,
      'X-Shopify-Event-Id': delivery.eventId,
      'X-Shopify-Triggered-At': delivery.triggeredAt,
    };
    for (let attempt = 1; attempt <= retry.attempts; attempt++) {
      if (this.#stopped) {
        delivery.status = 'cancelled';
        return;
      }
      const started = Date.now();
      const at = this.deps.clock.now().toISOString();
      // One signal for "stopped" and "timed out" (AbortSignal.any needs Node ≥ 20.3; engines say ≥ 20).
      const attemptAbort = new AbortController();
      const onStop = () => attemptAbort.abort();
      this.#abort.signal.addEventListener('abort', onStop, { once: true });
      const timer = setTimeout(() => attemptAbort.abort(), retry.timeoutMs);
      const signal = attemptAbort.signal;
      try {
        const response = await this.deps.fetch(delivery.url!, { method: 'POST', headers, body: delivery.body, signal });
        const text = await response.text().catch(() => '');
        const ok = response.status >= 200 && response.status < 300;
        delivery.attempts.push({ at, status: response.status, error: null, response: text.slice(0, 500), durationMs: Date.now() - started });
        this.deps.onAttempt(ok);
        if (ok) {
          delivery.status = 'delivered';
          return;
        }
      } catch (err) {
        const message = signal.aborted && !this.#abort.signal.aborted ? `no answer within ${retry.timeoutMs} ms` : err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err);
        delivery.attempts.push({ at, status: null, error: message, response: null, durationMs: Date.now() - started });
        this.deps.onAttempt(false);
      } finally {
        clearTimeout(timer);
        this.#abort.signal.removeEventListener('abort', onStop);
      }
      if (attempt < retry.attempts) await this.#sleep(retry.backoffMs * 2 ** (attempt - 1));
    }
    delivery.status = this.#stopped ? 'cancelled' : 'failed';
  }
}
