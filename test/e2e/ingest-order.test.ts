/**
 * Issue 3 acceptance: 1,000 consent webhooks for 50 customers, shuffled and each delivered twice, give the same
 * projection as the same webhooks delivered once in order, on SQLite and PostgreSQL. Over the real HTTP stack
 * (the Koa app's callback) and the real worker.
 */
import request from 'supertest';
import type { Store } from '../../src/store/database';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { createHarness, shopifyHeaders, type Harness } from '../helpers/webhooks';

interface Delivery {
  readonly topic: string;
  readonly body: string;
  readonly webhookId: string;
}

/** Deterministic PRNG (mulberry32) so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(count: number, customers: number, random: () => number): Delivery[] {
  const emailStates = ['subscribed', 'unsubscribed', 'pending', 'not_subscribed', 'subscribed', 'unsubscribed', 'invalid'];
  const smsStates = ['subscribed', 'unsubscribed', 'pending', 'not_subscribed'];
  const start = Date.parse('2026-03-01T00:00:00.000Z');
  const deliveries: Delivery[] = [];
  for (let i = 0; i < count; i++) {
    const customer = 7_000_000_000 + Math.floor(random() * customers);
    // Whole minutes, so some events of one customer share a timestamp and the tie-break rules are exercised.
    const at = new Date(start + Math.floor(random() * 20_000) * 60_000).toISOString();
    const email = random() < 0.6;
    const level = random() < 0.5 ? 'single_opt_in' : 'confirmed_opt_in';
    if (email) {
      const state = emailStates[Math.floor(random() * emailStates.length)]!;
      deliveries.push({
        topic: 'customers_email_marketing_consent/update',
        webhookId: `order-${i}`,
        body: JSON.stringify({ customer_id: customer, email_address: `c${customer}@example.com`, email_marketing_consent: { state, opt_in_level: level, consent_updated_at: at } }),
      });
    } else {
      const state = smsStates[Math.floor(random() * smsStates.length)]!;
      deliveries.push({
        topic: 'customers_marketing_consent/update',
        webhookId: `order-${i}`,
        body: JSON.stringify({
          id: customer,
          phone: `+3161${String(customer).slice(-7)}`,
          sms_marketing_consent: { state, opt_in_level: level, consent_updated_at: at, consent_collected_from: 'SHOPIFY' },
        }),
      });
    }
  }
  return deliveries;
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The projection keyed by Shopify customer id, with event ids replaced by the deliveries they came from. */
async function comparableProjection(store: Store, tenantId: string): Promise<Record<string, unknown>> {
  const events = await store.db.selectFrom('consent_event').select(['id', 'source_delivery_id']).where('tenant_id', '=', tenantId).execute();
  const deliveryOf = new Map(events.map((e) => [e.id, e.source_delivery_id]));
  const customers = await store.db.selectFrom('subject_identity').select(['subject_id', 'value']).where('tenant_id', '=', tenantId).where('kind', '=', 'shopify_customer').execute();
  const customerOf = new Map(customers.map((c) => [c.subject_id, c.value]));
  const rows = await store.db.selectFrom('consent_current').selectAll().where('tenant_id', '=', tenantId).execute();
  const out: Record<string, unknown> = {};
  for (const row of rows) {
    const state = JSON.parse(row.state) as { evidenceEventIds: string[]; softOptIn: Record<string, { eventId: string }> };
    out[`${customerOf.get(row.subject_id)}/${row.channel}/${row.purpose}`] = {
      ...state,
      evidenceEventIds: state.evidenceEventIds.map((id) => deliveryOf.get(id)),
      status: row.status,
      basis: row.basis,
      lastEventAt: row.last_event_at,
    };
  }
  return out;
}

describe.each(testDialects())('delivery order and duplicates on %s', (dialect) => {
  const stores: Array<{ db: TestDatabase; store: Store }> = [];
  afterAll(async () => {
    for (const { db, store } of stores) {
      await store.close();
      await db.drop();
    }
  });

  async function ingest(deliveries: readonly Delivery[]): Promise<{ harness: Harness; store: Store; statuses: Record<string, number> }> {
    const created = await migratedStore(dialect);
    stores.push(created);
    const harness = await createHarness(created.store);
    const statuses: Record<string, number> = {};
    const callback = harness.app.callback();
    for (const d of deliveries) {
      const res = await request(callback).post('/webhooks/shopify').set(shopifyHeaders(d.body, { topic: d.topic, webhookId: d.webhookId })).send(d.body);
      statuses[`${res.status} ${res.body.status}`] = (statuses[`${res.status} ${res.body.status}`] ?? 0) + 1;
    }
    await harness.worker.drain();
    return { harness, store: created.store, statuses };
  }

  it('1,000 webhooks for 50 customers: shuffled and doubled gives the projection of once in order', async () => {
    const random = prng(20261124);
    const inOrder = generate(1000, 50, random);
    const doubledShuffled = shuffle([...inOrder, ...inOrder], random);

    const a = await ingest(inOrder);
    const b = await ingest(doubledShuffled);
    expect(a.statuses).toEqual({ '200 accepted': 1000 });
    expect(b.statuses).toEqual({ '200 accepted': 1000, '200 duplicate': 1000 });

    const eventsA = await a.store.db.selectFrom('consent_event').select('id').execute();
    const eventsB = await b.store.db.selectFrom('consent_event').select('id').execute();
    expect(eventsB.length).toBe(eventsA.length);
    const projectionA = await comparableProjection(a.store, a.harness.tenantA.id);
    const projectionB = await comparableProjection(b.store, b.harness.tenantA.id);
    expect(Object.keys(projectionA).length).toBeGreaterThanOrEqual(50);
    expect(projectionB).toEqual(projectionA);
    // The histories are varied enough to mean something: every status of interest occurs.
    const statuses = new Set(Object.values(projectionA).map((s) => (s as { status: string }).status));
    expect([...statuses].sort()).toEqual(expect.arrayContaining(['granted', 'pending', 'withdrawn']));
  }, 240_000);
});
