/**
 * `GET /metrics` (issue 5 §7): Prometheus text of the app's own registry. On SQLite and PostgreSQL: webhook
 * counters (accepted and refused, with their labels), queue depth gauges read at scrape time, the dispatcher's
 * sync lag and outcomes, gate decisions from the gate API and the HubSpot workflow action, METRICS_TOKEN, the
 * process metrics, and `serve` (startServer) exposing all of it. Store-free: the connectors' `onCall` hook
 * (HubSpot 429, Shopify THROTTLED), the depth fallback when the database is slow or failing, the backfill gauge.
 */
import request from 'supertest';
import { defaultSettings } from '../../src/config/manifest';
import type { NewConsentEvent } from '../../src/domain/consent';
import { createApiKey } from '../../src/gate/api-keys';
import { appendToLedger } from '../../src/ledger/ledger';
import { silentLogger } from '../../src/log/logger';
import { buildApp, createMetrics, createRuntime, startServer } from '../../src/main';
import { noopMetrics, rejectionReason, type PlatformCallHook } from '../../src/metrics/metrics';
import { PrometheusMetrics } from '../../src/metrics/prometheus';
import { OutboxDispatcher, type OutboxHandler } from '../../src/outbox/dispatcher';
import { enqueueOutbox, type OutboxItem } from '../../src/outbox/outbox';
import { AppError } from '../../src/domain/errors';
import type { Store } from '../../src/store/database';
import { upsertProfile } from '../../src/store/subject.repository';
import { resolveSubject } from '../../src/subjects/subjects';
import type { AccessTokens, ItemOutcome, RateLimiter } from '../../src/sync/ports';
import type { Tenant } from '../../src/tenants/tenants';
import { HubspotConnector } from '../../connectors/hubspot/connector';
import { createShopifyAdminApi } from '../../connectors/shopify/admin-api';
import { ShopifyConsentConnector } from '../../connectors/shopify/consent';
import { HUBSPOT_CHECK_CONSENT_PATH } from '../../webhooks/hubspot/actions';
import { countingIds } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { createHarness, fixture, hubspotHeaders, shopifyHeaders, testConfig, type Harness } from '../helpers/webhooks';

// ---------------------------------------------------------------- reading the exposition

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a text exposition (label values unescaped; comments skipped). */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!.replace(/\\(.)/g, '$1');
    out.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return out;
}

/** The value of the one sample with this name and exactly these labels; undefined when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples(text).filter((s) => s.name === name && Object.keys(s.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

async function scrape(app: ReturnType<typeof buildApp>, token?: string): Promise<string> {
  const req = request(app.callback()).get('/metrics');
  const res = await (token === undefined ? req : req.set('Authorization', `Bearer ${token}`));
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text;
}

const EMAIL_CONSENT = fixture('shopify/customers-email-consent-subscribed.json');
const CONTACT_CREATION = fixture('hubspot/contact-creation.json');
const ticked = { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' as const };

describe.each(testDialects())('GET /metrics on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let metrics: PrometheusMetrics;
  let app: ReturnType<typeof buildApp>;

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    metrics = createMetrics(h.runtime, { defaultMetrics: false });
    app = buildApp(h.runtime, { metrics });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const post = (path: string, body: string, headers: Record<string, string>) => request(app.callback()).post(path).set(headers).send(body);

  /** A HubSpot contact of tenant A in the Netherlands with these email events. */
  async function contact(contactId: string, events: Array<Pick<NewConsentEvent, 'kind' | 'basis' | 'purpose' | 'occurredAt' | 'evidence'>>): Promise<void> {
    const subjectId = await store.db.transaction().execute(async (trx) => {
      const { subjectId: id } = await resolveSubject(trx, h.runtime, h.tenantA.id, [{ kind: 'hubspot_contact', value: contactId }]);
      await upsertProfile(trx, { tenant_id: h.tenantA.id, subject_id: id, country: 'NL', company: null, source_updated_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z' });
      return id;
    });
    await appendToLedger(store, h.runtime, {
      tenantId: h.tenantA.id,
      deliveryKey: null,
      events: events.map((e) => ({ ...e, subjectId, channel: 'email', source: 'hubspot', sourceDeliveryId: null })),
    });
  }

  it('counts webhooks received, and refused ones by reason, per platform', async () => {
    const accepted = await post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update' }));
    expect(accepted.body).toEqual({ status: 'accepted' });
    const forged = await post('/webhooks/shopify', EMAIL_CONSENT, shopifyHeaders(EMAIL_CONSENT, { topic: 'customers_email_marketing_consent/update', hmac: 'bm90IHRoZSBobWFj' }));
    expect(forged.status).toBe(401);
    const notJson = await post('/webhooks/shopify', 'x', { ...shopifyHeaders('x', { topic: 'customers/update' }), 'Content-Type': 'text/plain' });
    expect(notJson.status).toBe(415);
    const batch = `[${CONTACT_CREATION}]`;
    expect((await post('/webhooks/hubspot', batch, hubspotHeaders(batch))).status).toBe(200);
    const stale = await post('/webhooks/hubspot', batch, hubspotHeaders(batch, { timestampMs: Date.parse('2026-06-01T11:50:00.000Z') }));
    expect(stale.status).toBe(401);

    const text = await scrape(app);
    expect(text).toContain('# TYPE consent_bridge_webhooks_received_total counter');
    expect(value(text, 'consent_bridge_webhooks_received_total', { platform: 'shopify' })).toBe(3);
    expect(value(text, 'consent_bridge_webhooks_rejected_total', { platform: 'shopify', reason: 'unauthorized' })).toBe(1);
    expect(value(text, 'consent_bridge_webhooks_rejected_total', { platform: 'shopify', reason: 'unsupported_media_type' })).toBe(1);
    expect(value(text, 'consent_bridge_webhooks_received_total', { platform: 'hubspot' })).toBe(2);
    expect(value(text, 'consent_bridge_webhooks_rejected_total', { platform: 'hubspot', reason: 'unauthorized' })).toBe(1);
    // A /metrics request is not a webhook.
    expect(value(await scrape(app), 'consent_bridge_webhooks_received_total', { platform: 'shopify' })).toBe(3);
  });

  it('reads inbox and outbox depth and dead letters from the database at scrape time', async () => {
    const inboxRows = await store.db.selectFrom('inbox').select(['platform', 'status']).execute();
    expect(inboxRows.length).toBeGreaterThanOrEqual(2); // the two accepted webhooks above
    await store.db.updateTable('inbox').set({ status: 'dead' }).where('platform', '=', 'hubspot').execute();
    const items: OutboxItem[] = ['d-1', 'd-2', 'd-3'].map((key) => ({ tenantId: h.tenantA.id, platform: 'hubspot', operation: 'depth_probe', idempotencyKey: key, subjectId: null, payload: {}, sourceSeq: null }));
    expect(await enqueueOutbox(store, h.runtime, items)).toBe(3);
    await store.db.updateTable('outbox').set({ status: 'dead' }).where('idempotency_key', '=', 'd-3').execute();

    const text = await scrape(app);
    const inboxPlatform = (platform: string) => inboxRows.filter((r) => r.platform === platform).length;
    expect(inboxPlatform('hubspot')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'consent_bridge_inbox_rows', { platform: 'shopify', status: 'pending' })).toBe(inboxRows.filter((r) => r.platform === 'shopify' && r.status === 'pending').length);
    expect(value(text, 'consent_bridge_inbox_rows', { platform: 'hubspot', status: 'dead' })).toBe(inboxPlatform('hubspot'));
    expect(value(text, 'consent_bridge_inbox_rows', { platform: 'hubspot', status: 'pending' })).toBe(0); // reported as 0, not absent
    expect(value(text, 'consent_bridge_outbox_rows', { platform: 'hubspot', operation: 'depth_probe', status: 'pending' })).toBe(2);
    expect(value(text, 'consent_bridge_outbox_rows', { platform: 'hubspot', operation: 'depth_probe', status: 'dead' })).toBe(1);
    expect(value(text, 'consent_bridge_outbox_rows', { platform: 'hubspot', operation: 'depth_probe', status: 'done' })).toBe(0);
    const outboxDead = (await store.db.selectFrom('outbox').select('id').where('status', '=', 'dead').execute()).length;
    expect(value(text, 'consent_bridge_dead_letters', { queue: 'inbox' })).toBe(inboxPlatform('hubspot'));
    expect(value(text, 'consent_bridge_dead_letters', { queue: 'outbox' })).toBe(outboxDead);
    expect(value(text, 'consent_bridge_queue_depth_collected_timestamp_seconds')).toBeGreaterThan(Date.parse('2026-01-01') / 1000);

    // Age of the oldest pending row: every row above was made at the harness clock's time.
    const age = (t: string, queue: string, platform: string) => value(t, 'consent_bridge_queue_oldest_pending_seconds', { queue, platform });
    for (const queue of ['inbox', 'outbox']) for (const platform of ['shopify', 'hubspot']) expect(age(text, queue, platform)).toBe(0);

    // Inbox: since received; dead letters do not count, a row waiting for its retry does.
    const at = (seconds: number) => new Date(h.clock.now().getTime() + seconds * 1000).toISOString();
    const shopifyPending = await store.db.selectFrom('inbox').select('id').where('platform', '=', 'shopify').where('status', '=', 'pending').execute();
    expect(shopifyPending.length).toBeGreaterThanOrEqual(1);
    await store.db.updateTable('inbox').set({ received_at: at(-90), run_at: at(600), attempts: 2 }).where('id', '=', shopifyPending[0]!.id).execute();
    await store.db.updateTable('inbox').set({ received_at: at(-3600) }).where('platform', '=', 'hubspot').execute(); // dead
    // Outbox: since enqueued, whatever run_at says (a claim's lease end); over every operation; done rows do not count.
    await store.db.updateTable('outbox').set({ created_at: at(-30), run_at: at(60), claimed_until: at(60) }).where('idempotency_key', '=', 'd-1').execute();
    await store.db.updateTable('outbox').set({ created_at: at(-7200) }).where('idempotency_key', '=', 'd-3').execute(); // dead
    const lagging = await scrape(app);
    expect(age(lagging, 'inbox', 'shopify')).toBe(90);
    expect(age(lagging, 'inbox', 'hubspot')).toBe(0);
    expect(age(lagging, 'outbox', 'hubspot')).toBe(30);
    expect(age(lagging, 'outbox', 'shopify')).toBe(0);
    const other = (key: string): OutboxItem => ({ tenantId: h.tenantA.id, platform: 'hubspot', operation: 'depth_probe_2', idempotencyKey: key, subjectId: null, payload: {}, sourceSeq: null });
    expect(await enqueueOutbox(store, h.runtime, [other('d-4'), other('d-5')])).toBe(2);
    await store.db.updateTable('outbox').set({ status: 'done', created_at: at(-500) }).where('idempotency_key', '=', 'd-4').execute();
    expect(age(await scrape(app), 'outbox', 'hubspot')).toBe(30);
    await store.db.updateTable('outbox').set({ created_at: at(-200) }).where('idempotency_key', '=', 'd-5').execute();
    expect(age(await scrape(app), 'outbox', 'hubspot')).toBe(200);

    // Rows that go away are gone from the next scrape; their (platform, operation) stays at 0.
    await store.db.deleteFrom('outbox').where('operation', 'in', ['depth_probe', 'depth_probe_2']).execute();
    const after = await scrape(app);
    for (const status of ['pending', 'done', 'dead']) expect(value(after, 'consent_bridge_outbox_rows', { platform: 'hubspot', operation: 'depth_probe', status })).toBe(0);
    expect(value(after, 'consent_bridge_metrics_collect_errors_total', { collector: 'queue_depth', reason: 'timeout' })).toBeUndefined();
  });

  it('observes sync lag (created → done) and counts outcomes when the dispatcher records a chunk', async () => {
    const item = (key: string, operation: string, platform: 'hubspot' | 'shopify', mode: string): OutboxItem => ({ tenantId: h.tenantA.id, platform, operation, idempotencyKey: key, subjectId: null, payload: { mode }, sourceSeq: null });
    await enqueueOutbox(store, h.runtime, [item('l-1', 'lag_probe', 'hubspot', 'ok'), item('l-2', 'lag_probe', 'hubspot', 'ok'), item('l-3', 'lag_probe', 'hubspot', 'bad'), item('l-4', 'retry_probe', 'shopify', 'fail')]);
    const byMode = async (_tenantId: string, rows: readonly { id: string; payload: unknown }[]): Promise<ItemOutcome[]> =>
      rows.map((row): ItemOutcome => {
        const mode = (row.payload as { mode: string }).mode;
        if (mode === 'ok') return { key: row.id, ok: true };
        return { key: row.id, ok: false, error: mode === 'bad' ? 'refused' : 'HTTP 503', retryable: mode !== 'bad' };
      });
    const handlers: OutboxHandler[] = [
      { platform: 'hubspot', operation: 'lag_probe', maxBatch: 100, handle: byMode },
      { platform: 'shopify', operation: 'retry_probe', maxBatch: 100, handle: byMode },
    ];
    h.clock.advance(42_000);
    try {
      const dispatcher = new OutboxDispatcher({ store, clock: h.clock, logger: silentLogger, handlers, random: () => 0.5, metrics }, { maxAttempts: 5 });
      expect(await dispatcher.drain()).toBe(4);
    } finally {
      h.clock.set('2026-06-01T12:00:00.000Z');
    }

    const text = await scrape(app);
    const lag = { platform: 'hubspot', operation: 'lag_probe' };
    expect(text).toContain('# TYPE consent_bridge_sync_lag_seconds histogram');
    expect(value(text, 'consent_bridge_sync_lag_seconds_count', lag)).toBe(2);
    expect(value(text, 'consent_bridge_sync_lag_seconds_sum', lag)).toBe(84);
    expect(value(text, 'consent_bridge_sync_lag_seconds_bucket', { ...lag, le: '30' })).toBe(0);
    expect(value(text, 'consent_bridge_sync_lag_seconds_bucket', { ...lag, le: '60' })).toBe(2);
    expect(value(text, 'consent_bridge_sync_lag_seconds_count', { platform: 'shopify', operation: 'retry_probe' })).toBeUndefined();
    expect(value(text, 'consent_bridge_outbox_outcomes_total', { ...lag, outcome: 'done' })).toBe(2);
    expect(value(text, 'consent_bridge_outbox_outcomes_total', { ...lag, outcome: 'dead' })).toBe(1);
    expect(value(text, 'consent_bridge_outbox_outcomes_total', { platform: 'shopify', operation: 'retry_probe', outcome: 'retry' })).toBe(1);
    expect(value(text, 'consent_bridge_outbox_rows', { ...lag, status: 'done' })).toBe(2);
    expect(value(text, 'consent_bridge_outbox_rows', { platform: 'shopify', operation: 'retry_probe', status: 'pending' })).toBe(1);
  });

  it('counts gate decisions by source, reason and allowed (gate API and the HubSpot workflow action)', async () => {
    await contact('501', [{ kind: 'grant', basis: 'consent', purpose: '*', occurredAt: '2026-03-01T10:00:00.000Z', evidence: ticked }]);
    const { key } = await createApiKey(store, h.runtime, h.tenantA.id, 'metrics test');
    const check = await request(app.callback())
      .post('/api/v1/gate/check')
      .set('Authorization', `Bearer ${key}`)
      .send({ channel: 'email', recipients: [{ hubspotContactId: '501' }, { email: 'nobody@example.com' }, { email: 'nobody-else@example.com' }] });
    expect(check.status).toBe(200);
    const results = check.body.results as Array<{ allowed: boolean; reason: string }>;
    expect(results.map((r) => [r.allowed, r.reason])).toEqual([
      [true, 'consent'],
      [false, 'unknown_recipient'],
      [false, 'unknown_recipient'],
    ]);

    const execution = JSON.stringify({
      callbackId: 'ap-metrics-1',
      origin: { portalId: 62515, actionDefinitionId: 10860211 },
      object: { objectId: 501, objectType: 'CONTACT' },
      inputFields: { channel: 'email' },
    });
    for (let i = 0; i < 2; i++) {
      // The second is HubSpot's retry of the same execution: the stored answer, not a new decision.
      const res = await post(HUBSPOT_CHECK_CONSENT_PATH, execution, hubspotHeaders(execution, { path: HUBSPOT_CHECK_CONSENT_PATH }));
      expect(res.status).toBe(200);
      expect(res.body.outputFields).toMatchObject({ consent_allowed: 'yes', consent_reason: 'consent' });
    }

    const text = await scrape(app);
    expect(value(text, 'consent_bridge_gate_decisions_total', { source: 'api', reason: 'consent', allowed: 'true' })).toBe(1);
    expect(value(text, 'consent_bridge_gate_decisions_total', { source: 'api', reason: 'unknown_recipient', allowed: 'false' })).toBe(2);
    expect(value(text, 'consent_bridge_gate_decisions_total', { source: 'hubspot_action', reason: 'consent', allowed: 'true' })).toBe(1);
    // The action is not a webhook.
    expect(value(text, 'consent_bridge_webhooks_received_total', { platform: 'hubspot' })).toBe(2);
  });

  it('requires Authorization: Bearer <METRICS_TOKEN> when it is set', async () => {
    const runtime = createRuntime(testConfig({ METRICS_TOKEN: 'scrape-token-0123' }), { store, logger: silentLogger, clock: h.clock, ids: countingIds('m') });
    const guarded = buildApp(runtime);
    const none = await request(guarded.callback()).get('/metrics');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.body.error.code).toBe('unauthorized');
    expect(none.text).not.toContain('consent_bridge_');
    for (const header of ['Bearer scrape-token-012', 'Bearer scrape-token-01234', 'Basic scrape-token-0123', 'scrape-token-0123']) {
      expect((await request(guarded.callback()).get('/metrics').set('Authorization', header)).status).toBe(401);
    }
    expect(await scrape(guarded, 'scrape-token-0123')).toContain('consent_bridge_inbox_rows');
    // Without the variable, /metrics is open.
    expect((await request(app.callback()).get('/metrics')).status).toBe(200);
  });

  it('keeps each app’s counts in its own registry and adds process metrics when asked', async () => {
    const other = buildApp(h.runtime);
    expect(value(await scrape(other), 'consent_bridge_webhooks_received_total', { platform: 'shopify' })).toBeUndefined();
    expect(value(await scrape(app), 'consent_bridge_webhooks_received_total', { platform: 'shopify' })).toBe(3);
    expect(await scrape(app)).not.toContain('process_cpu_user_seconds_total');

    const withDefaults = buildApp(h.runtime, { metrics: createMetrics(h.runtime) });
    const text = await scrape(withDefaults);
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });

  it('is served by `serve` (startServer) with process metrics, on the app port', async () => {
    const own = await migratedStore(dialect);
    const runtime = createRuntime(testConfig({ PORT: '0', HOST: '127.0.0.1', RUN_WORKER: 'false' }), { store: own.store, logger: silentLogger });
    const running = await startServer(runtime);
    try {
      const res = await fetch(`${running.url}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');
      expect(value(text, 'consent_bridge_inbox_rows', { platform: 'shopify', status: 'pending' })).toBe(0);
      expect(value(text, 'consent_bridge_dead_letters', { queue: 'outbox' })).toBe(0);
      expect(text).toContain('# TYPE consent_bridge_platform_rate_limited_total counter');
      expect(text).toContain('# TYPE consent_bridge_backfill_customers gauge');
    } finally {
      await running.stop('test');
      await own.db.drop();
    }
  });
});

// ---------------------------------------------------------------- without a database

function tenant(): Tenant {
  return {
    id: 'tenant-metrics',
    shopDomain: 'metrics-shop.myshopify.com',
    hubspotPortalId: '4242',
    status: 'active',
    settings: defaultSettings(),
    hasShopifyCredentials: true,
    hasHubspotCredentials: true,
    createdAt: '2026-06-01T12:00:00.000Z',
    updatedAt: '2026-06-01T12:00:00.000Z',
  };
}

const tokens: AccessTokens = { accessToken: async () => 'token-for-metrics-tests' };
const limiter: RateLimiter = { acquire: async () => undefined };
const json = (status: number, body: unknown, headers: Record<string, string> = {}) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

/** A Kysely stand-in whose queries answer what `next()` says (rows, an error, or never). */
function fakeDb(next: () => Promise<unknown[]>) {
  const chain: Record<string, unknown> = {};
  for (const method of ['selectFrom', 'select', 'groupBy']) chain[method] = () => chain;
  chain.execute = next;
  return chain as never;
}

describe('metrics without a database', () => {
  const scrapeOf = async (metrics: PrometheusMetrics) => (await metrics.render()).body;

  it('counts every platform request by outcome and status, and rate limits apart (HubSpot 429)', async () => {
    const metrics = new PrometheusMetrics({ logger: silentLogger, defaultMetrics: false });
    const answers = [
      () => json(429, { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', policyName: 'TEN_SECONDLY_ROLLING' }, { 'Retry-After': '1' }),
      () => json(404, { status: 'error', message: 'not found', category: 'OBJECT_NOT_FOUND' }),
      () => {
        throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
      },
    ];
    const onCall: PlatformCallHook = (platform, outcome) => metrics.platformCall(platform, outcome);
    const connector = new HubspotConnector({ tokens, limiter, logger: silentLogger, fetch: async () => answers.shift()!(), onCall });
    await expect(connector.contactIdsByEmail(tenant(), ['ana@example.com'])).rejects.toMatchObject({ kind: 'rate_limited' });
    await expect(connector.contactIdsByEmail(tenant(), ['ana@example.com'])).resolves.toEqual(new Map());
    await expect(connector.contactIdsByEmail(tenant(), ['ana@example.com'])).rejects.toMatchObject({ kind: 'connection' });
    // No token: nothing was sent, so no call is counted.
    const noToken = new HubspotConnector({ tokens: { accessToken: () => Promise.reject(new AppError('feature_disabled', 'no token')) }, limiter, logger: silentLogger, onCall });
    await expect(noToken.contactIdsByEmail(tenant(), ['ana@example.com'])).rejects.toThrow('no token');

    const text = await scrapeOf(metrics);
    expect(value(text, 'consent_bridge_platform_calls_total', { platform: 'hubspot', outcome: 'rate_limited', status: '429' })).toBe(1);
    expect(value(text, 'consent_bridge_platform_calls_total', { platform: 'hubspot', outcome: 'ok', status: '404' })).toBe(1);
    expect(value(text, 'consent_bridge_platform_calls_total', { platform: 'hubspot', outcome: 'connection', status: 'none' })).toBe(1);
    expect(samples(text).filter((s) => s.name === 'consent_bridge_platform_calls_total').reduce((n, s) => n + s.value, 0)).toBe(3);
    expect(value(text, 'consent_bridge_platform_rate_limited_total', { platform: 'hubspot' })).toBe(1);
  });

  it('counts each Shopify attempt, THROTTLED and 429 as rate limited', async () => {
    const metrics = new PrometheusMetrics({ logger: silentLogger, defaultMetrics: false });
    const cost = { requestedQueryCost: 10, actualQueryCost: null, throttleStatus: { maximumAvailable: 2000, currentlyAvailable: 0, restoreRate: 100 } };
    const page = { data: { customers: { pageInfo: { hasNextPage: false, endCursor: null }, nodes: [] } }, extensions: { cost: { ...cost, actualQueryCost: 10 } } };
    const answers = [
      () => json(200, { errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED' } }], extensions: { cost } }),
      () => json(429, { errors: 'Exceeded 2 calls per second for api client.' }, { 'Retry-After': '0.5' }),
      () => json(200, page),
    ];
    const shopify = createShopifyAdminApi({ apiKey: 'metrics-key', apiSecretKey: 'metrics-secret', appUrl: 'https://bridge.example.com', logger: silentLogger });
    const connector = new ShopifyConsentConnector({
      shopify,
      tokens,
      logger: silentLogger,
      sleep: async () => undefined,
      random: () => 0.5,
      fetch: async () => answers.shift()!(),
      onCall: (platform, outcome) => metrics.platformCall(platform, outcome),
    });
    await expect(connector.customersPage(tenant(), null)).resolves.toEqual({ customers: [], next: null });

    const text = await scrapeOf(metrics);
    expect(value(text, 'consent_bridge_platform_calls_total', { platform: 'shopify', outcome: 'rate_limited', status: '200' })).toBe(1);
    expect(value(text, 'consent_bridge_platform_calls_total', { platform: 'shopify', outcome: 'rate_limited', status: '429' })).toBe(1);
    expect(value(text, 'consent_bridge_platform_calls_total', { platform: 'shopify', outcome: 'ok', status: '200' })).toBe(1);
    expect(value(text, 'consent_bridge_platform_rate_limited_total', { platform: 'shopify' })).toBe(2);
  });

  it('answers a scrape in time when the depth queries hang or fail, with the last values and an error count', async () => {
    let mode: 'rows' | 'hang' | 'fail' = 'rows';
    const hanging: Array<() => void> = [];
    let queries = 0;
    const next = async (): Promise<unknown[]> => {
      queries += 1;
      if (mode === 'fail') throw new Error('database unreachable');
      if (mode === 'hang') await new Promise<void>((resolve) => hanging.push(resolve));
      return [{ platform: 'shopify', operation: 'x', status: 'pending', count: '7' }];
    };
    let now = Date.parse('2026-06-01T12:00:00.000Z');
    const metrics = new PrometheusMetrics({ store: { db: fakeDb(next) }, logger: silentLogger, defaultMetrics: false, collectTimeoutMs: 50, nowMs: () => now });

    const first = await scrapeOf(metrics);
    expect(queries).toBe(2); // one per queue, shared by every depth gauge of the scrape
    expect(value(first, 'consent_bridge_inbox_rows', { platform: 'shopify', status: 'pending' })).toBe(7);
    expect(value(first, 'consent_bridge_queue_depth_collected_timestamp_seconds')).toBe(now / 1000);

    mode = 'hang';
    now += 60_000;
    const started = Date.now();
    const slow = await scrapeOf(metrics);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(value(slow, 'consent_bridge_inbox_rows', { platform: 'shopify', status: 'pending' })).toBe(7);
    expect(value(slow, 'consent_bridge_queue_depth_collected_timestamp_seconds')).toBe((now - 60_000) / 1000);
    expect(value(slow, 'consent_bridge_metrics_collect_errors_total', { collector: 'queue_depth', reason: 'timeout' })).toBe(1);
    // The next scrape waits on the same queries instead of starting more.
    const queriesBefore = queries;
    await scrapeOf(metrics);
    expect(queries).toBe(queriesBefore);
    mode = 'rows';
    for (const release of hanging) release();
    await new Promise((resolve) => setImmediate(resolve));

    mode = 'fail';
    const failed = await scrapeOf(metrics);
    expect(value(failed, 'consent_bridge_metrics_collect_errors_total', { collector: 'queue_depth', reason: 'error' })).toBe(1);
    expect(value(failed, 'consent_bridge_outbox_rows', { platform: 'shopify', operation: 'x', status: 'pending' })).toBe(7);
  });

  it('reports backfill progress per tenant from the progress source; a failing source does not fail the scrape', async () => {
    let progress: () => Array<{ tenant: string; customers: number }> = () => [
      { tenant: 't-1', customers: 1200 },
      { tenant: 't-2', customers: 5 },
    ];
    const metrics = new PrometheusMetrics({ logger: silentLogger, defaultMetrics: false, progressSource: () => progress() });
    const text = await scrapeOf(metrics);
    expect(value(text, 'consent_bridge_backfill_customers', { tenant: 't-1' })).toBe(1200);
    expect(value(text, 'consent_bridge_backfill_customers', { tenant: 't-2' })).toBe(5);
    progress = () => {
      throw new Error('backfill state unreadable');
    };
    const failed = await scrapeOf(metrics);
    expect(value(failed, 'consent_bridge_backfill_customers', { tenant: 't-1' })).toBe(1200);
    expect(value(failed, 'consent_bridge_metrics_collect_errors_total', { collector: 'backfill', reason: 'error' })).toBeGreaterThanOrEqual(1);
    // Without a store there are no depth gauges.
    expect(text).not.toContain('consent_bridge_inbox_rows');
  });

  it('names rejection reasons by error code or status class; the no-op sink accepts everything', () => {
    expect(rejectionReason(new AppError('payload_too_large', 'too big'))).toBe('payload_too_large');
    expect(rejectionReason(Object.assign(new Error('x'), { status: 413 }))).toBe('4xx');
    expect(rejectionReason({ status: 503 })).toBe('5xx');
    expect(rejectionReason(new Error('bug'))).toBe('internal');
    expect(() => {
      noopMetrics.webhookReceived('shopify');
      noopMetrics.gateDecisions('api', [{ allowed: true, reason: 'consent' }]);
      noopMetrics.outboxRecorded('hubspot', 'x', { done: 1, lagSeconds: [1], retried: 0, dead: 0 });
    }).not.toThrow();
  });
});
