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

  it('remembers "no other tenant has this customer" for the TTL, never "another has it"', async () => {
    let now = 0;
    const lookup = new CachedTenantLookup(store, { ttlMs: 5000, nowMs: () => now });
    const mine = await addTenant(store, deps, { shopDomain: 'mine.myshopify.com', hubspotPortalId: '779' });
    const other = await addTenant(store, deps, { shopDomain: 'other.myshopify.com', hubspotPortalId: '780' });
    const customer = { kind: 'shopify_customer' as const, value: '555000' };
    expect(await lookup.heldByOtherTenant(mine.id, customer)).toBe(false);
    // The other shop stores the customer: within the TTL the clear answer stands, after it the replay is caught.
    await store.db.transaction().execute(async (trx) => {
      await trx.insertInto('subject').values({ id: 'sub-other', tenant_id: other.id, created_at: '2026-06-01T12:00:00.000Z' }).execute();
      await trx.insertInto('subject_identity').values({ tenant_id: other.id, kind: 'shopify_customer', value: '555000', subject_id: 'sub-other', created_at: '2026-06-01T12:00:00.000Z' }).execute();
    });
    now = 4999;
    expect(await lookup.heldByOtherTenant(mine.id, customer)).toBe(false);
    now = 5000;
    expect(await lookup.heldByOtherTenant(mine.id, customer)).toBe(true);
    now = 5001;
    expect(await lookup.heldByOtherTenant(mine.id, customer)).toBe(true); // not cached
    expect(await lookup.heldByOtherTenant(other.id, customer)).toBe(false); // its own
  });
});
