/**
 * Refresh of an expiring offline Admin API token (shopify.md §0.6, §4.4; shopify.dev …/access-tokens/
 * offline-access-tokens: the access token lives 60 minutes and comes with a refresh token).
 *
 * `POST https://{shop}/admin/oauth/access_token` with JSON `{client_id, client_secret, refresh_token,
 * grant_type: "refresh_token"}`, answered with `{access_token, expires_in, refresh_token,
 * refresh_token_expires_in, scope}` (the body and answer of @shopify/shopify-api 13.1.0
 * lib/auth/oauth/refresh-token.ts and create-session.ts). Done here rather than through `auth.refreshToken` so
 * that the call can be routed like every other (graphql.ts `ShopifyEndpoint`, SHOPIFY_API_BASE_URL), timed out,
 * and its failures classified for the port.
 *
 * Refresh tokens rotate: each refresh invalidates the previous pair, so the caller must store the new pair before
 * using it and must never run two refreshes of one shop at once (`refreshCredentials` in src/tenants, the
 * `AccessTokens` port). A refused refresh (400/401: `invalid_grant`, `invalid_request`, `invalid_client`) is
 * `auth`: the merchant has to authorise the app again. A 5xx or a lost answer is retryable, but Shopify may have
 * rotated the token anyway (a reported 520 during rotation left the stored refresh token dead: community.shopify.dev
 * t/35182); the retry then ends as `auth`.
 */
import type { Clock } from '../../src/ports';
import { systemClock } from '../../src/ports';
import { PlatformCallError } from '../../src/sync/ports';
import { normalizeShopDomain } from '../../src/tenants/tenants';
import { endpointFetch, type FetchFn } from './graphql';

export interface ShopifyTokenRefreshDeps {
  /** SHOPIFY_API_KEY (client id). */
  readonly apiKey: string;
  /** SHOPIFY_API_SECRET (client secret). */
  readonly apiSecretKey: string;
  /** For `expiresAt`. Default the system clock. */
  readonly clock?: Clock;
  /** SHOPIFY_API_BASE_URL (graphql.ts `ShopifyEndpoint`). */
  readonly baseUrl?: string;
  /** Default `globalThis.fetch`. */
  readonly fetch?: FetchFn;
  /** Default 30,000 ms. */
  readonly timeoutMs?: number;
}

/** The new credentials (the shape of `PlatformCredentials` in src/tenants). */
export interface RefreshedShopifyToken {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** ISO-8601: now + `expires_in`. */
  readonly expiresAt: string;
}

function retryAfterMs(response: Response): number | null {
  const raw = response.headers.get('retry-after');
  const seconds = raw === null || raw.trim() === '' ? NaN : Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds * 1000) : null;
}

/** OAuth error code of a refused refresh (`{"error":"invalid_grant",…}`), never the request's secrets. */
async function oauthError(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: unknown; error_description?: unknown };
    const code = typeof body.error === 'string' ? body.error : null;
    const description = typeof body.error_description === 'string' ? body.error_description : null;
    return [code, description].filter((part) => part !== null).join(': ') || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

export async function refreshShopifyToken(deps: ShopifyTokenRefreshDeps, shopDomain: string, refreshToken: string): Promise<RefreshedShopifyToken> {
  const shop = normalizeShopDomain(shopDomain);
  if (shop === null) throw new PlatformCallError('shopify', `not a *.myshopify.com shop domain: ${JSON.stringify(shopDomain)}`, { retryable: false, kind: 'client_error' });
  if (refreshToken === '') throw new PlatformCallError('shopify', `no Shopify refresh token stored for ${shop}: authorise the app again`, { retryable: false, kind: 'auth' });
  const action = `Shopify token refresh for ${shop}`;
  const send = endpointFetch({ baseUrl: deps.baseUrl, fetch: deps.fetch }) ?? ((url: string, init?: RequestInit) => globalThis.fetch(url, init));
  const signal = AbortSignal.timeout(deps.timeoutMs ?? 30_000);
  let response: Response;
  try {
    response = await send(`https://${shop}/admin/oauth/access_token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ client_id: deps.apiKey, client_secret: deps.apiSecretKey, refresh_token: refreshToken, grant_type: 'refresh_token' }),
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw new PlatformCallError('shopify', `${action}: timed out`, { retryable: true, kind: 'timeout', cause: err });
    throw new PlatformCallError('shopify', `${action}: no response (connection failed)`, { retryable: true, kind: 'connection', cause: err });
  }
  const { status } = response;
  if (status === 400 || status === 401 || status === 403) {
    throw new PlatformCallError('shopify', `${action} refused (${await oauthError(response)}): authorise the app again`, { status, retryable: false, kind: 'auth' });
  }
  if (status === 429) throw new PlatformCallError('shopify', `${action}: throttled`, { status, retryable: true, retryAfterMs: retryAfterMs(response), kind: 'rate_limited' });
  if (status >= 500) throw new PlatformCallError('shopify', `${action}: Shopify answered HTTP ${status}`, { status, retryable: true, retryAfterMs: retryAfterMs(response), kind: 'server_error' });
  if (status < 200 || status >= 300) throw new PlatformCallError('shopify', `${action}: Shopify answered HTTP ${status}`, { status, retryable: false, kind: 'client_error' });
  let body: Record<string, unknown>;
  try {
    body = (await response.json()) as Record<string, unknown>;
  } catch (err) {
    throw new PlatformCallError('shopify', `${action}: the answer is not JSON`, { status, retryable: false, kind: 'malformed', cause: err });
  }
  const accessToken = body?.access_token;
  const newRefreshToken = body?.refresh_token;
  const expiresIn = body?.expires_in;
  if (typeof accessToken !== 'string' || accessToken === '' || typeof newRefreshToken !== 'string' || newRefreshToken === '' || typeof expiresIn !== 'number' || !(expiresIn > 0)) {
    throw new PlatformCallError('shopify', `${action}: the answer lacks access_token, refresh_token or expires_in`, { status, retryable: false, kind: 'malformed' });
  }
  const now = (deps.clock ?? systemClock).now().getTime();
  return { accessToken, refreshToken: newRefreshToken, expiresAt: new Date(now + expiresIn * 1000).toISOString() };
}
