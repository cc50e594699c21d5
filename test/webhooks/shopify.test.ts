/**
 * POST /webhooks/shopify and /webhooks/shopify/compliance over supertest, on SQLite and PostgreSQL: the bad-input
 * table (each row: its status, and nothing written), duplicates, tenant routing, compliance recording, and what
 * the worker makes of each topic.
 */
import request from 'supertest';
import type { Store } from '../../src/store/database';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { createHarness, fixture, shopifyHeaders, shopifyHmac, SHOPIFY_SECRET_PREVIOUS, writtenRows, type Harness } from '../helpers/webhooks';

const EMAIL_CONSENT = fixture('shopify/customers-email-consent-subscribed.json');

describe.each(testDialects())('Shopify webhooks on %s', (dialect) => {
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

  const post = (path: string, body: string | Buffer, headers: Record<string, string>) => request(h.app.callback()).post(path).set(headers).send(body);

  describe('bad input: the documented status, and nothing written', () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const tenantABody = fixture('shopify/app-uninstalled.json'); // names acme-de.myshopify.com in the signed body
    const rows: Array<{ name: string; status: number; send: () => request.Test }> = [
      { name: 'no body at all', status: 400, send: () => request(h.app.callback()).post('/webhooks/shopify').set(shopifyHeaders('', { topic: 'customers/update' })) },
      { name: 'empty body', status: 400, send: () => post('/webhooks/shopify', '', shopifyHeaders('', { topic: 'customers/update' })) },
      { name: 'missing HMAC', status: 401, send: () => post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update', hmac: null })) },
      { name: 'wrong HMAC', status: 401, send: () => post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update', secret: 'not-our-secret' })) },
      {
        name: 'HMAC of a different body',
        status: 401,
        send: () => post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update', hmac: shopifyHmac(`${EMAIL_CONSENT} `) })),
      },
      { name: 'compliance endpoint, wrong HMAC', status: 401, send: () => post('/webhooks/shopify/compliance', fixture('shopify/shop-redact.json'), shopifyHeaders('x', { topic: 'shop/redact' })) },
      { name: 'compliance endpoint, missing HMAC', status: 401, send: () => post('/webhooks/shopify/compliance', fixture('shopify/shop-redact.json'), shopifyHeaders('x', { topic: 'shop/redact', hmac: null })) },
      {
        name: 'missing X-Shopify-Webhook-Id',
        status: 400,
        send: () => {
          const headers = shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update' });
          delete headers['X-Shopify-Webhook-Id'];
          return post('/webhooks/shopify', EMAIL_CONSENT, headers);
        },
      },
      { name: 'not JSON (signed)', status: 400, send: () => post('/webhooks/shopify', 'customer=1', shopifyHeaders('customer=1', { topic: 'customers/update' })) },
      { name: 'JSON array instead of an object', status: 400, send: () => post('/webhooks/shopify', '[1]', shopifyHeaders('[1]', { topic: 'customers/update' })) },
      { name: 'deeply nested JSON', status: 400, send: () => post('/webhooks/shopify', deep, shopifyHeaders(deep, { topic: 'customers/update' })) },
      {
        name: 'oversize body',
        status: 413,
        send: () => {
          const big = JSON.stringify({ id: 1, padding: 'x'.repeat(70_000) });
          return post('/webhooks/shopify', big, shopifyHeaders(big, { topic: 'customers/update' }));
        },
      },
      {
        name: 'wrong content type',
        status: 415,
        send: () => post('/webhooks/shopify', EMAIL_CONSENT, { ...shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update' }), 'Content-Type': 'text/plain' }),
      },
      { name: 'unknown topic', status: 400, send: () => post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'carts/update' })) },
      { name: 'normal topic at the compliance endpoint', status: 400, send: () => post('/webhooks/shopify/compliance', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers/update' })) },
      { name: 'shop domain that is not *.myshopify.com', status: 400, send: () => post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers/update', shop: 'evil.example.com' })) },
      {
        name: 'shop header of tenant B with the signed body of tenant A',
        status: 401,
        send: () => post('/webhooks/shopify', tenantABody, shopifyHeaders(tenantABody, { topic: 'app/uninstalled', shop: 'other-shop.myshopify.com' })),
      },
      {
        name: 'shop header of tenant B with a compliance body of tenant A',
        status: 401,
        send: () => {
          const body = fixture('shopify/customers-redact.json');
          return post('/webhooks/shopify/compliance', body, shopifyHeaders(body, { topic: 'customers/redact', shop: 'other-shop.myshopify.com' }));
        },
      },
      { name: 'wrong method', status: 405, send: () => request(h.app.callback()).get('/webhooks/shopify') },
    ];

    it.each(rows)('$name → $status', async ({ status, send }) => {
      const before = await writtenRows(store.db);
      const res = await send();
      expect(res.status).toBe(status);
      expect(res.body.error.code).toEqual(expect.any(String));
      expect(res.body.error.message).toEqual(expect.any(String));
      expect(await writtenRows(store.db)).toEqual(before);
    });
  });

  it('accepts a delivery signed with the previous secret (rotation)', async () => {
    const res = await post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update', secret: SHOPIFY_SECRET_PREVIOUS }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'accepted' });
    await h.worker.drain();
  });

  it('stores the same delivery once when it arrives three times, and appends one ledger event', async () => {
    const body = JSON.stringify({ ...JSON.parse(EMAIL_CONSENT), customer_id: 7301122330001, email_address: 'triple@example.com' });
    const headers = shopifyHeaders(body, { topic: 'customers_email_marketing_consent/update', webhookId: 'triple-delivery' });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post('/webhooks/shopify', body, headers)).body.status);
    expect(statuses).toEqual(['accepted', 'duplicate', 'duplicate']);
    expect(await store.db.selectFrom('inbox').select('id').where('delivery_key', '=', 'triple-delivery').execute()).toHaveLength(1);
    await h.worker.drain();
    const events = await store.db.selectFrom('consent_event').selectAll().where('source_delivery_id', '=', 'triple-delivery').execute();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ channel: 'email', kind: 'grant', basis: 'consent', occurred_at: '2026-05-02T08:20:11.000Z', tenant_id: h.tenantA.id });
    // A fourth delivery after processing is still a duplicate.
    expect((await post('/webhooks/shopify', body, headers)).body.status).toBe('duplicate');
  });

  it('a grant dated in the future is dated at its receipt, so a later withdrawal still wins', async () => {
    const consent = (state: string, at: string, webhookId: string) => {
      const body = JSON.stringify({ customer_id: 7301122330077, email_address: 'future@example.com', email_marketing_consent: { state, opt_in_level: 'single_opt_in', consent_updated_at: at } });
      return post('/webhooks/shopify', body, shopifyHeaders(body, { topic: 'customers_email_marketing_consent/update', webhookId }));
    };
    expect((await consent('subscribed', '2031-01-01T00:00:00Z', 'future-grant')).status).toBe(200);
    await h.worker.drain();
    const [grant] = await store.db.selectFrom('consent_event').selectAll().where('source_delivery_id', '=', 'future-grant').execute();
    expect(grant).toMatchObject({ kind: 'grant', occurred_at: h.clock.now().toISOString() });
    expect(JSON.parse(grant!.evidence)).toMatchObject({ claimedOccurredAt: '2031-01-01T00:00:00.000Z' });

    h.clock.advance(60_000);
    expect((await consent('unsubscribed', h.clock.now().toISOString(), 'present-withdrawal')).status).toBe(200);
    await h.worker.drain();
    const current = await store.db.selectFrom('consent_current').select(['status']).where('subject_id', '=', grant!.subject_id).where('channel', '=', 'email').execute();
    expect(current.map((r) => r.status)).toEqual(['withdrawn']);
  });

  it('answers 200 "ignored" for an unknown shop and stores only a counter', async () => {
    const before = await writtenRows(store.db);
    const headers = shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update', shop: 'never-installed.myshopify.com' });
    const first = await post('/webhooks/shopify', EMAIL_CONSENT, headers);
    const second = await post('/webhooks/shopify', EMAIL_CONSENT, { ...headers, 'X-Shopify-Webhook-Id': 'another-id' });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ status: 'ignored', reason: 'unknown_tenant' });
    expect(second.body).toEqual({ status: 'ignored', reason: 'unknown_tenant' });
    const after = await writtenRows(store.db);
    expect(after).toEqual({ ...before, unrouted_delivery: before.unrouted_delivery! + 1 });
    const counter = await store.db.selectFrom('unrouted_delivery').selectAll().where('account', '=', 'never-installed.myshopify.com').executeTakeFirstOrThrow();
    expect(Number(counter.count)).toBe(2);
    expect(counter).toMatchObject({ platform: 'shopify', topic: 'customers_email_marketing_consent/update', reason: 'unknown_tenant' });
  });

  it('records compliance topics always, for unknown shops too, and never in the inbox', async () => {
    for (const [topic, file] of [
      ['customers/data_request', 'customers-data-request.json'],
      ['customers/redact', 'customers-redact.json'],
      ['shop/redact', 'shop-redact.json'],
    ] as const) {
      const body = fixture(`shopify/${file}`);
      const res = await post('/webhooks/shopify/compliance', body, shopifyHeaders(body, { topic, webhookId: `compliance-${topic}` }));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'accepted' });
    }
    const unknownBody = JSON.stringify({ shop_id: 1, shop_domain: 'gone.myshopify.com' });
    const unknown = await post('/webhooks/shopify/compliance', unknownBody, shopifyHeaders(unknownBody, { topic: 'shop/redact', shop: 'gone.myshopify.com', webhookId: 'compliance-unknown' }));
    expect(unknown.body).toEqual({ status: 'accepted' });
    const again = await post('/webhooks/shopify/compliance', unknownBody, shopifyHeaders(unknownBody, { topic: 'shop/redact', shop: 'gone.myshopify.com', webhookId: 'compliance-unknown' }));
    expect(again.body).toEqual({ status: 'duplicate' });
    const recorded = await store.db.selectFrom('privacy_request').selectAll().orderBy('delivery_key').execute();
    expect(recorded.map((r) => [r.delivery_key, r.topic, r.tenant_id === h.tenantA.id ? 'A' : r.tenant_id, r.status])).toEqual([
      ['compliance-customers/data_request', 'customers/data_request', 'A', 'open'],
      ['compliance-customers/redact', 'customers/redact', 'A', 'open'],
      ['compliance-shop/redact', 'shop/redact', 'A', 'open'],
      ['compliance-unknown', 'shop/redact', null, 'open'],
    ]);
    expect(await store.db.selectFrom('inbox').select('id').where('delivery_key', 'like', 'compliance-%').execute()).toHaveLength(0);
  });

  it('refuses a consent body naming a customer that another shop already has (global Shopify ids)', async () => {
    // Tenant A knows customer 7301122334455 (processed above); the same signed body under tenant B's header is a replay.
    const before = await writtenRows(store.db);
    const res = await post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update', shop: 'other-shop.myshopify.com' }));
    expect(res.status).toBe(401);
    expect(await writtenRows(store.db)).toEqual(before);
  });

  it('maps each topic through the worker: identities, profile, purchase, consent for SMS', async () => {
    const send = async (topic: string, file: string) => {
      const body = fixture(`shopify/${file}`);
      const res = await post('/webhooks/shopify', body, shopifyHeaders(body, { topic }));
      expect(res.body.status).toBe('accepted');
    };
    await send('customers/create', 'customers-create.json');
    await send('customers/update', 'customers-update.json');
    await send('customers/create', 'customers-create.json'); // a stale retry, older updated_at: profile keeps the newer
    await send('customers_marketing_consent/update', 'customers-sms-consent-subscribed.json');
    await send('orders/create', 'orders-create.json');
    await send('orders/paid', 'orders-paid.json');
    expect(await h.worker.drain()).toBe(6);

    const subject = await store.db
      .selectFrom('subject_identity')
      .select('subject_id')
      .where('tenant_id', '=', h.tenantA.id)
      .where('kind', '=', 'shopify_customer')
      .where('value', '=', '7301122334455')
      .executeTakeFirstOrThrow();
    const identities = await store.db.selectFrom('subject_identity').select(['kind', 'value']).where('subject_id', '=', subject.subject_id).orderBy('kind').orderBy('value').execute();
    expect(identities).toEqual([
      { kind: 'email', value: 'ana.weber@example.com' },
      { kind: 'email', value: 'ana@example.com' },
      { kind: 'phone', value: '+4915112345678' },
      { kind: 'shopify_customer', value: '7301122334455' },
    ]);
    const profile = await store.db.selectFrom('subject_profile').selectAll().where('subject_id', '=', subject.subject_id).executeTakeFirstOrThrow();
    expect(profile).toMatchObject({ country: 'NL', company: 'Weber BV', source_updated_at: '2026-05-04T06:00:00.000Z' });
    const purchase = await store.db.selectFrom('purchase').selectAll().where('tenant_id', '=', h.tenantA.id).executeTakeFirstOrThrow();
    expect(purchase).toMatchObject({ order_id: '6100200300400', subject_id: subject.subject_id, paid_at: '2026-05-03T07:05:00.000Z', ordered_at: '2026-05-03T07:00:00.000Z', country: 'DE' });
    expect(Number(purchase.buyer_accepts_marketing)).toBe(0);
    expect(JSON.parse(purchase.line_items)).toEqual([
      { productId: '8800900100200', variantId: '4500600700800', quantity: 2 },
      { productId: null, variantId: null, quantity: 1 },
    ]);
    expect(JSON.parse(purchase.attributes)).toEqual({ no_marketing: 'true' });
    const sms = await store.db.selectFrom('consent_current').selectAll().where('subject_id', '=', subject.subject_id).where('channel', '=', 'sms').executeTakeFirstOrThrow();
    expect(JSON.parse(sms.state)).toMatchObject({ status: 'granted', basis: 'consent', optInLevel: 'single_opt_in' });
    const smsEvent = await store.db.selectFrom('consent_event').selectAll().where('subject_id', '=', subject.subject_id).where('channel', '=', 'sms').executeTakeFirstOrThrow();
    expect(JSON.parse(smsEvent.evidence)).toMatchObject({ collectedFrom: 'SHOPIFY', affirmative: true, optInLevel: 'single_opt_in' });
    // No consent event came from customers/* or orders/*.
    const kinds = await store.db.selectFrom('consent_event').select(['channel', 'kind']).where('subject_id', '=', subject.subject_id).orderBy('seq').execute();
    expect(kinds).toEqual([
      { channel: 'email', kind: 'grant' },
      { channel: 'sms', kind: 'grant' },
    ]);
  });

  it('app/uninstalled marks the tenant uninstalled; later deliveries are ignored with a counter', async () => {
    const body = fixture('shopify/app-uninstalled.json');
    expect((await post('/webhooks/shopify', body, shopifyHeaders(body, { topic: 'app/uninstalled' }))).body.status).toBe('accepted');
    await h.worker.drain();
    const tenant = await store.db.selectFrom('tenant').selectAll().where('id', '=', h.tenantA.id).executeTakeFirstOrThrow();
    expect(tenant).toMatchObject({ status: 'uninstalled', shopify_credentials: null, hubspot_credentials: null });
    const res = await post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update' }));
    expect(res.body).toEqual({ status: 'ignored', reason: 'tenant_uninstalled' });
    // Compliance topics are still recorded for an uninstalled shop (shop/redact arrives 48 h after uninstall).
    const redact = fixture('shopify/shop-redact.json');
    expect((await post('/webhooks/shopify/compliance', redact, shopifyHeaders(redact, { topic: 'shop/redact' }))).body.status).toBe('accepted');
  });
});
