/**
 * The HubSpot connector's HTTP layer: one `fetch` per request with a timeout, and one classifier that turns every
 * failure into a `PlatformCallError` carrying its retry policy (style.md §7–8). It never retries: retries are
 * outbox rows (style.md §9).
 *
 * Why plain `fetch` and not @hubspot/api-client 13 (hubspot.md §8, read in lib/src/client.js,
 * services/ApiDecoratorService.js, services/http/*, codegen/.../http/isomorphic-fetch.js of 13.5.0):
 * - no request of the library can be aborted: neither the codegen APIs nor `apiRequest()` pass a signal, timeout
 *   or per-request agent to node-fetch, so a hung HubSpot call would hold a worker forever, and racing a timer
 *   would leave the socket open;
 * - its decorators (retries, Bottleneck) live in a process-global singleton that every `new Client()` and
 *   `setAccessToken()` overwrites and that API objects pick up lazily, so one client per portal (or per call)
 *   also changes what *other* clients in the process do; its retries ignore `Retry-After`, sleep on real timers
 *   and `console.error`;
 * - v4 subscriptions, date-versioned paths (the numbered ones retire in 2027, hubspot.md §0) and OAuth v3 are not
 *   in v13 anyway, so the connector would need this layer regardless.
 * The request and response shapes below are the library's models (names cited where used) on the wire.
 */
import { maskString } from '../../src/log/mask';
import { PlatformCallError, type RateLimit } from '../../src/sync/ports';

export const DEFAULT_HUBSPOT_BASE_URL = 'https://api.hubapi.com';
/** Per-request timeout (connect, headers and body). */
export const DEFAULT_TIMEOUT_MS = 15_000;

/** The `fetch` the connector calls; `globalThis.fetch` by default (nock ≥ 14 intercepts it in tests). */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export const defaultFetch: FetchLike = (url, init) => globalThis.fetch(url, init);

/**
 * The per-portal budgets (hubspot.md §8). Public OAuth apps get 110 requests per rolling 10 s per installing
 * account; 100 leaves room for clock skew between workers and for calls outside this connector. Search has its
 * own 5 requests/s per account [2nd]; 4 leaves the same margin. Search also takes a unit of the 10 s budget
 * (conservative: the guidelines say search is excluded from it [2nd]).
 */
export function hubspotLimits(portalId: string): { readonly tenSecondly: RateLimit; readonly search: RateLimit } {
  return {
    tenSecondly: { key: `hubspot:${portalId}:10s`, max: 100, windowMs: 10_000 },
    search: { key: `hubspot:${portalId}:search`, max: 4, windowMs: 1_000 },
  };
}

/** What came back, before any interpretation. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The error code of a transport failure: undici wraps it (`TypeError: fetch failed`, cause.code), nock does not. */
function transportCode(err: unknown): string {
  const cause = record(record(err)?.cause);
  return String(cause?.code ?? record(err)?.code ?? (err instanceof Error ? err.name : 'unknown'));
}

/**
 * One HTTP exchange with a timeout that covers connecting, the headers and the body. A timeout becomes
 * `timeout`, anything else `fetch` throws becomes `connection`; both retryable (a timed-out write may still have
 * been applied: every write of this connector is idempotent).
 */
export async function exchange(fetchFn: FetchLike, url: string, init: RequestInit, timeoutMs: number, label: string): Promise<RawResponse> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await fetchFn(url, { ...init, signal: controller.signal });
    return { status: response.status, headers: response.headers, text: await response.text() };
  } catch (err) {
    if (timedOut) {
      throw new PlatformCallError('hubspot', `HubSpot ${label}: no complete answer within ${timeoutMs} ms`, { retryable: true, kind: 'timeout', cause: err });
    }
    throw new PlatformCallError('hubspot', `HubSpot ${label}: connection failed (${transportCode(err)})`, { retryable: true, kind: 'connection', cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** JSON of a response body; undefined when it is not JSON. An empty body is null. */
export function parseJson(body: string): unknown {
  if (body.trim() === '') return null;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}

/** `Retry-After` (delta-seconds, possibly fractional, or an HTTP date) in ms; null when absent or unreadable. */
export function retryAfterMs(header: string | null, nowMs: number): number | null {
  if (header === null || header.trim() === '') return null;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** HubSpot's error body (`{status:'error', message, correlationId, category, policyName, errorType, …}`), as far as it is present. */
export interface HubspotErrorBody {
  readonly message?: string;
  readonly category?: string;
  readonly policyName?: string;
  readonly errorType?: string;
  readonly correlationId?: string;
  /** OAuth: RFC 6749 `error` (v3) and HubSpot's `status` (v1, e.g. BAD_REFRESH_TOKEN). */
  readonly error?: string;
  readonly status?: string;
}

export function errorBody(body: unknown): HubspotErrorBody {
  const r = record(body);
  if (r === undefined) return {};
  return {
    message: text(r.message) ?? text(r.error_description),
    category: text(r.category),
    policyName: text(r.policyName),
    errorType: text(r.errorType),
    correlationId: text(r.correlationId),
    error: text(r.error),
    status: text(r.status),
  };
}

/** The 429 message HubSpot sends for the per-second (search) limit; the v13 client matches the same string. */
export const SECONDLY_LIMIT_MESSAGE = 'You have reached your secondly limit.';

/** Personal data never leaves in an error (error text ends up in outbox rows, logs and metrics). */
export function describe(value: string, max = 300): string {
  const masked = maskString(value.replace(/\s+/g, ' ').trim());
  return masked.length > max ? `${masked.slice(0, max)}…` : masked;
}

/**
 * What a non-2xx answer means (pure; the classifier of style.md §7):
 * - 429, both kinds (body `policyName: TEN_SECONDLY_ROLLING`, or the secondly-limit message of search):
 *   `rate_limited`, retryable; `Retry-After` seconds → ms, else the window of the policy (10 s, 1 s);
 * - 5xx (incl. 502/504), 423 Locked (heavy syncs; wait at least 2 s), 477 Migration in progress:
 *   `server_error`, retryable, honouring `Retry-After` (hubspot.md §5, docs/api-reference/error-handling);
 * - 401/403: `auth`, not retryable (a refresh on 401 is not what HubSpot asks for: refresh on expiry);
 * - any other status: `client_error`, not retryable.
 */
export function classifyHttpError(label: string, status: number, headers: Pick<Headers, 'get'>, body: unknown, nowMs: number): PlatformCallError {
  const e = errorBody(body);
  const said = e.message !== undefined ? `: ${describe(e.message)}` : typeof body === 'string' && body.trim() !== '' ? `: ${describe(body, 120)}` : '';
  const ref = e.correlationId !== undefined ? ` (correlationId ${e.correlationId})` : '';
  const hint = retryAfterMs(headers.get('retry-after'), nowMs);
  const fail = (kind: string, retryable: boolean, what: string, wait: number | null = null) =>
    new PlatformCallError('hubspot', `HubSpot ${label}: ${what} (HTTP ${status})${said}${ref}`, { status, retryable, kind, retryAfterMs: wait });
  if (status === 429) {
    if (e.policyName === 'TEN_SECONDLY_ROLLING') return fail('rate_limited', true, 'rate limit TEN_SECONDLY_ROLLING', hint ?? 10_000);
    if (e.message === SECONDLY_LIMIT_MESSAGE) return fail('rate_limited', true, 'secondly rate limit', hint ?? 1_000);
    return fail('rate_limited', true, `rate limit${e.policyName !== undefined ? ` ${e.policyName}` : ''}`, hint);
  }
  if (status === 423) return fail('server_error', true, 'locked', Math.max(hint ?? 0, 2_000));
  if (status === 477) return fail('server_error', true, 'migration in progress', hint);
  if (status >= 500) return fail('server_error', true, 'server error', hint);
  if (status === 401 || status === 403) return fail('auth', false, status === 401 ? 'unauthorized' : 'forbidden (missing scope?)');
  return fail('client_error', false, 'refused');
}

/** A 2xx answer that is not what the API documents. Not retryable: the same call would get the same answer. */
export function malformed(label: string, status: number, detail: string): PlatformCallError {
  return new PlatformCallError('hubspot', `HubSpot ${label}: unexpected answer (HTTP ${status}): ${describe(detail)}`, { status, retryable: false, kind: 'malformed' });
}
