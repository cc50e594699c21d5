/**
 * Access tokens (src/sync/tokens.ts) on SQLite and PostgreSQL: a valid token is used as stored, a token near
 * expiry is refreshed once however many callers ask at the same time (and on PostgreSQL however many processes),
 * refreshed credentials are stored sealed, and refused or missing credentials fail as non-retryable auth errors.
 * Token values never reach messages or logs.
 */
import { randomBytes } from 'node:crypto';
import { createSecretBox } from '../../src/crypto/secret-box';
import type { LogFields, Logger } from '../../src/ports';
import type { Store } from '../../src/store/database';
import { PlatformCallError } from '../../src/sync/ports';
import { RefreshingAccessTokens, type RefreshedToken, type TokenRefresher } from '../../src/sync/tokens';
import { addTenant, readCredentials, writeCredentials, type Tenant } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

const NOW = '2026-06-01T12:00:00.000Z';
const inMinutes = (minutes: number) => new Date(Date.parse(NOW) + minutes * 60_000).toISOString();

/** A logger that keeps every record, to check that no token value is ever logged. */
function recordingLogger(): Logger & { records: string[] } {
  const records: string[] = [];
  const make = (bindings: LogFields): Logger => {
    const record = (level: string) => (fields: LogFields, message: string) => void records.push(JSON.stringify({ level, ...bindings, ...fields, message }));
    return { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error'), child: (more) => make({ ...bindings, ...more }) };
  };
  return Object.assign(make({}), { records });
}

/** A fake token endpoint: counts calls, answers after a short delay (so concurrent callers overlap). */
function fakeRefresher(answer: (refreshToken: string, call: number) => RefreshedToken | Error, delayMs = 30): TokenRefresher & { calls: string[] } {
  const calls: string[] = [];
  const refresher = async (refreshToken: string) => {
    calls.push(refreshToken);
    const call = calls.length;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const result = answer(refreshToken, call);
    if (result instanceof Error) throw result;
    return result;
  };
  return Object.assign(refresher, { calls });
}

const invalidGrant = () => new PlatformCallError('hubspot', 'HubSpot refused the refresh token (invalid_grant): the app was uninstalled', { status: 400, retryable: false, kind: 'auth' });

describe.each(testDialects())('RefreshingAccessTokens on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let tenant: Tenant;
  let bare: Tenant;
  const clock = fixedClock(NOW);
  const secretBox = createSecretBox(randomBytes(32));
  const deps = { clock, ids: countingIds('tk'), secretBox };
  let logger: ReturnType<typeof recordingLogger>;
  const tokensOn = (s: Store, refreshers: { hubspot?: TokenRefresher; shopify?: TokenRefresher }, options = {}) =>
    new RefreshingAccessTokens({ store: s, secretBox, clock, logger, refreshers }, options);
  const storeHubspot = (credentials: { accessToken: string; refreshToken?: string; expiresAt?: string }) => writeCredentials(store.db, deps, tenant.id, 'hubspot', credentials);
  /** Every token value a test used, none of which may appear in a log record. */
  const secrets = ['hs-access-valid', 'hs-access-old', 'hs-access-new', 'hs-refresh-1', 'hs-refresh-2', 'shpat-no-expiry'];

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    tenant = await addTenant(store, deps, {
      shopDomain: 'tokens.myshopify.com',
      hubspotPortalId: '777',
      shopify: { accessToken: 'shpat-no-expiry' },
      hubspot: { accessToken: 'hs-access-valid', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(30) },
    });
    bare = await addTenant(store, deps, { shopDomain: 'bare.myshopify.com', hubspotPortalId: '778' });
  });
  beforeEach(() => {
    clock.set(NOW);
    logger = recordingLogger();
  });
  afterEach(() => {
    for (const record of logger.records) for (const secret of secrets) expect(record).not.toContain(secret);
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('returns the stored token while it is valid beyond the margin, without refreshing', async () => {
    await storeHubspot({ accessToken: 'hs-access-valid', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(30) });
    const refresher = fakeRefresher(() => ({ accessToken: 'hs-access-new', expiresAt: inMinutes(60) }));
    const tokens = tokensOn(store, { hubspot: refresher });
    expect(await tokens.accessToken(tenant, 'hubspot')).toBe('hs-access-valid');
    clock.advance(24 * 60_000); // 6 minutes left: still beyond the 5-minute margin
    expect(await tokens.accessToken(tenant, 'hubspot')).toBe('hs-access-valid');
    expect(refresher.calls).toEqual([]);
  });

  it('uses a token without expiry as it is', async () => {
    const refresher = fakeRefresher(() => ({ accessToken: 'shpat-new-token' }));
    expect(await tokensOn(store, { shopify: refresher }).accessToken(tenant, 'shopify')).toBe('shpat-no-expiry');
    expect(refresher.calls).toEqual([]);
  });

  it('refreshes a token near expiry once for 20 concurrent callers, and stores it sealed', async () => {
    await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(4) });
    const refresher = fakeRefresher(() => ({ accessToken: 'hs-access-new', expiresAt: inMinutes(30) }));
    const tokens = tokensOn(store, { hubspot: refresher });
    const results = await Promise.all(Array.from({ length: 20 }, () => tokens.accessToken(tenant, 'hubspot')));
    expect(new Set(results)).toEqual(new Set(['hs-access-new']));
    expect(refresher.calls).toEqual(['hs-refresh-1']);

    // Sealed at rest, bound to this tenant and platform; the refresh token is kept when none is returned.
    const row = await store.db.selectFrom('tenant').select('hubspot_credentials').where('id', '=', tenant.id).executeTakeFirstOrThrow();
    expect(row.hubspot_credentials).toMatch(/^v1\./);
    expect(row.hubspot_credentials).not.toContain('hs-access-new');
    expect(await readCredentials(store, secretBox, tenant.id, 'hubspot')).toEqual({ accessToken: 'hs-access-new', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(30) });
    expect(logger.records.filter((r) => r.includes('access token refreshed'))).toHaveLength(1);

    // The next call uses the stored token; a later expiry refreshes again.
    expect(await tokens.accessToken(tenant, 'hubspot')).toBe('hs-access-new');
    expect(refresher.calls).toHaveLength(1);
  });

  it('stores a rotated refresh token', async () => {
    await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(-1) });
    const refresher = fakeRefresher(() => ({ accessToken: 'hs-access-new', refreshToken: 'hs-refresh-2', expiresAt: inMinutes(60) }));
    expect(await tokensOn(store, { hubspot: refresher }).accessToken(tenant, 'hubspot')).toBe('hs-access-new');
    expect(await readCredentials(store, secretBox, tenant.id, 'hubspot')).toEqual({ accessToken: 'hs-access-new', refreshToken: 'hs-refresh-2', expiresAt: inMinutes(60) });
  });

  it('throws a refused refresh token (invalid_grant) to every waiting caller, changing nothing', async () => {
    await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(2) });
    const refresher = fakeRefresher(() => invalidGrant());
    const tokens = tokensOn(store, { hubspot: refresher });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => tokens.accessToken(tenant, 'hubspot')));
    expect(refresher.calls).toHaveLength(1);
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const error = (result as PromiseRejectedResult).reason as PlatformCallError;
      expect(error).toBeInstanceOf(PlatformCallError);
      expect(error).toMatchObject({ kind: 'auth', retryable: false, platform: 'hubspot', status: 400 });
      expect(error.message).toMatch(/invalid_grant/);
    }
    expect(await readCredentials(store, secretBox, tenant.id, 'hubspot')).toEqual({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(2) });
    // The failure is not cached: the next call tries again.
    await expect(tokens.accessToken(tenant, 'hubspot')).rejects.toMatchObject({ kind: 'auth' });
    expect(refresher.calls).toHaveLength(2);
  });

  it('on a retryable refresh failure, uses a token that is still valid, and fails once it has expired', async () => {
    await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(3) });
    const refresher = fakeRefresher(() => new Error('connect ECONNREFUSED'));
    const tokens = tokensOn(store, { hubspot: refresher });
    expect(await tokens.accessToken(tenant, 'hubspot')).toBe('hs-access-old');
    clock.advance(3 * 60_000);
    const error = await tokens.accessToken(tenant, 'hubspot').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlatformCallError);
    expect(error).toMatchObject({ kind: 'connection', retryable: true, platform: 'hubspot' });
    expect((error as Error).message).toContain(tenant.id);
  });

  it('fails with a non-retryable auth error naming tenant and platform when no credentials are stored', async () => {
    const error = await tokensOn(store, {}).accessToken(bare, 'hubspot').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlatformCallError);
    expect(error).toMatchObject({ kind: 'auth', retryable: false, platform: 'hubspot' });
    expect((error as Error).message).toContain(bare.id);
    expect((error as Error).message).toContain('bare.myshopify.com');
    expect((error as Error).message).toContain('hubspot');
    await expect(tokensOn(store, {}).accessToken(bare, 'shopify')).rejects.toMatchObject({ kind: 'auth', retryable: false, platform: 'shopify' });
  });

  it('fails with auth when an expired token cannot be refreshed (no refresher configured)', async () => {
    await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(-5) });
    const error = await tokensOn(store, {}).accessToken(tenant, 'hubspot').catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'auth', retryable: false });
    expect((error as Error).message).toMatch(/no hubspot token refresher is configured/);
    expect((error as Error).message).not.toContain('hs-access-old');
  });

  it('refuses a malformed token answer as retryable', async () => {
    await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(-1) });
    const refresher = fakeRefresher(() => ({ accessToken: '' }));
    await expect(tokensOn(store, { hubspot: refresher }).accessToken(tenant, 'hubspot')).rejects.toMatchObject({ kind: 'malformed', retryable: true });
  });

  if (dialect === 'postgres') {
    it('two processes racing refresh once: the second waits for the row lock and uses the stored token', async () => {
      await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(1) });
      const other = db.open();
      try {
        const refresher = fakeRefresher((_, call) => ({ accessToken: `hs-access-new-${call}`, expiresAt: inMinutes(30) }), 100);
        const first = tokensOn(store, { hubspot: refresher });
        const second = tokensOn(other, { hubspot: refresher });
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? first : second).accessToken(tenant, 'hubspot')));
        expect(refresher.calls).toEqual(['hs-refresh-1']);
        expect(new Set(results)).toEqual(new Set(['hs-access-new-1']));
        expect(logger.records.filter((r) => r.includes('already refreshed by another process'))).toHaveLength(1);
      } finally {
        await other.close();
      }
    });
  } else {
    it('SQLite is served by one process: single flight covers one instance', async () => {
      await storeHubspot({ accessToken: 'hs-access-old', refreshToken: 'hs-refresh-1', expiresAt: inMinutes(1) });
      const refresher = fakeRefresher((_, call) => ({ accessToken: `hs-access-new-${call}`, expiresAt: inMinutes(30) }), 100);
      const tokens = tokensOn(store, { hubspot: refresher });
      const results = await Promise.all(Array.from({ length: 10 }, () => tokens.accessToken(tenant, 'hubspot')));
      expect(refresher.calls).toHaveLength(1);
      expect(new Set(results)).toEqual(new Set(['hs-access-new-1']));
    });
  }
});
