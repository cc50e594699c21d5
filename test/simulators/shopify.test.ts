/**
 * The Shopify simulator (simulators/shopify, issue 6 §1) against the app's own code: its webhooks pass the app's
 * verifier (webhooks/shopify/verify.ts) and schemas (webhooks/shopify/topics.ts); the app's connectors
 * (connectors/shopify/consent.ts, catalog.ts, token.ts), routed with `baseUrl` as SHOPIFY_API_BASE_URL does,
 * write and read consent, read products, page customers, meet the throttle and refresh tokens. Real HTTP on
 * 127.0.0.1; a fixed clock drives consent times, the leaky bucket and token expiry.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import { createShopifyAdminApi, SHOPIFY_API_VERSION } from '../../connectors/shopify/admin-api';
import { ShopifyProductCatalog } from '../../connectors/shopify/catalog';
import { CUSTOMERS_PAGE_SIZE, customerIdRangeQuery, ShopifyConsentConnector, type ShopifyConsentConnectorOptions } from '../../connectors/shopify/consent';
import { refreshShopifyToken } from '../../connectors/shopify/token';
import { startShopifySimulator, type ShopifySimulator, type ShopifySimulatorOptions } from '../../simulators/shopify/server';
import { defaultSettings } from '../../src/config/manifest';
import { silentLogger } from '../../src/log/logger';
import { PlatformCallError, type AccessTokens, type ShopifyConsentWrite } from '../../src/sync/ports';
import type { Tenant } from '../../src/tenants/tenants';
import { mapShopifyDelivery } from '../../webhooks/shopify/map';
import { checkShopifyHmac, readShopifyHeaders, type ShopifyHeaders } from '../../webhooks/shopify/verify';
import { customerSchema, emailConsentSchema, isNormalTopic, orderSchema, productSchema, shopSchema, smsConsentSchema } from '../../webhooks/shopify/topics';
import { fixedClock } from '../helpers/deps';

const SHOP = 'acme-de.myshopify.com';
const TOKEN = 'shpat_sim_acme_de';
const API_KEY = 'sim-client-id';
const SECRET = 'sim-client-secret';
const NOW = '2026-06-01T12:00:00.000Z';
const GRAPHQL_PATH = `/admin/api/${SHOPIFY_API_VERSION}/graphql.json`;

const shopify = createShopifyAdminApi({ apiKey: API_KEY, apiSecretKey: SECRET, appUrl: 'https://bridge.example.com', logger: silentLogger });

const SCHEMAS: Record<string, z.ZodType> = {
  'customers/create': customerSchema,
  'customers/update': customerSchema,
  'customers_email_marketing_consent/update': emailConsentSchema,
  'customers_marketing_consent/update': smsConsentSchema,
  'orders/create': orderSchema,
  'orders/paid': orderSchema,
  'products/create': productSchema,
  'products/update': productSchema,
  'app/uninstalled': shopSchema,
};

// ---------------------------------------------------------------- a webhook receiver standing in for the app

interface Received {
  readonly headers: http.IncomingHttpHeaders;
  readonly raw: Buffer;
}

interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** Answer the next `n` deliveries with `status`. */
  failNext(n: number, status?: number): void;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  let failures = 0;
  let failStatus = 500;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, raw: Buffer.concat(chunks) });
      if (failures > 0) {
        failures--;
        res.writeHead(failStatus, { 'Content-Type': 'application/json' }).end('{"error":"try again"}');
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"accepted"}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks/shopify`,
    received,
    failNext(n, status = 500) {
      failures = n;
      failStatus = status;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A delivery as the app sees it: HMAC checked and headers read by the app's verifier, body parsed by its schema
 * and mapped by its mapper.
 */
function verified(delivery: Received, secret = SECRET): { headers: ShopifyHeaders; payload: any; effects: ReturnType<typeof mapShopifyDelivery> } {
  const get = (name: string) => {
    const value = delivery.headers[name.toLowerCase()];
    return (Array.isArray(value) ? value[0] : value) ?? '';
  };
  expect(checkShopifyHmac(delivery.raw, get, [secret])).toEqual({ ok: true, secretIndex: 0 });
  const read = readShopifyHeaders(get);
  if (!read.ok) throw new Error(`missing headers ${read.missing.join(', ')}`);
  expect(isNormalTopic(read.headers.topic)).toBe(true);
  const payload = JSON.parse(delivery.raw.toString('utf8')) as unknown;
  const parsed = SCHEMAS[read.headers.topic]!.safeParse(payload);
  if (!parsed.success) throw new Error(`${read.headers.topic}: ${JSON.stringify(parsed.error.issues)}`);
  const meta: Record<string, string> = { apiVersion: read.headers.apiVersion, ...(read.headers.triggeredAt ? { triggeredAt: read.headers.triggeredAt } : {}) };
  const effects = mapShopifyDelivery({ platform: 'shopify', topic: read.headers.topic, deliveryKey: read.headers.webhookId, payload, meta, receivedAt: NOW });
  return { headers: read.headers, payload, effects };
}

// ---------------------------------------------------------------- app-side helpers

class FakeTokens implements AccessTokens {
  constructor(public token: string) {}
  async accessToken(): Promise<string> {
    return this.token;
  }
}

function tenantFor(shopDomain = SHOP): Tenant {
  return {
    id: `tenant-${shopDomain}`,
    shopDomain,
    hubspotPortalId: '62515',
    status: 'active',
    settings: defaultSettings(),
    hasShopifyCredentials: true,
    hasHubspotCredentials: false,
    createdAt: NOW,
    updatedAt: NOW,
  };
}

function connectorFor(sim: ShopifySimulator, extra: { token?: string; sleep?: (ms: number) => Promise<void> } = {}, options: ShopifyConsentConnectorOptions = {}) {
  return new ShopifyConsentConnector(
    { shopify, tokens: new FakeTokens(extra.token ?? TOKEN), logger: silentLogger, baseUrl: sim.url, random: () => 0.5, sleep: extra.sleep ?? (async () => undefined) },
    options,
  );
}

const write = (over: Partial<ShopifyConsentWrite>): ShopifyConsentWrite => ({
  key: 'w1',
  customerId: '0',
  channel: 'email',
  state: 'SUBSCRIBED',
  optInLevel: 'CONFIRMED_OPT_IN',
  consentUpdatedAt: '2026-05-02T08:20:11.000Z',
  ...over,
});

/** A raw Admin GraphQL call, as the library would send it. */
async function graphql(sim: ShopifySimulator, query: string, variables: Record<string, unknown> = {}, token = TOKEN): Promise<{ status: number; body: any }> {
  const response = await fetch(`${sim.url}${GRAPHQL_PATH}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Shopify-Access-Token': token, 'X-Shopify-Shop-Domain': SHOP },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: await response.json() };
}

const EMAIL_MUTATION = `mutation($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer { id defaultEmailAddress { marketingState marketingOptInLevel marketingUpdatedAt } }
    userErrors { field message code }
  }
}`;
const SMS_MUTATION = `mutation($input: CustomerSmsMarketingConsentUpdateInput!) {
  customerSmsMarketingConsentUpdate(input: $input) {
    customer { id defaultPhoneNumber { marketingState marketingOptInLevel marketingCollectedFrom } }
    userErrors { field message code }
  }
}`;

// ---------------------------------------------------------------- fixtures

let receiver: Receiver;
let sim: ShopifySimulator;
let clock: ReturnType<typeof fixedClock>;

async function start(options: Partial<ShopifySimulatorOptions> = {}): Promise<ShopifySimulator> {
  return startShopifySimulator({
    apiKey: API_KEY,
    apiSecret: SECRET,
    appWebhookUrl: receiver.url,
    shops: [{ domain: SHOP, accessToken: TOKEN, refreshToken: 'shprt_initial', utcOffsetMinutes: 120 }],
    clock,
    webhookRetry: { backoffMs: 5 },
    ...options,
  });
}

beforeEach(async () => {
  clock = fixedClock(NOW);
  receiver = await startReceiver();
  sim = await start();
});

afterEach(async () => {
  await sim.stop();
  await receiver.close();
});

async function topicsReceived(): Promise<string[]> {
  await sim.flush();
  return receiver.received.map((r) => verified(r).headers.topic);
}

// ---------------------------------------------------------------- webhooks

describe('webhooks from store activity', () => {
  it('are signed, carry every Shopify header and REST-shaped bodies that the app verifies and parses', async () => {
    const customer = sim.createCustomer(SHOP, { email: 'ana@example.com', phone: '+4915112345678', firstName: 'Ana', country: 'de', company: 'Acme GmbH' });
    sim.setEmailMarketing(SHOP, customer.id, { subscribed: true, at: '2026-05-02T08:20:11Z' });
    sim.setSmsMarketing(SHOP, customer.id, { subscribed: true, at: '2026-05-02T08:21:40Z' });
    const product = sim.createProduct(SHOP, { title: 'Trail Runner', productType: 'Shoes', vendor: 'Acme', tags: ['running', 'trail'], category: 'aa-8-1', collections: ['running'] });
    const order = sim.createOrder(SHOP, {
      customerId: customer.id,
      lineItems: [{ productId: product.id, quantity: 2 }],
      billingAddress: { country: 'DE', company: 'Acme GmbH' },
      noteAttributes: { no_marketing: 'yes' },
      locale: 'de-DE',
    });
    sim.updateCustomer(SHOP, customer.id, { country: 'AT' });
    sim.unsubscribe(SHOP, customer.id, 'email', '2026-05-03T09:00:00Z');
    sim.uninstall(SHOP);
    sim.createCustomer(SHOP, { email: 'after-uninstall@example.com' }); // the app is gone: no webhook

    expect(await topicsReceived()).toEqual([
      'customers/create',
      'customers_email_marketing_consent/update',
      'customers_marketing_consent/update',
      'products/create',
      'orders/create',
      'orders/paid',
      'customers/update',
      'customers_email_marketing_consent/update',
      'app/uninstalled',
    ]);
    const deliveries = receiver.received.map((r) => verified(r));
    expect(new Set(deliveries.map((d) => d.headers.webhookId)).size).toBe(deliveries.length);
    expect(new Set(deliveries.map((d) => d.headers.eventId)).size).toBe(deliveries.length);
    for (const d of deliveries) {
      expect(d.headers).toMatchObject({ shopDomain: SHOP, apiVersion: '2026-04', triggeredAt: NOW });
    }
    const [created, email, sms, productCreated, orderCreated, orderPaid, updated, unsubscribed, uninstalled] = deliveries.map((d) => d.payload);
    // Since 2025-01 customer payloads carry no consent and no tags (shopify.md §0.1).
    expect(created).toMatchObject({ id: customer.id, email: 'ana@example.com', phone: '+4915112345678', default_address: { country_code: 'DE', company: 'Acme GmbH' } });
    expect(created.updated_at).toBe('2026-06-01T14:00:00+02:00');
    expect(created).not.toHaveProperty('email_marketing_consent');
    expect(created).not.toHaveProperty('tags');
    expect(email).toEqual({
      customer_id: customer.id,
      email_address: 'ana@example.com',
      email_marketing_consent: { state: 'subscribed', opt_in_level: 'single_opt_in', consent_updated_at: '2026-05-02T10:20:11+02:00' },
    });
    expect(sms).toEqual({
      id: customer.id,
      phone: '+4915112345678',
      sms_marketing_consent: { state: 'subscribed', opt_in_level: 'single_opt_in', consent_updated_at: '2026-05-02T10:21:40+02:00', consent_collected_from: 'SHOPIFY' },
    });
    expect(productCreated).toMatchObject({ id: product.id, product_type: 'Shoes', vendor: 'Acme', tags: 'running, trail' });
    expect(orderCreated).toMatchObject({ id: order.id, financial_status: 'pending', customer: { id: customer.id }, customer_locale: 'de-DE' });
    expect(orderPaid).toMatchObject({
      id: order.id,
      name: '#1001',
      financial_status: 'paid',
      buyer_accepts_marketing: false,
      billing_address: { country_code: 'DE', company: 'Acme GmbH' },
      note_attributes: [{ name: 'no_marketing', value: 'yes' }],
      line_items: [{ product_id: product.id, variant_id: product.variants[0]!.id, vendor: 'Acme', quantity: 2, price: '10.00' }],
    });
    expect(updated.default_address.country_code).toBe('AT');
    expect(unsubscribed.email_marketing_consent).toEqual({ state: 'unsubscribed', opt_in_level: 'single_opt_in', consent_updated_at: '2026-05-03T11:00:00+02:00' });
    expect(uninstalled).toMatchObject({ myshopify_domain: SHOP });
    // What the app's mapper makes of them.
    const [, emailEffects, , productEffects, , paidEffects, , unsubscribeEffects, uninstallEffects] = deliveries.map((d) => d.effects);
    expect(emailEffects).toMatchObject([{ kind: 'consent', events: [{ channel: 'email', kind: 'grant', occurredAt: '2026-05-02T08:20:11.000Z' }] }]);
    expect(productEffects).toMatchObject([{ kind: 'product', product: { productId: String(product.id), productType: 'Shoes', tags: ['running', 'trail'] } }]);
    expect(paidEffects).toMatchObject([
      { kind: 'purchase', purchase: { orderId: String(order.id), country: 'DE', attributes: { no_marketing: 'yes' }, lines: [{ productId: String(product.id), quantity: 2 }] } },
    ]);
    expect(unsubscribeEffects).toMatchObject([{ kind: 'consent', events: [{ kind: 'withdraw', occurredAt: '2026-05-03T09:00:00.000Z' }] }]);
    expect(uninstallEffects).toEqual([{ kind: 'uninstall' }]);
    expect(sim.deliveries().every((d) => d.status === 'delivered')).toBe(true);
    expect(sim.state().counters).toMatchObject({ webhooksDelivered: 9, webhookAttemptsFailed: 0 });
  });

  it('a checkout with the marketing box ticked creates the customer and subscribes them (double opt-in: PENDING until confirmed)', async () => {
    await sim.stop();
    sim = await start({ shops: [{ domain: SHOP, accessToken: TOKEN, doubleOptIn: true }] });
    const product = sim.createProduct(SHOP, { title: 'Socks' });
    const order = sim.createOrder(SHOP, { email: 'new@example.com', lineItems: [{ productId: product.id }], acceptsEmailMarketing: true, billingAddress: { country: 'DE' } });
    expect(order.buyerAcceptsMarketing).toBe(true);
    const customer = sim.customer(SHOP, order.customerId!);
    expect(customer.emailMarketingConsent).toEqual({ state: 'PENDING', optInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-06-01T12:00:00Z' });
    clock.advance(60_000);
    expect(sim.confirmEmailMarketing(SHOP, customer.id).emailMarketingConsent).toEqual({ state: 'SUBSCRIBED', optInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-06-01T12:01:00Z' });
    expect(await topicsReceived()).toEqual([
      'products/create',
      'customers/create',
      'customers_email_marketing_consent/update',
      'orders/create',
      'orders/paid',
      'customers_email_marketing_consent/update',
    ]);
    const consent = receiver.received.filter((r) => verified(r).headers.topic === 'customers_email_marketing_consent/update').map((r) => verified(r).payload.email_marketing_consent.state);
    expect(consent).toEqual(['pending', 'subscribed']);
    expect(verified(receiver.received[4]!).payload.buyer_accepts_marketing).toBe(true);
  });

  it('retries a delivery answered non-2xx with the same webhook id and body, and logs every answer', async () => {
    receiver.failNext(2, 503);
    sim.createCustomer(SHOP, { email: 'retry@example.com' });
    await sim.flush();
    expect(receiver.received).toHaveLength(3);
    expect(new Set(receiver.received.map((r) => r.headers['x-shopify-webhook-id'])).size).toBe(1);
    expect(new Set(receiver.received.map((r) => r.raw.toString('utf8'))).size).toBe(1);
    const [delivery] = sim.deliveries();
    expect(delivery).toMatchObject({ topic: 'customers/create', status: 'delivered' });
    expect(delivery!.attempts.map((a) => a.status)).toEqual([503, 503, 200]);
    expect(delivery!.attempts[0]!.response).toBe('{"error":"try again"}');
    expect(sim.state().counters).toMatchObject({ webhookAttempts: 3, webhooksDelivered: 1, webhookAttemptsFailed: 2 });

    receiver.failNext(10, 500);
    sim.createCustomer(SHOP, { email: 'gives-up@example.com' });
    await sim.flush();
    expect(sim.deliveries()[1]).toMatchObject({ status: 'failed' });
    expect(sim.deliveries()[1]!.attempts).toHaveLength(4);
  });

  it('records an unreachable app and deliveries made before the app URL is known; redeliver sends a duplicate', async () => {
    sim.setAppUrl('http://127.0.0.1:1/webhooks/shopify');
    sim.createCustomer(SHOP, { email: 'nobody-home@example.com' });
    await sim.flush();
    expect(sim.deliveries()[0]).toMatchObject({ status: 'failed' });
    expect(sim.deliveries()[0]!.attempts[0]).toMatchObject({ status: null });
    expect(sim.deliveries()[0]!.attempts[0]!.error).toMatch(/fetch failed|ECONNREFUSED/);

    sim.setAppUrl(null);
    sim.createCustomer(SHOP, { email: 'later@example.com' });
    expect(sim.deliveries()[1]).toMatchObject({ status: 'no_target', attempts: [] });

    sim.setAppUrl(receiver.url);
    const original = sim.deliveries()[1]!;
    const duplicate = sim.redeliver(original.webhookId)!;
    await sim.flush();
    expect(duplicate).toMatchObject({ webhookId: original.webhookId, eventId: original.eventId, duplicateOf: original.webhookId, status: 'delivered' });
    expect(verified(receiver.received[0]!).headers.webhookId).toBe(original.webhookId);
  });

  it('signs with a rotated secret once set (the app accepts current and previous)', async () => {
    sim.setApiSecret('rotated-secret');
    sim.createCustomer(SHOP, { email: 'rotation@example.com' });
    await sim.flush();
    const get = (name: string) => String(receiver.received[0]!.headers[name.toLowerCase()] ?? '');
    expect(checkShopifyHmac(receiver.received[0]!.raw, get, ['rotated-secret', SECRET])).toEqual({ ok: true, secretIndex: 0 });
  });
});

// ---------------------------------------------------------------- Admin GraphQL with the app's connectors

describe('consent writes through the app connector', () => {
  it('writes email and SMS consent, reads it back, and sends each change back to the app as a consent webhook', async () => {
    const customer = sim.createCustomer(SHOP, { email: 'ana@example.com', phone: '+4915112345678', country: 'DE' });
    const id = String(customer.id);
    const connector = connectorFor(sim);
    const outcomes = await connector.updateConsent(tenantFor(), [
      write({ key: 'email', customerId: id, consentUpdatedAt: '2026-05-02T08:20:11.000Z' }),
      write({ key: 'sms', customerId: id, channel: 'sms', optInLevel: 'SINGLE_OPT_IN', consentUpdatedAt: '2026-05-02T08:21:00.000Z' }),
    ]);
    expect(outcomes).toEqual([
      { key: 'email', ok: true },
      { key: 'sms', ok: true },
    ]);
    expect(sim.customer(SHOP, id)).toMatchObject({
      emailMarketingConsent: { state: 'SUBSCRIBED', optInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-05-02T08:20:11Z' },
      smsMarketingConsent: { state: 'SUBSCRIBED', optInLevel: 'SINGLE_OPT_IN', consentUpdatedAt: '2026-05-02T08:21:00Z', collectedFrom: 'OTHER' },
    });

    // Shopify reports the app's own write back (echo suppression has something to suppress).
    expect(await topicsReceived()).toEqual(['customers/create', 'customers_email_marketing_consent/update', 'customers_marketing_consent/update']);
    expect(verified(receiver.received[1]!).payload.email_marketing_consent).toEqual({ state: 'subscribed', opt_in_level: 'confirmed_opt_in', consent_updated_at: '2026-05-02T10:20:11+02:00' });
    expect(verified(receiver.received[2]!).payload.sms_marketing_consent).toMatchObject({ state: 'subscribed', consent_collected_from: 'OTHER' });

    // The same write again changes nothing and sends nothing.
    expect(await connector.updateConsent(tenantFor(), [write({ key: 'again', customerId: id, consentUpdatedAt: '2026-05-02T08:20:11.000Z' })])).toEqual([{ key: 'again', ok: true }]);
    await sim.flush();
    expect(receiver.received).toHaveLength(3);

    const page = await connector.customersPage(tenantFor(), null);
    expect(page).toEqual({
      next: null,
      customers: [
        {
          customerId: id,
          email: 'ana@example.com',
          phone: '+4915112345678',
          updatedAt: '2026-06-01T12:00:00.000Z',
          email_marketing: { state: 'SUBSCRIBED', optInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-05-02T08:20:11.000Z' },
          sms_marketing: { state: 'SUBSCRIBED', optInLevel: 'SINGLE_OPT_IN', consentUpdatedAt: '2026-05-02T08:21:00.000Z' },
          countryCode: 'DE',
        },
      ],
    });
  });

  it('answers states Shopify refuses with userErrors; an unknown enum value or id fails the whole request', async () => {
    const customer = sim.createCustomer(SHOP, { email: 'ana@example.com' });
    const customerId = customer.gid;
    const consent = (marketingState: string) => ({ input: { customerId, emailMarketingConsent: { marketingState, consentUpdatedAt: '2026-05-02T08:20:11Z' } } });
    for (const state of ['NOT_SUBSCRIBED', 'REDACTED', 'INVALID']) {
      const { status, body } = await graphql(sim, EMAIL_MUTATION, consent(state));
      expect(status).toBe(200);
      expect(body.data.customerEmailMarketingConsentUpdate).toEqual({
        customer: null,
        userErrors: [{ field: ['input', 'emailMarketingConsent', 'marketingState'], message: expect.stringContaining(state), code: 'INCLUSION' }],
      });
      expect(body.extensions.cost).toMatchObject({ requestedQueryCost: 10, actualQueryCost: 10 });
    }
    const sms = await graphql(sim, SMS_MUTATION, { input: { customerId, smsMarketingConsent: { marketingState: 'NOT_SUBSCRIBED' } } });
    expect(sms.body.data.customerSmsMarketingConsentUpdate.userErrors[0]).toMatchObject({ code: 'INCLUSION' });
    const noPhone = await graphql(sim, SMS_MUTATION, { input: { customerId, smsMarketingConsent: { marketingState: 'SUBSCRIBED' } } });
    expect(noPhone.body.data.customerSmsMarketingConsentUpdate.userErrors[0]).toMatchObject({ field: ['input', 'customerId'], code: 'INVALID' });
    const missing = await graphql(sim, EMAIL_MUTATION, { input: { customerId: 'gid://shopify/Customer/1', emailMarketingConsent: { marketingState: 'SUBSCRIBED' } } });
    expect(missing.body.data.customerEmailMarketingConsentUpdate).toMatchObject({ customer: null, userErrors: [{ code: 'INVALID', message: 'Customer not found' }] });

    const bogus = await graphql(sim, EMAIL_MUTATION, consent('BOGUS'));
    expect(bogus.body).not.toHaveProperty('data');
    expect(bogus.body.errors[0].message).toMatch(/^Variable \$input of type CustomerEmailMarketingConsentUpdateInput! was provided invalid value for emailMarketingConsent\.marketingState/);
    const badId = await graphql(sim, EMAIL_MUTATION, { input: { customerId: '123', emailMarketingConsent: { marketingState: 'SUBSCRIBED' } } });
    expect(badId.body.errors[0].message).toBe("Invalid global id '123'");
    expect(sim.customer(SHOP, customer.id).emailMarketingConsent.state).toBe('NOT_SUBSCRIBED');

    // Through the connector, NOT_SUBSCRIBED is refused before any call; a userError is a failed item.
    const before = sim.state().counters.graphqlRequests;
    const connector = connectorFor(sim);
    const [refused] = await connector.updateConsent(tenantFor(), [write({ customerId: String(customer.id), state: 'NOT_SUBSCRIBED' as never })]);
    expect(refused).toMatchObject({ ok: false, retryable: false });
    expect(sim.state().counters.graphqlRequests).toBe(before);
    const [noSuchCustomer] = await connector.updateConsent(tenantFor(), [write({ customerId: '1' })]);
    expect(noSuchCustomer).toMatchObject({ ok: false, retryable: false, error: expect.stringContaining('Customer not found') });
  });

  it('keeps the newer consent when a write carries an older consentUpdatedAt, and answers the newer state', async () => {
    const customer = sim.createCustomer(SHOP, { email: 'ana@example.com' });
    sim.setEmailMarketing(SHOP, customer.id, { subscribed: true, optInLevel: 'CONFIRMED_OPT_IN', at: '2026-05-10T10:00:00Z' });
    await sim.flush();
    const sent = receiver.received.length;

    const raw = await graphql(sim, EMAIL_MUTATION, { input: { customerId: customer.gid, emailMarketingConsent: { marketingState: 'UNSUBSCRIBED', consentUpdatedAt: '2026-05-01T10:00:00Z' } } });
    expect(raw.body.data.customerEmailMarketingConsentUpdate).toEqual({
      customer: { id: customer.gid, defaultEmailAddress: { marketingState: 'SUBSCRIBED', marketingOptInLevel: 'CONFIRMED_OPT_IN', marketingUpdatedAt: '2026-05-10T10:00:00Z' } },
      userErrors: [],
    });

    const connector = connectorFor(sim);
    const [older] = await connector.updateConsent(tenantFor(), [write({ customerId: String(customer.id), state: 'UNSUBSCRIBED', optInLevel: null, consentUpdatedAt: '2026-05-02T08:00:00.000Z' })]);
    expect(older).toMatchObject({ ok: true, note: expect.stringContaining('newer consent record') });
    expect(sim.customer(SHOP, customer.id).emailMarketingConsent).toEqual({ state: 'SUBSCRIBED', optInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-05-10T10:00:00Z' });
    await sim.flush();
    expect(receiver.received).toHaveLength(sent);

    const [newer] = await connector.updateConsent(tenantFor(), [write({ customerId: String(customer.id), state: 'UNSUBSCRIBED', optInLevel: null, consentUpdatedAt: '2026-05-11T08:00:00.000Z' })]);
    expect(newer).toEqual({ key: 'w1', ok: true });
    await sim.flush();
    expect(verified(receiver.received[sent]!).payload.email_marketing_consent).toMatchObject({ state: 'unsubscribed', opt_in_level: 'confirmed_opt_in' });
  });
});

describe('the cost-based throttle', () => {
  it('makes the connector meet THROTTLED on a tiny bucket, wait what throttleStatus says, and counts it', async () => {
    const a = sim.createCustomer(SHOP, { email: 'a@example.com' });
    const b = sim.createCustomer(SHOP, { email: 'b@example.com' });
    expect(sim.setThrottle(SHOP, { maximumAvailable: 15, restoreRate: 1, currentlyAvailable: 15 })).toEqual({ maximumAvailable: 15, currentlyAvailable: 15, restoreRate: 1 });
    const sleeps: number[] = [];
    const waiting = connectorFor(sim, {
      sleep: async (ms) => {
        sleeps.push(ms);
        clock.advance(ms);
      },
    });
    const outcomes = await waiting.updateConsent(tenantFor(), [write({ key: 'a', customerId: String(a.id) }), write({ key: 'b', customerId: String(b.id) })]);
    expect(outcomes).toEqual([
      { key: 'a', ok: true },
      { key: 'b', ok: true },
    ]);
    // 15 − 10 = 5 left; the second mutation needs 10: (10 − 5) / 1 per second.
    expect(sleeps).toEqual([5000]);
    expect(sim.state().counters.throttled).toBe(1);
    expect(sim.state().shops[0]!.counters.throttled).toBe(1);

    const raw = await graphql(sim, EMAIL_MUTATION, { input: { customerId: a.gid, emailMarketingConsent: { marketingState: 'SUBSCRIBED' } } });
    expect(raw.status).toBe(200);
    expect(raw.body).toEqual({
      errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED', documentation: 'https://shopify.dev/api/usage/rate-limits' } }],
      extensions: { cost: { requestedQueryCost: 10, actualQueryCost: null, throttleStatus: { maximumAvailable: 15, currentlyAvailable: 0, restoreRate: 1 } } },
    });

    // A bucket that never refills (nothing advances the clock): the connector gives up with the wait it needs.
    const stuck = connectorFor(sim, {}, { retry: { maxAttempts: 2 } });
    const error = await stuck.updateConsent(tenantFor(), [write({ customerId: String(a.id) })]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PlatformCallError);
    expect(error).toMatchObject({ kind: 'rate_limited', retryable: true, retryAfterMs: 10_000 });
    expect(sim.state().counters.throttled).toBe(4);
  });

  it('refuses a query requesting more than 1,000 points; the connector pages by 200 (802 points) and is refunded the unused part', async () => {
    const nodes = 'nodes { id defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } defaultAddress { countryCodeV2 } }';
    const tooBig = await graphql(sim, `{ customers(first: 250, sortKey: ID) { pageInfo { hasNextPage } ${nodes} } }`);
    expect(tooBig.body.errors[0]).toMatchObject({ extensions: { code: 'MAX_COST_EXCEEDED', cost: 1002, maxCost: 1000 } });
    expect(tooBig.body.errors[0].message).toMatch(/^Query cost is 1002, which exceeds the single query max cost limit \(1000\)/);
    expect(tooBig.body).not.toHaveProperty('data');

    sim.createCustomer(SHOP, { email: 'ana@example.com', country: 'DE' });
    const page = await graphql(sim, `{ customers(first: ${CUSTOMERS_PAGE_SIZE}, sortKey: ID) { pageInfo { hasNextPage } ${nodes} } }`);
    // One customer with an email and an address, no phone: 2 + 1 + 1 + 1.
    expect(page.body.extensions.cost).toEqual({ requestedQueryCost: 802, actualQueryCost: 5, throttleStatus: { maximumAvailable: 1000, currentlyAvailable: 995, restoreRate: 50 } });
  });
});

describe('reads the app makes', () => {
  it('the product catalog reads type, vendor, tags, category and every collection (paging past the first 10)', async () => {
    const handles = Array.from({ length: 12 }, (_, i) => `collection-${String(i + 1).padStart(2, '0')}`);
    const shoe = sim.createProduct(SHOP, {
      title: 'Trail Runner',
      productType: 'Shoes',
      vendor: 'Acme',
      tags: 'running, trail , running',
      category: { id: 'aa-8-1', fullName: 'Apparel & Accessories > Shoes > Athletic Shoes' },
      collections: handles,
    });
    const gift = sim.createProduct(SHOP, { title: 'Gift card', productType: '', vendor: 'Acme' });
    const catalog = new ShopifyProductCatalog({ shopify, tokenFor: async () => TOKEN, logger: silentLogger, baseUrl: sim.url, sleep: async () => undefined });
    const facts = await catalog.products(tenantFor(), [String(shoe.id), String(gift.id), '999999']);
    expect(facts.size).toBe(2);
    expect(facts.get(String(shoe.id))).toEqual({
      productId: String(shoe.id),
      productType: 'Shoes',
      vendor: 'Acme',
      tags: ['running', 'trail'],
      taxonomyCategory: { id: 'aa-8-1', fullName: 'Apparel & Accessories > Shoes > Athletic Shoes' },
      collections: shoe.collections.map((c) => ({ id: String(c.id), handle: c.handle })),
      updatedAt: '2026-06-01T12:00:00.000Z',
    });
    expect(shoe.collections.map((c) => c.handle)).toEqual(handles);
    expect(facts.get(String(gift.id))).toMatchObject({ productType: null, taxonomyCategory: null, collections: [] });
    // One nodes() query for the batch, one follow-up page of collections.
    expect(sim.state().counters.graphqlRequests).toBe(2);
  });

  it('customers page by id range over 600 customers, while cursor paging stops at the pagination limit', async () => {
    await sim.stop();
    sim = await start({ appWebhookUrl: null, paginationLimit: 250 });
    const created = Array.from({ length: 600 }, (_, i) => sim.createCustomer(SHOP, { email: `c${i}@example.com`, ...(i % 3 === 0 ? { country: 'FR' } : {}) }).id);
    expect(sim.deliveries()).toHaveLength(600);
    expect(sim.deliveries().every((d) => d.status === 'no_target')).toBe(true);
    const sleeps: number[] = [];
    const connector = connectorFor(sim, {
      sleep: async (ms) => {
        sleeps.push(ms);
        clock.advance(ms);
      },
    });
    const seen: string[] = [];
    const sizes: number[] = [];
    let lastId: string | null = null;
    for (;;) {
      const page = await connector.customersPage(tenantFor(), null, lastId === null ? undefined : customerIdRangeQuery(lastId));
      sizes.push(page.customers.length);
      seen.push(...page.customers.map((c) => c.customerId));
      if (page.customers.length === 0 || page.next === null) break;
      lastId = page.customers[page.customers.length - 1]!.customerId;
    }
    expect(sizes).toEqual([200, 200, 200]);
    expect(seen).toEqual(created.map(String));
    // 802 points a page from a 1,000-point bucket refilled at 50/s: the connector waited for the bucket.
    expect(sim.state().counters.throttled).toBeGreaterThan(0);
    expect(sleeps.length).toBeGreaterThan(0);

    // Narrowed by a search query as well.
    const french = await connector.customersPage(tenantFor(), null, customerIdRangeQuery(String(created[299]), 'country:FR'));
    expect(french.customers.map((c) => c.customerId)).toEqual(created.filter((_, i) => i >= 300 && i % 3 === 0).slice(0, 200).map(String));

    // Cursor paging past the limit (250 here, 25,000 on Shopify) fails.
    const first = await connector.customersPage(tenantFor(), null);
    const second = await connector.customersPage(tenantFor(), first.next);
    expect(second.customers).toHaveLength(50);
    expect(second.next).not.toBeNull();
    await expect(connector.customersPage(tenantFor(), second.next)).rejects.toMatchObject({ kind: 'client_error', retryable: false });
    const raw = await graphql(sim, `query($after: String) { customers(first: 10, after: $after) { nodes { id } } }`, { after: second.next });
    expect(raw.body).toMatchObject({ data: null, errors: [{ message: expect.stringContaining('Pagination is limited to 250 objects'), path: ['customers'] }] });
  });
});

describe('tokens and access', () => {
  it('refreshShopifyToken rotates the pair; the new token works until it expires; the used refresh token is dead', async () => {
    const deps = { apiKey: API_KEY, apiSecretKey: SECRET, clock, baseUrl: sim.url };
    const refreshed = await refreshShopifyToken(deps, SHOP, 'shprt_initial');
    expect(refreshed).toEqual({ accessToken: expect.stringMatching(/^shpat_sim_/), refreshToken: expect.stringMatching(/^shprt_sim_/), expiresAt: '2026-06-01T13:00:00.000Z' });
    expect(await connectorFor(sim, { token: refreshed.accessToken }).customersPage(tenantFor(), null)).toEqual({ customers: [], next: null });

    await expect(refreshShopifyToken(deps, SHOP, 'shprt_initial')).rejects.toMatchObject({ kind: 'auth', status: 400, message: expect.stringContaining('invalid_grant') });
    await expect(refreshShopifyToken({ ...deps, apiSecretKey: 'wrong' }, SHOP, refreshed.refreshToken)).rejects.toMatchObject({ kind: 'auth', status: 401, message: expect.stringContaining('invalid_client') });
    const again = await refreshShopifyToken(deps, SHOP, refreshed.refreshToken);
    expect(again.refreshToken).not.toBe(refreshed.refreshToken);
    expect(sim.state().counters.tokenRefreshes).toBe(2);

    clock.advance(3601_000);
    await expect(connectorFor(sim, { token: again.accessToken }).customersPage(tenantFor(), null)).rejects.toMatchObject({ kind: 'auth', status: 401 });
    // The original token never expires (a legacy offline token).
    expect(await connectorFor(sim).customersPage(tenantFor(), null)).toEqual({ customers: [], next: null });
  });

  it('answers 401 to a wrong or revoked token and 404 to an unknown shop; a myshopify Host names the shop too', async () => {
    const wrong = await graphql(sim, '{ shop { name } }', {}, 'shpat_wrong');
    expect(wrong).toEqual({ status: 401, body: { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' } });
    await expect(connectorFor(sim, { token: 'shpat_wrong' }).customersPage(tenantFor(), null)).rejects.toMatchObject({ kind: 'auth', status: 401 });
    await expect(connectorFor(sim).customersPage(tenantFor('unknown-shop.myshopify.com'), null)).rejects.toMatchObject({ status: 404 });

    const byHost = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const body = JSON.stringify({ query: '{ shop { myshopifyDomain } }' });
      const req = http.request(`${sim.url}${GRAPHQL_PATH}`, { method: 'POST', headers: { Host: SHOP, 'Content-Type': 'application/json', 'X-Shopify-Access-Token': TOKEN } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(byHost.status).toBe(200);
    expect(byHost.body.data).toEqual({ shop: { myshopifyDomain: SHOP } });

    sim.uninstall(SHOP);
    await expect(connectorFor(sim).customersPage(tenantFor(), null)).rejects.toMatchObject({ kind: 'auth', status: 401 });
    await expect(refreshShopifyToken({ apiKey: API_KEY, apiSecretKey: SECRET, clock, baseUrl: sim.url }, SHOP, 'shprt_initial')).rejects.toMatchObject({ kind: 'auth' });
    expect(sim.state().counters.unauthorized).toBe(3);
  });

  it('refuses unknown fields like Shopify, so an app query the simulator cannot answer fails loudly', async () => {
    const { body } = await graphql(sim, '{ customers(first: 1) { nodes { id acceptsMarketing } } }');
    expect(body).toEqual({
      errors: [{ message: "Field 'acceptsMarketing' doesn't exist on type 'Customer'", locations: [{ line: 1, column: 36 }], extensions: { code: 'undefinedField', typeName: 'Customer', fieldName: 'acceptsMarketing' } }],
    });
    const syntax = await graphql(sim, '{ customers(first: 1) { nodes { id } }');
    expect(syntax.body.errors[0].message).toMatch(/^Parse error on end of document/);
  });
});

describe('the /_sim HTTP API', () => {
  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${sim.url}${path}`, { method, headers: { 'Content-Type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: response.status, body: await response.json() };
  }

  it('makes things happen in the store and reports the whole state', async () => {
    const created = await call('POST', `/_sim/shops/${SHOP}/customers`, { email: 'http@example.com', phone: '+33612345678', country: 'FR', company: 'Dupont SA' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ email: 'http@example.com', defaultAddress: { countryCode: 'FR', company: 'Dupont SA' }, emailMarketingConsent: { state: 'NOT_SUBSCRIBED' } });
    const ticked = await call('POST', `/_sim/shops/${SHOP}/customers/${created.body.id}/email-marketing?wait=1`, { subscribed: true, at: '2026-05-02T08:20:11Z' });
    expect(ticked.body.emailMarketingConsent).toEqual({ state: 'SUBSCRIBED', optInLevel: 'SINGLE_OPT_IN', consentUpdatedAt: '2026-05-02T08:20:11Z' });
    expect(receiver.received).toHaveLength(2); // ?wait=1: the webhooks went out before the answer
    const sms = await call('POST', `/_sim/shops/${SHOP}/customers/${created.body.id}/sms-marketing`, { subscribed: true });
    expect(sms.body.smsMarketingConsent).toMatchObject({ state: 'SUBSCRIBED', collectedFrom: 'SHOPIFY' });
    const product = await call('POST', `/_sim/shops/${SHOP}/products`, { title: 'Beret', productType: 'Hats', tags: ['wool'], category: 'aa-2-1', collections: [{ handle: 'winter', title: 'Winter' }] });
    expect(product.status).toBe(201);
    const order = await call('POST', `/_sim/shops/${SHOP}/orders?wait=1`, {
      email: 'http@example.com',
      lineItems: [{ productId: product.body.id, price: '25.50' }],
      billingAddress: { country: 'FR' },
      noteAttributes: [{ name: 'marketing_objection', value: 'true' }],
      pay: false,
    });
    expect(order.body).toMatchObject({ customerId: created.body.id, financialStatus: 'pending', noteAttributes: [{ name: 'marketing_objection', value: 'true' }] });
    const paid = await call('POST', `/_sim/shops/${SHOP}/orders/${order.body.id}/pay?wait=1`, {});
    expect(paid.body.financialStatus).toBe('paid');
    expect(await call('POST', `/_sim/shops/${SHOP}/customers/${created.body.id}/unsubscribe`, { channel: 'all' })).toMatchObject({
      body: { emailMarketingConsent: { state: 'UNSUBSCRIBED' }, smsMarketingConsent: { state: 'UNSUBSCRIBED' } },
    });
    await call('POST', '/_sim/flush');

    const { body: state } = await call('GET', '/_sim/state');
    expect(state).toMatchObject({ url: sim.url, appWebhookUrl: receiver.url, apiVersion: '2026-04' });
    expect(state.shops[0]).toMatchObject({
      domain: SHOP,
      installed: true,
      throttleStatus: { maximumAvailable: 1000, restoreRate: 50 },
      customers: [{ email: 'http@example.com', emailMarketingConsent: { state: 'UNSUBSCRIBED' } }],
      products: [{ title: 'Beret', collections: [{ handle: 'winter', title: 'Winter' }], category: { id: 'aa-2-1' } }],
      orders: [{ financialStatus: 'paid', billingCountry: 'FR' }],
      accessTokens: [{ token: TOKEN, expiresAt: null }],
    });
    expect(state.webhooks.map((w: { topic: string }) => w.topic)).toEqual([
      'customers/create',
      'customers_email_marketing_consent/update',
      'customers_marketing_consent/update',
      'products/create',
      'orders/create',
      'orders/paid',
      'customers_email_marketing_consent/update',
      'customers_marketing_consent/update',
    ]);
    expect(state.webhooks[0]).toMatchObject({ status: 'delivered', payload: { email: 'http@example.com' }, attempts: [{ status: 200, response: '{"status":"accepted"}' }] });
    expect(state.counters.requests).toBeGreaterThanOrEqual(9);
    for (const r of receiver.received) verified(r);
  });

  it('refuses bad input with 400 and unknown shops or customers with 404', async () => {
    expect(await call('POST', `/_sim/shops/${SHOP}/customers`, { email: 'x@example.com', shoeSize: 42 })).toMatchObject({ status: 400, body: { error: expect.stringContaining('shoeSize') } });
    expect(await call('POST', `/_sim/shops/${SHOP}/customers`, { phone: '0612345678' })).toMatchObject({ status: 400, body: { error: expect.stringContaining('E.164') } });
    expect(await call('POST', '/_sim/shops/nope.myshopify.com/customers', { email: 'x@example.com' })).toMatchObject({ status: 404 });
    expect(await call('POST', `/_sim/shops/${SHOP}/customers/123/email-marketing`, { subscribed: true })).toMatchObject({ status: 404 });
    await call('POST', `/_sim/shops/${SHOP}/customers`, { email: 'dup@example.com' });
    expect(await call('POST', `/_sim/shops/${SHOP}/customers`, { email: 'DUP@example.com' })).toMatchObject({ status: 409, body: { error: 'Email has already been taken' } });
  });
});
