/**
 * Platform access tokens of a tenant (the `AccessTokens` port of src/sync/ports.ts, issue 5): HubSpot OAuth
 * access tokens live 30 minutes (hubspot.md §7: refresh on expiry, not on 401) and Shopify expiring offline
 * tokens carry an expiry and a refresh token too (shopify.md §4.4). The stored token is handed out while it is
 * valid for longer than the refresh margin; otherwise it is refreshed once and stored sealed
 * (src/crypto/secret-box.ts) for every caller and process:
 *
 * - in a process, concurrent callers of one (tenant, platform) await the same refresh (single flight);
 * - across processes (PostgreSQL), the refresh runs with the tenant row locked, and re-reads the credentials
 *   under that lock: a token another process refreshed a moment ago is used instead of refreshing again
 *   (`refreshCredentials` in src/tenants/tenants.ts). On SQLite, one process serves the database and single
 *   flight suffices.
 *
 * Failures are `PlatformCallError`s: `auth` and not retryable when the refresh token is refused (HubSpot
 * `invalid_grant`: the app was uninstalled) or no credentials can be used; the caller dead-letters. Token
 * values never appear in messages or logs.
 */
import type { SecretBox } from '../crypto/secret-box';
import type { Clock, Logger } from '../ports';
import type { Store } from '../store/database';
import { readCredentials, refreshCredentials, type Platform, type PlatformCredentials, type Tenant } from '../tenants/tenants';
import { PlatformCallError, type AccessTokens } from './ports';

/** What a platform's token endpoint answered; `expiresAt` ISO-8601 (from `expires_in`). */
export interface RefreshedToken {
  readonly accessToken: string;
  /** A rotated refresh token; absent: the previous one stays. */
  readonly refreshToken?: string;
  readonly expiresAt?: string;
}

/**
 * Exchanges a refresh token for a new access token (connectors/<platform>; Shopify needs the shop, hence the
 * tenant). Throws `PlatformCallError`: `auth`, not retryable, when the refresh token is refused.
 */
export type TokenRefresher = (refreshToken: string, tenant: Tenant) => Promise<RefreshedToken>;

export interface RefreshingAccessTokensDeps {
  readonly store: Store;
  readonly secretBox: SecretBox;
  readonly clock: Clock;
  readonly logger: Logger;
  /** A platform without one uses its stored token until it expires, then fails with `auth`. */
  readonly refreshers: { readonly hubspot?: TokenRefresher; readonly shopify?: TokenRefresher };
}

export interface RefreshingAccessTokensOptions {
  /** Refresh a token this long before it expires. Default 5 minutes; keep it well below the token lifetime (HubSpot 30 min). */
  readonly refreshMarginMs?: number;
}

/**
 * When a refresh fails for a retryable reason (network, 5xx, 429), a token still valid for at least this long
 * (or the refresh margin, if smaller) is handed out instead, so a token endpoint's hiccup does not stop the sync.
 */
const FALLBACK_MIN_VALIDITY_MS = 60_000;

function describeTenant(tenant: Tenant): string {
  return `tenant ${tenant.id} (${tenant.shopDomain}, HubSpot portal ${tenant.hubspotPortalId})`;
}

function validRefresh(result: RefreshedToken): boolean {
  return (
    typeof result === 'object' &&
    result !== null &&
    typeof result.accessToken === 'string' &&
    result.accessToken.trim().length >= 8 &&
    (result.refreshToken === undefined || (typeof result.refreshToken === 'string' && result.refreshToken.length > 0)) &&
    (result.expiresAt === undefined || (typeof result.expiresAt === 'string' && !Number.isNaN(Date.parse(result.expiresAt))))
  );
}

export class RefreshingAccessTokens implements AccessTokens {
  readonly #deps: RefreshingAccessTokensDeps;
  readonly #marginMs: number;
  readonly #inFlight = new Map<string, Promise<string>>();

  constructor(deps: RefreshingAccessTokensDeps, options: RefreshingAccessTokensOptions = {}) {
    this.#deps = deps;
    this.#marginMs = options.refreshMarginMs ?? 5 * 60_000;
  }

  async accessToken(tenant: Tenant, platform: Platform): Promise<string> {
    const current = await readCredentials(this.#deps.store, this.#deps.secretBox, tenant.id, platform);
    if (current === null) throw this.#missing(tenant, platform);
    if (this.#validFor(current) > this.#marginMs) return current.accessToken;
    const key = `${tenant.id}:${platform}`;
    let flight = this.#inFlight.get(key);
    if (flight === undefined) {
      flight = this.#refresh(tenant, platform).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, flight);
    }
    return flight;
  }

  /** Milliseconds the token stays valid; infinite without an expiry (used as is), negative once expired. */
  #validFor(credentials: PlatformCredentials): number {
    if (credentials.expiresAt === undefined) return Number.POSITIVE_INFINITY;
    const expiresAt = Date.parse(credentials.expiresAt);
    return Number.isNaN(expiresAt) ? Number.NEGATIVE_INFINITY : expiresAt - this.#deps.clock.now().getTime();
  }

  #missing(tenant: Tenant, platform: Platform): PlatformCallError {
    return new PlatformCallError(platform, `${describeTenant(tenant)} has no stored ${platform} credentials: link the ${platform} app for it again`, {
      retryable: false,
      kind: 'auth',
    });
  }

  async #refresh(tenant: Tenant, platform: Platform): Promise<string> {
    const { store, secretBox, clock, refreshers } = this.#deps;
    const logger = this.#deps.logger.child({ component: 'access-tokens', tenantId: tenant.id, platform });
    const refresher = refreshers[platform];
    // Set inside the locked callback; the cast keeps TypeScript from narrowing it to the initial value.
    let outcome = 'refreshed elsewhere' as 'refreshed' | 'refreshed elsewhere' | 'kept';
    const credentials = await refreshCredentials(store, { secretBox, clock }, tenant.id, platform, async (current) => {
      if (current === null) throw this.#missing(tenant, platform);
      // Another process (or an earlier flight) refreshed it while this one waited for the lock.
      if (this.#validFor(current) > this.#marginMs) return null;
      const usable = this.#validFor(current) > Math.min(FALLBACK_MIN_VALIDITY_MS, this.#marginMs);
      if (current.refreshToken === undefined || refresher === undefined) {
        const why = current.refreshToken === undefined ? 'no refresh token is stored' : `no ${platform} token refresher is configured`;
        if (usable) {
          logger.warn({ expiresAt: current.expiresAt }, `${platform} access token expires soon and cannot be refreshed: ${why}`);
          outcome = 'kept';
          return null;
        }
        throw new PlatformCallError(platform, `the ${platform} access token of ${describeTenant(tenant)} has expired and cannot be refreshed: ${why}`, {
          retryable: false,
          kind: 'auth',
        });
      }
      let result: RefreshedToken;
      try {
        result = await refresher(current.refreshToken, tenant);
      } catch (cause) {
        const error =
          cause instanceof PlatformCallError
            ? cause
            : new PlatformCallError(platform, `refreshing the ${platform} access token of ${describeTenant(tenant)} failed`, { retryable: true, kind: 'connection', cause });
        if (error.retryable && usable) {
          logger.warn({ kind: error.kind, status: error.status, expiresAt: current.expiresAt }, `${platform} token refresh failed; using the current token until it expires`);
          outcome = 'kept';
          return null;
        }
        logger.warn({ kind: error.kind, status: error.status, retryable: error.retryable }, `${platform} token refresh failed`);
        throw error;
      }
      if (!validRefresh(result)) {
        throw new PlatformCallError(platform, `the ${platform} token endpoint answered no usable access token for ${describeTenant(tenant)}`, { retryable: true, kind: 'malformed' });
      }
      outcome = 'refreshed';
      return {
        accessToken: result.accessToken,
        refreshToken: result.refreshToken ?? current.refreshToken,
        ...(result.expiresAt !== undefined ? { expiresAt: new Date(result.expiresAt).toISOString() } : {}),
      };
    });
    if (credentials === null) throw this.#missing(tenant, platform);
    if (outcome === 'refreshed') logger.info({ expiresAt: credentials.expiresAt }, `${platform} access token refreshed`);
    else if (outcome === 'refreshed elsewhere') logger.debug({ expiresAt: credentials.expiresAt }, `${platform} access token already refreshed by another process`);
    return credentials.accessToken;
  }
}
