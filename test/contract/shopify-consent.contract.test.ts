/**
 * ShopifyConsentPort contract for ShopifyConsentConnector (connectors/shopify/consent.ts; issue 5 §4), with the
 * Shopify Admin API faked at the HTTP boundary by nock (≥ 14 intercepts native fetch, shopify.md §4.7;
 * style.md §19): the exact mutation and query bodies, every failure class of the port (userErrors, read-back,
 * local refusals, THROTTLED, 429, 5xx, timeout, reset, 401/403, malformed), paging, tokens from the
 * `AccessTokens` port, routing to a base URL (SHOPIFY_API_BASE_URL), the token refresh, and no personal data in
 * logs. Every test ends with its interceptors consumed (`isDone()`).
 */
// nock first: it patches globalThis.fetch on import, and the Shopify node adapter captures that fetch when loaded.
import nock from 'nock';
import { defaultSettings } from '../../src/config/manifest';
import { silentLogger } from '../../src/log/logger';
import type { LogFields, Logger } from '../../src/ports';
import { PlatformCallError, type AccessTokens, type ShopifyConsentWrite } from '../../src/sync/ports';
import type { Tenant } from '../../src/tenants/tenants';
import { createShopifyAdminApi, SHOPIFY_API_VERSION } from '../../connectors/shopify/admin-api';
import { ShopifyProductCatalog } from '../../connectors/shopify/catalog';
import {
  CUSTOMERS_PAGE_SIZE,
  customerIdRangeQuery,
  judgeReadBack,
  ShopifyConsentConnector,
  type ShopifyConsentConnectorOptions,
} from '../../connectors/shopify/consent';
import { refreshShopifyToken } from '../../connectors/shopify/token';
import { fixedClock } from '../helpers/deps';

const GRAPHQL_PATH = `/admin/api/${SHOPIFY_API_VERSION}/graphql.json`;
const TOKEN = 'shpat_consent_contract_token';
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const COST = { requestedQueryCost: 10, actualQueryCost: 10, throttleStatus: { maximumAvailable: 2000, currentlyAvailable: 1990, restoreRate: 100 } };
const EMAIL = 'ana@example.com';
const PHONE = '+4915112345678';

const shopify = createShopifyAdminApi({ apiKey: 'contract-key', apiSecretKey: 'contract-secret', appUrl: 'https://bridge.example.com', logger: silentLogger });

interface GraphqlBody {
  query: string;
  variables: Record<string, unknown>;
}

interface Seen {
  token: string | undefined;
  shopHeader: string | undefined;
  body: GraphqlBody;
}

/** The tenant's token, as the core's AccessTokens would hand it out; records who asked. */
class FakeTokens implements AccessTokens {
  readonly calls: Array<{ tenantId: string; platform: string }> = [];
  constructor(private readonly token: string) {}
  async accessToken(tenant: Tenant, platform: 'shopify' | 'hubspot'): Promise<string> {
    this.calls.push({ tenantId: tenant.id, platform });
    return this.token;
  }
}

/** A Logger that keeps every record unmasked, to prove the connector itself logs no personal data. */
function recordingLogger(lines: string[], bindings: LogFields = {}): Logger {
  const write = (level: string) => (fields: LogFields, message: string) => {
    lines.push(JSON.stringify({ level, ...bindings, ...fields, message }));
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), child: (more) => recordingLogger(lines, { ...bindings, ...more }) };
}

let shopCounter = 0;

function tenantFor(shopDomain: string, status: Tenant['status'] = 'active'): Tenant {
  return {
    id: `tenant-${shopDomain}`,
    shopDomain,
    hubspotPortalId: '1',
    status,
    settings: defaultSettings(),
    hasShopifyCredentials: true,
    hasHubspotCredentials: false,
    createdAt: '2026-06-01T12:00:00.000Z',
    updatedAt: '2026-06-01T12:00:00.000Z',
  };
}

interface Subject {
  readonly connector: ShopifyConsentConnector;
  readonly tenant: Tenant;
  readonly tokens: FakeTokens;
  readonly sleeps: number[];
  readonly logs: string[];
  api(): nock.Scope;
}

function make(options: ShopifyConsentConnectorOptions = {}, extra: { baseUrl?: string } = {}): Subject {
  const tenant = tenantFor(`consent-shop-${++shopCounter}.myshopify.com`);
  const tokens = new FakeTokens(TOKEN);
  const sleeps: number[] = [];
  const logs: string[] = [];
  const connector = new ShopifyConsentConnector(
    {
      shopify,
      tokens,
      logger: recordingLogger(logs),
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      random: () => 0.5,
      ...extra,
    },
    options,
  );
  return { connector, tenant, tokens, sleeps, logs, api: () => nock(`https://${tenant.shopDomain}`) };
}

/** Records the token, the shop header and the body of a request, then answers `answer`. */
function capture(seen: Seen[], answer: unknown | ((body: GraphqlBody) => unknown)) {
  return function (this: nock.ReplyFnContext, _uri: string, body: nock.Body) {
    const parsed = body as unknown as GraphqlBody;
    seen.push({
      token: this.req.headers['x-shopify-access-token'] as string | undefined,
      shopHeader: this.req.headers['x-shopify-shop-domain'] as string | undefined,
      body: parsed,
    });
    return typeof answer === 'function' ? (answer as (b: GraphqlBody) => unknown)(parsed) : answer;
  };
}

const write = (over: Partial<ShopifyConsentWrite> = {}): ShopifyConsentWrite => ({
  key: 'outbox-1',
  customerId: '7301122334455',
  channel: 'email',
  state: 'SUBSCRIBED',
  optInLevel: 'CONFIRMED_OPT_IN',
  consentUpdatedAt: '2026-05-02T08:20:11.000Z',
  ...over,
});

interface ReadBackFields {
  marketingState: string;
  marketingOptInLevel: string | null;
  marketingUpdatedAt: string | null;
}

/** The answer to customerEmailMarketingConsentUpdate (shopify.md §3.1). */
function emailAnswer(customerId: string, consent: ReadBackFields | null, userErrors: unknown[] = []) {
  return {
    data: { customerEmailMarketingConsentUpdate: { customer: userErrors.length > 0 ? null : { id: `gid://shopify/Customer/${customerId}`, defaultEmailAddress: consent }, userErrors } },
    extensions: { cost: COST },
  };
}

function smsAnswer(customerId: string, consent: ReadBackFields | null, userErrors: unknown[] = []) {
  return {
    data: { customerSmsMarketingConsentUpdate: { customer: userErrors.length > 0 ? null : { id: `gid://shopify/Customer/${customerId}`, defaultPhoneNumber: consent }, userErrors } },
    extensions: { cost: COST },
  };
}

/** Shopify applied the write as asked (its DateTime has no milliseconds). */
const applied = (w: ShopifyConsentWrite): ReadBackFields => ({
  marketingState: w.state,
  marketingOptInLevel: w.optInLevel,
  marketingUpdatedAt: w.consentUpdatedAt.replace('.000Z', 'Z'),
});

/** Answers a mutation as Shopify does when it applies it. */
const echo = (body: GraphqlBody) => {
  const input = body.variables.input as { customerId: string; emailMarketingConsent?: { marketingState: string; marketingOptInLevel?: string; consentUpdatedAt: string }; smsMarketingConsent?: typeof input.emailMarketingConsent };
  const id = input.customerId.slice(input.customerId.lastIndexOf('/') + 1);
  const consent = input.emailMarketingConsent ?? input.smsMarketingConsent!;
  const readBack = { marketingState: consent.marketingState, marketingOptInLevel: consent.marketingOptInLevel ?? null, marketingUpdatedAt: consent.consentUpdatedAt };
  return input.emailMarketingConsent ? emailAnswer(id, readBack) : smsAnswer(id, readBack);
};

const echoReply = (_uri: string, body: nock.Body) => echo(body as unknown as GraphqlBody);

const THROTTLED = {
  errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED', documentation: 'https://shopify.dev/api/usage/rate-limits' } }],
  extensions: { cost: { requestedQueryCost: 10, actualQueryCost: null, throttleStatus: { maximumAvailable: 2000, currentlyAvailable: 1, restoreRate: 100 } } },
};
/** (10 − 1) points / 100 points per second. */
const THROTTLED_WAIT_MS = 90;

async function rejection(promise: Promise<unknown>): Promise<PlatformCallError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PlatformCallError);
  return error as PlatformCallError;
}

beforeAll(() => {
  nock.disableNetConnect();
});
afterEach(() => {
  nock.abortPendingRequests();
  nock.cleanAll();
});
afterAll(() => {
  nock.enableNetConnect();
});

describe('ShopifyConsentConnector.updateConsent', () => {
  it('writes email consent: customer GID, state, opt-in level and consentUpdatedAt, with the token from AccessTokens', async () => {
    const s = make();
    const seen: Seen[] = [];
    const w = write();
    const scope = s.api().post(GRAPHQL_PATH).reply(200, capture(seen, emailAnswer(w.customerId, applied(w))), JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [w]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([{ key: 'outbox-1', ok: true }]);
    expect(s.tokens.calls).toEqual([{ tenantId: s.tenant.id, platform: 'shopify' }]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.token).toBe(TOKEN);
    expect(seen[0]?.body.query).toMatch(/customerEmailMarketingConsentUpdate\(input: \$input\)/);
    expect(seen[0]?.body.query).toMatch(/\$input: CustomerEmailMarketingConsentUpdateInput!/);
    expect(seen[0]?.body.query).toMatch(/userErrors \{ field message code \}/);
    expect(seen[0]?.body.variables).toEqual({
      input: {
        customerId: 'gid://shopify/Customer/7301122334455',
        emailMarketingConsent: { marketingState: 'SUBSCRIBED', marketingOptInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-05-02T08:20:11.000Z' },
      },
    });
  });

  it('writes SMS consent with smsMarketingConsent; a null opt-in level is left out; writes go one after another', async () => {
    const s = make();
    const seen: Seen[] = [];
    const sms = write({ key: 'sms-1', channel: 'sms', state: 'UNSUBSCRIBED', optInLevel: null, consentUpdatedAt: '2026-05-03T09:00:00.000Z' });
    const pending = write({ key: 'sms-2', customerId: '42', channel: 'sms', state: 'PENDING', optInLevel: 'CONFIRMED_OPT_IN' });
    const scope = s.api().post(GRAPHQL_PATH).times(2).reply(200, capture(seen, echo), JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [sms, pending]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'sms-1', ok: true },
      { key: 'sms-2', ok: true },
    ]);
    expect(seen.map((x) => x.body.query)).toEqual([expect.stringMatching(/customerSmsMarketingConsentUpdate\(input: \$input\)/), expect.stringMatching(/CustomerSmsMarketingConsentUpdateInput!/)]);
    expect(seen.map((x) => x.body.variables)).toEqual([
      { input: { customerId: 'gid://shopify/Customer/7301122334455', smsMarketingConsent: { marketingState: 'UNSUBSCRIBED', consentUpdatedAt: '2026-05-03T09:00:00.000Z' } } },
      {
        input: {
          customerId: 'gid://shopify/Customer/42',
          smsMarketingConsent: { marketingState: 'PENDING', marketingOptInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-05-02T08:20:11.000Z' },
        },
      },
    ]);
  });

  it('userErrors make a failed item with their messages, not retryable; the next write still goes', async () => {
    const s = make();
    const missing = write({ key: 'a', customerId: '999' });
    const fine = write({ key: 'b' });
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, emailAnswer('999', null, [{ field: ['input', 'customerId'], message: 'Customer does not exist', code: 'INVALID' }]), JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(200, emailAnswer(fine.customerId, applied(fine)), JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [missing, fine]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'a', ok: false, retryable: false, error: expect.stringContaining('INVALID: Customer does not exist (input.customerId)') },
      { key: 'b', ok: true },
    ]);
  });

  it('a userError that says it was throttled is retryable', async () => {
    const s = make();
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, emailAnswer('1', null, [{ field: null, message: 'Request was throttled, try again later', code: 'INTERNAL_ERROR' }]), JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [write({ customerId: '1' })]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([{ key: 'outbox-1', ok: false, retryable: true, error: expect.stringMatching(/throttled/) }]);
  });

  it.each<[string, ShopifyConsentWrite, ReadBackFields | null, RegExp]>([
    ['another state, older', write(), { marketingState: 'UNSUBSCRIBED', marketingOptInLevel: null, marketingUpdatedAt: '2026-05-01T00:00:00Z' }, /reports UNSUBSCRIBED .* after a write of SUBSCRIBED/],
    ['another state, same second', write(), { marketingState: 'PENDING', marketingOptInLevel: 'CONFIRMED_OPT_IN', marketingUpdatedAt: '2026-05-02T08:20:11Z' }, /reports PENDING/],
    ['another state, no time', write({ state: 'UNSUBSCRIBED' }), { marketingState: 'SUBSCRIBED', marketingOptInLevel: 'SINGLE_OPT_IN', marketingUpdatedAt: null }, /at no time given/],
    ['SUBSCRIBED with another opt-in level', write(), { marketingState: 'SUBSCRIBED', marketingOptInLevel: 'SINGLE_OPT_IN', marketingUpdatedAt: '2026-05-02T08:20:11Z' }, /SUBSCRIBED \(SINGLE_OPT_IN\)/],
    ['REDACTED', write(), { marketingState: 'REDACTED', marketingOptInLevel: null, marketingUpdatedAt: '2026-04-01T00:00:00Z' }, /reports REDACTED/],
    ['no email address', write(), null, /has no email address/],
  ])('a read-back that differs from the write fails the item (%s)', async (_name, w, readBack, error) => {
    const s = make();
    const scope = s.api().post(GRAPHQL_PATH).reply(200, emailAnswer(w.customerId, readBack), JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [w]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([{ key: w.key, ok: false, retryable: false, error: expect.stringMatching(error) }]);
  });

  it('a newer consent record already in Shopify: ok, with a note (Shopify keeps the newest)', async () => {
    const s = make();
    const w = write({ channel: 'sms', state: 'SUBSCRIBED', optInLevel: 'SINGLE_OPT_IN' });
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, smsAnswer(w.customerId, { marketingState: 'UNSUBSCRIBED', marketingOptInLevel: null, marketingUpdatedAt: '2026-05-02T08:20:12Z' }), JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [w]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([{ key: w.key, ok: true, note: expect.stringMatching(/newer consent record \(UNSUBSCRIBED updated 2026-05-02T08:20:12Z\)/) }]);
  });

  it('an answer for another customer, or of an unexpected shape, fails the item', async () => {
    const s = make();
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, emailAnswer('555', applied(write())), JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(200, { data: { customerEmailMarketingConsentUpdate: { customer: null } } }, JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [write({ key: 'a' }), write({ key: 'b' })]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'a', ok: false, retryable: false, error: expect.stringMatching(/for customer 555, not 7301122334455/) },
      { key: 'b', ok: false, retryable: false, error: expect.stringMatching(/unexpected shape/) },
    ]);
  });

  it('refuses NOT_SUBSCRIBED (and other unwritable writes) locally: failed, not retryable, no token asked, no call', async () => {
    const s = make();
    const unwritable = [
      write({ key: 'not-subscribed', state: 'NOT_SUBSCRIBED' as ShopifyConsentWrite['state'] }),
      write({ key: 'sms-not-subscribed', channel: 'sms', state: 'NOT_SUBSCRIBED' as ShopifyConsentWrite['state'] }),
      write({ key: 'redacted', state: 'REDACTED' as ShopifyConsentWrite['state'] }),
      write({ key: 'invalid', state: 'INVALID' as ShopifyConsentWrite['state'] }),
      write({ key: 'channel', channel: 'whatsapp' as ShopifyConsentWrite['channel'] }),
      write({ key: 'level', optInLevel: 'DOUBLE' as ShopifyConsentWrite['optInLevel'] }),
      write({ key: 'id', customerId: 'gid://shopify/Customer/1' }),
      write({ key: 'time', consentUpdatedAt: 'yesterday' }),
    ];
    const outcomes = await s.connector.updateConsent(s.tenant, unwritable);
    expect(outcomes.map((o) => [o.key, o.ok, !o.ok && o.retryable])).toEqual(unwritable.map((w) => [w.key, false, false]));
    expect(outcomes[0]).toMatchObject({ error: expect.stringMatching(/only SUBSCRIBED, UNSUBSCRIBED and PENDING, not NOT_SUBSCRIBED/) });
    expect(s.tokens.calls).toEqual([]);
    expect(nock.isDone()).toBe(true);
  });

  it('writes the valid writes among refused ones, in order', async () => {
    const s = make();
    const seen: Seen[] = [];
    const scope = s.api().post(GRAPHQL_PATH).reply(200, capture(seen, echo), JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [write({ key: 'bad', state: 'NOT_SUBSCRIBED' as ShopifyConsentWrite['state'] }), write({ key: 'good' })]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'bad', ok: false, retryable: false, error: expect.any(String) },
      { key: 'good', ok: true },
    ]);
    expect(seen).toHaveLength(1);
  });

  it('THROTTLED inside HTTP 200 on the first write: throws retryable rate_limited with the bucket refill time', async () => {
    const s = make({ retry: { maxAttempts: 1 } });
    const scope = s.api().post(GRAPHQL_PATH).reply(200, THROTTLED, JSON_HEADERS);
    const error = await rejection(s.connector.updateConsent(s.tenant, [write()]));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ platform: 'shopify', kind: 'rate_limited', retryable: true, status: 200, retryAfterMs: THROTTLED_WAIT_MS });
  });

  it('THROTTLED with a short wait is waited out in-process, then written', async () => {
    const s = make();
    const seen: Seen[] = [];
    const scope = s.api().post(GRAPHQL_PATH).reply(200, THROTTLED, JSON_HEADERS).post(GRAPHQL_PATH).reply(200, capture(seen, echo), JSON_HEADERS);
    expect(await s.connector.updateConsent(s.tenant, [write()])).toEqual([{ key: 'outbox-1', ok: true }]);
    expect(scope.isDone()).toBe(true);
    expect(s.sleeps).toEqual([THROTTLED_WAIT_MS]);
  });

  it('a rate limit hit mid-list: done writes keep their outcome, the rest fail retryable with retryAfterMs, unsent', async () => {
    const s = make({ retry: { maxAttempts: 1 } });
    const scope = s.api().post(GRAPHQL_PATH).reply(200, echoReply, JSON_HEADERS).post(GRAPHQL_PATH).reply(200, THROTTLED, JSON_HEADERS);
    const outcomes = await s.connector.updateConsent(s.tenant, [
      write({ key: 'a' }),
      write({ key: 'b' }),
      write({ key: 'c', state: 'NOT_SUBSCRIBED' as ShopifyConsentWrite['state'] }),
      write({ key: 'd', channel: 'sms' }),
    ]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'a', ok: true },
      { key: 'b', ok: false, retryable: true, retryAfterMs: THROTTLED_WAIT_MS, error: expect.stringMatching(/not written: .*throttled/) },
      { key: 'c', ok: false, retryable: false, error: expect.stringMatching(/NOT_SUBSCRIBED/) },
      { key: 'd', ok: false, retryable: true, retryAfterMs: THROTTLED_WAIT_MS, error: expect.stringMatching(/not written/) },
    ]);
  });

  it('429 with Retry-After (seconds) longer than the in-process wait: throws rate_limited with retryAfterMs, not slept', async () => {
    const s = make();
    const scope = s.api().post(GRAPHQL_PATH).reply(429, { errors: 'Exceeded 2 calls per second for api client.' }, { ...JSON_HEADERS, 'Retry-After': '30' });
    const error = await rejection(s.connector.updateConsent(s.tenant, [write()]));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'rate_limited', retryable: true, status: 429, retryAfterMs: 30_000 });
    expect(s.sleeps).toEqual([]);
  });

  it('503: retried with backoff, then written', async () => {
    const s = make();
    const scope = s.api().post(GRAPHQL_PATH).reply(503, 'unavailable').post(GRAPHQL_PATH).reply(200, echoReply, JSON_HEADERS);
    expect(await s.connector.updateConsent(s.tenant, [write()])).toEqual([{ key: 'outbox-1', ok: true }]);
    expect(scope.isDone()).toBe(true);
    // No Retry-After: 1 s × jitter factor 0.75 (random 0.5).
    expect(s.sleeps).toEqual([750]);
  });

  it('503 every time: throws server_error, retryable, after the bounded attempts', async () => {
    const s = make();
    const scope = s.api().post(GRAPHQL_PATH).times(3).reply(503, 'unavailable', { 'Retry-After': '1' });
    const error = await rejection(s.connector.updateConsent(s.tenant, [write()]));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'server_error', retryable: true, status: 503, retryAfterMs: 1000 });
    expect(s.sleeps).toEqual([1000, 1000]);
  });

  it('a timeout: throws kind timeout, retryable', async () => {
    const s = make({ timeoutMs: 50, retry: { maxAttempts: 1 } });
    const scope = s.api().post(GRAPHQL_PATH).delay(2000).reply(200, echoReply, JSON_HEADERS);
    const error = await rejection(s.connector.updateConsent(s.tenant, [write()]));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'timeout', retryable: true, retryAfterMs: null });
  });

  it('a connection reset (ECONNRESET): throws kind connection, retryable; mid-list the rest fail retryable', async () => {
    const s = make({ retry: { maxAttempts: 1 } });
    let scope = s.api().post(GRAPHQL_PATH).replyWithError({ code: 'ECONNRESET', message: 'socket hang up' });
    const error = await rejection(s.connector.updateConsent(s.tenant, [write()]));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'connection', retryable: true });
    scope = s.api().post(GRAPHQL_PATH).reply(200, echoReply, JSON_HEADERS).post(GRAPHQL_PATH).replyWithError({ code: 'ECONNRESET', message: 'socket hang up' });
    const outcomes = await s.connector.updateConsent(s.tenant, [write({ key: 'a' }), write({ key: 'b' })]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'a', ok: true },
      { key: 'b', ok: false, retryable: true, error: expect.stringMatching(/not written: .*connection failed/) },
    ]);
  });

  it.each<[string, number, nock.Body]>([
    ['401', 401, { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' }],
    ['403', 403, { errors: 'This action requires merchant approval for write_customers scope.' }],
  ])('HTTP %s: throws kind auth, not retryable, not retried', async (_name, status, body) => {
    const s = make();
    const scope = s.api().post(GRAPHQL_PATH).reply(status, body, JSON_HEADERS);
    const error = await rejection(s.connector.updateConsent(s.tenant, [write()]));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'auth', retryable: false, status });
    expect(s.sleeps).toEqual([]);
  });

  it('GraphQL ACCESS_DENIED is auth; an HTML answer is malformed; neither is retried', async () => {
    const s = make();
    let scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, { errors: [{ message: 'Access denied for customerEmailMarketingConsentUpdate field.', extensions: { code: 'ACCESS_DENIED' } }] }, JSON_HEADERS);
    expect(await rejection(s.connector.updateConsent(s.tenant, [write()]))).toMatchObject({ kind: 'auth', retryable: false });
    expect(scope.isDone()).toBe(true);
    scope = s.api().post(GRAPHQL_PATH).reply(200, '<html>maintenance</html>', { 'Content-Type': 'text/html' });
    expect(await rejection(s.connector.updateConsent(s.tenant, [write()]))).toMatchObject({ kind: 'malformed', retryable: false });
    expect(scope.isDone()).toBe(true);
    expect(s.sleeps).toEqual([]);
  });

  it('an uninstalled tenant: throws auth without asking for a token or calling Shopify', async () => {
    const s = make();
    const error = await rejection(s.connector.updateConsent(tenantFor('gone-shop.myshopify.com', 'uninstalled'), [write()]));
    expect(error).toMatchObject({ kind: 'auth', retryable: false });
    expect(s.tokens.calls).toEqual([]);
    expect(nock.isDone()).toBe(true);
  });
});

describe('judgeReadBack', () => {
  it('compares whole seconds: a record in the same second is not newer', () => {
    const w = write({ consentUpdatedAt: '2026-05-02T08:20:11.900Z' });
    expect(judgeReadBack(w, { state: 'UNSUBSCRIBED', optInLevel: null, updatedAt: '2026-05-02T08:20:11Z' }).ok).toBe(false);
    expect(judgeReadBack(w, { state: 'UNSUBSCRIBED', optInLevel: null, updatedAt: '2026-05-02T08:20:12Z' }).ok).toBe(true);
    expect(judgeReadBack(w, { state: 'SUBSCRIBED', optInLevel: 'CONFIRMED_OPT_IN', updatedAt: '2026-05-02T08:20:11Z' })).toEqual({ ok: true });
    // The opt-in level is only compared for SUBSCRIBED.
    expect(judgeReadBack(write({ state: 'UNSUBSCRIBED' }), { state: 'UNSUBSCRIBED', optInLevel: 'SINGLE_OPT_IN', updatedAt: null })).toEqual({ ok: true });
  });
});

/** A customer node as `customers` returns it (shopify.md §3.2–3.3). */
function customerNode(id: string, over: Record<string, unknown> = {}) {
  return {
    id: `gid://shopify/Customer/${id}`,
    updatedAt: '2026-05-02T10:14:03+02:00',
    defaultEmailAddress: { emailAddress: EMAIL, marketingState: 'SUBSCRIBED', marketingOptInLevel: 'CONFIRMED_OPT_IN', marketingUpdatedAt: '2026-05-02T10:20:11+02:00' },
    defaultPhoneNumber: { phoneNumber: PHONE, marketingState: 'NOT_SUBSCRIBED', marketingOptInLevel: null, marketingUpdatedAt: null },
    defaultAddress: { countryCodeV2: 'DE' },
    ...over,
  };
}

const page = (nodes: unknown[], next: string | null) => ({
  data: { customers: { pageInfo: { hasNextPage: next !== null, endCursor: next }, nodes } },
  extensions: { cost: { requestedQueryCost: 802, actualQueryCost: 12, throttleStatus: { maximumAvailable: 2000, currentlyAvailable: 1988, restoreRate: 100 } } },
});

describe('ShopifyConsentConnector.customersPage', () => {
  it('pages through customers by cursor (two pages) and maps their consent', async () => {
    const s = make();
    const seen: Seen[] = [];
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, capture(seen, page([customerNode('101'), customerNode('102', { defaultEmailAddress: null, defaultPhoneNumber: null, defaultAddress: null })], 'cursor-1')), JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(200, capture(seen, page([customerNode('103', { defaultAddress: { countryCodeV2: null } })], null)), JSON_HEADERS);
    const first = await s.connector.customersPage(s.tenant, null);
    const second = await s.connector.customersPage(s.tenant, first.next);
    expect(scope.isDone()).toBe(true);
    expect(seen.map((x) => x.body.variables)).toEqual([
      { after: null, query: null },
      { after: 'cursor-1', query: null },
    ]);
    expect(seen.every((x) => x.token === TOKEN)).toBe(true);
    expect(seen[0]?.body.query).toMatch(new RegExp(`customers\\(first: ${CUSTOMERS_PAGE_SIZE}, after: \\$after, query: \\$query, sortKey: ID\\)`));
    expect(seen[0]?.body.query).toMatch(/defaultEmailAddress \{ emailAddress marketingState marketingOptInLevel marketingUpdatedAt \}/);
    expect(seen[0]?.body.query).toMatch(/defaultAddress \{ countryCodeV2 \}/);
    expect(first.next).toBe('cursor-1');
    expect(first.customers).toEqual([
      {
        customerId: '101',
        email: EMAIL,
        phone: PHONE,
        updatedAt: '2026-05-02T08:14:03.000Z',
        email_marketing: { state: 'SUBSCRIBED', optInLevel: 'CONFIRMED_OPT_IN', consentUpdatedAt: '2026-05-02T08:20:11.000Z' },
        sms_marketing: { state: 'NOT_SUBSCRIBED', optInLevel: null, consentUpdatedAt: null },
        countryCode: 'DE',
      },
      { customerId: '102', email: null, phone: null, updatedAt: '2026-05-02T08:14:03.000Z', email_marketing: null, sms_marketing: null, countryCode: null },
    ]);
    expect(second).toMatchObject({ next: null, customers: [{ customerId: '103', countryCode: null }] });
  });

  it('passes an id-range query (restartable backfill past 25,000 customers)', async () => {
    const s = make();
    const seen: Seen[] = [];
    const query = customerIdRangeQuery('7301122334455', "updated_at:>'2026-05-01T00:00:00Z'");
    expect(query).toBe("id:>7301122334455 AND (updated_at:>'2026-05-01T00:00:00Z')");
    expect(customerIdRangeQuery('5')).toBe('id:>5');
    expect(() => customerIdRangeQuery('5 OR id:<5')).toThrow(/numeric/);
    const scope = s.api().post(GRAPHQL_PATH).reply(200, capture(seen, page([customerNode('7301122334456')], null)), JSON_HEADERS);
    const result = await s.connector.customersPage(s.tenant, null, query);
    expect(scope.isDone()).toBe(true);
    expect(seen[0]?.body.variables).toEqual({ after: null, query });
    expect(result.customers.map((c) => c.customerId)).toEqual(['7301122334456']);
  });

  it('throttling and malformed pages throw PlatformCallError', async () => {
    const s = make({ retry: { maxAttempts: 1 } });
    let scope = s.api().post(GRAPHQL_PATH).reply(200, THROTTLED, JSON_HEADERS);
    expect(await rejection(s.connector.customersPage(s.tenant, null))).toMatchObject({ kind: 'rate_limited', retryable: true, retryAfterMs: THROTTLED_WAIT_MS });
    expect(scope.isDone()).toBe(true);
    for (const bad of [
      page([customerNode('1', { id: '1' })], null),
      page([customerNode('1', { updatedAt: 'yesterday' })], null),
      page([customerNode('1', { defaultEmailAddress: { emailAddress: EMAIL, marketingState: 'SUBSCRIBED', marketingOptInLevel: null, marketingUpdatedAt: 'soon' } })], null),
      { data: { customers: { pageInfo: { hasNextPage: true, endCursor: null }, nodes: [] } } },
    ]) {
      scope = s.api().post(GRAPHQL_PATH).reply(200, bad, JSON_HEADERS);
      expect(await rejection(s.connector.customersPage(s.tenant, null))).toMatchObject({ kind: 'malformed', retryable: false });
      expect(scope.isDone()).toBe(true);
    }
  });
});

describe('personal data', () => {
  it('no email address or phone number reaches the logs, and Shopify messages in outcomes are masked', async () => {
    const s = make({ retry: { maxAttempts: 2 } });
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, page([customerNode('1'), customerNode('2')], null), JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(503, 'unavailable')
      .post(GRAPHQL_PATH)
      .reply(200, emailAnswer('1', null, [{ field: ['input'], message: `Email ${EMAIL} is already taken by customer with phone ${PHONE}`, code: 'INVALID' }]), JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(200, emailAnswer('1', { marketingState: 'UNSUBSCRIBED', marketingOptInLevel: null, marketingUpdatedAt: '2026-05-01T00:00:00Z' }), JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(200, THROTTLED, JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(200, THROTTLED, JSON_HEADERS);
    const { customers } = await s.connector.customersPage(s.tenant, null);
    expect(customers[0]?.email).toBe(EMAIL);
    const outcomes = await s.connector.updateConsent(s.tenant, [
      write({ key: 'd', customerId: EMAIL }),
      write({ key: 'a', customerId: '1' }),
      write({ key: 'b', customerId: '1' }),
      write({ key: 'c', customerId: '1' }),
      write({ key: 'e', customerId: PHONE }),
    ]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes.map((o) => [o.key, o.ok])).toEqual(['d', 'a', 'b', 'c', 'e'].map((key) => [key, false]));
    const text = [...s.logs, JSON.stringify(outcomes)].join('\n');
    expect(s.logs.length).toBeGreaterThan(3);
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain('example.com');
    expect(text).not.toContain(PHONE);
    expect(text).not.toContain(PHONE.slice(1));
    expect(text).not.toContain(TOKEN);
  });
});

describe('routing to a base URL (SHOPIFY_API_BASE_URL, issue 6)', () => {
  const BASE = 'http://shopify-sim.test:4010';

  it('sends GraphQL calls to the base URL over http, naming the shop in X-Shopify-Shop-Domain; other clients still go to Shopify', async () => {
    const routed = make({}, { baseUrl: `${BASE}/` });
    const seen: Seen[] = [];
    const sim = nock(BASE).post(GRAPHQL_PATH).reply(200, capture(seen, echo), JSON_HEADERS);
    expect(await routed.connector.updateConsent(routed.tenant, [write()])).toEqual([{ key: 'outbox-1', ok: true }]);
    expect(sim.isDone()).toBe(true);
    expect(seen[0]).toMatchObject({ token: TOKEN, shopHeader: routed.tenant.shopDomain });
    // A client built afterwards without a base URL (the library's global fetch was restored) goes to Shopify.
    const direct = make();
    const scope = direct.api().post(GRAPHQL_PATH).reply(200, page([], null), JSON_HEADERS);
    expect(await direct.connector.customersPage(direct.tenant, null)).toEqual({ customers: [], next: null });
    expect(scope.isDone()).toBe(true);
  });

  it('keeps a path prefix of the base URL; the product catalog routes the same way', async () => {
    const sim = nock(BASE)
      .post(`/sim${GRAPHQL_PATH}`)
      .reply(200, page([], null), JSON_HEADERS)
      .post(`/sim${GRAPHQL_PATH}`)
      .reply(200, { data: { nodes: [null] } }, JSON_HEADERS);
    const routed = make({}, { baseUrl: `${BASE}/sim` });
    await routed.connector.customersPage(routed.tenant, null);
    const catalog = new ShopifyProductCatalog({ shopify, tokenFor: async () => TOKEN, logger: silentLogger, baseUrl: `${BASE}/sim` });
    expect((await catalog.products(routed.tenant, ['1'])).size).toBe(0);
    expect(sim.isDone()).toBe(true);
  });

  it('uses an injected fetch', async () => {
    const urls: string[] = [];
    const connector = new ShopifyConsentConnector({
      shopify,
      tokens: new FakeTokens(TOKEN),
      logger: silentLogger,
      fetch: async (url) => {
        urls.push(url);
        return new Response(JSON.stringify(page([], null)), { status: 200, headers: JSON_HEADERS });
      },
    });
    const tenant = tenantFor('fetch-shop.myshopify.com');
    await connector.customersPage(tenant, null);
    expect(urls).toEqual([`https://fetch-shop.myshopify.com${GRAPHQL_PATH}`]);
    expect(nock.isDone()).toBe(true);
  });

  it('refuses a base URL that is not http(s)://host[:port][/path]', () => {
    for (const bad of ['shopify-sim:4010', 'ftp://sim.test', 'http://sim.test/?x=1', 'http://user:pw@sim.test']) {
      expect(() => make({}, { baseUrl: bad })).toThrow(/base URL/);
    }
    expect(nock.isDone()).toBe(true);
  });
});

describe('refreshShopifyToken', () => {
  const SHOP = 'refresh-shop.myshopify.com';
  const clock = fixedClock('2026-06-01T12:00:00.000Z');
  const deps = { apiKey: 'contract-key', apiSecretKey: 'contract-secret', clock };

  it('POSTs grant_type refresh_token with the client credentials and returns the new pair with its expiry', async () => {
    let body: unknown;
    const scope = nock(`https://${SHOP}`)
      .post('/admin/oauth/access_token', (b: unknown) => {
        body = b;
        return true;
      })
      .reply(200, { access_token: 'shpat_new', expires_in: 3600, refresh_token: 'shprt_new', refresh_token_expires_in: 7776000, scope: 'read_customers,write_customers' }, JSON_HEADERS);
    expect(await refreshShopifyToken(deps, SHOP, 'shprt_old')).toEqual({ accessToken: 'shpat_new', refreshToken: 'shprt_new', expiresAt: '2026-06-01T13:00:00.000Z' });
    expect(scope.isDone()).toBe(true);
    expect(body).toEqual({ client_id: 'contract-key', client_secret: 'contract-secret', refresh_token: 'shprt_old', grant_type: 'refresh_token' });
  });

  it.each<[string, number, { error: string; error_description: string }]>([
    ['invalid_grant (400)', 400, { error: 'invalid_grant', error_description: 'The provided authorization grant is invalid, expired or revoked' }],
    ['an inactive refresh token (401)', 401, { error: 'invalid_request', error_description: 'This request requires an active refresh_token' }],
  ])('a refused refresh, %s, is auth and not retryable; the message names no secret', async (_name, status, answer) => {
    const scope = nock(`https://${SHOP}`).post('/admin/oauth/access_token').reply(status, answer, JSON_HEADERS);
    const error = await rejection(refreshShopifyToken(deps, SHOP, 'shprt_old'));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'auth', retryable: false, status });
    expect(error.message).toContain(answer.error);
    expect(error.message).not.toMatch(/shprt_old|contract-secret/);
  });

  it('5xx and 429 are retryable (with Retry-After); a malformed answer is not', async () => {
    const scope = nock(`https://${SHOP}`)
      .post('/admin/oauth/access_token')
      .reply(503, 'unavailable', { 'Retry-After': '5' })
      .post('/admin/oauth/access_token')
      .reply(429, {}, { ...JSON_HEADERS, 'Retry-After': '2' })
      .post('/admin/oauth/access_token')
      .reply(200, { access_token: 'shpat_new' }, JSON_HEADERS)
      .post('/admin/oauth/access_token')
      .replyWithError({ code: 'ECONNRESET', message: 'socket hang up' });
    expect(await rejection(refreshShopifyToken(deps, SHOP, 'shprt_old'))).toMatchObject({ kind: 'server_error', retryable: true, retryAfterMs: 5000 });
    expect(await rejection(refreshShopifyToken(deps, SHOP, 'shprt_old'))).toMatchObject({ kind: 'rate_limited', retryable: true, retryAfterMs: 2000 });
    expect(await rejection(refreshShopifyToken(deps, SHOP, 'shprt_old'))).toMatchObject({ kind: 'malformed', retryable: false });
    expect(await rejection(refreshShopifyToken(deps, SHOP, 'shprt_old'))).toMatchObject({ kind: 'connection', retryable: true });
    expect(scope.isDone()).toBe(true);
  });

  it('routes to the base URL like the GraphQL calls', async () => {
    const scope = nock('http://shopify-sim.test:4010', { reqheaders: { 'x-shopify-shop-domain': SHOP } })
      .post('/admin/oauth/access_token')
      .reply(200, { access_token: 'shpat_sim', expires_in: 60, refresh_token: 'shprt_sim' }, JSON_HEADERS);
    expect(await refreshShopifyToken({ ...deps, baseUrl: 'http://shopify-sim.test:4010' }, SHOP, 'shprt_old')).toEqual({
      accessToken: 'shpat_sim',
      refreshToken: 'shprt_sim',
      expiresAt: '2026-06-01T12:01:00.000Z',
    });
    expect(scope.isDone()).toBe(true);
  });
});
