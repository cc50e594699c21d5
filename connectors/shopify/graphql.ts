/**
 * What every Shopify Admin GraphQL connector shares (catalog.ts, consent.ts): the client for one shop and token,
 * the optional routing of calls to another base URL (a simulator), the classification of the library's errors
 * into retry decisions (style.md §7–8), and one bounded-retry request loop.
 *
 * Throttling (shopify.md §3.5): a throttled request comes back HTTP 200 with `errors[].extensions.code`
 * THROTTLED (the library throws GraphqlQueryError and never retries it), or as HTTP 429. The library's own
 * `retries` option covers 429/503 only and sleeps `Retry-After`'s *seconds* as milliseconds
 * (@shopify/graphql-client http-fetch.ts; style.md §8), so callers pass `retries: 0` and retry themselves:
 * bounded attempts, waiting what the throttle status says the bucket needs (or Retry-After, in seconds), else a
 * capped exponential backoff with jitter.
 */
import { GraphqlQueryError, HttpInternalError, HttpRequestError, HttpResponseError, HttpThrottlingError, Session, type Shopify } from '@shopify/shopify-api';
import { z } from 'zod';
import type { PlatformCallHook } from '../../src/metrics/metrics';
import type { Logger } from '../../src/ports';
import { PlatformCallError } from '../../src/sync/ports';

// ---------------------------------------------------------------- fetch routing (SHOPIFY_API_BASE_URL)

/** The fetch the library's clients call: always a URL string and an init (@shopify/graphql-client generateFetch). */
export type FetchFn = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * Where a connector's calls go. Both optional; without either, calls go through the library's own fetch
 * (globalThis.fetch, set by the node adapter) to `https://{shop}/…`.
 */
export interface ShopifyEndpoint {
  /**
   * SHOPIFY_API_BASE_URL (issue 6): send every call to this base URL instead of `https://{shop}`, path and query
   * kept (`http://127.0.0.1:4010` + `/admin/api/2026-04/graphql.json`), with the shop domain in the
   * `X-Shopify-Shop-Domain` request header, so that one simulator can serve many shops over plain http. The
   * library forces https on the shop URL (graphql-client validations.ts), which is why this is done here.
   */
  readonly baseUrl?: string;
  /** The fetch to send with. Default: `globalThis.fetch`, looked up at each call (nock ≥ 14 patches it). */
  readonly fetch?: FetchFn;
}

/** Header naming the shop when calls are routed to a base URL (the name Shopify uses on webhooks). */
export const SHOP_DOMAIN_HEADER = 'X-Shopify-Shop-Domain';

/** `http(s)://host[:port][/prefix]` without a trailing slash; throws on anything else (a configuration error). */
export function normalizeBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`Shopify base URL ${JSON.stringify(value)} is not a URL`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new Error(`Shopify base URL ${JSON.stringify(value)} must be http(s)://host[:port][/path], without query, fragment or credentials`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** The fetch for an endpoint, or null when it asks for nothing special (use the library's own). */
export function endpointFetch(endpoint: ShopifyEndpoint): FetchFn | null {
  if (endpoint.baseUrl === undefined && endpoint.fetch === undefined) return null;
  const base = endpoint.baseUrl === undefined ? null : normalizeBaseUrl(endpoint.baseUrl);
  const send: FetchFn = endpoint.fetch ?? ((url, init) => globalThis.fetch(url, init));
  if (base === null) return send;
  return (url, init) => {
    const target = new URL(url);
    const headers = new Headers(init?.headers);
    headers.set(SHOP_DOMAIN_HEADER, target.host);
    return send(`${base}${target.pathname}${target.search}`, { ...init, headers });
  };
}

/** The slice of `@shopify/shopify-api/runtime` used here (its mutable fetch, which every library client captures). */
interface ShopifyRuntimeHttp {
  readonly abstractFetch: FetchFn;
  setAbstractFetchFunc(fn: FetchFn): void;
}

// `require`, not `import`: see admin-api.ts (tsconfig's `moduleResolution: node` ignores the package's `exports`).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const runtimeHttp = require('@shopify/shopify-api/runtime') as ShopifyRuntimeHttp;

export type GraphqlClient = InstanceType<Shopify['clients']['Graphql']>;

/**
 * A GraphQL client for one shop and token. With a custom fetch, the client is built while the library's runtime
 * fetch is set to it: @shopify/shopify-api 13.1.0 has no per-client fetch option, but its GraphqlClient reads
 * `abstractFetch` once, in its constructor (`customFetchApi: abstractFetch`, lib/clients/admin/graphql/client.ts),
 * and keeps it. The constructor is synchronous, so the swap is never visible to other code, and the previous
 * fetch is restored at once. test/contract/shopify-consent.contract.test.ts proves both halves (routed calls go to
 * the base URL; clients built afterwards still go to Shopify); a library upgrade that breaks this fails there.
 */
export function graphqlClient(shopify: Pick<Shopify, 'clients'>, shop: string, accessToken: string, fetchFn: FetchFn | null = null): GraphqlClient {
  const session = new Session({ id: `offline_${shop}`, shop, state: '', isOnline: false, accessToken });
  if (fetchFn === null) return new shopify.clients.Graphql({ session });
  const previous = runtimeHttp.abstractFetch;
  runtimeHttp.setAbstractFetchFunc(fetchFn);
  try {
    return new shopify.clients.Graphql({ session });
  } finally {
    runtimeHttp.setAbstractFetchFunc(previous);
  }
}

// ---------------------------------------------------------------- ids

/** `gid://shopify/<type>/123` → `123` (a zod schema that refuses anything else). */
export function numericGid(type: string) {
  const pattern = new RegExp(`^gid://shopify/${type}/(\\d{1,20})$`);
  return z
    .string()
    .regex(pattern, `not a ${type} GID`)
    .transform((value) => value.slice(value.lastIndexOf('/') + 1));
}

export function shopifyGid(type: string, id: string): string {
  return `gid://shopify/${type}/${id}`;
}

// ---------------------------------------------------------------- error classification

/** Bounded retries of throttled (and briefly unavailable) requests. */
export interface ThrottleRetryOptions {
  /** Attempts in all, the first included. Default 5. */
  readonly maxAttempts: number;
  /** First backoff when Shopify gives no wait hint (ms). Default 1,000, doubling per attempt. */
  readonly baseDelayMs: number;
  /** Longest single wait (ms). Default 30,000. */
  readonly maxDelayMs: number;
}

export const DEFAULT_THROTTLE_RETRY: ThrottleRetryOptions = { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 30_000 };

export type ShopifyFailure =
  | { readonly retryable: true; readonly reason: 'throttled' | 'unavailable'; readonly waitMs: number | null }
  | { readonly retryable: false; readonly reason: string };

export function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

function finite(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/**
 * How long the bucket needs before the requested cost fits: (requestedQueryCost − currentlyAvailable) /
 * restoreRate seconds, from `extensions.cost` of the throttled response (shopify.md §3.5). Null when absent.
 */
export function waitFromCost(extensions: unknown): number | null {
  const cost = record(record(extensions)?.cost);
  const status = record(cost?.throttleStatus);
  const requested = finite(cost?.requestedQueryCost);
  const available = finite(status?.currentlyAvailable);
  const restoreRate = finite(status?.restoreRate);
  if (requested === null || available === null || restoreRate === null || restoreRate <= 0) return null;
  return Math.max(0, Math.ceil(((requested - available) / restoreRate) * 1000));
}

function graphqlErrorCodes(err: GraphqlQueryError): string[] {
  const graphQLErrors = record(err.body?.errors)?.graphQLErrors;
  return (Array.isArray(graphQLErrors) ? graphQLErrors : []).map((e) => String(record(record(e)?.extensions)?.code ?? 'UNKNOWN'));
}

/** What a thrown library error means for a retry (pure; the classifier of style.md §7). */
export function classifyShopifyError(err: unknown): ShopifyFailure {
  if (err instanceof HttpThrottlingError) {
    const seconds = finite(err.response.retryAfter);
    return { retryable: true, reason: 'throttled', waitMs: seconds === null || seconds < 0 ? null : Math.ceil(seconds * 1000) };
  }
  if (err instanceof GraphqlQueryError) {
    const codes = graphqlErrorCodes(err);
    if (codes.includes('THROTTLED')) return { retryable: true, reason: 'throttled', waitMs: waitFromCost(err.body?.extensions) };
    return { retryable: false, reason: `GraphQL error ${[...new Set(codes)].join(', ') || 'UNKNOWN'}` };
  }
  // 5xx: the library's own retriable class (it retries 503 itself when asked to).
  if (err instanceof HttpInternalError) return { retryable: true, reason: 'unavailable', waitMs: null };
  const code = record(record(err)?.response)?.code;
  if (typeof code === 'number') return { retryable: false, reason: `HTTP ${code}` };
  return { retryable: false, reason: err instanceof Error ? err.name : 'unknown error' };
}

/**
 * Wait before attempt `attempt + 1` (attempt ≥ 1), or null to give up. Shopify's hint wins (capped); without one,
 * `baseDelayMs` × 2^(attempt−1), capped, scaled by a jitter factor in [0.5, 1).
 */
export function retryDelayMs(attempt: number, failure: ShopifyFailure, random: number, options: ThrottleRetryOptions): number | null {
  if (!failure.retryable || attempt >= options.maxAttempts) return null;
  if (failure.waitMs !== null) return Math.min(failure.waitMs, options.maxDelayMs);
  const base = Math.min(options.baseDelayMs * 2 ** Math.min(attempt - 1, 20), options.maxDelayMs);
  return Math.round(base * (0.5 + random / 2));
}

/** `Retry-After` (seconds, possibly fractional) of a library HTTP error, in ms; null when absent or not a number. */
function retryAfterHeaderMs(headers: unknown): number | null {
  const entry = Object.entries(record(headers) ?? {}).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
  const raw = Array.isArray(entry) ? entry[0] : entry;
  const seconds = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds * 1000) : null;
}

/**
 * A thrown library error as the port's PlatformCallError (`action` names the call in the message). `timedOut`:
 * the caller's own timeout fired (the library reports an aborted fetch like any other failed connection).
 *
 * | Failure | kind | retryable | retryAfterMs |
 * |---|---|---|---|
 * | THROTTLED (HTTP 200), 429 | rate_limited | yes | bucket refill time from throttleStatus / Retry-After |
 * | 5xx, GraphQL INTERNAL_SERVER_ERROR | server_error | yes | Retry-After when sent |
 * | our timeout | timeout | yes | — |
 * | no response (reset, refused, DNS) | connection | yes | — |
 * | 401, 403, GraphQL ACCESS_DENIED | auth | no | — |
 * | HTTP 200 that is not a GraphQL answer (HTML, truncated JSON, no data) | malformed | no | — |
 * | other 4xx, other GraphQL errors | client_error | no | — |
 */
export function shopifyCallError(err: unknown, action: string, timedOut = false): PlatformCallError {
  if (err instanceof PlatformCallError) return err;
  const fail = (message: string, options: ConstructorParameters<typeof PlatformCallError>[2]) =>
    new PlatformCallError('shopify', `${action}: ${message}`, { ...options, cause: err });
  if (timedOut) return fail('timed out', { retryable: true, kind: 'timeout' });
  if (err instanceof HttpRequestError) return fail('no response (connection failed)', { retryable: true, kind: 'connection' });
  const failure = classifyShopifyError(err);
  const status = finite(record(record(err)?.response)?.code);
  if (failure.retryable && failure.reason === 'throttled') {
    return fail('throttled by Shopify', { status: status ?? 200, retryable: true, retryAfterMs: failure.waitMs, kind: 'rate_limited' });
  }
  if (failure.retryable) {
    const headers = err instanceof HttpResponseError ? err.response.headers : undefined;
    return fail(`Shopify answered HTTP ${status ?? '5xx'}`, { status, retryable: true, retryAfterMs: retryAfterHeaderMs(headers), kind: 'server_error' });
  }
  if (err instanceof GraphqlQueryError) {
    const codes = graphqlErrorCodes(err);
    if (codes.includes('INTERNAL_SERVER_ERROR')) return fail(failure.reason, { status: 200, retryable: true, kind: 'server_error' });
    return fail(failure.reason, { status: 200, retryable: false, kind: codes.includes('ACCESS_DENIED') ? 'auth' : 'client_error' });
  }
  if (status === 401 || status === 403) return fail(`Shopify answered HTTP ${status} (access token invalid, revoked or lacking a scope)`, { status, retryable: false, kind: 'auth' });
  if (status !== null && status >= 200 && status < 300) return fail('the answer is not a GraphQL response', { status, retryable: false, kind: 'malformed' });
  if (status !== null) return fail(`Shopify answered HTTP ${status}`, { status, retryable: false, kind: 'client_error' });
  return fail(failure.reason, { retryable: false, kind: 'client_error' });
}

// ---------------------------------------------------------------- one request with bounded retries

export interface GraphqlCallPolicy {
  readonly retry: ThrottleRetryOptions;
  /**
   * Longest wait slept in-process before another attempt. A longer one (a drained bucket, a long Retry-After) is
   * not slept: the PlatformCallError goes back to the caller with `retryAfterMs`, for the outbox to wait.
   */
  readonly maxInlineWaitMs: number;
  /** Each attempt is aborted after this long (the library has no timeout of its own). */
  readonly timeoutMs: number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
  readonly logger: Logger;
  /** Called once per attempt with its outcome (metrics). */
  readonly onCall?: PlatformCallHook;
}

/**
 * One GraphQL operation: its `data`, or a PlatformCallError after bounded retries of retryable failures.
 * Only safe for idempotent operations (queries, and mutations that set a state rather than add to one).
 */
export async function requestGraphql(
  client: GraphqlClient,
  query: string,
  variables: Record<string, unknown>,
  policy: GraphqlCallPolicy,
  context: { readonly action: string; readonly tenantId: string },
): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    const signal = AbortSignal.timeout(policy.timeoutMs);
    try {
      // retries: 0: see the module comment (the library's retry waits Retry-After seconds as milliseconds).
      const response = await client.request(query, { variables, retries: 0, signal });
      policy.onCall?.('shopify', { kind: 'ok', status: 200 });
      return response.data;
    } catch (err) {
      const error = shopifyCallError(err, context.action, signal.aborted);
      policy.onCall?.('shopify', { kind: error.kind, status: error.status });
      if (!error.retryable || attempt >= policy.retry.maxAttempts) throw error;
      if (error.retryAfterMs !== null && error.retryAfterMs > policy.maxInlineWaitMs) throw error;
      const failure: ShopifyFailure = { retryable: true, reason: 'unavailable', waitMs: error.retryAfterMs };
      const delay = retryDelayMs(attempt, failure, policy.random(), policy.retry);
      if (delay === null || delay > policy.maxInlineWaitMs) throw error;
      policy.logger.warn({ tenantId: context.tenantId, attempt, waitMs: delay, kind: error.kind, status: error.status }, `${context.action}: retrying`);
      await policy.sleep(delay);
    }
  }
}
