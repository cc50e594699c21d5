/**
 * The backfill (src/sync/backfill.ts) on SQLite and PostgreSQL, against recording fake ports
 * (test/helpers/sync-fakes.ts) and the connector's real id-range query: paging past cursors, resuming after a
 * crash, recording each customer once, never re-subscribing anyone, and the background job.
 */
import { customerIdRangeQuery } from '../../connectors/shopify/consent';
import type { SubjectlessEvent } from '../../src/domain/inbound';
import { checkRecipients, parseGateRequest } from '../../src/gate/gate';
import { applyEffects } from '../../src/inbox/apply';
import { SYNC_CLAIM_SIZE } from '../../src/main';
import { OutboxDispatcher } from '../../src/outbox/dispatcher';
import type { Store } from '../../src/store/database';
import { readCursor } from '../../src/store/cursor.repository';
import { updateTenant } from '../../src/store/tenant.repository';
import { BACKFILL_CURSOR, backfillJob, backfillProgress, runBackfill, type BackfillDeps, type BackfillProgress } from '../../src/sync/backfill';
import { syncHandlers } from '../../src/sync/handlers';
import { pollTenant } from '../../src/sync/reconcile';
import { NO_READ_RETRY } from '../../src/sync/retry';
import { addTenant, setTenantSettings, type Tenant } from '../../src/tenants/tenants';
import { customer, FakeHubspot, FakeShopify } from '../helpers/sync-fakes';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { createHarness, type Harness } from '../helpers/webhooks';

const PURPOSES = [
  { id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: ['101'], categoryGroups: [] },
  { id: 'shoes', label: 'Shoe offers', hubspotSubscriptionTypeIds: ['202'], categoryGroups: ['footwear'] },
];
const NOW = '2026-06-01T12:00:00.000Z';
const out = (type: string, timestamp: string | null) => ({ subscriptionTypeId: type, subscribed: false, legalBasis: null, timestamp });
const sub = (type: string, timestamp: string | null) => ({ subscriptionTypeId: type, subscribed: true, legalBasis: 'CONSENT_WITH_NOTICE', timestamp });

describe.each(testDialects())('backfill on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let hubspot: FakeHubspot;
  let shopify: FakeShopify;
  let dispatcher: OutboxDispatcher;
  let deps: BackfillDeps;
  let tenants = 0;

  async function newTenant(): Promise<Tenant> {
    tenants += 1;
    const created = await addTenant(store, { ...h.runtime, secretBox: null }, { shopDomain: `backfill-${tenants}.myshopify.com`, hubspotPortalId: String(900 + tenants) });
    return setTenantSettings(store, h.runtime, created.id, { ...created.settings, shopCountry: 'NL', purposes: PURPOSES });
  }
  async function events(tenant: Tenant) {
    return store.db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenant.id).orderBy('seq').execute();
  }
  async function outboxRows(tenant: Tenant) {
    return store.db.selectFrom('outbox').selectAll().where('tenant_id', '=', tenant.id).execute();
  }
  async function allowed(tenant: Tenant, recipient: Record<string, string>, channel = 'email', purpose = '*'): Promise<boolean> {
    const response = await checkRecipients(store, tenant, parseGateRequest({ channel, purpose, recipients: [recipient] }), h.clock.now());
    return response.results[0]!.allowed;
  }
  async function subjectOf(tenant: Tenant, kind: string, value: string): Promise<string | undefined> {
    const row = await store.db.selectFrom('subject_identity').select('subject_id').where('tenant_id', '=', tenant.id).where('kind', '=', kind).where('value', '=', value).executeTakeFirst();
    return row?.subject_id;
  }

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    hubspot = new FakeHubspot();
    shopify = new FakeShopify();
    dispatcher = new OutboxDispatcher(
      { store, clock: h.clock, logger: h.runtime.logger, random: () => 0.5, handlers: syncHandlers({ store, clock: h.clock, logger: h.runtime.logger, hubspot, shopify }) },
      { batchSize: SYNC_CLAIM_SIZE },
    );
    deps = { store, clock: h.clock, ids: h.runtime.ids, logger: h.runtime.logger, hubspot, shopify, rangeQuery: customerIdRangeQuery };
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });
  beforeEach(() => {
    h.clock.set(NOW);
    hubspot.contacts = [];
    hubspot.statuses = new Map();
    hubspot.statusReads = [];
    hubspot.resetWrites();
    shopify.customers = [];
    shopify.queries = [];
    shopify.writes = [];
    shopify.pageSize = 200;
  });

  it('records every customer over 3 id-range pages, resumes after a crash on page 2, and records each customer once', async () => {
    const tenant = await newTenant();
    shopify.pageSize = 2;
    shopify.customers = [
      customer('101', 'ana@example.com', 'SUBSCRIBED', { emailAt: '2026-03-01T10:00:00.000Z' }),
      customer('102', 'bo@example.com', 'UNSUBSCRIBED', { emailAt: '2026-03-02T10:00:00.000Z' }),
      customer('103', 'cy@example.com', 'NOT_SUBSCRIBED', { emailAt: null, phone: '+31612345678', sms_marketing: { state: 'SUBSCRIBED', optInLevel: 'SINGLE_OPT_IN', consentUpdatedAt: '2026-03-03T10:00:00.000Z' } }),
      customer('104', 'di@example.com', 'SUBSCRIBED', { emailAt: '2026-03-04T10:00:00.000Z', countryCode: 'BE' }),
      customer('105', null, null),
      customer('106', 'fa@example.com', 'PENDING', { emailAt: '2026-03-06T10:00:00.000Z' }),
    ];
    hubspot.contacts = [{ id: '903', email: 'cy@example.com', modifiedAt: '2026-05-01T00:00:00.000Z' }];
    hubspot.statuses.set('cy@example.com', [sub('101', '2026-04-01T00:00:00.000Z'), out('202', null)]);
    hubspot.statuses.set('di@example.com', [sub('101', '2026-04-01T00:00:00.000Z'), sub('202', '2026-04-01T00:00:00.000Z')]);
    const progress: BackfillProgress[] = [];
    shopify.failPageOnCall = 2;
    await expect(runBackfill(deps, tenant, { onProgress: (p) => progress.push(p), retry: NO_READ_RETRY })).rejects.toThrow(/simulated crash/);
    expect(progress.map((p) => [p.customers, p.pages, p.lastCustomerId])).toEqual([[2, 1, '102']]);
    expect(await backfillProgress(store)).toContainEqual(expect.objectContaining({ tenant: tenant.id, customers: 2, pages: 1, finishedAt: null }));

    const resumed = await runBackfill(deps, tenant, { onProgress: (p) => progress.push(p) });
    expect(resumed.outcome).toBe('finished');
    expect(shopify.queries).toEqual([undefined, 'id:>102', 'id:>102', 'id:>104']);
    expect(progress.map((p) => [p.customers, p.pages, p.hubspotStatuses])).toEqual([
      [2, 1, 0],
      [4, 2, 2],
      [6, 3, 2],
    ]);
    expect(resumed.progress).toMatchObject({ tenant: tenant.id, customers: 6, pages: 3, hubspotStatuses: 2, lastCustomerId: '106', finishedAt: NOW });

    // Each customer once: one subject per customer, the events that differ, no repeats.
    const customers = await store.db.selectFrom('subject_identity').select(['value', 'subject_id']).where('tenant_id', '=', tenant.id).where('kind', '=', 'shopify_customer').execute();
    expect(customers.map((c) => c.value).sort()).toEqual(['101', '102', '103', '104', '105', '106']);
    expect(new Set(customers.map((c) => c.subject_id)).size).toBe(6);
    const name = new Map(customers.map((c) => [c.subject_id, c.value]));
    const recorded = (await events(tenant)).map((e) => [name.get(e.subject_id), e.channel, e.purpose, e.kind, e.source, e.occurred_at]);
    expect(recorded.sort()).toEqual([
      ['101', 'email', '*', 'grant', 'shopify', '2026-03-01T10:00:00.000Z'],
      ['102', 'email', '*', 'withdraw', 'shopify', '2026-03-02T10:00:00.000Z'],
      ['103', 'email', 'newsletter', 'grant', 'hubspot', '2026-04-01T00:00:00.000Z'],
      ['103', 'sms', '*', 'grant', 'shopify', '2026-03-03T10:00:00.000Z'],
      ['104', 'email', '*', 'grant', 'shopify', '2026-03-04T10:00:00.000Z'],
      ['106', 'email', '*', 'pending', 'shopify', '2026-03-06T10:00:00.000Z'],
    ]);
    const first = (await events(tenant)).find((e) => name.get(e.subject_id) === '101')!;
    expect(JSON.parse(first.evidence)).toEqual({ affirmative: false, note: `backfill: Shopify state at ${NOW}`, shopifyState: 'SUBSCRIBED', optInLevel: 'single_opt_in' });
    expect(first.source_delivery_id).toMatch(new RegExp(`^backfill:${tenant.id}:shopify:101:[0-9a-f]{32}$`));
    expect(await subjectOf(tenant, 'hubspot_contact', '903')).toBe(await subjectOf(tenant, 'shopify_customer', '103'));
    expect(await subjectOf(tenant, 'phone', '+31612345678')).toBe(await subjectOf(tenant, 'shopify_customer', '103'));
    const profile = await store.db.selectFrom('subject_profile').select('country').where('subject_id', '=', (await subjectOf(tenant, 'shopify_customer', '104'))!).executeTakeFirst();
    expect(profile).toEqual({ country: 'BE' });
    expect(await allowed(tenant, { email: 'ana@example.com' })).toBe(true);
    expect(await allowed(tenant, { email: 'bo@example.com' })).toBe(false);
    expect(await allowed(tenant, { phone: '+31612345678' }, 'sms')).toBe(true);
    expect(await allowed(tenant, { email: 'fa@example.com' })).toBe(false);

    // Finished: nothing to do. Restarted: every customer read again, nothing appended.
    const count = (await events(tenant)).length;
    expect((await runBackfill(deps, tenant)).outcome).toBe('already_finished');
    const again = await runBackfill(deps, tenant, { restart: true });
    expect(again).toMatchObject({ outcome: 'finished', progress: { customers: 6, pages: 3 } });
    expect((await events(tenant)).length).toBe(count);
  });

  it('a crash between a chunk’s Shopify records and its HubSpot statuses repeats nothing', async () => {
    const tenant = await newTenant();
    shopify.customers = [customer('201', 'gu@example.com', 'SUBSCRIBED'), customer('202', 'ha@example.com', 'UNSUBSCRIBED')];
    hubspot.statuses.set('gu@example.com', [sub('101', '2026-04-01T00:00:00.000Z')]);
    hubspot.failStatusesOnCall = 1;
    await expect(runBackfill(deps, tenant, { retry: NO_READ_RETRY })).rejects.toThrow(/simulated crash/);
    expect(await backfillProgress(store)).toContainEqual(expect.objectContaining({ tenant: tenant.id, customers: 0, lastCustomerId: null }));
    const afterCrash = (await events(tenant)).length;
    expect(afterCrash).toBe(2);
    expect(await runBackfill(deps, tenant)).toMatchObject({ outcome: 'finished', progress: { customers: 2, hubspotStatuses: 1 } });
    expect((await events(tenant)).length).toBe(afterCrash); // gu is granted already: HubSpot's SUBSCRIBED adds nothing
    expect(shopify.queries).toEqual([undefined, undefined]);
  });

  it('after an unsubscribe, running the backfill (again) re-subscribes nobody: the gate stays blocked and no subscribing write is enqueued', async () => {
    const tenant = await newTenant();
    const grant: SubjectlessEvent = { channel: 'email', purpose: '*', kind: 'grant', basis: 'consent', occurredAt: '2026-05-01T10:00:00.000Z', source: 'shopify', sourceDeliveryId: null, evidence: { affirmative: true, capturePoint: 'checkout' } };
    await store.db.transaction().execute((trx) =>
      applyEffects(trx, store.dialect, h.runtime, { tenantId: tenant.id, ledgerKey: 'seed:eve' }, [
        { kind: 'consent', identities: [{ kind: 'shopify_customer', value: '301' }, { kind: 'email', value: 'eve@example.com' }], events: [grant] },
      ]),
    );
    await dispatcher.drain();
    // She unsubscribes in HubSpot; the poll records it and Shopify is told.
    hubspot.contacts = [{ id: '931', email: 'eve@example.com', modifiedAt: '2026-06-01T11:59:50.000Z' }];
    hubspot.statuses.set('eve@example.com', [out('101', '2026-05-20T00:00:00.000Z'), out('202', '2026-05-20T00:00:00.000Z')]);
    expect(await pollTenant({ store, clock: h.clock, ids: h.runtime.ids, logger: h.runtime.logger, hubspot }, tenant, { force: true })).toMatchObject({ appended: 3 });
    await dispatcher.drain();
    expect(shopify.writes.flat()).toEqual([expect.objectContaining({ customerId: '301', state: 'UNSUBSCRIBED' })]);
    expect(await allowed(tenant, { email: 'eve@example.com' })).toBe(false);
    const enqueuedBefore = new Set((await outboxRows(tenant)).map((r) => r.id));
    hubspot.resetWrites();
    shopify.writes = [];

    // Stale or imported states in both platforms, even newer than her unsubscribe.
    shopify.customers = [customer('301', 'eve@example.com', 'SUBSCRIBED', { emailAt: '2026-05-25T00:00:00.000Z' })];
    hubspot.statuses.set('eve@example.com', [sub('101', '2026-05-26T00:00:00.000Z'), sub('202', '2026-05-26T00:00:00.000Z')]);
    expect((await runBackfill(deps, tenant)).outcome).toBe('finished');
    h.clock.set('2026-06-02T12:00:00.000Z');
    expect((await runBackfill(deps, tenant, { restart: true })).outcome).toBe('finished');

    const added = (await outboxRows(tenant)).filter((r) => !enqueuedBefore.has(r.id)).map((r) => ({ operation: r.operation, payload: JSON.parse(r.payload) as Record<string, unknown> }));
    expect(added.filter((r) => r.operation === 'hubspot.subscription' && r.payload.subscribed === true)).toEqual([]);
    expect(added.filter((r) => r.operation === 'shopify.consent' && r.payload.state === 'SUBSCRIBED')).toEqual([]);
    expect(added.filter((r) => r.operation !== 'hubspot.sync_contact')).toEqual([]);
    expect(await allowed(tenant, { email: 'eve@example.com' })).toBe(false);
    expect(await allowed(tenant, { shopifyCustomerId: '301' }, 'email', 'newsletter')).toBe(false);
    await dispatcher.drain();
    expect(hubspot.subscriptions).toEqual([]);
    expect(shopify.writes).toEqual([]);
    // Shopify's observation is on record (for the audit) and changed nothing; HubSpot's SUBSCRIBED equals our own
    // earlier subscribe writes (the write log) and is dropped as their echo.
    const observed = (await events(tenant)).filter((e) => e.kind === 'grant' && JSON.parse(e.evidence).affirmative === false);
    expect(observed.map((e) => [e.source, e.purpose, e.occurred_at])).toEqual([['shopify', '*', '2026-05-25T00:00:00.000Z']]);
  });
});

describe.each(testDialects())('backfill job on %s', (dialect) => {
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

  it('starts the backfill of a tenant never backfilled, goes on in slices, leaves finished and uninstalled tenants alone, and survives a failing platform', async () => {
    h.clock.set(NOW);
    await updateTenant(store.db, h.tenantB.id, { status: 'uninstalled' });
    const hubspot = new FakeHubspot();
    const shopify = new FakeShopify();
    shopify.pageSize = 2;
    shopify.customers = [customer('401', 'j1@example.com', 'SUBSCRIBED'), customer('402', 'j2@example.com', 'NOT_SUBSCRIBED'), customer('403', 'j3@example.com', 'UNSUBSCRIBED')];
    const deps: BackfillDeps = { store, clock: h.clock, ids: h.runtime.ids, logger: h.runtime.logger, hubspot, shopify, rangeQuery: customerIdRangeQuery };
    // sliceMs 0: one chunk (of one customer) per run.
    const job = backfillJob(deps, { sliceMs: 0, chunkSize: 1 });
    expect(job.name).toBe('backfill');
    expect(await job.run()).toBe(1);
    expect(await readCursor(store.db, h.tenantB.id, BACKFILL_CURSOR)).toBeUndefined();
    expect(await job.run()).toBe(1); // the rest of the page, without reading it again
    expect(shopify.queries).toEqual([undefined]);
    expect(await job.run()).toBe(1);
    expect(shopify.queries).toEqual([undefined, 'id:>402']);
    expect(await backfillProgress(store)).toEqual([expect.objectContaining({ tenant: h.tenantA.id, customers: 3, pages: 2, finishedAt: NOW })]);
    expect(await job.run()).toBe(0);
    expect(shopify.queries).toHaveLength(2);

    // A new tenant whose Shopify fails: logged and backed off, never thrown; its cursor waits to resume.
    const created = await addTenant(store, { ...h.runtime, secretBox: null }, { shopDomain: 'failing.myshopify.com', hubspotPortalId: '8899' });
    let monotonic = 0;
    shopify.failPageOnCall = 1;
    const failingJob = backfillJob(deps, { nowMs: () => monotonic, retry: NO_READ_RETRY });
    await expect(failingJob.run()).resolves.toBe(0);
    monotonic += 10_000;
    await failingJob.run(); // backing off: not called
    expect(shopify.queries).toHaveLength(3);
    expect(await backfillProgress(store)).toContainEqual(expect.objectContaining({ tenant: created.id, customers: 0, finishedAt: null }));
    monotonic += 60_000;
    expect(await failingJob.run()).toBe(3);
    expect(await backfillProgress(store)).toContainEqual(expect.objectContaining({ tenant: created.id, customers: 3, finishedAt: NOW }));
  });
});
