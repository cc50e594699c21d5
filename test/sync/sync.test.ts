/**
 * The outbound sync end to end inside the process, on SQLite and PostgreSQL: changes applied through the worker's
 * write path (applyEffects → ledger → outbox in the same transaction), dispatched by the real dispatcher and the
 * sync handlers to recording HubspotPort / ShopifyConsentPort implementations (the connectors themselves have
 * their own nock contract suites). Checks the sync policy table (README), batching, echo suppression and that a
 * single change never causes a second write.
 */
import type { InboundEffect, SubjectlessEvent } from '../../src/domain/inbound';
import { expireDue } from '../../src/consent/expiry';
import { applyEffects } from '../../src/inbox/apply';
import { OutboxDispatcher } from '../../src/outbox/dispatcher';
import { SYNC_CLAIM_SIZE } from '../../src/main';
import { syncHandlers } from '../../src/sync/handlers';
import type { Store } from '../../src/store/database';
import { setTenantSettings, type Tenant } from '../../src/tenants/tenants';
import { FakeHubspot, FakeShopify, shopifyGrant } from '../helpers/sync-fakes';
import { createHarness, type Harness } from '../helpers/webhooks';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

/** The shared fake, with every email known to HubSpot (its contact id derived from the email). */
class RecordingHubspot extends FakeHubspot {
  override async contactIdsByEmail(_t: Tenant, emails: readonly string[]): Promise<Map<string, string>> {
    return new Map(emails.map((e) => [e, `hs-${e}`]));
  }
}


describe.each(testDialects())('outbound sync on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let tenant: Tenant;
  let hubspot: RecordingHubspot;
  let shopify: FakeShopify;
  let dispatcher: OutboxDispatcher;
  let delivery = 0;

  async function apply(effects: InboundEffect[]): Promise<string> {
    delivery += 1;
    return store.db.transaction().execute((trx) => applyEffects(trx, store.dialect, h.runtime, { tenantId: tenant.id, ledgerKey: `sync:${delivery}` }, effects));
  }
  const customer = (id: string, email: string) => [
    { kind: 'shopify_customer' as const, value: id },
    { kind: 'email' as const, value: email },
  ];
  const allSubscriptions = () => hubspot.subscriptions.flat();
  const allShopify = () => shopify.writes.flat();

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    tenant = await setTenantSettings(store, h.runtime, h.tenantA.id, {
      ...h.tenantA.settings,
      shopCountry: 'NL',
      purposes: [
        { id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: ['101'], categoryGroups: [] },
        { id: 'shoes', label: 'Shoe offers', hubspotSubscriptionTypeIds: ['202'], categoryGroups: ['footwear'] },
      ],
    });
    hubspot = new RecordingHubspot();
    shopify = new FakeShopify();
    dispatcher = new OutboxDispatcher(
      { store, clock: h.clock, logger: h.runtime.logger, random: () => 0.5, handlers: syncHandlers({ store, clock: h.clock, logger: h.runtime.logger, hubspot, shopify }) },
      { batchSize: SYNC_CLAIM_SIZE },
    );
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });
  beforeEach(() => {
    hubspot.resetWrites();
    shopify.writes = [];
  });

  it('a Shopify opt-in subscribes the mapped HubSpot types with CONSENT_WITH_NOTICE, writes the gate properties, and nothing back to Shopify', async () => {
    await apply([{ kind: 'consent', identities: customer('1', 'ana@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    await dispatcher.drain();
    expect(allSubscriptions().map((w) => [w.email, w.subscriptionTypeId, w.subscribed, w.legalBasis, w.freshAffirmativeAct]).sort()).toEqual([
      ['ana@example.com', '101', true, 'CONSENT_WITH_NOTICE', true],
      ['ana@example.com', '202', true, 'CONSENT_WITH_NOTICE', true],
    ]);
    expect(allSubscriptions()[0]!.legalBasisExplanation).toMatch(/grant at checkout .* \(shopify; evidence event /);
    expect(hubspot.properties.flat()).toEqual([expect.objectContaining({ email: 'ana@example.com', properties: expect.objectContaining({ consent_bridge_email_gate: 'allowed', consent_bridge_basis: 'consent' }) })]);
    expect(hubspot.lists).toEqual([{ listId: 'L1', add: [], remove: ['hs-ana@example.com'] }]);
    expect(allShopify()).toEqual([]);
    // Nothing owed any more: a second drain sends nothing.
    hubspot.resetWrites();
    expect(await dispatcher.drain()).toBe(0);
  });

  it('a HubSpot SMS opt-in reaches Shopify once; the Shopify webhook echoing that write is dropped and writes nothing', async () => {
    await apply([{ kind: 'identify', identities: customer('2', 'bo@example.com'), profile: null }]);
    const hubspotGrant: SubjectlessEvent = { channel: 'sms', purpose: '*', kind: 'grant', basis: 'consent', occurredAt: '2026-05-02T09:00:00.000Z', source: 'hubspot', sourceDeliveryId: null, evidence: { affirmative: true, capturePoint: 'form:signup' } };
    await apply([{ kind: 'consent', identities: [{ kind: 'email', value: 'bo@example.com' }], events: [hubspotGrant] }]);
    await dispatcher.drain();
    expect(allShopify()).toEqual([expect.objectContaining({ customerId: '2', channel: 'sms', state: 'SUBSCRIBED', consentUpdatedAt: '2026-05-02T09:00:00.000Z' })]);
    expect(allSubscriptions()).toEqual([]); // it came from HubSpot, and SMS has no subscription API
    expect(hubspot.properties.flat()[0]!.properties).toMatchObject({ consent_bridge_sms_consent: 'subscribed' });

    // Shopify now sends customers_marketing_consent/update for our own write.
    hubspot.resetWrites();
    shopify.writes = [];
    const echo: SubjectlessEvent = { channel: 'sms', purpose: '*', kind: 'grant', basis: 'consent', occurredAt: '2026-05-02T09:00:00.000Z', source: 'shopify', sourceDeliveryId: null, evidence: { affirmative: false } };
    expect(await apply([{ kind: 'consent', identities: [{ kind: 'shopify_customer', value: '2' }], events: [echo] }])).toContain('skipped: echo of our own write');
    expect(await dispatcher.drain()).toBe(0);
    expect(allShopify()).toEqual([]);
    expect(hubspot.properties).toEqual([]);
  });

  it('the echo of a write whose time had milliseconds comes back in whole seconds (Shopify keeps none) and is still dropped', async () => {
    await apply([{ kind: 'identify', identities: customer('22', 'di@example.com'), profile: null }]);
    const hubspotGrant: SubjectlessEvent = { channel: 'sms', purpose: '*', kind: 'grant', basis: 'consent', occurredAt: '2026-05-02T09:00:44.773Z', source: 'hubspot', sourceDeliveryId: null, evidence: { affirmative: true, capturePoint: 'form:signup' } };
    await apply([{ kind: 'consent', identities: [{ kind: 'email', value: 'di@example.com' }], events: [hubspotGrant] }]);
    await dispatcher.drain();
    expect(allShopify()).toEqual([expect.objectContaining({ customerId: '22', state: 'SUBSCRIBED', consentUpdatedAt: '2026-05-02T09:00:44.773Z' })]);
    hubspot.resetWrites();
    shopify.writes = [];
    const echo: SubjectlessEvent = { channel: 'sms', purpose: '*', kind: 'grant', basis: 'consent', occurredAt: '2026-05-02T09:00:44.000Z', source: 'shopify', sourceDeliveryId: null, evidence: { affirmative: true } };
    expect(await apply([{ kind: 'consent', identities: [{ kind: 'shopify_customer', value: '22' }], events: [echo] }])).toContain('skipped: echo of our own write');
    // A real change in the next second is not an echo.
    const later: SubjectlessEvent = { ...echo, occurredAt: '2026-05-02T09:00:45.000Z' };
    expect(await apply([{ kind: 'consent', identities: [{ kind: 'shopify_customer', value: '22' }], events: [later] }])).not.toContain('echo');
  });

  it('an objection through the gate unsubscribes in HubSpot and Shopify and puts the contact on the suppression list', async () => {
    await apply([{ kind: 'consent', identities: customer('3', 'cy@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    await dispatcher.drain();
    hubspot.resetWrites();
    const objection: SubjectlessEvent = { channel: 'email', purpose: '*', kind: 'object', basis: null, occurredAt: '2026-05-03T10:00:00.000Z', source: 'gate', sourceDeliveryId: null, evidence: { affirmative: true, capturePoint: 'gate-api' } };
    await apply([{ kind: 'consent', identities: [{ kind: 'email', value: 'cy@example.com' }], events: [objection] }]);
    await dispatcher.drain();
    expect(allSubscriptions().map((w) => [w.subscriptionTypeId, w.subscribed]).sort()).toEqual([
      ['101', false],
      ['202', false],
    ]);
    expect(allShopify()).toEqual([expect.objectContaining({ customerId: '3', channel: 'email', state: 'UNSUBSCRIBED' })]);
    expect(hubspot.lists).toEqual([{ listId: 'L1', add: ['hs-cy@example.com'], remove: [] }]);
  });

  it('a soft opt-in subscribes only the types of purposes with its category, as LEGITIMATE_INTEREST_CLIENT, and never touches Shopify; its expiry updates the gate property and list without any inbound event', async () => {
    await apply([{ kind: 'identify', identities: customer('4', 'di@example.com'), profile: { country: 'IE', company: null, sourceUpdatedAt: '2025-01-01T00:00:00.000Z' } }]);
    const earned: SubjectlessEvent = {
      channel: 'email',
      purpose: '*',
      kind: 'soft_opt_in_earned',
      basis: 'soft_opt_in',
      occurredAt: '2025-01-10T10:00:00.000Z',
      source: 'shopify',
      sourceDeliveryId: 'order:9',
      evidence: { affirmative: false, orderId: '9', categories: ['footwear'], validUntil: '2026-01-10T10:00:00.000Z', profileRow: 'IE/email/B2C' },
    };
    h.clock.set('2025-06-01T12:00:00.000Z');
    await apply([{ kind: 'consent', identities: [{ kind: 'shopify_customer', value: '4' }], events: [earned] }]);
    await dispatcher.drain();
    expect(allSubscriptions().map((w) => [w.email, w.subscriptionTypeId, w.subscribed, w.legalBasis, w.freshAffirmativeAct])).toEqual([['di@example.com', '202', true, 'LEGITIMATE_INTEREST_CLIENT', false]]);
    expect(allShopify()).toEqual([]);
    expect(hubspot.properties.flat().at(-1)!.properties).toMatchObject({ consent_bridge_email_gate: 'allowed', consent_bridge_basis: 'soft_opt_in', consent_bridge_soft_opt_in_categories: 'footwear' });

    hubspot.resetWrites();
    h.clock.set('2026-02-01T12:00:00.000Z');
    expect((await expireDue(store, h.runtime, { tenantId: tenant.id })).softOptInExpired).toBe(1);
    await dispatcher.drain();
    expect(allSubscriptions()).toEqual([]);
    expect(allShopify()).toEqual([]);
    expect(hubspot.properties.flat()).toEqual([expect.objectContaining({ email: 'di@example.com', properties: expect.objectContaining({ consent_bridge_email_gate: 'blocked', consent_bridge_basis: '', consent_bridge_soft_opt_in_categories: '' }) })]);
    expect(hubspot.lists).toEqual([{ listId: 'L1', add: ['hs-di@example.com'], remove: [] }]);
  });

  it('a backfill or sync observation after an unsubscribe re-subscribes nobody and writes nothing but the contact properties', async () => {
    h.clock.set('2026-06-01T12:00:00.000Z');
    await apply([{ kind: 'consent', identities: customer('5', 'ed@example.com'), events: [shopifyGrant('2026-05-01T10:00:00.000Z')] }]);
    await apply([{ kind: 'consent', identities: customer('5', 'ed@example.com'), events: [{ ...shopifyGrant('2026-05-02T10:00:00.000Z'), kind: 'withdraw', basis: null, evidence: {} }] }]);
    await dispatcher.drain();
    hubspot.resetWrites();
    const observed: SubjectlessEvent = { ...shopifyGrant('2026-05-03T10:00:00.000Z'), source: 'hubspot', evidence: { affirmative: false, note: 'observed in HubSpot at 2026-05-03' } };
    await apply([{ kind: 'consent', identities: [{ kind: 'email', value: 'ed@example.com' }], events: [observed] }]);
    await dispatcher.drain();
    expect(allSubscriptions()).toEqual([]);
    expect(allShopify()).toEqual([]);
    expect(hubspot.properties.flat()[0]!.properties).toMatchObject({ consent_bridge_email_gate: 'blocked' });
  });

  it('does not subscribe in HubSpot while the gate blocks (DE single opt-in), and does once the double opt-in is confirmed', async () => {
    await apply([{ kind: 'identify', identities: customer('6', 'fe@example.de'), profile: { country: 'DE', company: null, sourceUpdatedAt: '2026-05-01T00:00:00.000Z' } }]);
    await apply([{ kind: 'consent', identities: customer('6', 'fe@example.de'), events: [shopifyGrant('2026-05-06T10:00:00.000Z')] }]);
    await dispatcher.drain();
    expect(allSubscriptions()).toEqual([]);
    const notes = await store.db.selectFrom('outbox').select(['note', 'status']).where('operation', '=', 'hubspot.subscription').where('idempotency_key', 'like', 'hs-sub:%').where('status', '=', 'done').execute();
    expect(notes.some((n) => /gate blocks/.test(n.note ?? ''))).toBe(true);
    expect(hubspot.lists.at(-1)).toEqual({ listId: 'L1', add: ['hs-fe@example.de'], remove: [] });

    hubspot.resetWrites();
    const confirm: SubjectlessEvent = { ...shopifyGrant('2026-05-07T10:00:00.000Z'), kind: 'confirm', evidence: { affirmative: true, capturePoint: 'double-opt-in-email', optInLevel: 'confirmed_opt_in' } };
    await apply([{ kind: 'consent', identities: customer('6', 'fe@example.de'), events: [confirm] }]);
    await dispatcher.drain();
    expect(allSubscriptions().map((w) => [w.subscriptionTypeId, w.subscribed]).sort()).toEqual([
      ['101', true],
      ['202', true],
    ]);
  });

  it('a retried older write never lands after a newer one: superseded writes are dropped at dispatch', async () => {
    await apply([{ kind: 'consent', identities: customer('7', 'gu@example.com'), events: [shopifyGrant('2026-05-08T10:00:00.000Z')] }]);
    await dispatcher.drain();
    hubspot.resetWrites();
    shopify.writes = [];
    // The unsubscribe's first attempt fails (a 503); meanwhile the person opts in again.
    const realSet = hubspot.setSubscriptions.bind(hubspot);
    let failed = false;
    hubspot.setSubscriptions = async (t, writes) => {
      if (!failed && writes.some((w) => !w.subscribed)) {
        failed = true;
        return writes.map((w) => ({ key: w.key, ok: false as const, error: 'HTTP 503', retryable: true, retryAfterMs: 0 }));
      }
      return realSet(t, writes);
    };
    try {
      const objection: SubjectlessEvent = { channel: 'email', purpose: '*', kind: 'object', basis: null, occurredAt: '2026-05-09T10:00:00.000Z', source: 'gate', sourceDeliveryId: null, evidence: { affirmative: true, capturePoint: 'gate-api' } };
      await apply([{ kind: 'consent', identities: customer('7', 'gu@example.com'), events: [objection] }]);
      await dispatcher.stepOnce(); // the unsubscribes fail and wait for their retry
      await apply([{ kind: 'consent', identities: customer('7', 'gu@example.com'), events: [{ ...shopifyGrant('2026-05-10T10:00:00.000Z'), evidence: { affirmative: true, capturePoint: 'checkout' } }] }]);
      h.clock.advance(3_600_000);
      await dispatcher.drain();
    } finally {
      hubspot.setSubscriptions = realSet;
    }
    const last = new Map<string, boolean>();
    for (const w of allSubscriptions()) last.set(w.subscriptionTypeId, w.subscribed);
    expect([...last.entries()].sort()).toEqual([
      ['101', true],
      ['202', true],
    ]);
    const superseded = await store.db.selectFrom('outbox').select('note').where('note', 'like', 'superseded%').execute();
    expect(superseded.length).toBeGreaterThan(0);
  });

  it('batches: 250 opt-ins of 250 people cause at most ceil(250/100) calls per operation', async () => {
    for (let i = 0; i < 250; i++) await apply([{ kind: 'consent', identities: customer(String(1000 + i), `bulk${i}@example.com`), events: [shopifyGrant('2026-05-05T10:00:00.000Z')] }]);
    await dispatcher.drain();
    // Two subscription types per person: 500 subscription writes in 5 calls of 100; 250 property writes in 3.
    expect(hubspot.subscriptions.map((c) => c.length)).toEqual([100, 100, 100, 100, 100]);
    expect(hubspot.properties.map((c) => c.length)).toEqual([100, 100, 50]);
    expect(hubspot.lists).toHaveLength(3);
  });
});
