/**
 * Webhooks as HubSpot sends them to an app (hubspot.md §1): the app's subscriptions are app-wide; each change that
 * matches one becomes an event `{eventId, subscriptionId, portalId, appId, occurredAt, subscriptionType,
 * attemptNumber, objectId, …}`; events go out as JSON arrays of at most 100, one portal per request, POSTed to
 * `${appUrl}${path}` with a v1 and a v3 signature (`X-HubSpot-Signature`, `X-HubSpot-Signature-v3`,
 * `X-HubSpot-Request-Timestamp`), a 5 s timeout, and a retry of the whole batch (`attemptNumber` + 1) after any
 * non-2xx, timeout or connection failure, at most `maxAttempts` sends in all (HubSpot: 1 + 10 retries over ~24 h).
 *
 * Delivery is `auto` (default, as HubSpot: a flush `batchWindowMs` after the first queued event, retries after
 * `retryDelayMs` × 2^(attempt − 1), capped at 60 s) or `manual` (events wait for `flush()`: deterministic tests).
 * Requests go out one at a time (HubSpot allows up to 10 in flight per account).
 */
import { signedHeaders } from './signing';
import type { EventDraft, SimulatorClock } from './types';

export interface WebhookSubscription {
  /** Default 1000 + its position. */
  readonly id?: number;
  readonly subscriptionType: string;
  /** `contact.propertyChange` only: one subscription per property (hubspot.md §1.2). */
  readonly propertyName?: string;
}

/** The app's subscriptions (manifest.json `hubspot.webhooks.subscriptions`). */
export const DEFAULT_WEBHOOK_SUBSCRIPTIONS: readonly WebhookSubscription[] = [
  { subscriptionType: 'contact.creation' },
  { subscriptionType: 'contact.deletion' },
  { subscriptionType: 'contact.merge' },
  { subscriptionType: 'contact.privacyDeletion' },
  { subscriptionType: 'contact.propertyChange', propertyName: 'email' },
  { subscriptionType: 'contact.propertyChange', propertyName: 'phone' },
  { subscriptionType: 'contact.propertyChange', propertyName: 'consent_bridge_sms_consent' },
];

export interface WebhookEvent extends EventDraft {
  readonly eventId: number;
  readonly subscriptionId: number;
  readonly portalId: number;
  readonly appId: number;
  readonly attemptNumber: number;
}

export interface WebhookDelivery {
  readonly portalId: string;
  readonly url: string;
  readonly attemptNumber: number;
  readonly events: readonly WebhookEvent[];
  /** The app's HTTP status; null when no answer came (timeout, connection failure). */
  readonly status: number | null;
  readonly responseBody: string | null;
  readonly error: string | null;
  /** What happens to the events: delivered, queued again (`retry`), or given up (`dropped`). */
  readonly outcome: 'delivered' | 'retry' | 'dropped';
}

export interface WebhookSettings {
  readonly subscriptions: readonly WebhookSubscription[];
  /** Path under appUrl. Default `/webhooks/hubspot`. */
  readonly path: string;
  readonly delivery: 'auto' | 'manual';
  readonly batchWindowMs: number;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly retryDelayMs: number;
  readonly maxEventsPerRequest: number;
}

export const DEFAULT_WEBHOOK_SETTINGS: WebhookSettings = {
  subscriptions: DEFAULT_WEBHOOK_SUBSCRIPTIONS,
  path: '/webhooks/hubspot',
  delivery: 'auto',
  batchWindowMs: 50,
  timeoutMs: 5_000,
  maxAttempts: 11,
  retryDelayMs: 1_000,
  maxEventsPerRequest: 100,
};

export interface WebhookCounters {
  events: number;
  requests: number;
  delivered: number;
  failed: number;
  dropped: number;
}

interface Queued {
  readonly portalId: string;
  readonly event: WebhookEvent;
}

export class WebhookDispatcher {
  readonly counters: WebhookCounters = { events: 0, requests: 0, delivered: 0, failed: 0, dropped: 0 };
  readonly #settings: WebhookSettings;
  readonly #subscriptions: ReadonlyArray<Required<Pick<WebhookSubscription, 'id'>> & WebhookSubscription>;
  readonly #deps: { appId: string; clientSecret: string; clock: SimulatorClock; targetBase: () => string | null };
  #pending: Queued[] = [];
  #nextEventId = 1;
  #timer: NodeJS.Timeout | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #inflight = new Set<AbortController>();

  constructor(settings: WebhookSettings, deps: { appId: string; clientSecret: string; clock: SimulatorClock; targetBase: () => string | null }) {
    this.#settings = settings;
    this.#subscriptions = settings.subscriptions.map((s, i) => ({ ...s, id: s.id ?? 1000 + i }));
    this.#deps = deps;
  }

  get subscriptions(): ReadonlyArray<WebhookSubscription & { id: number }> {
    return this.#subscriptions;
  }

  /** One event per subscription the change matches; none when the app has no such subscription. */
  enqueue(portalId: string, draft: EventDraft): void {
    for (const subscription of this.#subscriptions) {
      if (subscription.subscriptionType !== draft.subscriptionType) continue;
      if (draft.subscriptionType === 'contact.propertyChange' && subscription.propertyName !== draft.propertyName) continue;
      const event: WebhookEvent = {
        eventId: this.#nextEventId++,
        subscriptionId: subscription.id,
        portalId: Number(portalId),
        appId: Number(this.#deps.appId),
        attemptNumber: 0,
        ...draft,
      };
      this.#pending.push({ portalId, event });
      this.counters.events++;
    }
    if (this.#settings.delivery === 'auto') this.#schedule(this.#settings.batchWindowMs);
  }

  /** Auto delivery: send what is waiting (e.g. once appUrl is set). */
  kick(): void {
    if (this.#settings.delivery === 'auto') this.#schedule(this.#settings.batchWindowMs);
  }

  pending(): WebhookEvent[] {
    return this.#pending.map((q) => q.event);
  }

  #schedule(delayMs: number): void {
    if (this.#closed || this.#timer !== null || this.#pending.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.flush().catch(() => undefined);
    }, delayMs);
  }

  /** Sends every queued event now (in batches); the answers. Flushes run one after another. */
  flush(): Promise<WebhookDelivery[]> {
    const run = this.#chain.then(() => this.#flushNow());
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #flushNow(): Promise<WebhookDelivery[]> {
    const base = this.#deps.targetBase();
    if (base === null) throw new Error('HubSpot simulator: appUrl is not set, so webhooks have nowhere to go (setAppUrl first)');
    const url = `${base}${this.#settings.path}`;
    const queued = this.#pending;
    this.#pending = [];
    const batches: Queued[][] = [];
    // One portal per request, and one attempt number: a retried batch goes out again as it was.
    for (const key of [...new Set(queued.map((q) => `${q.portalId}:${q.event.attemptNumber}`))]) {
      const events = queued.filter((q) => `${q.portalId}:${q.event.attemptNumber}` === key);
      for (let i = 0; i < events.length; i += this.#settings.maxEventsPerRequest) batches.push(events.slice(i, i + this.#settings.maxEventsPerRequest));
    }
    const deliveries: WebhookDelivery[] = [];
    let retryAfter: number | null = null;
    for (const batch of batches) {
      const delivery = await this.#send(url, batch);
      deliveries.push(delivery);
      if (delivery.outcome === 'retry') {
        const wait = Math.min(60_000, this.#settings.retryDelayMs * 2 ** Math.max(0, delivery.attemptNumber));
        retryAfter = retryAfter === null ? wait : Math.min(retryAfter, wait);
      }
    }
    if (this.#settings.delivery === 'auto' && retryAfter !== null) this.#schedule(retryAfter);
    return deliveries;
  }

  async #send(url: string, batch: readonly Queued[]): Promise<WebhookDelivery> {
    const events = batch.map((q) => q.event);
    const attemptNumber = events[0]?.attemptNumber ?? 0;
    const body = JSON.stringify(events);
    const timestampMs = this.#deps.clock.now().getTime();
    const headers = {
      'Content-Type': 'application/json',
      'User-Agent': 'HubSpot Webhooks (consent-bridge simulator)',
      'X-HubSpot-Timeout-Millis': String(this.#settings.timeoutMs),
      ...signedHeaders(this.#deps.clientSecret, ['v1', 'v3'], { method: 'POST', uri: url, body, timestampMs }),
    };
    this.counters.requests++;
    const answer = await post(url, headers, body, this.#settings.timeoutMs, this.#inflight);
    const ok = answer.status !== null && answer.status >= 200 && answer.status < 300;
    const portalId = batch[0]!.portalId;
    if (ok) {
      this.counters.delivered += events.length;
      return { portalId, url, attemptNumber, events, status: answer.status, responseBody: answer.text, error: null, outcome: 'delivered' };
    }
    this.counters.failed++;
    const next = attemptNumber + 1;
    if (next >= this.#settings.maxAttempts || this.#closed) {
      this.counters.dropped += events.length;
      return { portalId, url, attemptNumber, events, status: answer.status, responseBody: answer.text, error: answer.error, outcome: 'dropped' };
    }
    this.#pending.push(...batch.map((q) => ({ portalId: q.portalId, event: { ...q.event, attemptNumber: next } })));
    return { portalId, url, attemptNumber, events, status: answer.status, responseBody: answer.text, error: answer.error, outcome: 'retry' };
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const controller of this.#inflight) controller.abort();
  }
}

/** One POST with a timeout; never throws (a failure is `status: null` with the error). */
export async function post(
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  inflight: Set<AbortController>,
): Promise<{ status: number | null; text: string | null; error: string | null }> {
  const controller = new AbortController();
  inflight.add(controller);
  const timer = setTimeout(() => controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    const response = await fetch(url, { method: 'POST', headers, body, signal: controller.signal });
    return { status: response.status, text: await response.text(), error: null };
  } catch (err) {
    const reason = controller.signal.aborted ? String((controller.signal.reason as Error | undefined)?.message ?? 'aborted') : describeError(err);
    return { status: null, text: null, error: reason };
  } finally {
    clearTimeout(timer);
    inflight.delete(controller);
  }
}

function describeError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code !== undefined) return `connection failed (${cause.code})`;
  return err instanceof Error ? err.message : String(err);
}
