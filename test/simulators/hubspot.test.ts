/**
 * The HubSpot simulator (simulators/hubspot, issue 6 §2) driven by the app's own HubSpot code: the connector
 * (connectors/hubspot/connector.ts, built as in test/contract/hubspot.contract.test.ts but with baseUrl = the
 * simulator and an in-memory RateLimiter on a virtual clock shared with the simulator), the OAuth refresh, the
 * webhook verifier and event schema, and the echo check. Raw `fetch` where the app's limiter would hide the
 * platform's behaviour (429 bodies, faults).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { defaultSettings } from '../../src/config/manifest';
import type { Logger, LogFields } from '../../src/ports';
import { PlatformCallError, type AccessTokens, type RateLimit, type RateLimiter, type SubscriptionWrite } from '../../src/sync/ports';
import { MemoryRateLimiter } from '../../src/sync/rate-limit';
import type { Store } from '../../src/store/database';
import type { Tenant } from '../../src/tenants/tenants';
import { DEFAULT_PROPERTY_DEFINITIONS, DEFAULT_SUPPRESSION_LIST_NAME, EMAIL_GATE_PROPERTY, HubspotConnector, refreshHubspotToken, SMS_CONSENT_PROPERTY } from '../../connectors/hubspot/connector';
import { eventSchema } from '../../webhooks/hubspot/events';
import { isEcho } from '../../webhooks/hubspot/map';
import { checkHubspotSignature } from '../../webhooks/hubspot/verify';
import { BATCH_SCOPES, DEFAULT_SCOPES, startHubspotSimulator, type HubspotSimulator, type HubspotSimulatorOptions } from '../../simulators/hubspot/server';
import { DEFAULT_WEBHOOK_SUBSCRIPTIONS } from '../../simulators/hubspot/webhooks';
import { fixedClock } from '../helpers/deps';
import { migratedStore, type TestDatabase } from '../helpers/stores';
import { createHarness, HUBSPOT_APP_ID, HUBSPOT_SECRET, type Harness } from '../helpers/webhooks';

const PORTAL = '62515';
const TOKEN = 'sim-access-token-62515';
const REFRESH = 'sim-refresh-token-62515';
const CLIENT_ID = 'sim-client-id';
const SECRET = 'sim-client-secret';
const APP_ID = '54321';
const NEWSLETTER = '1001';
const OFFERS = '1002';
const START = '2026-06-01T12:00:00.000Z';

const email = (i: number) => `person${i}@example.com`;

// ---------------------------------------------------------------- the app's side

function tenant(portal = PORTAL): Tenant {
  return {
    id: `tenant-${portal}`,
    shopDomain: `shop-${portal}.myshopify.com`,
    hubspotPortalId: portal,
    status: 'active',
    settings: defaultSettings(),
    hasShopifyCredentials: true,
    hasHubspotCredentials: true,
    createdAt: START,
    updatedAt: START,
  };
}

class PortalTokens implements AccessTokens {
  constructor(private token = TOKEN) {}
  async accessToken(): Promise<string> {
    return this.token;
  }
}

/** Admits everything at once: the platform's own limits are what the test looks at. */
class NoLimiter implements RateLimiter {
  async acquire(_limit: RateLimit): Promise<void> {}
}

interface LogEntry {
  level: string;
  fields: LogFields;
  message: string;
}

function recordingLogger(entries: LogEntry[]): Logger {
  const log = (level: string) => (fields: LogFields, message: string) => {
    entries.push({ level, fields, message });
  };
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger };
  return logger;
}

/** A receiver standing in for the app's public URL: records each request's exact bytes and headers. */
interface Captured {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

async function startReceiver() {
  const captured: Captured[] = [];
  let answer: (c: Captured) => { status: number; body: unknown } = () => ({ status: 200, body: { status: 'ok' } });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const c = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      captured.push(c);
      const a = answer(c);
      res.writeHead(a.status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    captured,
    answerWith(next: typeof answer) {
      answer = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const headerOf = (headers: http.IncomingHttpHeaders) => (name: string) => {
  const value = headers[name.toLowerCase()];
  return (Array.isArray(value) ? value[0] : value) ?? '';
};

// ---------------------------------------------------------------- set-up

let sim: HubspotSimulator;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let clock: ReturnType<typeof fixedClock>;
let logs: LogEntry[];

async function start(overrides: Partial<HubspotSimulatorOptions> = {}): Promise<HubspotSimulator> {
  await sim?.close();
  sim = await startHubspotSimulator({
    clientId: CLIENT_ID,
    clientSecret: SECRET,
    appId: APP_ID,
    appUrl: receiver.url,
    clock,
    portals: [{ portalId: PORTAL, accessToken: TOKEN, refreshToken: REFRESH, subscriptionTypes: [{ id: NEWSLETTER, name: 'Newsletter' }, { id: OFFERS, name: 'Offers' }] }],
    // Deterministic: webhooks wait for flushWebhooks() (HubSpot-like `auto` delivery has its own test).
    webhooks: { delivery: 'manual' },
    ...overrides,
  });
  return sim;
}

/** The connector as the app builds it, on the simulator, with the in-memory limiter on the shared virtual clock. */
function connector(options: { limiter?: RateLimiter; timeoutMs?: number; batchScopes?: boolean | 'detect' } = {}) {
  const limiter = options.limiter ?? new MemoryRateLimiter({ nowMs: () => clock.now().getTime(), sleep: async (ms) => clock.advance(ms) });
  return new HubspotConnector(
    { tokens: new PortalTokens(), limiter, logger: recordingLogger(logs), baseUrl: sim.url, clock, timeoutMs: options.timeoutMs ?? 5_000 },
    { batchScopes: options.batchScopes ?? false },
  );
}

const api = (pathname: string, init: RequestInit = {}, token = TOKEN) =>
  fetch(`${sim.url}${pathname}`, { ...init, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });

async function failure(promise: Promise<unknown>): Promise<PlatformCallError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PlatformCallError);
  return error as PlatformCallError;
}

const write = (over: Partial<SubscriptionWrite> = {}): SubscriptionWrite => ({
  key: 'k',
  email: email(1),
  subscriptionTypeId: NEWSLETTER,
  subscribed: true,
  legalBasis: 'CONSENT_WITH_NOTICE',
  legalBasisExplanation: 'Checkout opt-in on 2026-05-01 (event ev-1)',
  freshAffirmativeAct: false,
  ...over,
});

const upserts = (n: number, properties: Record<string, string> = { firstname: 'Pat' }) =>
  Array.from({ length: n }, (_, i) => ({ key: `row-${i}`, email: email(i), properties }));

beforeAll(async () => {
  receiver = await startReceiver();
});
beforeEach(async () => {
  clock = fixedClock(START);
  logs = [];
  receiver.captured.length = 0;
  receiver.answerWith(() => ({ status: 200, body: { status: 'ok' } }));
  await start();
});
afterEach(async () => {
  await sim.close();
});
afterAll(async () => {
  await receiver.close();
});

// ================================================================ the connector

describe('the app’s HubspotConnector against the simulator', () => {
  it('provisions a fresh portal, and a second run finds everything and creates nothing', async () => {
    const c = connector();
    const result = await c.provision(tenant());
    expect(result).toEqual({
      propertyGroup: 'consent_bridge',
      properties: DEFAULT_PROPERTY_DEFINITIONS.map((d) => d.name),
      suppressionListId: '1',
      subscriptionTypes: [
        { id: NEWSLETTER, name: 'Newsletter', isActive: true },
        { id: OFFERS, name: 'Offers', isActive: true },
      ],
    });
    const portal = sim.state().portals[0]!;
    expect(portal.propertyGroups.map((g) => g.name)).toContain('consent_bridge');
    expect(portal.properties.map((p) => p.name)).toEqual(DEFAULT_PROPERTY_DEFINITIONS.map((d) => d.name));
    expect(portal.properties.find((p) => p.name === EMAIL_GATE_PROPERTY)).toMatchObject({ type: 'enumeration', groupName: 'consent_bridge', options: ['allowed', 'blocked'] });
    expect(portal.lists).toEqual([{ listId: '1', name: DEFAULT_SUPPRESSION_LIST_NAME, processingType: 'MANUAL', members: [] }]);

    const before = sim.requests().length;
    expect((await c.provision(tenant())).suppressionListId).toBe('1');
    const second = sim.requests().slice(before);
    expect(second.every((r) => r.method === 'GET' && r.status === 200)).toBe(true);
    expect(logs.filter((l) => l.level === 'info').at(-1)?.message).toBe('HubSpot portal already provisioned');
  });

  it('upserts 250 contacts in 3 batch calls; an invalid address fails only its item; a value outside the options fails the batch', async () => {
    const c = connector();
    await c.provision(tenant());
    const outcomes = await c.upsertContactProperties(tenant(), upserts(250, { [EMAIL_GATE_PROPERTY]: 'allowed' }));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(sim.requests().filter((r) => r.path === '/crm/v3/objects/contacts/batch/upsert').map((r) => r.status)).toEqual([200, 200, 200]);
    const contacts = sim.state().portals[0]!.contacts;
    expect(contacts).toHaveLength(250);
    expect(contacts[0]).toMatchObject({ email: email(0), properties: { [EMAIL_GATE_PROPERTY]: 'allowed', lastmodifieddate: START } });

    const mixed = await c.upsertContactProperties(tenant(), [
      { key: 'good', email: email(1), properties: { [EMAIL_GATE_PROPERTY]: 'blocked' } },
      { key: 'bad', email: 'not-an-address@', properties: { [EMAIL_GATE_PROPERTY]: 'blocked' } },
    ]);
    expect(mixed[0]).toEqual({ key: 'good', ok: true });
    expect(mixed[1]).toMatchObject({ key: 'bad', ok: false, retryable: false, error: expect.stringMatching(/VALIDATION_ERROR.*INVALID_EMAIL/) });
    expect(sim.requests().at(-1)?.status).toBe(207);

    const refused = await c.upsertContactProperties(tenant(), [{ key: 'x', email: email(2), properties: { [EMAIL_GATE_PROPERTY]: 'maybe' } }]);
    expect(refused[0]).toMatchObject({ ok: false, retryable: false, error: expect.stringMatching(/HTTP 400.*INVALID_OPTION/) });
    expect(sim.state().portals[0]!.contacts.find((x) => x.email === email(2))?.properties[EMAIL_GATE_PROPERTY]).toBe('allowed');
  });

  it('subscribes through v3 with the legal basis; an unsubscribe link sends no webhook; v3 then refuses to re-subscribe, v4 re-subscribes after a fresh act', async () => {
    const c = connector();
    await c.upsertContactProperties(tenant(), upserts(2));
    expect(await c.setSubscriptions(tenant(), [write({ key: 'sub' })])).toEqual([{ key: 'sub', ok: true }]);
    const statusOf = () => (sim.state().portals[0]!.subscriptions as Array<{ email: string; statuses: Array<Record<string, unknown>> }>).find((s) => s.email === email(1))!;
    expect(statusOf().statuses).toEqual([
      expect.objectContaining({ subscriptionId: NEWSLETTER, status: 'SUBSCRIBED', legalBasis: 'CONSENT_WITH_NOTICE', legalBasisExplanation: 'Checkout opt-in on 2026-05-01 (event ev-1)', source: 'Public API' }),
    ]);

    const events = sim.pendingWebhooks().length;
    clock.advance(60_000);
    sim.unsubscribeViaLink(PORTAL, email(1), NEWSLETTER);
    expect(sim.pendingWebhooks()).toHaveLength(events);
    expect(statusOf().statuses[0]).toMatchObject({ status: 'UNSUBSCRIBED', source: 'Unsubscribe link', legalBasis: null });
    // The contact record shows it (and lastmodifieddate moved, so a poll finds it).
    expect(sim.state().portals[0]!.contacts.find((x) => x.email === email(1))?.properties).toMatchObject({ [`hs_email_optout_${NEWSLETTER}`]: 'true', lastmodifieddate: '2026-06-01T12:01:00.000Z' });
    expect((await c.subscriptionStatuses(tenant(), [email(1)]))[0]?.statuses).toEqual([
      { subscriptionTypeId: NEWSLETTER, subscribed: false, legalBasis: null, timestamp: '2026-06-01T12:01:00.000Z' },
      // OFFERS was never set (NOT_SPECIFIED): the connector reports no status for it.
    ]);

    const [refused] = await c.setSubscriptions(tenant(), [write({ key: 'again' })]);
    expect(refused).toMatchObject({ key: 'again', ok: false, retryable: false, error: expect.stringMatching(/HTTP 400.*does not re-subscribe a contact who opted out/) });
    expect(sim.requests().at(-1)).toMatchObject({ path: '/communication-preferences/v3/subscribe', status: 400 });

    clock.advance(60_000);
    expect(await c.setSubscriptions(tenant(), [write({ key: 'fresh', freshAffirmativeAct: true, legalBasisExplanation: 'Double opt-in confirmed 2026-06-01' })])).toEqual([{ key: 'fresh', ok: true }]);
    expect(statusOf().statuses[0]).toMatchObject({ status: 'SUBSCRIBED', legalBasis: 'CONSENT_WITH_NOTICE', legalBasisExplanation: 'Double opt-in confirmed 2026-06-01' });
    expect((await c.subscriptionStatuses(tenant(), [email(1)]))[0]?.statuses[0]).toEqual({ subscriptionTypeId: NEWSLETTER, subscribed: true, legalBasis: 'CONSENT_WITH_NOTICE', timestamp: '2026-06-01T12:02:00.000Z' });
  });

  it('unsubscribe from all: folded into every status; v3 answers NOT_SUBSCRIBED from PORTAL_WIDE_STATUS for an untouched type', async () => {
    const c = connector();
    await c.setSubscriptions(tenant(), [write()]);
    sim.unsubscribeViaLink(PORTAL, email(1));
    const [status] = await c.subscriptionStatuses(tenant(), [email(1)]);
    expect(status?.statuses.every((s) => !s.subscribed)).toBe(true);
    const outcomes = await c.setSubscriptions(tenant(), [write({ key: 'newsletter' }), write({ key: 'offers', subscriptionTypeId: OFFERS })]);
    expect(outcomes[0]).toMatchObject({ ok: false, error: expect.stringMatching(/HTTP 400/) });
    expect(outcomes[1]).toMatchObject({ ok: false, retryable: false, error: expect.stringMatching(/NOT_SUBSCRIBED \(from PORTAL_WIDE_STATUS\)/) });
    // A v4 re-subscribe to one type clears "opted out of all" but leaves the other types opted out.
    await c.setSubscriptions(tenant(), [write({ subscriptionTypeId: OFFERS, freshAffirmativeAct: true })]);
    const after = await c.subscriptionStatuses(tenant(), [email(1)]);
    expect(after[0]?.statuses.map((s) => [s.subscriptionTypeId, s.subscribed])).toEqual([
      [NEWSLETTER, false],
      [OFFERS, true],
    ]);
  });

  it('GDPR portal: a subscribe without an explanation of its legal basis is refused; v4 paths take any address', async () => {
    const [outcome] = await connector().setSubscriptions(tenant(), [write({ legalBasisExplanation: '' })]);
    expect(outcome).toMatchObject({ ok: false, retryable: false, error: expect.stringMatching(/legalBasisExplanation required/) });
    const plus = 'First.Last+shop@example.com';
    expect(await connector().setSubscriptions(tenant(), [write({ key: 'plus', email: plus, freshAffirmativeAct: true })])).toEqual([{ key: 'plus', ok: true }]);
    expect(sim.requests().at(-1)?.path).toBe(`/communication-preferences/v4/statuses/${encodeURIComponent(plus)}`);
    expect((sim.state().portals[0]!.subscriptions as Array<{ email: string }>).map((x) => x.email)).toEqual(['first.last+shop@example.com']);
  });

  it('with the batch scopes, unsubscribes and fresh re-subscribes go through v4 batch/write and statuses through batch/read', async () => {
    await start({ portals: [{ portalId: PORTAL, accessToken: TOKEN, refreshToken: REFRESH, subscriptionTypes: [{ id: NEWSLETTER, name: 'Newsletter' }], scopes: [...DEFAULT_SCOPES, 'communication_preferences.statuses.batch.read', 'communication_preferences.statuses.batch.write'] }] });
    const c = connector({ batchScopes: true });
    const outcomes = await c.setSubscriptions(tenant(), [write({ key: 'a', email: email(1), freshAffirmativeAct: true }), write({ key: 'b', email: email(2), subscribed: false, legalBasis: null })]);
    expect(outcomes).toEqual([
      { key: 'a', ok: true },
      { key: 'b', ok: true },
    ]);
    expect(sim.requests().map((r) => r.path)).toEqual(['/communication-preferences/v4/statuses/batch/write']);
    const statuses = await c.subscriptionStatuses(tenant(), [email(1), email(2)]);
    expect(statuses.map((s) => s.statuses[0]?.subscribed)).toEqual([true, false]);
  });

  it("in 'detect' mode, a portal that granted the batch scopes gets batch calls after one introspection of the token; one that did not, per-email calls", async () => {
    await start({
      portals: [
        { portalId: PORTAL, accessToken: TOKEN, refreshToken: REFRESH, subscriptionTypes: [{ id: NEWSLETTER, name: 'Newsletter' }], scopes: [...DEFAULT_SCOPES, ...BATCH_SCOPES] },
        { portalId: '62516', accessToken: 'sim-access-token-62516', refreshToken: 'sim-refresh-token-62516', subscriptionTypes: [{ id: NEWSLETTER, name: 'Newsletter' }] },
      ],
    });
    const c = connector({ batchScopes: 'detect' });
    const writes = [write({ key: 'a', email: email(1), freshAffirmativeAct: true }), write({ key: 'b', email: email(2), subscribed: false, legalBasis: null })];
    expect(await c.setSubscriptions(tenant(), writes)).toEqual([
      { key: 'a', ok: true },
      { key: 'b', ok: true },
    ]);
    const statuses = await c.subscriptionStatuses(tenant(), [email(1), email(2)]);
    expect(statuses.map((x) => x.statuses[0]?.subscribed)).toEqual([true, false]);
    expect(sim.requests().map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      `GET /oauth/v1/access-tokens/${TOKEN} 200`,
      'POST /communication-preferences/v4/statuses/batch/write 200',
      'POST /communication-preferences/v4/statuses/batch/read 200',
      'POST /communication-preferences/v4/statuses/batch/unsubscribe-all/read 200',
    ]);

    const plain = new HubspotConnector(
      { tokens: new PortalTokens('sim-access-token-62516'), limiter: new NoLimiter(), logger: recordingLogger(logs), baseUrl: sim.url, clock, timeoutMs: 5_000 },
      { batchScopes: 'detect' },
    );
    const before = sim.requests().length;
    expect(await plain.setSubscriptions(tenant('62516'), writes)).toEqual([
      { key: 'a', ok: true },
      { key: 'b', ok: true },
    ]);
    expect(sim.requests().slice(before).map((r) => r.path)).toEqual([
      '/oauth/v1/access-tokens/sim-access-token-62516',
      `/communication-preferences/v4/statuses/${encodeURIComponent(email(1))}`,
      '/communication-preferences/v3/unsubscribe',
    ]);
    expect(JSON.stringify(logs)).not.toContain(TOKEN);
    expect(JSON.stringify(logs)).not.toContain('sim-access-token-62516');
  });

  it('without the batch scopes the v4 batch endpoints answer 403 MISSING_SCOPES', async () => {
    const error = await failure(connector({ batchScopes: true }).subscriptionStatuses(tenant(), [email(1)]));
    expect(error).toMatchObject({ kind: 'auth', status: 403 });
    expect(error.message).toMatch(/granted all required scopes/);
  });

  it('reads contact ids by email and sets the suppression list’s members; unknown ids come back as recordIdsMissing', async () => {
    const c = connector();
    const { suppressionListId } = await c.provision(tenant());
    await c.upsertContactProperties(tenant(), upserts(3));
    const ids = await c.contactIdsByEmail(tenant(), [email(0), email(1).toUpperCase(), 'nobody@example.com']);
    expect([...ids.keys()]).toEqual([email(0), email(1).toUpperCase()]);
    await c.setListMembership(tenant(), { listId: suppressionListId, add: [ids.get(email(0))!, ids.get(email(1).toUpperCase())!, '999999'], remove: [] });
    expect(sim.state().portals[0]!.lists[0]?.members).toEqual([ids.get(email(0)), ids.get(email(1).toUpperCase())]);
    expect(logs.find((l) => l.message.includes('does not know some contact ids'))?.fields).toMatchObject({ missing: 1 });
    await c.setListMembership(tenant(), { listId: suppressionListId, add: [], remove: [ids.get(email(0))!] });
    expect(sim.state().portals[0]!.lists[0]?.members).toEqual([ids.get(email(1).toUpperCase())]);
  });

  it('finds contacts modified since a time, oldest first, paging by 200 (search has its own budget)', async () => {
    const c = connector();
    await c.upsertContactProperties(tenant(), upserts(250));
    const t0 = clock.now().toISOString();
    clock.advance(60_000);
    const ids = await c.contactIdsByEmail(tenant(), [email(10), email(20), email(30)]);
    sim.updateContact(PORTAL, ids.get(email(20))!, { firstname: 'Twenty' });
    clock.advance(1_000);
    sim.unsubscribeViaLink(PORTAL, email(30), NEWSLETTER);
    clock.advance(1_000);
    sim.updateContact(PORTAL, ids.get(email(10))!, { firstname: 'Ten' });

    const changed = await c.contactsModifiedSince(tenant(), new Date(Date.parse(t0) + 30_000).toISOString(), null);
    expect(changed.contacts.map((x) => x.email)).toEqual([email(20), email(30), email(10)]);
    expect(changed.next).toBeNull();

    const first = await c.contactsModifiedSince(tenant(), t0, null);
    expect(first.contacts).toHaveLength(200);
    expect(first.next).toBe('200');
    const second = await c.contactsModifiedSince(tenant(), t0, first.next);
    expect(second.contacts).toHaveLength(50);
    expect(second.next).toBeNull();
    expect(second.contacts.at(-1)?.email).toBe(email(10));
  });

  it('search pages through at most 10,000 results: the connector restarts from the newest time it saw', async () => {
    for (let i = 0; i < 10_200; i++) {
      sim.createContact(PORTAL, { email: email(i) });
      clock.advance(1);
    }
    const c = connector();
    const page = await c.contactsModifiedSince(tenant(), START, '9800');
    expect(page.contacts[0]?.email).toBe(email(9800));
    expect(page.next).toBe(`since:${new Date(Date.parse(START) + 9_999).toISOString()}`);
    const restarted = await c.contactsModifiedSince(tenant(), START, page.next);
    expect(restarted.contacts[0]?.email).toBe(email(9999));
    expect(restarted.next).toBe('200');
    const beyond = await api('/crm/v3/objects/contacts/search', { method: 'POST', body: JSON.stringify({ after: '10000' }) });
    expect(beyond.status).toBe(400);
    expect((await api('/crm/v3/objects/contacts/search', { method: 'POST', body: JSON.stringify({ limit: 201 }) })).status).toBe(400);
  });
});

// ================================================================ rate limits

describe('rate limits', () => {
  const TEN_SECONDLY = {
    status: 'error',
    message: 'You have reached your ten_secondly_rolling limit.',
    errorType: 'RATE_LIMIT',
    correlationId: expect.stringMatching(/^[0-9a-f-]{36}$/),
    policyName: 'TEN_SECONDLY_ROLLING',
    requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
  };

  it('answers the 111th request within 10 s with HubSpot’s 429 body, and admits again once the window rolls', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 110; i++) statuses.push((await api('/communication-preferences/v3/definitions')).status);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const limited = await api('/communication-preferences/v3/definitions');
    expect(limited.status).toBe(429);
    expect(await limited.json()).toEqual(TEN_SECONDLY);
    expect(limited.headers.get('x-hubspot-ratelimit-remaining')).toBe('0');
    expect(sim.state().counters.rateLimited).toEqual({ TEN_SECONDLY_ROLLING: 1, SECONDLY: 0 });
    expect(sim.requests().at(-1)).toMatchObject({ status: 429, rateLimited: 'TEN_SECONDLY_ROLLING', portalId: PORTAL });

    clock.advance(9_999);
    expect((await api('/communication-preferences/v3/definitions')).status).toBe(429);
    clock.advance(1);
    const again = await api('/communication-preferences/v3/definitions');
    expect(again.status).toBe(200);
    expect(again.headers.get('x-hubspot-ratelimit-max')).toBe('110');
    expect(again.headers.get('x-hubspot-ratelimit-remaining')).toBe('109');
  });

  it('is per portal: another portal is not limited by the first one’s traffic', async () => {
    await start({
      portals: [
        { portalId: PORTAL, accessToken: TOKEN, refreshToken: REFRESH },
        { portalId: '99999', accessToken: 'token-b', refreshToken: 'refresh-b' },
      ],
      rateLimit: { max: 3, windowMs: 10_000 },
    });
    for (let i = 0; i < 3; i++) await api('/communication-preferences/v3/definitions');
    expect((await api('/communication-preferences/v3/definitions')).status).toBe(429);
    expect((await api('/communication-preferences/v3/definitions', {}, 'token-b')).status).toBe(200);
    expect(sim.state().counters.requests.byPortal).toEqual({ [PORTAL]: 4, '99999': 1 });
  });

  it('the connector without its limiter gets a retryable rate_limited error with the 10 s window', async () => {
    for (let i = 0; i < 110; i++) await api('/communication-preferences/v3/definitions');
    const error = await failure(connector({ limiter: new NoLimiter() }).contactIdsByEmail(tenant(), [email(1)]));
    expect(error).toMatchObject({ kind: 'rate_limited', retryable: true, status: 429, retryAfterMs: 10_000 });
  });

  it('search: the 6th search within a second gets the secondly-limit message', async () => {
    const search = () => api('/crm/v3/objects/contacts/search', { method: 'POST', body: JSON.stringify({ limit: 1 }) });
    for (let i = 0; i < 5; i++) expect((await search()).status).toBe(200);
    const limited = await search();
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({ status: 'error', message: 'You have reached your secondly limit.', errorType: 'RATE_LIMIT' });
    const error = await failure(connector({ limiter: new NoLimiter() }).contactsModifiedSince(tenant(), START, null));
    expect(error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 1_000 });
    clock.advance(1_000);
    expect((await search()).status).toBe(200);
  });

  it('the app’s in-memory limiter keeps 120 status reads under the portal’s limit (no 429)', async () => {
    const emails = Array.from({ length: 60 }, (_, i) => email(i));
    const statuses = await connector().subscriptionStatuses(tenant(), emails);
    expect(statuses).toHaveLength(60);
    expect(sim.requests()).toHaveLength(120);
    expect(sim.state().counters.rateLimited.TEN_SECONDLY_ROLLING).toBe(0);
    expect(clock.now().getTime() - Date.parse(START)).toBeGreaterThanOrEqual(10_000);
  });
});

// ================================================================ webhooks

describe('webhooks', () => {
  const WEBHOOK_URI = () => `${receiver.url}/webhooks/hubspot`;
  type Event = ReturnType<typeof eventSchema.parse>;

  /** Each captured delivery, checked with the app's verifier and parsed with its event schema. */
  function verified(): Event[][] {
    return receiver.captured.map((c) => {
      expect(c.url).toBe('/webhooks/hubspot');
      const check = checkHubspotSignature({ method: c.method, uri: WEBHOOK_URI(), raw: Buffer.from(c.body, 'utf8'), header: headerOf(c.headers), nowMs: clock.now().getTime() }, [SECRET]);
      expect(check).toEqual({ ok: true, version: 'v3' });
      // The v1 signature HubSpot sends alongside verifies too.
      const v1Only = (name: string) => (name.toLowerCase() === 'x-hubspot-signature-v3' ? '' : headerOf(c.headers)(name));
      expect(checkHubspotSignature({ method: c.method, uri: WEBHOOK_URI(), raw: Buffer.from(c.body, 'utf8'), header: v1Only, nowMs: clock.now().getTime() }, [SECRET])).toEqual({ ok: true, version: 'v1' });
      const batch = JSON.parse(c.body) as unknown[];
      expect(Array.isArray(batch)).toBe(true);
      return batch.map((e) => eventSchema.parse(e));
    });
  }

  it('the app’s subscriptions are the defaults', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'manifest.json'), 'utf8')) as { hubspot: { scopes: string[]; webhooks: { subscriptions: unknown[] } } };
    expect(DEFAULT_WEBHOOK_SUBSCRIPTIONS).toEqual(manifest.hubspot.webhooks.subscriptions);
    expect(DEFAULT_SCOPES).toEqual(manifest.hubspot.scopes);
  });

  it('a contact created and edited in HubSpot: signed v3 batches the app’s verifier accepts and its schema parses', async () => {
    await connector().provision(tenant());
    const contact = sim.createContact(PORTAL, { email: 'Ann@Example.com', properties: { firstname: 'Ann', phone: '+31612345678' } });
    clock.advance(5_000);
    sim.updateContact(PORTAL, contact.id, { [SMS_CONSENT_PROPERTY]: 'subscribed', firstname: 'Anne' });
    const deliveries = await sim.flushWebhooks();
    expect(deliveries.map((d) => [d.status, d.outcome, d.events.length])).toEqual([[200, 'delivered', 4]]);
    const [batch] = verified();
    const base = { portalId: PORTAL, objectId: contact.id, attemptNumber: 0, changeSource: 'CRM_UI', sourceId: 'userId:2000001' };
    expect(batch).toEqual([
      expect.objectContaining({ ...base, subscriptionType: 'contact.creation', changeFlag: 'CREATED', occurredAt: Date.parse(START) }),
      expect.objectContaining({ ...base, subscriptionType: 'contact.propertyChange', propertyName: 'email', propertyValue: 'ann@example.com' }),
      expect.objectContaining({ ...base, subscriptionType: 'contact.propertyChange', propertyName: 'phone', propertyValue: '+31612345678' }),
      expect.objectContaining({ ...base, subscriptionType: 'contact.propertyChange', propertyName: SMS_CONSENT_PROPERTY, propertyValue: 'subscribed', occurredAt: Date.parse(START) + 5_000 }),
    ]);
    expect(new Set(batch!.map((e) => e.eventId)).size).toBe(4);
    const raw = JSON.parse(receiver.captured[0]!.body) as Array<Record<string, unknown>>;
    expect(raw[0]).toMatchObject({ appId: Number(APP_ID), portalId: Number(PORTAL), objectId: Number(contact.id) });
    expect(sim.state().counters.webhooks).toMatchObject({ events: 4, requests: 1, delivered: 4, pending: 0 });
  });

  it('merge, deletion, and a privacy deletion (which sends contact.deletion too and erases subscription statuses)', async () => {
    const a = sim.createContact(PORTAL, { email: 'a@example.com' });
    const b = sim.createContact(PORTAL, { email: 'b@example.com', properties: { phone: '+4915112345678' } });
    const d = sim.createContact(PORTAL, { email: 'd@example.com' });
    sim.subscribeViaForm(PORTAL, 'd@example.com', NEWSLETTER);
    await sim.flushWebhooks();
    receiver.captured.length = 0;

    sim.mergeContacts(PORTAL, a.id, b.id);
    sim.deleteContact(PORTAL, a.id);
    sim.deleteContact(PORTAL, d.id, { privacy: true });
    await sim.flushWebhooks();
    const events = verified().flat();
    expect(events.map((e) => e.subscriptionType)).toEqual(['contact.merge', 'contact.propertyChange', 'contact.deletion', 'contact.privacyDeletion', 'contact.deletion']);
    expect(events[0]).toMatchObject({ objectId: a.id, primaryObjectId: a.id, mergedObjectIds: [b.id], newObjectId: a.id });
    expect(events[1]).toMatchObject({ objectId: a.id, propertyName: 'phone', propertyValue: '+4915112345678' });
    expect(events.slice(3).map((e) => e.objectId)).toEqual([d.id, d.id]);
    expect(sim.state().portals[0]!.contacts).toEqual([]);
    expect(sim.state().portals[0]!.subscriptions).toEqual([]);
  });

  it('the app’s own write comes back with changeSource INTEGRATION and sourceId = the app id: an echo to the app', async () => {
    const c = connector();
    await c.provision(tenant());
    await c.upsertContactProperties(tenant(), [{ key: 'k', email: email(1), properties: { [SMS_CONSENT_PROPERTY]: 'subscribed', [EMAIL_GATE_PROPERTY]: 'allowed' } }]);
    const id = (await c.contactIdsByEmail(tenant(), [email(1)])).get(email(1))!;
    sim.updateContact(PORTAL, id, { [SMS_CONSENT_PROPERTY]: 'unsubscribed' });
    await sim.flushWebhooks();
    const events = verified().flat();
    expect(events.map((e) => [e.subscriptionType, e.propertyName ?? null, e.changeSource, e.sourceId])).toEqual([
      ['contact.creation', null, 'INTEGRATION', APP_ID],
      ['contact.propertyChange', 'email', 'INTEGRATION', APP_ID],
      ['contact.propertyChange', SMS_CONSENT_PROPERTY, 'INTEGRATION', APP_ID],
      ['contact.propertyChange', SMS_CONSENT_PROPERTY, 'CRM_UI', 'userId:2000001'],
    ]);
    expect(events.map((e) => isEcho(e, APP_ID))).toEqual([true, true, true, false]);
  });

  it('a batch the app does not accept is sent again with attemptNumber + 1; at most 100 events per request', async () => {
    for (let i = 0; i < 60; i++) sim.createContact(PORTAL, { email: email(i) });
    receiver.answerWith(() => ({ status: 503, body: { error: 'down' } }));
    const failed = await sim.flushWebhooks();
    expect(failed.map((d) => [d.events.length, d.status, d.outcome])).toEqual([
      [100, 503, 'retry'],
      [20, 503, 'retry'],
    ]);
    receiver.answerWith(() => ({ status: 200, body: { status: 'ok' } }));
    const retried = await sim.flushWebhooks();
    expect(retried.map((d) => [d.events.length, d.attemptNumber, d.outcome])).toEqual([
      [100, 1, 'delivered'],
      [20, 1, 'delivered'],
    ]);
    const events = verified().slice(2).flat();
    expect(events.every((e) => e.attemptNumber === 1)).toBe(true);
    expect(events).toHaveLength(120);
  });

  it('auto delivery (the default) sends queued events without a flush, also once an appUrl is set later', async () => {
    await start({ appUrl: null, webhooks: { batchWindowMs: 10 } });
    sim.createContact(PORTAL, { email: email(1) });
    await new Promise((r) => setTimeout(r, 30));
    expect(sim.pendingWebhooks()).toHaveLength(2);
    sim.setAppUrl(receiver.url);
    for (let i = 0; i < 100 && receiver.captured.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(verified().flat().map((e) => e.subscriptionType)).toEqual(['contact.creation', 'contact.propertyChange']);
  });
});

// ================================================================ workflow actions

describe('workflow actions', () => {
  const ANSWER = { outputFields: { consent_allowed: 'no', consent_reason: 'withdrawn', consent_basis: 'none', hs_execution_state: 'SUCCESS' } };

  it('calls check-consent with a v2-signed execution request the app’s verifier accepts, and returns the app’s answer', async () => {
    receiver.answerWith(() => ({ status: 200, body: ANSWER }));
    const contact = sim.createContact(PORTAL, { email: email(1), properties: { firstname: 'Ann' } });
    const result = await sim.callWorkflowAction({ portalId: PORTAL, contactId: contact.id, inputFields: { channel: 'email', subscription_type: NEWSLETTER }, properties: ['email'], workflowId: 777 });
    expect(result).toMatchObject({ status: 200, body: ANSWER, error: null, url: `${receiver.url}/hubspot/actions/check-consent` });
    const [request] = receiver.captured;
    expect(request?.url).toBe('/hubspot/actions/check-consent');
    const check = checkHubspotSignature(
      { method: 'POST', uri: `${receiver.url}/hubspot/actions/check-consent`, raw: Buffer.from(request!.body, 'utf8'), header: headerOf(request!.headers), nowMs: clock.now().getTime() },
      [SECRET],
    );
    expect(check).toEqual({ ok: true, version: 'v2' });
    expect(checkHubspotSignature({ method: 'POST', uri: `${receiver.url}/hubspot/actions/check-consent`, raw: Buffer.from(request!.body), header: headerOf(request!.headers), nowMs: 0 }, ['other-secret'])).toEqual({
      ok: false,
      reason: 'invalid_signature',
    });
    expect(JSON.parse(request!.body)).toEqual({
      callbackId: expect.stringMatching(new RegExp(`^ap-${PORTAL}-777-1-\\d+$`)),
      origin: { portalId: Number(PORTAL), actionDefinitionId: 3000001, actionDefinitionVersion: 1, extensionDefinitionId: 3000001, extensionDefinitionVersionId: 1 },
      context: { source: 'WORKFLOWS', workflowId: 777 },
      object: { objectId: Number(contact.id), objectType: 'CONTACT', properties: { email: email(1) } },
      inputFields: { channel: 'email', subscription_type: NEWSLETTER },
    });
    expect(sim.state().counters.workflowActions).toEqual({ calls: 1, failed: 0 });
  });

  it('signs with v3 on request, calls record-consent-change, and reports the app’s refusal', async () => {
    receiver.answerWith(() => ({ status: 401, body: { error: { code: 'unauthorized' } } }));
    const contact = sim.createContact(PORTAL, { email: email(1) });
    const result = await sim.callWorkflowAction({ portalId: PORTAL, contactId: contact.id, action: 'record-consent-change', signatureVersion: 'v3', callbackId: 'ap-1' });
    expect(result).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    const [request] = receiver.captured;
    expect(request?.url).toBe('/hubspot/actions/record-consent-change');
    const check = checkHubspotSignature(
      { method: 'POST', uri: `${receiver.url}/hubspot/actions/record-consent-change`, raw: Buffer.from(request!.body), header: headerOf(request!.headers), nowMs: clock.now().getTime() },
      [SECRET],
    );
    expect(check).toEqual({ ok: true, version: 'v3' });
    expect(sim.state().counters.workflowActions).toEqual({ calls: 1, failed: 1 });
  });
});

// ================================================================ faults

describe('fault injection', () => {
  it('errorRate 1: every call is a 5xx with a JSON body; the connector sees a retryable server error; nothing applied', async () => {
    await start({ faults: { errorRate: 1, errorStatuses: [503] } });
    const raw = await api('/communication-preferences/v3/definitions');
    expect(raw.status).toBe(503);
    expect(await raw.json()).toEqual({ status: 'error', message: 'Service Unavailable', correlationId: expect.any(String) });
    const error = await failure(connector().upsertContactProperties(tenant(), upserts(1)));
    expect(error).toMatchObject({ kind: 'server_error', retryable: true, status: 503 });
    expect(sim.state().portals[0]!.contacts).toEqual([]);
    expect(sim.state().counters.faults).toEqual({ error: 2, slow: 0, reset: 0 });
  });

  it('slowRate 1: the work is applied but the answer comes after delayMs; the connector times out', async () => {
    await start({ faults: { slowRate: 1, delayMs: 600 } });
    const error = await failure(connector({ timeoutMs: 100 }).upsertContactProperties(tenant(), upserts(1)));
    expect(error).toMatchObject({ kind: 'timeout', retryable: true });
    expect(sim.state().portals[0]!.contacts.map((x) => x.email)).toEqual([email(0)]);
    expect(sim.state().counters.faults.slow).toBe(1);
  });

  it('resetRate 1: the connection is destroyed before anything happens; the connector sees a connection failure', async () => {
    await start({ faults: { resetRate: 1 } });
    const error = await failure(connector().upsertContactProperties(tenant(), upserts(1)));
    expect(error).toMatchObject({ kind: 'connection', retryable: true, status: null });
    expect(sim.state().portals[0]!.contacts).toEqual([]);
    expect(sim.requests()).toEqual([expect.objectContaining({ status: null, fault: 'reset' })]);
  });

  it('the same seed injects the same faults in the same places; another seed does not', async () => {
    const run = async (seed: number) => {
      await start({ seed, faults: { errorRate: 0.3, resetRate: 0.2 } });
      for (let i = 0; i < 40; i++) await api('/communication-preferences/v3/definitions').catch(() => undefined);
      return sim.requests().map((r) => r.fault ?? r.status);
    };
    const first = await run(7);
    expect(first).toContain('error');
    expect(first).toContain('reset');
    expect(first).toContain(200);
    expect(await run(7)).toEqual(first);
    expect(await run(8)).not.toEqual(first);
  });

  it('an injected fault hits the next matching request only; faults can be changed at run time', async () => {
    sim.injectFault({ kind: 'error', status: 502, path: '/batch/upsert' });
    expect((await api('/communication-preferences/v3/definitions')).status).toBe(200);
    const error = await failure(connector().upsertContactProperties(tenant(), upserts(1)));
    expect(error).toMatchObject({ kind: 'server_error', status: 502 });
    expect((await connector().upsertContactProperties(tenant(), upserts(1)))[0]?.ok).toBe(true);
    sim.setFaults({ errorRate: 1 });
    expect((await api('/communication-preferences/v3/definitions')).status).toBeGreaterThanOrEqual(500);
    sim.setFaults({ errorRate: 0 });
    expect((await api('/communication-preferences/v3/definitions')).status).toBe(200);
  });
});

// ================================================================ OAuth and auth

describe('OAuth and authentication', () => {
  const config = () => ({ clientId: CLIENT_ID, clientSecret: SECRET, baseUrl: sim.url, clock });

  it('refreshHubspotToken gets a 30-minute token that works and introspects; it expires on the simulator’s clock', async () => {
    const tokens = await refreshHubspotToken(config(), REFRESH);
    expect(tokens).toEqual({ accessToken: expect.stringMatching(/^CJ/), refreshToken: REFRESH, expiresAt: '2026-06-01T12:30:00.000Z' });
    expect((await api('/communication-preferences/v3/definitions', {}, tokens.accessToken)).status).toBe(200);
    const info = await fetch(`${sim.url}/oauth/v1/access-tokens/${tokens.accessToken}`);
    expect(await info.json()).toMatchObject({ hub_id: Number(PORTAL), app_id: Number(APP_ID), expires_in: 1800, token_type: 'access', scopes: DEFAULT_SCOPES });
    clock.advance(1_800_000);
    const expired = await api('/communication-preferences/v3/definitions', {}, tokens.accessToken);
    expect(expired.status).toBe(401);
    expect(await expired.json()).toMatchObject({ category: 'EXPIRED_AUTHENTICATION' });
  });

  it('an unknown refresh token, and every token after an uninstall, is invalid_grant / 401', async () => {
    expect(await failure(refreshHubspotToken(config(), 'nope'))).toMatchObject({ kind: 'auth', retryable: false, status: 400, message: expect.stringMatching(/invalid_grant/) });
    expect(await failure(refreshHubspotToken({ ...config(), clientSecret: 'wrong' }, REFRESH))).toMatchObject({ kind: 'auth', message: expect.stringMatching(/client id or secret/) });
    sim.uninstall(PORTAL);
    expect(await failure(refreshHubspotToken(config(), REFRESH))).toMatchObject({ kind: 'auth', message: expect.stringMatching(/uninstalled/) });
    const error = await failure(connector().contactIdsByEmail(tenant(), [email(1)]));
    expect(error).toMatchObject({ kind: 'auth', status: 401 });
    expect(sim.state().counters.oauth).toEqual({ issued: 0, refused: 3 });
  });

  it('an install: an authorization code exchanged once for tokens of the portal', async () => {
    const code = sim.authorizationCode(PORTAL);
    const exchange = (c: string) =>
      fetch(`${sim.url}/oauth/v1/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', client_id: CLIENT_ID, client_secret: SECRET, redirect_uri: 'https://app/cb', code: c }).toString(),
      });
    const first = await exchange(code);
    const body = (await first.json()) as { access_token: string; refresh_token: string; expires_in: number };
    expect(body.expires_in).toBe(1800);
    expect((await refreshHubspotToken(config(), body.refresh_token)).accessToken).toMatch(/^CJ/);
    expect((await exchange(code)).status).toBe(400);
  });

  it('401 without a token or with an unknown one; unknown endpoints 404 with a JSON body', async () => {
    const none = await fetch(`${sim.url}/communication-preferences/v3/definitions`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ status: 'error', category: 'INVALID_AUTHENTICATION', correlationId: expect.any(String) });
    expect((await api('/communication-preferences/v3/definitions', {}, 'not-a-token')).status).toBe(401);
    const missing = await api('/crm/v3/objects/deals/search', { method: 'POST', body: '{}' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ message: expect.stringMatching(/no endpoint POST/) });
  });
});

// ================================================================ the control plane over HTTP

describe('/_sim over HTTP', () => {
  const control = (pathname: string, method = 'GET', body?: unknown) =>
    fetch(`${sim.url}/_sim${pathname}`, { method, headers: { 'Content-Type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

  it('creates contacts, unsubscribes, sets faults and the app URL, flushes webhooks and shows the state; none of it is a platform request', async () => {
    await start({ appUrl: null });
    const created = await control(`/portals/${PORTAL}/contacts`, 'POST', { email: 'c@example.com', properties: { firstname: 'C' } });
    expect(created.status).toBe(201);
    const contact = (await created.json()) as { id: string };
    expect((await control(`/portals/${PORTAL}/unsubscribe`, 'POST', { email: 'c@example.com' })).status).toBe(204);
    expect((await control('/webhooks/flush', 'POST')).status).toBe(409);
    expect((await control('/config', 'PUT', { appUrl: receiver.url, faults: { errorRate: 0.5 } })).status).toBe(200);
    const flushed = (await (await control('/webhooks/flush', 'POST')).json()) as { deliveries: Array<{ status: number }> };
    expect(flushed.deliveries.map((d) => d.status)).toEqual([200]);
    const action = await control(`/portals/${PORTAL}/workflow-actions`, 'POST', { contactId: contact.id, inputFields: { channel: 'email' } });
    expect(((await action.json()) as { status: number }).status).toBe(200);
    const state = (await (await control('/state')).json()) as { appUrl: string; faults: { errorRate: number }; portals: Array<{ contacts: unknown[]; subscriptions: Array<{ optedOutOfAll: boolean }> }>; counters: { requests: { total: number } } };
    expect(state).toMatchObject({ appUrl: receiver.url, faults: { errorRate: 0.5 } });
    expect(state.portals[0]?.contacts).toHaveLength(1);
    expect(state.portals[0]?.subscriptions[0]?.optedOutOfAll).toBe(true);
    expect(state.counters.requests.total).toBe(0);
    expect((await control('/nothing-here')).status).toBe(404);
  });
});

// ================================================================ end to end with the app (SQLite)

describe('end to end: the simulator calling the app', () => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let app: http.Server;
  let appUrl: string;

  beforeAll(async () => {
    ({ db, store } = await migratedStore('sqlite'));
    let handler: http.RequestListener = (_req, res) => res.end();
    app = http.createServer((req, res) => handler(req, res));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    // The app's APP_URL is the simulator's appUrl: both sides compute signatures over it.
    h = await createHarness(store, { APP_URL: appUrl });
    handler = h.app.callback();
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => {
      app.close(() => resolve());
      app.closeAllConnections();
    });
    await store.close();
    await db.drop();
  });

  it('the app accepts the signed webhooks and processes them, and answers the check-consent action', async () => {
    await start({ clientSecret: HUBSPOT_SECRET, appId: HUBSPOT_APP_ID, appUrl, clock: h.clock });
    expect(h.tenantA.hubspotPortalId).toBe(PORTAL);
    const contact = sim.createContact(PORTAL, { email: 'e2e@example.com', properties: { phone: '+31612345678' } });
    const deliveries = await sim.flushWebhooks();
    expect(deliveries.map((d) => [d.status, d.outcome])).toEqual([[200, 'delivered']]);
    expect(JSON.parse(deliveries[0]!.responseBody!)).toEqual({ status: 'ok', accepted: 3, duplicates: 0, ignored: 0 });
    expect(await h.worker.drain()).toBeGreaterThanOrEqual(1);

    const result = await sim.callWorkflowAction({ portalId: PORTAL, contactId: contact.id, inputFields: { channel: 'email' } });
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ outputFields: { consent_allowed: 'no', hs_execution_state: 'SUCCESS' } });
    // HubSpot retries with the same callbackId: the app answers the same.
    const callbackId = (JSON.parse(result.request.body) as { callbackId: string }).callbackId;
    const again = await sim.callWorkflowAction({ portalId: PORTAL, contactId: contact.id, inputFields: { channel: 'email' }, callbackId });
    expect(again.body).toEqual(result.body);
  });
});
