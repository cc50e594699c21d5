/**
 * HubSpot OAuth token refresh (hubspot.md §7): `POST /oauth/v1/token`, form-encoded
 * `grant_type=refresh_token&client_id&client_secret&refresh_token`, answer `{access_token, refresh_token,
 * expires_in (seconds), token_type}`. Access tokens live 30 minutes; follow `expires_in`, never assume it.
 *
 * `invalid_grant` (RFC 6749; HubSpot v1 also says `status: BAD_REFRESH_TOKEN`) means the refresh token is gone:
 * on legacy apps that is the uninstall signal (no uninstall webhook), so it is an `auth` error, not retryable.
 *
 * The v1 endpoint is deprecated on 2027-02-16; its successor `/oauth/v3/token` takes the same form and answers
 * `hub_id` too (hubspot.md §7). Not retried here: the caller (the core's AccessTokens) decides.
 */
import { z } from 'zod';
import { systemClock, type Clock } from '../../src/ports';
import { PlatformCallError } from '../../src/sync/ports';
import { classifyHttpError, DEFAULT_HUBSPOT_BASE_URL, DEFAULT_TIMEOUT_MS, defaultFetch, errorBody, exchange, malformed, parseJson, type FetchLike } from './http';

export interface HubspotOAuthConfig {
  readonly clientId: string;
  readonly clientSecret: string;
  /** Default https://api.hubapi.com. */
  readonly baseUrl?: string;
  /** Default `globalThis.fetch`. */
  readonly fetch?: FetchLike;
  /** `expiresAt` = now + `expires_in`. Default the system clock. */
  readonly clock?: Clock;
  /** Default 15,000. */
  readonly timeoutMs?: number;
}

export interface HubspotTokenSet {
  readonly accessToken: string;
  /** HubSpot answers the (same) refresh token again; kept as sent when it does not. */
  readonly refreshToken: string;
  /** ISO-8601 UTC. */
  readonly expiresAt: string;
}

const tokenAnswer = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  expires_in: z.number().positive(),
});

const LABEL = 'POST /oauth/v1/token';

export async function refreshHubspotToken(config: HubspotOAuthConfig, refreshToken: string): Promise<HubspotTokenSet> {
  const clock = config.clock ?? systemClock;
  const baseUrl = (config.baseUrl ?? DEFAULT_HUBSPOT_BASE_URL).replace(/\/+$/, '');
  const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: config.clientId, client_secret: config.clientSecret, refresh_token: refreshToken });
  const raw = await exchange(
    config.fetch ?? defaultFetch,
    `${baseUrl}/oauth/v1/token`,
    { method: 'POST', headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded;charset=utf-8' }, body: form.toString() },
    config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    LABEL,
  );
  const body = parseJson(raw.text);
  if (raw.status >= 200 && raw.status < 300) {
    const parsed = tokenAnswer.safeParse(body);
    if (!parsed.success) throw malformed(LABEL, raw.status, 'not a token answer');
    return {
      accessToken: parsed.data.access_token,
      refreshToken: parsed.data.refresh_token ?? refreshToken,
      expiresAt: new Date(clock.now().getTime() + parsed.data.expires_in * 1000).toISOString(),
    };
  }
  const e = errorBody(body);
  if ((raw.status === 400 || raw.status === 401) && (e.error === 'invalid_grant' || e.status === 'BAD_REFRESH_TOKEN')) {
    throw new PlatformCallError('hubspot', `HubSpot ${LABEL}: refresh token refused (invalid_grant): the app was uninstalled from the portal or the token was revoked; a new install is needed`, {
      status: raw.status,
      retryable: false,
      kind: 'auth',
    });
  }
  if ((raw.status === 400 || raw.status === 401) && (e.error === 'invalid_client' || e.status === 'BAD_CLIENT_ID' || e.status === 'BAD_CLIENT_SECRET')) {
    throw new PlatformCallError('hubspot', `HubSpot ${LABEL}: the app's client id or secret was refused (check HUBSPOT_CLIENT_ID / HUBSPOT_CLIENT_SECRET)`, { status: raw.status, retryable: false, kind: 'auth' });
  }
  throw classifyHttpError(LABEL, raw.status, raw.headers, body === undefined ? raw.text : body, clock.now().getTime());
}
