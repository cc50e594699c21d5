/**
 * OAuth tokens of the simulated portals (hubspot.md §7). Access tokens issued here live `ttlSeconds` (1,800: 30
 * minutes) on the simulator's clock; the configured starting token of each portal never expires. A refresh
 * answers a new access token and the same refresh token (HubSpot keeps it); an uninstall revokes both kinds.
 */
import type { SimulatorClock } from './types';

interface AccessToken {
  readonly portalId: string;
  /** Epoch ms; null = does not expire. */
  readonly expiresAtMs: number | null;
}

export type Authentication = { ok: true; portalId: string } | { ok: false; reason: 'missing' | 'unknown' | 'expired'; expiredMsAgo?: number };

export class TokenStore {
  readonly #access = new Map<string, AccessToken>();
  readonly #refresh = new Map<string, string>();
  readonly #codes = new Map<string, string>();
  readonly #clock: SimulatorClock;
  readonly #random: () => number;
  readonly ttlSeconds: number;
  issued = 0;

  constructor(clock: SimulatorClock, random: () => number, ttlSeconds: number) {
    this.#clock = clock;
    this.#random = random;
    this.ttlSeconds = ttlSeconds;
  }

  add(portalId: string, accessToken: string, refreshToken: string): void {
    if (this.#access.has(accessToken) || this.#refresh.has(refreshToken)) throw new TypeError(`portal ${portalId}: token already used by another portal`);
    this.#access.set(accessToken, { portalId, expiresAtMs: null });
    this.#refresh.set(refreshToken, portalId);
  }

  /** HubSpot access tokens are opaque base64url strings of a few hundred characters at most. */
  #newToken(prefix: string, length: number): string {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    return prefix + Array.from({ length }, () => alphabet[Math.floor(this.#random() * alphabet.length)]).join('');
  }

  authenticate(header: string): Authentication {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) return { ok: false, reason: 'missing' };
    const token = this.#access.get(match[1]!);
    if (token === undefined) return { ok: false, reason: 'unknown' };
    const now = this.#clock.now().getTime();
    if (token.expiresAtMs !== null && token.expiresAtMs <= now) return { ok: false, reason: 'expired', expiredMsAgo: now - token.expiresAtMs };
    return { ok: true, portalId: token.portalId };
  }

  #issue(portalId: string): { accessToken: string; expiresIn: number } {
    const accessToken = this.#newToken('CJ', 150);
    this.#access.set(accessToken, { portalId, expiresAtMs: this.#clock.now().getTime() + this.ttlSeconds * 1000 });
    this.issued++;
    return { accessToken, expiresIn: this.ttlSeconds };
  }

  refresh(refreshToken: string): { portalId: string; accessToken: string; refreshToken: string; expiresIn: number } | null {
    const portalId = this.#refresh.get(refreshToken);
    if (portalId === undefined) return null;
    return { portalId, refreshToken, ...this.#issue(portalId) };
  }

  /** A single-use authorization code for an install of the app in `portalId` (the OAuth callback's `code`). */
  code(portalId: string): string {
    const code = this.#newToken('', 36);
    this.#codes.set(code, portalId);
    return code;
  }

  exchange(code: string): { portalId: string; accessToken: string; refreshToken: string; expiresIn: number } | null {
    const portalId = this.#codes.get(code);
    if (portalId === undefined) return null;
    this.#codes.delete(code);
    const refreshToken = this.#newToken('', 36);
    this.#refresh.set(refreshToken, portalId);
    return { portalId, refreshToken, ...this.#issue(portalId) };
  }

  accessInfo(token: string): { portalId: string; expiresInSeconds: number | null } | { expired: true } | null {
    const found = this.#access.get(token);
    if (found === undefined) return null;
    if (found.expiresAtMs === null) return { portalId: found.portalId, expiresInSeconds: null };
    const left = found.expiresAtMs - this.#clock.now().getTime();
    return left <= 0 ? { expired: true } : { portalId: found.portalId, expiresInSeconds: Math.floor(left / 1000) };
  }

  refreshInfo(token: string): string | null {
    return this.#refresh.get(token) ?? null;
  }

  revokeRefresh(token: string): boolean {
    return this.#refresh.delete(token);
  }

  /** The app was uninstalled from the portal: every token of it stops working. */
  revokePortal(portalId: string): void {
    for (const [token, entry] of this.#access) if (entry.portalId === portalId) this.#access.delete(token);
    for (const [token, owner] of this.#refresh) if (owner === portalId) this.#refresh.delete(token);
  }

  activeCount(portalId: string): { accessTokens: number; refreshTokens: number } {
    const now = this.#clock.now().getTime();
    return {
      accessTokens: [...this.#access.values()].filter((t) => t.portalId === portalId && (t.expiresAtMs === null || t.expiresAtMs > now)).length,
      refreshTokens: [...this.#refresh.values()].filter((p) => p === portalId).length,
    };
  }
}

/** A rolling window per key: at most `max` admissions in any `windowMs` (HubSpot's TEN_SECONDLY_ROLLING, search's secondly). */
export class RollingLimit {
  readonly #log = new Map<string, number[]>();
  constructor(
    readonly max: number,
    readonly windowMs: number,
  ) {}

  take(key: string, nowMs: number): { ok: boolean; remaining: number } {
    const log = (this.#log.get(key) ?? []).filter((at) => at > nowMs - this.windowMs);
    this.#log.set(key, log);
    if (log.length >= this.max) return { ok: false, remaining: 0 };
    log.push(nowMs);
    return { ok: true, remaining: this.max - log.length };
  }
}
