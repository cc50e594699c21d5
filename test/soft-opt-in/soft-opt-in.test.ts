/**
 * Soft opt-in from paid orders (issue 4 §4–5), on SQLite and PostgreSQL: purchases recorded through the worker's
 * write path, evaluated by the job with a ProductCatalog, and the result seen by the gate. Every condition that
 * fails is recorded with its reason; a checkout objection ends soft opt-in for good; catalog failures are
 * retried as durable rows. The catalog here is an in-memory ProductCatalog (the Shopify one has its own
 * contract suite under nock, test/contract/catalog.contract.test.ts).
 */
import type { ProductCatalog, ProductFacts } from '../../src/catalog/catalog';
import type { InboundEffect } from '../../src/domain/inbound';
import { runCli } from '../../src/cli';
import { checkRecipients, parseGateRequest } from '../../src/gate/gate';
import { applyEffects } from '../../src/inbox/apply';
import { runSoftOptInEvaluations } from '../../src/soft-opt-in/runner';
import type { Store } from '../../src/store/database';
import { setTenantSettings, type Tenant } from '../../src/tenants/tenants';
import { createHarness, type Harness } from '../helpers/webhooks';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

const shoe: ProductFacts = { productId: '11', productType: 'Shoes', vendor: 'Acme', tags: [], taxonomyCategory: { id: 'aa-8-1', fullName: 'Apparel & Accessories > Shoes > Sneakers' }, collections: [], updatedAt: null };
const mystery: ProductFacts = { productId: '12', productType: null, vendor: null, tags: [], taxonomyCategory: null, collections: [], updatedAt: null };
const NOTICE = { confirmed: true, text: 'We may email you about similar products. Untick to object.', version: 'v3', since: '2026-01-01T00:00:00.000Z' };

class InMemoryCatalog implements ProductCatalog {
  calls = 0;
  failing = false;
  constructor(private readonly facts: readonly ProductFacts[]) {}
  async products(_tenant: Tenant, ids: readonly string[]): Promise<Map<string, ProductFacts>> {
    this.calls += 1;
    if (this.failing) throw new Error('HTTP 503 from Shopify');
    return new Map(this.facts.filter((p) => ids.includes(p.productId)).map((p) => [p.productId, p]));
  }
}

describe.each(testDialects())('soft opt-in from paid orders on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let tenant: Tenant;
  let catalog: InMemoryCatalog;
  let delivery = 0;

  async function apply(effects: InboundEffect[]): Promise<void> {
    delivery += 1;
    await store.db.transaction().execute((trx) => applyEffects(trx, store.dialect, h.runtime, { tenantId: tenant.id, ledgerKey: `test:${delivery}` }, effects));
  }
  /** A paid order of `customerId` with these products, as orders/paid maps it. */
  function order(customerId: string, orderId: string, options: { email?: string; phone?: string; country?: string; products?: string[]; orderedAt?: string; attributes?: Record<string, string> } = {}): InboundEffect {
    const orderedAt = options.orderedAt ?? '2026-05-03T07:00:00.000Z';
    return {
      kind: 'purchase',
      identities: [
        { kind: 'shopify_customer', value: customerId },
        ...(options.email ? [{ kind: 'email' as const, value: options.email }] : []),
        ...(options.phone ? [{ kind: 'phone' as const, value: options.phone }] : []),
      ],
      purchase: {
        orderId,
        orderedAt,
        paidAt: orderedAt.replace('07:00', '07:05'),
        country: options.country ?? 'NL',
        buyerAcceptsMarketing: false,
        lines: (options.products ?? ['11']).map((productId) => ({ productId, variantId: null, quantity: 1 })),
        attributes: options.attributes ?? {},
      },
      profile: { country: options.country ?? 'NL', company: null, sourceUpdatedAt: orderedAt },
    };
  }
  const run = () => runSoftOptInEvaluations({ store, clock: h.clock, ids: h.runtime.ids, catalog, logger: h.runtime.logger });
  const gate = async (email: string, categories: string[], channel = 'email') =>
    (await checkRecipients(store, tenant, parseGateRequest({ channel, categories, recipients: [channel === 'email' ? { email } : { phone: email }] }), h.clock.now())).results[0]!;
  const outcome = async (orderId: string) => {
    const row = await store.db.selectFrom('purchase').selectAll().where('tenant_id', '=', tenant.id).where('order_id', '=', orderId).executeTakeFirstOrThrow();
    return { status: row.soi_status, attempts: row.soi_attempts, nextAt: row.soi_next_at, outcome: JSON.parse(row.soi_outcome ?? 'null') };
  };
  const eventsOf = (kind: string) => store.db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenant.id).where('kind', '=', kind).orderBy('seq').execute();

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    tenant = await setTenantSettings(store, h.runtime, h.tenantA.id, {
      ...h.tenantA.settings,
      softOptInNotice: NOTICE,
      categoryGroups: [{ id: 'footwear', label: 'Footwear', taxonomyBranches: [], productTypes: ['shoes'], tags: [], collections: [] }],
      objectionOrderAttribute: 'no_marketing',
    });
    catalog = new InMemoryCatalog([shoe, mystery]);
    h.clock.set('2026-06-01T12:00:00.000Z');
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('earns email and SMS soft opt-in for the groups bought, with the evidence, and the gate allows similar products only', async () => {
    await apply([order('1', '5001', { email: 'ana@example.com', phone: '+31612345678' })]);
    expect(await run()).toMatchObject({ evaluated: 1, earned: 1 });
    const earned = await eventsOf('soft_opt_in_earned');
    expect(earned.map((e) => e.channel).sort()).toEqual(['email', 'sms']);
    expect(JSON.parse(earned[0]!.evidence)).toMatchObject({ orderId: '5001', orderDate: '2026-05-03T07:00:00.000Z', categories: ['footwear'], profileRow: expect.stringMatching(/^NL\//), noticeText: NOTICE.text, noticeVersion: 'v3' });
    expect(earned[0]!.occurred_at).toBe('2026-05-03T07:05:00.000Z');
    expect(await gate('ana@example.com', ['footwear'])).toMatchObject({ allowed: true, basis: 'soft_opt_in', reason: 'soft_opt_in' });
    expect(await gate('ana@example.com', ['insurance'])).toMatchObject({ allowed: false, reason: 'not_similar' });
    expect(await gate('+31612345678', ['footwear'], 'sms')).toMatchObject({ allowed: true, reason: 'soft_opt_in' });
    expect((await outcome('5001')).outcome.channels.email).toMatchObject({ earned: true, categories: ['footwear'] });
    // A second run finds nothing due and appends nothing.
    expect(await run()).toMatchObject({ evaluated: 0 });
    expect(await eventsOf('soft_opt_in_earned')).toHaveLength(2);
  });

  it('records why not: no phone for SMS, SMS excluded in IT, unmapped products, order before the notice', async () => {
    await apply([order('2', '5002', { email: 'bo@example.com' })]);
    await apply([order('3', '5003', { email: 'cy@example.com', phone: '+393331234567', country: 'IT' })]);
    await apply([order('4', '5004', { email: 'di@example.com', products: ['12'] })]);
    await apply([order('5', '5005', { email: 'ed@example.com', orderedAt: '2025-12-20T07:00:00.000Z' })]);
    await run();
    expect((await outcome('5002')).outcome.channels).toMatchObject({ email: { earned: true }, sms: { earned: false, reason: 'no_contact_detail' } });
    expect((await outcome('5003')).outcome.channels).toMatchObject({ email: { earned: true }, sms: { earned: false, reason: 'profile_disallows', row: expect.stringMatching(/^IT\/sms/) } });
    expect((await outcome('5004')).outcome.channels.email).toMatchObject({ earned: false, reason: 'no_category' });
    expect((await outcome('5005')).outcome.channels.email).toMatchObject({ earned: false, reason: 'order_before_notice' });
    expect(await gate('di@example.com', ['footwear'])).toMatchObject({ allowed: false });
    expect(await gate('ed@example.com', ['footwear'])).toMatchObject({ allowed: false });
  });

  it('explain lists the person\u2019s paid orders with the soft opt-in outcome, or why not', async () => {
    const out: string[] = [];
    const url = db.target.kind === 'sqlite' ? `sqlite:${db.target.file}` : `${db.target.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
    const cli = (args: string[]) => runCli(['node', 'consent-bridge', ...args], { env: { DATABASE_URL: url }, cwd: process.cwd(), stdout: (t) => out.push(t), stderr: (t) => out.push(t) });
    expect(await cli(['explain', '--tenant', tenant.id, '--email', 'bo@example.com', '--channel', 'sms', '--category', 'footwear'])).toBe(0);
    expect(out.join('')).toContain('order 5002  no soft opt-in: no_contact_detail');
    out.length = 0;
    expect(await cli(['explain', '--tenant', tenant.id, '--email', 'bo@example.com', '--channel', 'email', '--category', 'footwear'])).toBe(0);
    expect(out.join('')).toMatch(/ALLOWED \(soft_opt_in\)[\s\S]*order 5002  soft opt-in earned for footwear \(NL\/email\/B2C/);
  });

  it('turns a ticked checkout objection into objections on every channel, which a later purchase does not undo', async () => {
    await apply([order('6', '5006', { email: 'fa@example.com', phone: '+31687654321', attributes: { no_marketing: 'Yes' } })]);
    expect(await run()).toMatchObject({ objections: 1 });
    expect((await eventsOf('object')).filter((e) => JSON.parse(e.evidence).orderId === '5006').map((e) => e.channel).sort()).toEqual(['email', 'sms']);
    expect(await gate('fa@example.com', ['footwear'])).toMatchObject({ allowed: false, reason: 'withdrawn' });
    await apply([order('6', '5007', { email: 'fa@example.com', orderedAt: '2026-05-20T07:00:00.000Z' })]);
    await run();
    expect((await outcome('5007')).outcome.channels.email).toMatchObject({ earned: false, reason: 'soft_opt_in_ended' });
    expect(await gate('fa@example.com', ['footwear'])).toMatchObject({ allowed: false });
  });

  it('earns nothing while the merchant has not confirmed the checkout notice', async () => {
    tenant = await setTenantSettings(store, h.runtime, tenant.id, { ...tenant.settings, softOptInNotice: { ...NOTICE, confirmed: false } });
    try {
      await apply([order('7', '5008', { email: 'gu@example.com' })]);
      await run();
      expect((await outcome('5008')).outcome.channels.email).toMatchObject({ earned: false, reason: 'notice_not_confirmed' });
    } finally {
      tenant = await setTenantSettings(store, h.runtime, tenant.id, { ...tenant.settings, softOptInNotice: NOTICE });
    }
  });

  it('puts an IE soft opt-in window (12 months from the sale) in the evidence', async () => {
    await apply([order('8', '5009', { email: 'ha@example.com', country: 'IE' })]);
    await run();
    const event = (await eventsOf('soft_opt_in_earned')).find((e) => JSON.parse(e.evidence).orderId === '5009')!;
    expect(JSON.parse(event.evidence)).toMatchObject({ validUntil: '2027-05-03T07:05:00.000Z', profileRow: expect.stringMatching(/^IE\//) });
  });

  it('retries a catalog failure as a durable row with backoff, then marks it failed', async () => {
    catalog.failing = true;
    try {
      await apply([order('9', '5010', { email: 'io@example.com' })]);
      expect(await run()).toMatchObject({ postponed: 1 });
      const first = await outcome('5010');
      expect(first).toMatchObject({ status: 'pending', attempts: 1, nextAt: '2026-06-01T12:00:30.000Z' });
      expect(first.outcome.error).toContain('503');
      expect(await run()).toMatchObject({ postponed: 0, evaluated: 0 }); // not due yet
      for (let attempt = 2; attempt <= 8; attempt++) {
        h.clock.advance(3_600_000);
        await run();
      }
      expect(await outcome('5010')).toMatchObject({ status: 'failed', attempts: 8 });
    } finally {
      catalog.failing = false;
    }
  });
});
