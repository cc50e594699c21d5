/**
 * The audience rule's customer tags (setting `b2b.customerTags`, issue 4 §2) on SQLite and PostgreSQL: Shopify
 * customers/* webhooks carry the customer's tags; the worker records them (newest source time wins, a payload
 * without the field changes nothing) and the gate classifies a tagged customer as B2B, straight from the database
 * and through a warm gate cache alike.
 */
import request from 'supertest';
import { GateCache } from '../../src/gate/cache';
import { checkRecipients, parseGateRequest } from '../../src/gate/gate';
import type { Store } from '../../src/store/database';
import { setTenantSettings, type Tenant } from '../../src/tenants/tenants';
import { createHarness, shopifyHeaders, type Harness } from '../helpers/webhooks';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

describe.each(testDialects())('B2B by customer tag on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let tenant: Tenant;
  const cache = new GateCache();

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    tenant = await setTenantSettings(store, h.runtime, h.tenantA.id, { ...h.tenantA.settings, b2b: { companyOnAddress: true, customerTags: ['Wholesale'], emailDomains: [] } });
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  async function deliver(topic: string, body: Record<string, unknown>): Promise<void> {
    const raw = JSON.stringify(body);
    const res = await request(h.app.callback()).post('/webhooks/shopify').set(shopifyHeaders(raw, { topic })).send(raw);
    expect(res.status).toBe(200);
    await h.worker.drain();
  }
  const customer = (updatedAt: string, extra: Record<string, unknown>) => ({ id: 7301, email: 'buyer@example.com', updated_at: updatedAt, ...extra });

  /** The audience the gate decides on, from the database and from the warm cache (they must agree). */
  async function audience(): Promise<string> {
    const ask = (facts?: GateCache) => checkRecipients(store, tenant, parseGateRequest({ channel: 'email', recipients: [{ email: 'buyer@example.com' }] }), h.clock.now(), facts ? { facts } : {});
    const [plain, cached] = [await ask(), await ask(cache)];
    expect(cached.results[0]!.jurisdiction).toEqual(plain.results[0]!.jurisdiction);
    return plain.results[0]!.jurisdiction.audience;
  }

  it('a tag in the list (any case) makes the customer B2B; a newer payload without it, B2C; an older one changes nothing', async () => {
    await deliver('customers/create', customer('2026-05-01T10:00:00+02:00', { tags: '' }));
    expect(await audience()).toBe('B2C');
    await cache.resolve(store, tenant.id, [{ email: 'buyer@example.com' }]); // warm

    await deliver('customers/update', customer('2026-05-02T10:00:00+02:00', { tags: 'VIP, wholesale' }));
    expect(await audience()).toBe('B2B');
    const row = await store.db.selectFrom('subject_profile').select(['tags', 'country']).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    expect(JSON.parse(row.tags!)).toEqual(['VIP', 'wholesale']);
    expect(row.country).toBeNull(); // no address in these payloads

    // A stale retry (older updated_at) does not bring old tags back; a payload without the field changes nothing.
    await deliver('customers/update', customer('2026-05-01T12:00:00+02:00', { tags: '' }));
    expect(await audience()).toBe('B2B');
    await deliver('customers/update', customer('2026-05-03T10:00:00+02:00', { default_address: { country_code: 'DE' } }));
    expect(await audience()).toBe('B2B');

    await deliver('customers/update', customer('2026-05-04T10:00:00+02:00', { tags: 'VIP', default_address: { country_code: 'DE' } }));
    expect(await audience()).toBe('B2C');
    const after = await store.db.selectFrom('subject_profile').select(['tags', 'country']).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    expect({ tags: JSON.parse(after.tags!) as string[], country: after.country }).toEqual({ tags: ['VIP'], country: 'DE' });
  });
});
