/**
 * The HubSpot reconciliation poll (src/sync/reconcile.ts) on SQLite and PostgreSQL, against recording fake ports
 * (test/helpers/sync-fakes.ts): changes are recorded through the ledger (and so the outbox, by the sync policy),
 * dispatched by the real dispatcher and handlers. Plus the pure observation table.
 */
import { EMPTY_STATE, type ConsentState } from '../../src/domain/consent';
import { checkRecipients, parseGateRequest } from '../../src/gate/gate';
import { applyEffects } from '../../src/inbox/apply';
import { SYNC_CLAIM_SIZE } from '../../src/main';
import { OutboxDispatcher } from '../../src/outbox/dispatcher';
import type { Store } from '../../src/store/database';
import { readCursor } from '../../src/store/cursor.repository';
import { recordWrites } from '../../src/store/sync-write.repository';
import { hubspotSubscriptionFingerprint } from '../../src/sync/echo';
import { syncHandlers } from '../../src/sync/handlers';
import { planHubspotObservation, pollBackoffMs, PollInterrupted, pollTenant, RECONCILE_CURSOR, reconcileJob, type ObservationInput, type ReconcileDeps } from '../../src/sync/reconcile';
import { PlatformCallError } from '../../src/sync/ports';
import { NO_READ_RETRY } from '../../src/sync/retry';
import { addTenant, setTenantSettings, type Tenant } from '../../src/tenants/tenants';
import { FakeHubspot, FakeShopify, shopifyGrant } from '../helpers/sync-fakes';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { createHarness, type Harness } from '../helpers/webhooks';

const PURPOSES = [
  { id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: ['101'], categoryGroups: [] },
  { id: 'shoes', label: 'Shoe offers', hubspotSubscriptionTypeIds: ['202'], categoryGroups: ['footwear'] },
];


const out = (type: string, timestamp: string | null) => ({ subscriptionTypeId: type, subscribed: false, legalBasis: null, timestamp });
const sub = (type: string, timestamp: string | null, legalBasis: string | null = 'CONSENT_WITH_NOTICE') => ({ subscriptionTypeId: type, subscribed: true, legalBasis, timestamp });

describe.each(testDialects())('reconciliation poll on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let hubspot: FakeHubspot;
  let shopify: FakeShopify;
  let dispatcher: OutboxDispatcher;
  let deps: ReconcileDeps;
  let tenants = 0;
  let deliveries = 0;

  async function newTenant(settings: Record<string, unknown> = {}): Promise<Tenant> {
    tenants += 1;
    const created = await addTenant(store, { ...h.runtime, secretBox: null }, { shopDomain: `poll-${tenants}.myshopify.com`, hubspotPortalId: String(700 + tenants) });
    return setTenantSettings(store, h.runtime, created.id, { ...created.settings, shopCountry: 'NL', purposes: PURPOSES, ...settings });
  }
  async function apply(tenant: Tenant, effects: Parameters<typeof applyEffects>[4]): Promise<string> {
    deliveries += 1;
    return store.db.transaction().execute((trx) => applyEffects(trx, store.dialect, h.runtime, { tenantId: tenant.id, ledgerKey: `test:${deliveries}` }, effects));
  }
  const customer = (id: string, email: string) => [
    { kind: 'shopify_customer' as const, value: id },
    { kind: 'email' as const, value: email },
  ];
  async function allowed(tenant: Tenant, recipient: Record<string, string>, purpose = '*'): Promise<boolean> {
    const response = await checkRecipients(store, tenant, parseGateRequest({ channel: 'email', purpose, recipients: [recipient] }), h.clock.now());
    return response.results[0]!.allowed;
  }
  async function events(tenant: Tenant) {
    return store.db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenant.id).orderBy('seq').execute();
  }
  async function outbox(tenant: Tenant) {
    const rows = await store.db.selectFrom('outbox').selectAll().where('tenant_id', '=', tenant.id).orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => ({ operation: r.operation, status: r.status, payload: JSON.parse(r.payload) as Record<string, unknown> }));
  }

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    shopify = new FakeShopify();
    hubspot = new FakeHubspot();
    dispatcher = new OutboxDispatcher(
      { store, clock: h.clock, logger: h.runtime.logger, random: () => 0.5, handlers: syncHandlers({ store, clock: h.clock, logger: h.runtime.logger, hubspot, shopify }) },
      { batchSize: SYNC_CLAIM_SIZE },
    );
    deps = { store, clock: h.clock, ids: h.runtime.ids, logger: h.runtime.logger, hubspot };
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });
  beforeEach(() => {
    h.clock.set('2026-06-01T12:00:00.000Z');
    hubspot.contacts = [];
    hubspot.statuses = new Map();
    hubspot.searches = [];
    hubspot.statusReads = [];
    hubspot.pageSize = 200;
    hubspot.resetWrites();
    shopify.writes = [];
  });

  it('records a HubSpot unsubscribe: the gate blocks, and Shopify gets UNSUBSCRIBED for the customer; polling the same state again appends nothing', async () => {
    const tenant = await newTenant();
    await apply(tenant, [{ kind: 'consent', identities: customer('7001', 'ana@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    await dispatcher.drain(); // our subscribe writes reach HubSpot
    hubspot.resetWrites();
    expect(await allowed(tenant, { email: 'ana@example.com' })).toBe(true);

    hubspot.contacts = [{ id: '501', email: 'Ana@Example.com', modifiedAt: '2026-06-01T11:59:50.000Z' }];
    hubspot.statuses.set('ana@example.com', [out('101', '2026-05-20T08:00:00.000Z'), out('202', '2026-05-20T08:00:00.000Z')]);
    const first = await pollTenant(deps, tenant, { force: true });
    expect(first).toMatchObject({ outcome: 'done', contacts: 1, appended: 3, deferred: 0 });

    const recorded = (await events(tenant)).filter((e) => e.source === 'hubspot');
    expect(recorded.map((e) => [e.purpose, e.kind, e.occurred_at]).sort()).toEqual([
      ['*', 'withdraw', '2026-05-20T08:00:00.000Z'],
      ['newsletter', 'withdraw', '2026-05-20T08:00:00.000Z'],
      ['shoes', 'withdraw', '2026-05-20T08:00:00.000Z'],
    ]);
    expect(JSON.parse(recorded[0]!.evidence)).toMatchObject({ affirmative: false, note: 'observed in HubSpot at 2026-06-01T12:00:00.000Z' });
    expect(recorded[0]!.source_delivery_id).toMatch(new RegExp(`^reconcile:${tenant.id}:501:[0-9a-f]{32}$`));
    expect(await allowed(tenant, { email: 'ana@example.com' })).toBe(false);
    expect(await allowed(tenant, { hubspotContactId: '501' })).toBe(false); // the contact id is now an identity
    expect(await allowed(tenant, { shopifyCustomerId: '7001' }, 'newsletter')).toBe(false);

    const shopifyRows = (await outbox(tenant)).filter((r) => r.operation === 'shopify.consent');
    expect(shopifyRows).toEqual([expect.objectContaining({ status: 'pending', payload: expect.objectContaining({ channel: 'email', state: 'UNSUBSCRIBED', consentUpdatedAt: '2026-05-20T08:00:00.000Z' }) })]);
    // Nothing goes back to HubSpot's subscriptions (the change came from there); the gate properties do.
    expect((await outbox(tenant)).filter((r) => r.operation === 'hubspot.subscription' && r.status === 'pending')).toEqual([]);
    await dispatcher.drain();
    expect(shopify.writes.flat()).toEqual([expect.objectContaining({ customerId: '7001', channel: 'email', state: 'UNSUBSCRIBED' })]);
    expect(hubspot.subscriptions).toEqual([]);

    // Polled again (the 30 s overlap returns the contact): the same state appends nothing and enqueues nothing.
    const before = { events: (await events(tenant)).length, outbox: (await outbox(tenant)).length };
    h.clock.set('2026-06-01T12:10:00.000Z');
    expect(await pollTenant(deps, tenant)).toMatchObject({ outcome: 'done', contacts: 1, appended: 0 });
    expect({ events: (await events(tenant)).length, outbox: (await outbox(tenant)).length }).toEqual(before);
  });

  it('drops echoes of our own writes, and does not read a time-less "not subscribed" (HubSpot NOT_SPECIFIED) as an opt-out', async () => {
    const tenant = await newTenant();
    await apply(tenant, [{ kind: 'consent', identities: customer('7002', 'bo@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    await apply(tenant, [{ kind: 'identify', identities: customer('7003', 'cy@example.com'), profile: null }]);
    await dispatcher.drain();
    // Our own unsubscribe of bo's types (say by an earlier change) is in the write log; cy's subscribe too.
    await recordWrites(store.db, tenant.id, [hubspotSubscriptionFingerprint('bo@example.com', '101', false), hubspotSubscriptionFingerprint('bo@example.com', '202', false)], '2026-06-01T11:00:00.000Z');
    await recordWrites(store.db, tenant.id, [hubspotSubscriptionFingerprint('cy@example.com', '101', true)], '2026-06-01T11:00:00.000Z');
    hubspot.contacts = [
      { id: '502', email: 'bo@example.com', modifiedAt: '2026-06-01T11:59:40.000Z' },
      { id: '503', email: 'cy@example.com', modifiedAt: '2026-06-01T11:59:41.000Z' },
      { id: '504', email: 'di@example.com', modifiedAt: '2026-06-01T11:59:42.000Z' },
    ];
    hubspot.statuses.set('bo@example.com', [out('101', '2026-05-25T00:00:00.000Z'), out('202', '2026-05-25T00:00:00.000Z')]);
    hubspot.statuses.set('cy@example.com', [sub('101', '2026-05-25T00:00:00.000Z'), out('202', null)]);
    hubspot.statuses.set('di@example.com', [out('101', null), out('202', null)]);
    const before = (await events(tenant)).length;
    expect(await pollTenant(deps, tenant, { force: true })).toMatchObject({ outcome: 'done', contacts: 3, appended: 0 });
    expect((await events(tenant)).length).toBe(before);
    expect(await allowed(tenant, { email: 'bo@example.com' })).toBe(true);
    // di was unknown and nothing was recorded for her: no subject is created.
    expect(await store.db.selectFrom('subject_identity').select('subject_id').where('tenant_id', '=', tenant.id).where('value', '=', 'di@example.com').execute()).toEqual([]);
    // cy's contact id is linked to her subject even though nothing else changed.
    expect(await store.db.selectFrom('subject_identity').select('kind').where('tenant_id', '=', tenant.id).where('value', '=', '503').execute()).toEqual([{ kind: 'hubspot_contact' }]);
  });

  it('records a HubSpot subscription as an observed grant of the purpose only, never over a withdrawal, and never a subscription on legitimate interest', async () => {
    const tenant = await newTenant();
    await apply(tenant, [{ kind: 'identify', identities: customer('7004', 'ed@example.com'), profile: null }]);
    await apply(tenant, [{ kind: 'consent', identities: customer('7005', 'fa@example.com'), events: [{ ...shopifyGrant('2026-05-10T00:00:00.000Z'), kind: 'withdraw', basis: null, evidence: {} }] }]);
    hubspot.contacts = [
      { id: '505', email: 'ed@example.com', modifiedAt: '2026-06-01T11:59:40.000Z' },
      { id: '506', email: 'fa@example.com', modifiedAt: '2026-06-01T11:59:41.000Z' },
      { id: '507', email: 'gu@example.com', modifiedAt: '2026-06-01T11:59:42.000Z' },
    ];
    hubspot.statuses.set('ed@example.com', [sub('101', '2026-05-15T00:00:00.000Z'), out('202', null)]);
    hubspot.statuses.set('fa@example.com', [sub('101', '2026-05-20T00:00:00.000Z'), sub('202', '2026-05-01T00:00:00.000Z')]);
    hubspot.statuses.set('gu@example.com', [sub('101', '2026-05-15T00:00:00.000Z', 'LEGITIMATE_INTEREST_CLIENT')]);
    const enqueuedBefore = (await outbox(tenant)).length;
    await pollTenant(deps, tenant, { force: true });
    const recorded = (await events(tenant)).filter((e) => e.source === 'hubspot');
    // ed: newsletter granted; fa: only the subscription newer than her withdrawal is recorded (and changes nothing).
    expect(recorded.map((e) => [e.subject_id === recorded[0]!.subject_id ? 'ed' : 'fa', e.purpose, e.kind, e.occurred_at])).toEqual([
      ['ed', 'newsletter', 'grant', '2026-05-15T00:00:00.000Z'],
      ['fa', 'newsletter', 'grant', '2026-05-20T00:00:00.000Z'],
    ]);
    expect(JSON.parse(recorded[0]!.evidence)).toEqual({ affirmative: false, note: 'observed in HubSpot at 2026-06-01T12:00:00.000Z', hubspotSubscriptionTypeIds: ['101'] });
    expect(await allowed(tenant, { email: 'ed@example.com' }, 'newsletter')).toBe(true);
    expect(await allowed(tenant, { email: 'ed@example.com' }, 'shoes')).toBe(false);
    expect(await allowed(tenant, { email: 'fa@example.com' }, 'newsletter')).toBe(false); // rule 3
    // A purpose grant is not a Shopify consent ('*'), and it came from HubSpot: no platform consent write at all.
    const writes = (await outbox(tenant)).slice(enqueuedBefore);
    expect(writes.map((r) => r.operation)).toEqual(['hubspot.sync_contact', 'hubspot.sync_contact']);
  });

  it('defers an opt-out older than our pending subscribe write, and records it once the write has gone out and HubSpot still says so', async () => {
    const tenant = await newTenant();
    await apply(tenant, [{ kind: 'consent', identities: customer('7006', 'ha@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    // Not dispatched yet: HubSpot does not know the grant. Its "opted out" on 05-20 predates our write.
    hubspot.contacts = [{ id: '508', email: 'ha@example.com', modifiedAt: '2026-06-01T11:59:40.000Z' }];
    hubspot.statuses.set('ha@example.com', [out('101', '2026-05-20T00:00:00.000Z'), out('202', '2026-05-20T00:00:00.000Z')]);
    expect(await pollTenant(deps, tenant, { force: true })).toMatchObject({ appended: 0, deferred: 2 }); // both types wait
    expect(await allowed(tenant, { email: 'ha@example.com' })).toBe(true);
    // The writes go out (v3 would refuse to resubscribe; the fake accepts, HubSpot's state stays opted out).
    await dispatcher.drain();
    h.clock.set('2026-06-01T12:06:00.000Z');
    expect(await pollTenant(deps, tenant)).toMatchObject({ outcome: 'done', appended: 3, deferred: 0 });
    expect(await allowed(tenant, { email: 'ha@example.com' })).toBe(false);
  });

  it('reads a deferred contact again at the next cycles even if it never changes again (our pending write died)', async () => {
    const tenant = await newTenant({ reconciliationIntervalMinutes: 5 });
    await apply(tenant, [{ kind: 'consent', identities: customer('7009', 'ia@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    hubspot.contacts = [{ id: '509', email: 'ia@example.com', modifiedAt: '2026-06-01T11:59:50.000Z' }];
    // HubSpot dates the opt-out after the grant, but before our subscribe write was enqueued (12:00): deferred.
    hubspot.statuses.set('ia@example.com', [out('101', '2026-06-01T11:59:50.000Z'), out('202', '2026-06-01T11:59:50.000Z')]);
    h.clock.set('2026-06-01T12:00:10.000Z');
    expect(await pollTenant(deps, tenant, { force: true })).toMatchObject({ appended: 0, deferred: 2 });
    const cursor = async () => JSON.parse((await readCursor(store.db, tenant.id, RECONCILE_CURSOR))!.value) as { recheck?: unknown };
    expect((await cursor()).recheck).toEqual([{ contactId: '509', email: 'ia@example.com' }]);

    // Our writes die (never sent), and ia never changes again: search lists only another contact now.
    await store.db.updateTable('outbox').set({ status: 'dead' }).where('tenant_id', '=', tenant.id).where('status', '=', 'pending').execute();
    hubspot.contacts = [{ id: '510', email: 'ib@example.com', modifiedAt: '2026-06-01T12:10:00.000Z' }];
    h.clock.set('2026-06-01T12:20:00.000Z');
    hubspot.statusReads = [];
    expect(await pollTenant(deps, tenant)).toMatchObject({ outcome: 'done', appended: 3, deferred: 0 });
    expect(hubspot.statusReads).toEqual([['ia@example.com'], ['ib@example.com']]); // the recheck first
    expect(await allowed(tenant, { email: 'ia@example.com' })).toBe(false);
    expect((await cursor()).recheck).toBeUndefined();
  });

  it('persists the cursor, pages by keyset, overlaps a new cycle by 30 s, and only advances over recorded contacts', async () => {
    const tenant = await newTenant({ reconciliationIntervalMinutes: 5 });
    hubspot.pageSize = 2;
    hubspot.contacts = [
      { id: '601', email: 'p1@example.com', modifiedAt: '2026-06-01T11:59:40.000Z' },
      { id: '602', email: 'p2@example.com', modifiedAt: '2026-06-01T11:59:45.000Z' },
      { id: '603', email: null, modifiedAt: '2026-06-01T11:59:45.000Z' },
      { id: '604', email: 'p4@example.com', modifiedAt: '2026-06-01T11:59:50.000Z' },
    ];
    const first = await pollTenant(deps, tenant);
    // The first cycle covers from now on (history is the backfill's): it starts 30 s before now, and the cursor
    // stays at now, the newest time it vouches for.
    expect(first).toMatchObject({ outcome: 'done', contacts: 4, position: { modifiedAt: '2026-06-01T12:00:00.000Z', caughtUp: true } });
    // Pages: each from the newest time of the previous one (its contacts there are skipped); a page that does
    // not get past that time goes on with HubSpot's own paging.
    expect(hubspot.searches).toEqual([
      { since: '2026-06-01T11:59:30.000Z', after: null },
      { since: '2026-06-01T11:59:45.000Z', after: null },
      { since: '2026-06-01T11:59:45.000Z', after: '2' },
    ]);
    expect(hubspot.statusReads.flat()).toEqual(['p1@example.com', 'p2@example.com', 'p4@example.com']);
    const row = await readCursor(store.db, tenant.id, RECONCILE_CURSOR);
    expect(JSON.parse(row!.value)).toEqual({ modifiedAt: '2026-06-01T12:00:00.000Z', caughtUp: true });

    // Not due before the interval; then the new cycle starts 30 s before the cursor.
    hubspot.searches = [];
    h.clock.set('2026-06-01T12:03:00.000Z');
    expect(await pollTenant(deps, tenant)).toMatchObject({ outcome: 'not_due' });
    expect(hubspot.searches).toEqual([]);
    h.clock.set('2026-06-01T12:05:01.000Z');
    hubspot.contacts.push({ id: '605', email: 'p5@example.com', modifiedAt: '2026-06-01T12:04:00.000Z' }, { id: '606', email: 'p6@example.com', modifiedAt: '2026-06-01T12:04:30.000Z' });
    hubspot.statusReads = [];
    hubspot.failStatusesOnCall = 5; // p1, p2, p4 again (the overlap), p5, then p6's chunk fails: the cursor stops at p5
    await expect(pollTenant(deps, tenant, { chunkSize: 1, retry: NO_READ_RETRY })).rejects.toThrow(/simulated crash/);
    expect(hubspot.searches[0]).toEqual({ since: '2026-06-01T11:59:30.000Z', after: null });
    expect(JSON.parse((await readCursor(store.db, tenant.id, RECONCILE_CURSOR))!.value)).toEqual({ modifiedAt: '2026-06-01T12:04:00.000Z', caughtUp: false });

    // An unfinished cycle goes on exactly from the cursor (no overlap) when taken up again.
    hubspot.searches = [];
    hubspot.statusReads = [];
    expect(await pollTenant(deps, tenant, { force: true })).toMatchObject({ outcome: 'done', position: { modifiedAt: '2026-06-01T12:04:30.000Z', caughtUp: true } });
    expect(hubspot.searches[0]).toEqual({ since: '2026-06-01T12:04:00.000Z', after: null });
    expect(hubspot.statusReads.flat()).toEqual(['p5@example.com', 'p6@example.com']);
  });

  it('retries a read that fails transiently within the run, so the cycle completes without a second run', async () => {
    const tenant = await newTenant();
    hubspot.contacts = [
      { id: '631', email: 'r1@example.com', modifiedAt: '2026-06-01T11:59:40.000Z' },
      { id: '632', email: 'r2@example.com', modifiedAt: '2026-06-01T11:59:50.000Z' },
    ];
    hubspot.statuses.set('r2@example.com', [out('101', '2026-06-01T11:59:50.000Z')]);
    await apply(tenant, [{ kind: 'consent', identities: customer('7632', 'r2@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    await dispatcher.drain(); // our subscribe writes reach HubSpot (a pending one would defer the opt-out)
    hubspot.failStatusesOnCall = 2; // r2's read answers 502 once
    const result = await pollTenant(deps, tenant, { force: true, chunkSize: 1, retry: { attempts: 3, baseMs: 1, capMs: 2, maxRetryAfterMs: 0, budgetMs: 10_000 } });
    expect(result).toMatchObject({ outcome: 'done', contacts: 2, appended: 1, position: { caughtUp: true } });
    expect(hubspot.statusReads).toEqual([['r1@example.com'], ['r2@example.com'], ['r2@example.com']]);
    expect(await allowed(tenant, { email: 'r2@example.com' }, 'newsletter')).toBe(false);
  });

  it('an interrupted cycle stays with its job: taken up again from the cursor after a 5 s backoff, not after the 5 min lease', async () => {
    const tenant = await newTenant({ reconciliationIntervalMinutes: 60 });
    // Only this tenant's portal has contacts (the job polls every tenant of the suite).
    const own = new (class extends FakeHubspot {
      override async contactsModifiedSince(t: Tenant, since: string, after: string | null) {
        return t.id === tenant.id ? super.contactsModifiedSince(t, since, after) : { contacts: [], next: null };
      }
    })();
    own.contacts = [
      { id: '641', email: 'i1@example.com', modifiedAt: '2026-06-01T11:59:40.000Z' },
      { id: '642', email: 'i2@example.com', modifiedAt: '2026-06-01T11:59:50.000Z' },
    ];
    let monotonic = 0;
    const ownDeps = { ...deps, hubspot: own };
    const job = reconcileJob(ownDeps, { nowMs: () => monotonic, chunkSize: 1, retry: NO_READ_RETRY });
    own.failStatusesOnCall = 2; // i1 recorded, then i2's read fails
    await job.run();
    const cursor = async () => JSON.parse((await readCursor(store.db, tenant.id, RECONCILE_CURSOR))!.value) as unknown;
    expect(await cursor()).toEqual({ modifiedAt: '2026-06-01T11:59:40.000Z', caughtUp: false });

    // Another process has to wait for the lease (the wall clock has not moved).
    own.statusReads = [];
    await reconcileJob(ownDeps, { nowMs: () => monotonic, chunkSize: 1, retry: NO_READ_RETRY }).run();
    expect(own.statusReads).toEqual([]);
    // This one waits out its 5 s backoff, then goes on from the cursor.
    monotonic += 4_000;
    await job.run();
    expect(own.statusReads).toEqual([]);
    monotonic += 2_000;
    const before = (await events(tenant)).length;
    await job.run();
    // From the cursor's millisecond on (i1 shares it and is read again; recording it again appends nothing).
    expect(own.statusReads).toEqual([['i1@example.com'], ['i2@example.com']]);
    expect((await events(tenant)).length).toBe(before);
    // Caught up at the newest contact recorded (the next cycle overlaps from there, so nothing is skipped).
    expect(await cursor()).toEqual({ modifiedAt: '2026-06-01T11:59:50.000Z', caughtUp: true });
  });

  it('backs off 5 s doubling after transient failures (at least the Retry-After), 1 min doubling after others, never past the interval', () => {
    const transient = new PlatformCallError('hubspot', '502', { status: 502, retryable: true, kind: 'server_error' });
    const limited = new PlatformCallError('hubspot', '429', { status: 429, retryable: true, retryAfterMs: 30_000, kind: 'rate_limited' });
    const auth = new PlatformCallError('hubspot', '401', { status: 401, retryable: false, kind: 'auth' });
    const hour = 3_600_000;
    expect([1, 2, 3].map((n) => pollBackoffMs(transient, n, hour))).toEqual([5_000, 10_000, 20_000]);
    expect(pollBackoffMs(new PollInterrupted(transient, 'x'), 1, hour)).toBe(5_000);
    expect(pollBackoffMs(limited, 1, hour)).toBe(30_000);
    expect([1, 2].map((n) => pollBackoffMs(auth, n, hour))).toEqual([60_000, 120_000]);
    expect(pollBackoffMs(new Error('database gone'), 1, hour)).toBe(60_000);
    expect(pollBackoffMs(transient, 10, 60_000)).toBe(60_000);
  });

  it('follows HubSpot paging when a whole page shares one millisecond', async () => {
    const tenant = await newTenant();
    hubspot.pageSize = 2;
    const at = '2026-06-01T11:59:45.000Z';
    hubspot.contacts = ['611', '612', '613', '614', '615'].map((id) => ({ id, email: `m${id}@example.com`, modifiedAt: at }));
    expect(await pollTenant(deps, tenant, { force: true })).toMatchObject({ outcome: 'done', contacts: 5 });
    expect(hubspot.searches).toEqual([
      { since: '2026-06-01T11:59:30.000Z', after: null },
      { since: at, after: null },
      { since: at, after: '2' },
      { since: at, after: '4' },
    ]);
    expect(hubspot.statusReads.flat().sort()).toEqual(['m611@example.com', 'm612@example.com', 'm613@example.com', 'm614@example.com', 'm615@example.com']);
  });

});

describe.each(testDialects())('reconcile job on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store); // tenants A and B: no purposes mapped
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  class FailingHubspot extends FakeHubspot {
    failures = 0;
    override async contactsModifiedSince(): Promise<never> {
      this.failures += 1;
      throw new Error('HubSpot is down');
    }
  }

  it('polls each due tenant once per interval, skips unmapped and uninstalled ones, and backs off a failing platform without throwing', async () => {
    h.clock.set('2026-06-01T12:00:00.000Z');
    const created = await addTenant(store, { ...h.runtime, secretBox: null }, { shopDomain: 'job.myshopify.com', hubspotPortalId: '8801' });
    const tenant = await setTenantSettings(store, h.runtime, created.id, { ...created.settings, purposes: PURPOSES, reconciliationIntervalMinutes: 10 });
    const hubspot = new FakeHubspot();
    hubspot.contacts = [{ id: '621', email: 'j1@example.com', modifiedAt: '2026-06-01T11:59:45.000Z' }];
    hubspot.statuses.set('j1@example.com', [sub('101', '2026-05-01T00:00:00.000Z')]);
    const deps: ReconcileDeps = { store, clock: h.clock, ids: h.runtime.ids, logger: h.runtime.logger, hubspot };
    let monotonic = 0;
    const job = reconcileJob(deps, { nowMs: () => monotonic });
    expect(job.name).toBe('reconcile');
    expect(await job.run()).toBe(1); // j1's newsletter grant
    expect(hubspot.searches).toEqual([{ since: '2026-06-01T11:59:30.000Z', after: null }]);
    expect(await readCursor(store.db, h.tenantA.id, RECONCILE_CURSOR)).toBeUndefined();

    h.clock.set('2026-06-01T12:09:00.000Z');
    await job.run();
    expect(hubspot.searches).toHaveLength(1);
    h.clock.set('2026-06-01T12:10:01.000Z');
    expect(await job.run()).toBe(0); // same state: nothing appended
    expect(hubspot.searches).toHaveLength(2);

    const failing = new FailingHubspot();
    const failingJob = reconcileJob({ ...deps, hubspot: failing }, { nowMs: () => monotonic });
    h.clock.set('2026-06-01T12:30:00.000Z');
    await expect(failingJob.run()).resolves.toBe(0);
    monotonic += 30_000; // within the 1 min backoff
    await expect(failingJob.run()).resolves.toBe(0);
    expect(failing.failures).toBe(1);
    monotonic += 31_000;
    await failingJob.run();
    expect(failing.failures).toBe(2);
    // The failed polls left the cursor where the last recorded contact put it.
    expect(JSON.parse((await readCursor(store.db, tenant.id, RECONCILE_CURSOR))!.value)).toEqual({ modifiedAt: '2026-06-01T12:00:00.000Z', caughtUp: true });
  });
});

describe('planHubspotObservation', () => {
  const granted = (at: string): ConsentState => ({ ...EMPTY_STATE, status: 'granted', basis: 'consent', grantedAt: at, evidenceEventIds: ['e1'], lastEventAt: at });
  const base = (over: Partial<ObservationInput>): ObservationInput => ({
    settings: { purposes: PURPOSES },
    status: { email: 'x@example.com', statuses: [] },
    states: new Map([['*', granted('2026-05-01T00:00:00.000Z')]]),
    ownWrites: new Map(),
    inFlight: [],
    observedAt: '2026-06-01T12:00:00.000Z',
    deliveryKey: 'k',
    ...over,
  });

  it('a status equal to one of our writes is its echo only when not newer than that write (plus a minute for clocks)', () => {
    const wroteOut = (at: string) =>
      new Map([
        [hubspotSubscriptionFingerprint('x@example.com', '101', false), at],
        [hubspotSubscriptionFingerprint('x@example.com', '202', false), at],
      ]);
    const optedOutAt = (at: string) => ({ email: 'x@example.com', statuses: [out('101', at), out('202', at)] });
    // Our NOT_SUBSCRIBED of May 2 comes back dated May 2 (or a few seconds after our log): an echo, nothing recorded.
    expect(planHubspotObservation(base({ status: optedOutAt('2026-05-02T10:00:20.000Z'), ownWrites: wroteOut('2026-05-02T10:00:00.000Z') })).events).toEqual([]);
    // The person re-subscribed in the shop later (ledger granted May 3) and opts out in HubSpot on May 20: the same
    // statuses as our old write, but newer than it: a withdrawal, never taken for our echo.
    const later = planHubspotObservation(
      base({ status: optedOutAt('2026-05-20T09:00:00.000Z'), ownWrites: wroteOut('2026-05-02T10:00:00.000Z'), states: new Map([['*', granted('2026-05-03T00:00:00.000Z')]]) }),
    );
    expect(later.events.map((e) => [e.purpose, e.kind, e.occurredAt])).toEqual([
      ['newsletter', 'withdraw', '2026-05-20T09:00:00.000Z'],
      ['shoes', 'withdraw', '2026-05-20T09:00:00.000Z'],
      ['*', 'withdraw', '2026-05-20T09:00:00.000Z'],
    ]);
  });

  it('withdraws `*` only when every mapped type is opted out, with a time', () => {
    const one = planHubspotObservation(base({ status: { email: 'x@example.com', statuses: [out('101', '2026-05-10T00:00:00.000Z'), sub('202', '2026-04-01T00:00:00.000Z')] } }));
    expect(one.events.map((e) => [e.purpose, e.kind])).toEqual([['newsletter', 'withdraw']]);
    const partlyTimeless = planHubspotObservation(base({ status: { email: 'x@example.com', statuses: [out('101', '2026-05-10T00:00:00.000Z'), out('202', null)] } }));
    expect(partlyTimeless.events.map((e) => [e.purpose, e.kind])).toEqual([['newsletter', 'withdraw']]);
    const missingType = planHubspotObservation(base({ status: { email: 'x@example.com', statuses: [out('101', '2026-05-10T00:00:00.000Z')] } }));
    expect(missingType.events.map((e) => e.purpose)).toEqual(['newsletter']);
    const all = planHubspotObservation(base({ status: { email: 'x@example.com', statuses: [out('101', '2026-05-10T00:00:00.000Z'), out('202', '2026-05-12T00:00:00.000Z')] } }));
    expect(all.events.map((e) => [e.purpose, e.kind, e.occurredAt])).toEqual([
      ['newsletter', 'withdraw', '2026-05-10T00:00:00.000Z'],
      ['shoes', 'withdraw', '2026-05-12T00:00:00.000Z'],
      ['*', 'withdraw', '2026-05-12T00:00:00.000Z'],
    ]);
  });

  it('an opt-out older than the grant, or with nothing to contradict, records nothing; a live soft opt-in is contradicted', () => {
    const statuses = [out('101', '2026-04-10T00:00:00.000Z'), out('202', '2026-04-10T00:00:00.000Z')];
    expect(planHubspotObservation(base({ status: { email: 'x@example.com', statuses } })).events).toEqual([]);
    expect(planHubspotObservation(base({ states: new Map(), status: { email: 'x@example.com', statuses } })).events).toEqual([]);
    const softOptIn: ConsentState = { ...EMPTY_STATE, softOptIn: { footwear: { earnedAt: '2026-05-01T00:00:00.000Z', validUntil: '2027-01-01T00:00:00.000Z', eventId: 's1', orderId: '9' } } };
    const ended = planHubspotObservation(base({ states: new Map([['*', softOptIn]]), status: { email: 'x@example.com', statuses } }));
    expect(ended.events.map((e) => [e.purpose, e.kind])).toEqual([
      ['newsletter', 'withdraw'],
      ['shoes', 'withdraw'],
      ['*', 'withdraw'],
    ]);
  });

  it('a SUBSCRIBED status without a time is dated by the observation; unmapped types are ignored', () => {
    const plan = planHubspotObservation(base({ states: new Map(), status: { email: 'x@example.com', statuses: [sub('101', null), sub('999', '2026-05-01T00:00:00.000Z'), out('998', '2026-05-01T00:00:00.000Z')] } }));
    expect(plan.events.map((e) => [e.purpose, e.kind, e.occurredAt, e.basis])).toEqual([['newsletter', 'grant', '2026-06-01T12:00:00.000Z', 'consent']]);
  });
});
