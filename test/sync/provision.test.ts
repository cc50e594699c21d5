/**
 * HubSpot provisioning at link time (issue 5 §3), on SQLite and PostgreSQL: the worker job provisions every
 * active tenant once, keeps what it found for `tenant show`, skips uninstalled tenants, and retries a failure.
 */
import { provisionPending, provisioningOf, provisionJob } from '../../src/sync/provision';
import { PlatformCallError } from '../../src/sync/ports';
import type { Store } from '../../src/store/database';
import { updateTenant } from '../../src/store/tenant.repository';
import { FakeHubspot } from '../helpers/sync-fakes';
import { createHarness, type Harness } from '../helpers/webhooks';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

describe.each(testDialects())('HubSpot provisioning on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('provisions each active tenant once, keeps the result, skips uninstalled tenants and retries failures', async () => {
    const hubspot = new FakeHubspot();
    let calls = 0;
    let failNext = true;
    hubspot.provision = async () => {
      calls += 1;
      if (failNext) {
        failNext = false;
        throw new PlatformCallError('hubspot', 'HTTP 503', { retryable: true, kind: 'server_error' });
      }
      return { propertyGroup: 'consent_bridge', properties: ['consent_bridge_email_gate'], suppressionListId: 'L9', subscriptionTypes: [{ id: '101', name: 'Newsletter', isActive: true }] };
    };
    await updateTenant(store.db, h.tenantB.id, { status: 'uninstalled', updated_at: h.clock.now().toISOString() });
    const deps = { store, clock: h.clock, logger: h.runtime.logger, hubspot };

    expect(await provisionPending(deps)).toBe(0); // tenant A failed (503), tenant B is uninstalled
    expect(await provisioningOf(store, h.tenantA.id)).toBeUndefined();
    expect(await provisionJob(deps).run()).toBe(1);
    expect(await provisioningOf(store, h.tenantA.id)).toMatchObject({ suppressionListId: 'L9', subscriptionTypes: [{ id: '101', name: 'Newsletter' }], provisionedAt: h.clock.now().toISOString() });
    expect(await provisionPending(deps)).toBe(0);
    expect(calls).toBe(2);
    expect(await provisioningOf(store, h.tenantB.id)).toBeUndefined();
  });
});
