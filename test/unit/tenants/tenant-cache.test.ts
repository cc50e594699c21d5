/**
 * CachedTenantLookup: found tenants are reused for the TTL, misses are never cached (a newly linked tenant is
 * routed at once), and a change made elsewhere is seen once the TTL has passed.
 */
import type { Store } from '../../../src/store/database';
import { addTenant, CachedTenantLookup } from '../../../src/tenants/tenants';
import { countingIds, fixedClock } from '../../helpers/deps';
import { migratedStore, type TestDatabase } from '../../helpers/stores';

describe('CachedTenantLookup', () => {
  let db: TestDatabase;
  let store: Store;
  const deps = { clock: fixedClock('2026-06-01T12:00:00.000Z'), ids: countingIds('tc'), secretBox: null };

  beforeAll(async () => {
    ({ db, store } = await migratedStore('sqlite'));
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('reuses a found tenant for the TTL, sees changes after it, and never caches a miss', async () => {
    let now = 0;
    const lookup = new CachedTenantLookup(store, { ttlMs: 5000, nowMs: () => now });
    expect(await lookup.byShop('late.myshopify.com')).toBeUndefined();
    const tenant = await addTenant(store, deps, { shopDomain: 'late.myshopify.com', hubspotPortalId: '777' });
    // The miss was not cached: the tenant linked a moment ago is found at once.
    expect((await lookup.byShop('late.myshopify.com'))?.id).toBe(tenant.id);
    expect((await lookup.byPortal('777'))?.status).toBe('active');

    await store.db.updateTable('tenant').set({ status: 'uninstalled' }).where('id', '=', tenant.id).execute();
    now = 4999;
    expect((await lookup.byPortal('777'))?.status).toBe('active'); // within the TTL
    now = 5000;
    expect((await lookup.byPortal('777'))?.status).toBe('uninstalled');
  });

  it('with a TTL of 0 always reads the database', async () => {
    const lookup = new CachedTenantLookup(store, { ttlMs: 0, nowMs: () => 0 });
    const tenant = await addTenant(store, deps, { shopDomain: 'zero.myshopify.com', hubspotPortalId: '778' });
    expect((await lookup.byShop('zero.myshopify.com'))?.status).toBe('active');
    await store.db.updateTable('tenant').set({ status: 'uninstalled' }).where('id', '=', tenant.id).execute();
    expect((await lookup.byShop('zero.myshopify.com'))?.status).toBe('uninstalled');
  });
});
