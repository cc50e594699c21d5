/**
 * HubspotPort contract of `HubspotConnector` (connectors/hubspot; issue 5 §3) with the HubSpot API faked at the
 * HTTP boundary by nock (style.md §19: `disableNetConnect`, `isDone()` in every test). The answers are written
 * from hubspot.md §3–8 and the v13 models, not from the connector. Also `refreshHubspotToken`.
 *
 * Every test runs with a recording RateLimiter and AccessTokens, and a recording logger that must never see an
 * email address or the token (checked after each test).
 */
import nock from 'nock';
import { defaultSettings } from '../../src/config/manifest';
import type { Logger, LogFields } from '../../src/ports';
import { PlatformCallError, type AccessTokens, type RateLimit, type RateLimiter, type SubscriptionWrite } from '../../src/sync/ports';
import type { Tenant } from '../../src/tenants/tenants';
import {
  DEFAULT_PROPERTY_DEFINITIONS,
  EMAIL_GATE_PROPERTY,
  HubspotConnector,
  SMS_CONSENT_PROPERTY,
  refreshHubspotToken,
  type HubspotConnectorOptions,
} from '../../connectors/hubspot/connector';
import { fixedClock } from '../helpers/deps';

const BASE = 'https://api.hubapi.com';
const TOKEN = 'hubspot-contract-access-token-0123456789';
const PORTAL = '4242';
const JSON_HEADERS = { 'Content-Type': 'application/json' };

const email = (i: number) => `person${i}@example.com`;
const encoded = (address: string) => encodeURIComponent(address);

// ---------------------------------------------------------------- fakes of the core's ports

class RecordingLimiter implements RateLimiter {
  readonly acquired: Array<{ limit: RateLimit; cost: number }> = [];
  async acquire(limit: RateLimit, cost = 1): Promise<void> {
    this.acquired.push({ limit, cost });
  }
  keys(): string[] {
    return this.acquired.map((a) => a.limit.key);
  }
}

class RecordingTokens implements AccessTokens {
  readonly asked: Array<{ tenantId: string; platform: string }> = [];
  async accessToken(tenant: Tenant, platform: 'shopify' | 'hubspot'): Promise<string> {
    this.asked.push({ tenantId: tenant.id, platform });
    return TOKEN;
  }
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

function tenant(portal = PORTAL): Tenant {
  return {
    id: `tenant-${portal}`,
    shopDomain: `shop-${portal}.myshopify.com`,
    hubspotPortalId: portal,
    status: 'active',
    settings: defaultSettings(),
    hasShopifyCredentials: true,
    hasHubspotCredentials: true,
    createdAt: '2026-06-01T12:00:00.000Z',
    updatedAt: '2026-06-01T12:00:00.000Z',
  };
}

let logs: LogEntry[] = [];

function make(options: HubspotConnectorOptions = {}, timeoutMs = 2_000) {
  const limiter = new RecordingLimiter();
  const tokens = new RecordingTokens();
  const connector = new HubspotConnector({ tokens, limiter, logger: recordingLogger(logs), timeoutMs, clock: fixedClock('2026-06-01T12:00:00.000Z') }, options);
  return { connector, limiter, tokens, tenant: tenant() };
}

/** Every request must carry the tenant's bearer token. */
const api = () => nock(BASE, { reqheaders: { authorization: `Bearer ${TOKEN}` } });

beforeAll(() => {
  nock.disableNetConnect();
});
beforeEach(() => {
  logs = [];
});
afterEach(() => {
  const written = JSON.stringify(logs);
  expect(written).not.toMatch(/[a-z0-9]@example\.com/i);
  expect(written).not.toContain(TOKEN);
  nock.cleanAll();
});
afterAll(() => {
  nock.enableNetConnect();
});

async function failure(promise: Promise<unknown>): Promise<PlatformCallError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PlatformCallError);
  return error as PlatformCallError;
}

// ---------------------------------------------------------------- wire answers (hubspot.md, v13 models)

const BATCH_TIMES = { startedAt: '2026-06-01T12:00:00.100Z', completedAt: '2026-06-01T12:00:00.200Z' };

function upsertResult(address: string, id: string) {
  return { id, properties: { email: address, hs_object_id: id }, createdAt: '2026-06-01T12:00:00Z', updatedAt: '2026-06-01T12:00:00Z', archived: false, new: false };
}

function propertyAnswer(name: string) {
  const definition = DEFAULT_PROPERTY_DEFINITIONS.find((d) => d.name === name);
  if (definition === undefined) throw new Error(name);
  return {
    name,
    label: definition.label,
    type: definition.type,
    fieldType: definition.fieldType,
    groupName: 'consent_bridge',
    description: definition.description,
    options: (definition.options ?? []).map((o, i) => ({ ...o, displayOrder: i, hidden: false })),
    hasUniqueValue: false,
    formField: definition.formField ?? false,
  };
}

const DEFINITIONS = {
  subscriptionDefinitions: [
    { id: '1001', name: 'Newsletter', description: '', purpose: 'Marketing', communicationMethod: 'Email', isActive: true, isDefault: false, isInternal: false, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' },
    { id: '1002', name: 'Old offers', description: '', purpose: 'Marketing', communicationMethod: 'Email', isActive: false, isDefault: false, isInternal: false, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' },
  ],
};

const listAnswer = (processingType = 'MANUAL') => ({ list: { listId: '77', name: 'Consent Bridge: blocked contacts', processingType, objectTypeId: '0-1', processingStatus: 'COMPLETE', listVersion: 1 } });

const TEN_SECONDLY_429 = {
  status: 'error',
  message: 'You have reached your ten_secondly_rolling limit.',
  errorType: 'RATE_LIMIT',
  correlationId: 'c033cdaa-2c40-4a64-ae48-b4cec88dad24',
  policyName: 'TEN_SECONDLY_ROLLING',
  requestId: '3d3e35b7-0dae-4b9f-a6e3-9c230cbcf8dd',
};
const SECONDLY_429 = { status: 'error', message: 'You have reached your secondly limit.', errorType: 'RATE_LIMIT', correlationId: 'aa5e1b2c-0000-4000-8000-000000000001' };

const LIST_PATH = `/crm/v3/lists/object-type-id/0-1/name/${encodeURIComponent('Consent Bridge: blocked contacts')}`;

// ================================================================ provision

describe('provision', () => {
  it('creates the group, every property and the MANUAL list in a fresh portal, and reads the subscription types', async () => {
    const s = make();
    const created: Array<{ path: string; body: Record<string, unknown> }> = [];
    const record = (path: string) => (body: Record<string, unknown>) => created.push({ path, body }) > 0;
    const scope = api()
      .get('/crm/v3/properties/contacts/groups/consent_bridge')
      .reply(404, { status: 'error', message: 'Unable to find property group consent_bridge', category: 'OBJECT_NOT_FOUND' }, JSON_HEADERS)
      .post('/crm/v3/properties/contacts/groups', record('group'))
      .reply(201, { name: 'consent_bridge', label: 'Consent Bridge', displayOrder: -1, archived: false }, JSON_HEADERS);
    for (const d of DEFAULT_PROPERTY_DEFINITIONS) {
      scope
        .get(`/crm/v3/properties/contacts/${d.name}`)
        .reply(404, { status: 'error', message: `Unable to find property ${d.name}`, category: 'OBJECT_NOT_FOUND' }, JSON_HEADERS)
        .post('/crm/v3/properties/contacts', record('property'))
        .reply(201, propertyAnswer(d.name), JSON_HEADERS);
    }
    scope
      .get(LIST_PATH)
      .reply(404, { status: 'error', message: 'List not found', category: 'OBJECT_NOT_FOUND' }, JSON_HEADERS)
      .post('/crm/v3/lists/', record('list'))
      .reply(200, listAnswer(), JSON_HEADERS)
      .get('/communication-preferences/v3/definitions')
      .reply(200, DEFINITIONS, JSON_HEADERS);

    const result = await s.connector.provision(s.tenant);
    expect(scope.isDone()).toBe(true);
    expect(result).toEqual({
      propertyGroup: 'consent_bridge',
      properties: DEFAULT_PROPERTY_DEFINITIONS.map((d) => d.name),
      suppressionListId: '77',
      subscriptionTypes: [
        { id: '1001', name: 'Newsletter', isActive: true },
        { id: '1002', name: 'Old offers', isActive: false },
      ],
    });
    expect(created[0]).toEqual({ path: 'group', body: { name: 'consent_bridge', label: 'Consent Bridge', displayOrder: -1 } });
    const properties = created.filter((c) => c.path === 'property').map((c) => c.body);
    expect(properties.map((p) => p.name)).toEqual(DEFAULT_PROPERTY_DEFINITIONS.map((d) => d.name));
    for (const p of properties) expect(p).toMatchObject({ groupName: 'consent_bridge', hasUniqueValue: false });
    expect(properties.find((p) => p.name === EMAIL_GATE_PROPERTY)).toMatchObject({
      type: 'enumeration',
      fieldType: 'select',
      options: [
        { label: 'Allowed', value: 'allowed' },
        { label: 'Blocked', value: 'blocked' },
      ],
      formField: false,
    });
    expect(properties.find((p) => p.name === SMS_CONSENT_PROPERTY)).toMatchObject({ type: 'enumeration', formField: true });
    expect((properties.find((p) => p.name === SMS_CONSENT_PROPERTY)?.options as Array<{ value: string }>).map((o) => o.value)).toEqual([
      'subscribed',
      'pending',
      'unsubscribed',
      'not_subscribed',
    ]);
    expect(properties.find((p) => p.name === 'consent_bridge_soft_opt_in_valid_until')).toMatchObject({ type: 'datetime', fieldType: 'date' });
    expect(created.find((c) => c.path === 'list')?.body).toEqual({ name: 'Consent Bridge: blocked contacts', objectTypeId: '0-1', processingType: 'MANUAL' });
  });

  it('creates nothing when the group, the properties and the list exist (idempotent)', async () => {
    const s = make();
    // No POST/PATCH interceptor: any create would fail the test (net connect is disabled).
    const scope = api().get('/crm/v3/properties/contacts/groups/consent_bridge').reply(200, { name: 'consent_bridge', label: 'Consent Bridge', displayOrder: -1, archived: false }, JSON_HEADERS);
    for (const d of DEFAULT_PROPERTY_DEFINITIONS) scope.get(`/crm/v3/properties/contacts/${d.name}`).reply(200, propertyAnswer(d.name), JSON_HEADERS);
    scope.get(LIST_PATH).reply(200, listAnswer(), JSON_HEADERS).get('/communication-preferences/v3/definitions').reply(200, DEFINITIONS, JSON_HEADERS);

    const result = await s.connector.provision(s.tenant);
    expect(scope.isDone()).toBe(true);
    expect(result.suppressionListId).toBe('77');
    expect(logs.find((l) => l.level === 'info')).toMatchObject({ fields: { changes: [] }, message: 'HubSpot portal already provisioned' });
  });

  it('counts a 409 on create as found (another worker provisioning at the same time)', async () => {
    const s = make({ properties: [DEFAULT_PROPERTY_DEFINITIONS[0]!] });
    const name = DEFAULT_PROPERTY_DEFINITIONS[0]!.name;
    const scope = api()
      .get('/crm/v3/properties/contacts/groups/consent_bridge')
      .reply(404, { status: 'error', message: 'not found' }, JSON_HEADERS)
      .post('/crm/v3/properties/contacts/groups')
      .reply(409, { status: 'error', message: 'A property group named consent_bridge already exists.', category: 'CONFLICT' }, JSON_HEADERS)
      .get(`/crm/v3/properties/contacts/${name}`)
      .reply(404, { status: 'error', message: 'not found' }, JSON_HEADERS)
      .post('/crm/v3/properties/contacts')
      .reply(409, { status: 'error', message: `Property named '${name}' already exists.`, category: 'OBJECT_ALREADY_EXISTS' }, JSON_HEADERS)
      .get(LIST_PATH)
      .reply(404, { status: 'error', message: 'not found' }, JSON_HEADERS)
      .post('/crm/v3/lists/')
      .reply(409, { status: 'error', message: 'List name already exists', category: 'CONFLICT' }, JSON_HEADERS)
      .get(LIST_PATH)
      .reply(200, listAnswer(), JSON_HEADERS)
      .get('/communication-preferences/v3/definitions')
      .reply(200, DEFINITIONS, JSON_HEADERS);
    expect((await s.connector.provision(s.tenant)).suppressionListId).toBe('77');
    expect(scope.isDone()).toBe(true);
  });

  it('adds the enumeration options an existing property lacks, keeping the portal’s own', async () => {
    const gate = DEFAULT_PROPERTY_DEFINITIONS.find((d) => d.name === EMAIL_GATE_PROPERTY)!;
    const s = make({ properties: [gate] });
    let patched: unknown;
    const scope = api()
      .get('/crm/v3/properties/contacts/groups/consent_bridge')
      .reply(200, { name: 'consent_bridge', label: 'Consent Bridge' }, JSON_HEADERS)
      .get(`/crm/v3/properties/contacts/${EMAIL_GATE_PROPERTY}`)
      .reply(200, { ...propertyAnswer(EMAIL_GATE_PROPERTY), options: [{ label: 'Allowed', value: 'allowed', displayOrder: 0, hidden: false }, { label: 'Custom', value: 'custom', displayOrder: 1, hidden: false }] }, JSON_HEADERS)
      .patch(`/crm/v3/properties/contacts/${EMAIL_GATE_PROPERTY}`, (body: unknown) => {
        patched = body;
        return true;
      })
      .reply(200, propertyAnswer(EMAIL_GATE_PROPERTY), JSON_HEADERS)
      .get(LIST_PATH)
      .reply(200, listAnswer(), JSON_HEADERS)
      .get('/communication-preferences/v3/definitions')
      .reply(200, DEFINITIONS, JSON_HEADERS);
    await s.connector.provision(s.tenant);
    expect(scope.isDone()).toBe(true);
    expect(patched).toEqual({
      options: [
        { label: 'Allowed', value: 'allowed', displayOrder: 0, hidden: false },
        { label: 'Custom', value: 'custom', displayOrder: 1, hidden: false },
        { label: 'Blocked', value: 'blocked', displayOrder: 2, hidden: false },
      ],
    });
  });

  it('refuses a list of that name that is not MANUAL', async () => {
    const s = make({ properties: [] });
    const scope = api()
      .get('/crm/v3/properties/contacts/groups/consent_bridge')
      .reply(200, { name: 'consent_bridge', label: 'Consent Bridge' }, JSON_HEADERS)
      .get(LIST_PATH)
      .reply(200, listAnswer('DYNAMIC'), JSON_HEADERS);
    const error = await failure(s.connector.provision(s.tenant));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'client_error', retryable: false });
    expect(error.message).toMatch(/DYNAMIC, not MANUAL/);
  });
});

// ================================================================ contact properties

describe('upsertContactProperties', () => {
  const writes = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ key: `row-${from + i}`, email: email(from + i), properties: { [EMAIL_GATE_PROPERTY]: 'allowed' } }));
  type UpsertBody = { inputs: Array<{ id: string; idProperty: string; properties: Record<string, string> }> };

  it('upserts by email in requests of at most 100 (250 → 100, 100, 50); 200 means every item is done', async () => {
    const s = make();
    const bodies: UpsertBody[] = [];
    const scope = api()
      .post('/crm/v3/objects/contacts/batch/upsert', (body: UpsertBody) => bodies.push(body) > 0)
      .times(3)
      .reply(200, (_uri, body) => ({ status: 'COMPLETE', ...BATCH_TIMES, results: (body as UpsertBody).inputs.map((input, i) => upsertResult(input.id, String(9000 + i))) }), JSON_HEADERS);
    const outcomes = await s.connector.upsertContactProperties(s.tenant, writes(250));
    expect(scope.isDone()).toBe(true);
    expect(bodies.map((b) => b.inputs.length)).toEqual([100, 100, 50]);
    expect(bodies[0]!.inputs[0]).toEqual({ id: email(0), idProperty: 'email', properties: { [EMAIL_GATE_PROPERTY]: 'allowed' } });
    expect(bodies.flatMap((b) => b.inputs.map((input) => input.id))).toEqual(writes(250).map((w) => w.email));
    expect(outcomes).toEqual(writes(250).map((w) => ({ key: w.key, ok: true })));
    expect(s.limiter.keys()).toEqual(Array(3).fill(`hubspot:${PORTAL}:10s`));
    expect(s.tokens.asked).toEqual(Array(3).fill({ tenantId: s.tenant.id, platform: 'hubspot' }));
  });

  it('maps a 207 multi-status answer to items by the emails its errors name', async () => {
    const s = make();
    const scope = api()
      .post('/crm/v3/objects/contacts/batch/upsert')
      .reply(
        207,
        {
          status: 'COMPLETE',
          ...BATCH_TIMES,
          numErrors: 2,
          results: [upsertResult(email(0), '9000'), upsertResult(email(3), '9003')],
          errors: [
            { status: 'error', category: 'VALIDATION_ERROR', message: `Email address ${email(1)} is invalid`, context: {}, links: {}, errors: [] },
            { status: 'error', category: 'INTERNAL_ERROR', message: 'Could not write the record', context: { ids: [email(2).toUpperCase()] }, links: {}, errors: [] },
          ],
        },
        JSON_HEADERS,
      );
    const outcomes = await s.connector.upsertContactProperties(s.tenant, writes(4));
    expect(scope.isDone()).toBe(true);
    expect(outcomes[0]).toEqual({ key: 'row-0', ok: true });
    expect(outcomes[1]).toMatchObject({ key: 'row-1', ok: false, retryable: false });
    expect(outcomes[2]).toMatchObject({ key: 'row-2', ok: false, retryable: true });
    expect(outcomes[3]).toEqual({ key: 'row-3', ok: true });
    // The error text keeps the reason and masks the address.
    expect((outcomes[1] as { error: string }).error).toMatch(/VALIDATION_ERROR.*p\*\*\*@\*\*\*\.com is invalid/);
    expect(JSON.stringify(outcomes)).not.toContain('@example.com');
  });

  it('fails items of a 207 error that names no contact retryably, and the named ones as named', async () => {
    const s = make();
    const scope = api()
      .post('/crm/v3/objects/contacts/batch/upsert')
      .reply(207, { status: 'COMPLETE', ...BATCH_TIMES, numErrors: 1, results: [upsertResult(email(0), '9000')], errors: [{ status: 'error', category: 'INTERNAL_ERROR', message: 'Something failed', context: {} }] }, JSON_HEADERS);
    const outcomes = await s.connector.upsertContactProperties(s.tenant, writes(2));
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'row-0', ok: true },
      { key: 'row-1', ok: false, retryable: true, error: expect.stringMatching(/1 error\(s\) in this batch without naming the contact/) },
    ]);
  });

  it('a 400 for the whole batch fails the items it names and sends the others again', async () => {
    const s = make();
    const bodies: UpsertBody[] = [];
    const scope = api()
      .post('/crm/v3/objects/contacts/batch/upsert', (body: UpsertBody) => bodies.push(body) > 0)
      .reply(400, { status: 'error', message: `Property values were not valid: email ${email(1)} is not a valid email address`, category: 'VALIDATION_ERROR', correlationId: 'c-400' }, JSON_HEADERS)
      .post('/crm/v3/objects/contacts/batch/upsert', (body: UpsertBody) => bodies.push(body) > 0)
      .reply(200, { status: 'COMPLETE', ...BATCH_TIMES, results: [upsertResult(email(0), '1'), upsertResult(email(2), '3')] }, JSON_HEADERS);
    const outcomes = await s.connector.upsertContactProperties(s.tenant, writes(3));
    expect(scope.isDone()).toBe(true);
    expect(bodies.map((b) => b.inputs.map((i) => i.id))).toEqual([[email(0), email(1), email(2)], [email(0), email(2)]]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect(outcomes[1]).toMatchObject({ retryable: false, error: expect.stringMatching(/HTTP 400.*not valid.*correlationId c-400/) });
  });

  it('a 400 naming no contact fails the whole batch, not retryable', async () => {
    const s = make();
    const scope = api()
      .post('/crm/v3/objects/contacts/batch/upsert')
      .reply(400, { status: 'error', message: 'Property "consent_bridge_email_gate" does not exist', category: 'VALIDATION_ERROR' }, JSON_HEADERS);
    const outcomes = await s.connector.upsertContactProperties(s.tenant, writes(2));
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'row-0', ok: false, retryable: false, error: expect.stringMatching(/does not exist/) },
      { key: 'row-1', ok: false, retryable: false, error: expect.stringMatching(/does not exist/) },
    ]);
  });

  it('sends two writes for the same email in different requests, in order', async () => {
    const s = make();
    const bodies: UpsertBody[] = [];
    const scope = api()
      .post('/crm/v3/objects/contacts/batch/upsert', (body: UpsertBody) => bodies.push(body) > 0)
      .times(2)
      .reply(200, (_uri, body) => ({ status: 'COMPLETE', ...BATCH_TIMES, results: (body as UpsertBody).inputs.map((input) => upsertResult(input.id.toLowerCase(), '1')) }), JSON_HEADERS);
    const input = [
      { key: 'a', email: email(1), properties: { [EMAIL_GATE_PROPERTY]: 'allowed' } },
      { key: 'b', email: email(2), properties: { [EMAIL_GATE_PROPERTY]: 'allowed' } },
      { key: 'c', email: email(1).toUpperCase(), properties: { [EMAIL_GATE_PROPERTY]: 'blocked' } },
    ];
    const outcomes = await s.connector.upsertContactProperties(s.tenant, input);
    expect(scope.isDone()).toBe(true);
    expect(bodies.map((b) => b.inputs.map((i) => i.properties[EMAIL_GATE_PROPERTY]))).toEqual([['allowed', 'allowed'], ['blocked']]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true]);
  });

  it('throws when the first request fails as a whole; later, reports what was written and fails the rest', async () => {
    const s = make();
    api().post('/crm/v3/objects/contacts/batch/upsert').reply(429, TEN_SECONDLY_429, { ...JSON_HEADERS, 'Retry-After': '7' });
    const thrown = await failure(s.connector.upsertContactProperties(s.tenant, writes(150)));
    expect(thrown).toMatchObject({ platform: 'hubspot', kind: 'rate_limited', status: 429, retryable: true, retryAfterMs: 7_000 });

    const scope = api()
      .post('/crm/v3/objects/contacts/batch/upsert')
      .reply(200, (_uri, body) => ({ status: 'COMPLETE', ...BATCH_TIMES, results: (body as UpsertBody).inputs.map((input) => upsertResult(input.id, '1')) }), JSON_HEADERS)
      .post('/crm/v3/objects/contacts/batch/upsert')
      .reply(503, 'Service Unavailable', { 'Content-Type': 'text/plain' });
    const outcomes = await s.connector.upsertContactProperties(s.tenant, writes(150));
    expect(scope.isDone()).toBe(true);
    expect(outcomes.slice(0, 100).every((o) => o.ok)).toBe(true);
    expect(outcomes[100]).toMatchObject({ key: 'row-100', ok: false, retryable: true, error: expect.stringMatching(/^not written: HubSpot .* server error \(HTTP 503\)/) });
    expect(outcomes.slice(100).every((o) => !o.ok && o.retryable)).toBe(true);
  });
});

// ================================================================ failures of a call (the classifier)

describe('failures', () => {
  const read = (s: ReturnType<typeof make>) => s.connector.contactIdsByEmail(s.tenant, [email(1)]);
  const PATH = '/crm/v3/objects/contacts/batch/read';

  it.each<[string, number, unknown, Record<string, string>, Partial<PlatformCallError>]>([
    ['429 TEN_SECONDLY_ROLLING with Retry-After', 429, TEN_SECONDLY_429, { 'Retry-After': '3' }, { kind: 'rate_limited', retryable: true, retryAfterMs: 3_000 }],
    ['429 TEN_SECONDLY_ROLLING without Retry-After (the window)', 429, TEN_SECONDLY_429, {}, { kind: 'rate_limited', retryable: true, retryAfterMs: 10_000 }],
    ['429 secondly limit with Retry-After', 429, SECONDLY_429, { 'Retry-After': '1' }, { kind: 'rate_limited', retryable: true, retryAfterMs: 1_000 }],
    ['429 secondly limit without Retry-After', 429, SECONDLY_429, {}, { kind: 'rate_limited', retryable: true, retryAfterMs: 1_000 }],
    ['429 fractional Retry-After', 429, TEN_SECONDLY_429, { 'Retry-After': '2.5' }, { kind: 'rate_limited', retryAfterMs: 2_500 }],
    ['500', 500, { status: 'error', message: 'internal error', correlationId: 'x' }, {}, { kind: 'server_error', retryable: true, retryAfterMs: null }],
    ['502', 502, '<html>Bad Gateway</html>', { 'Content-Type': 'text/html' }, { kind: 'server_error', retryable: true }],
    ['504', 504, '', {}, { kind: 'server_error', retryable: true }],
    ['503 with Retry-After', 503, { status: 'error', message: 'unavailable' }, { 'Retry-After': '30' }, { kind: 'server_error', retryable: true, retryAfterMs: 30_000 }],
    ['423 Locked (at least 2 s)', 423, { status: 'error', message: 'locked' }, {}, { kind: 'server_error', retryable: true, retryAfterMs: 2_000 }],
    ['477 migration in progress', 477, { status: 'error', message: 'Migration in progress' }, { 'Retry-After': '60' }, { kind: 'server_error', retryable: true, retryAfterMs: 60_000 }],
    ['401', 401, { status: 'error', message: 'Authentication credentials not found.', category: 'INVALID_AUTHENTICATION' }, {}, { kind: 'auth', retryable: false }],
    ['403 (missing scope)', 403, { status: 'error', message: 'This app hasn’t been granted all required scopes', category: 'MISSING_SCOPES' }, {}, { kind: 'auth', retryable: false }],
    ['400', 400, { status: 'error', message: 'Invalid input JSON', category: 'VALIDATION_ERROR' }, {}, { kind: 'client_error', retryable: false }],
  ])('%s', async (_name, status, body, headers, expected) => {
    const s = make();
    const scope = api()
      .post(PATH)
      .reply(status, typeof body === 'string' ? body : JSON.stringify(body), { ...(typeof body === 'string' ? {} : JSON_HEADERS), ...headers });
    const error = await failure(read(s));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ platform: 'hubspot', status, ...expected });
    expect(error.message).toContain(`POST ${PATH}`);
    expect(logs.find((l) => l.message === 'HubSpot call failed')?.fields).toMatchObject({ tenantId: s.tenant.id, portalId: PORTAL, status, kind: expected.kind });
  });

  it('a 2xx that is not JSON is malformed, not retryable', async () => {
    const s = make();
    const scope = api().post(PATH).reply(200, '{"results": [', JSON_HEADERS);
    const error = await failure(read(s));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'malformed', retryable: false, status: 200 });
  });

  it('a 2xx of the wrong shape is malformed, not retryable', async () => {
    const s = make();
    const scope = api().post(PATH).reply(200, { results: 'nope' }, JSON_HEADERS);
    expect(await failure(read(s))).toMatchObject({ kind: 'malformed', retryable: false });
    expect(scope.isDone()).toBe(true);
  });

  it('a request that takes longer than timeoutMs is aborted: timeout, retryable', async () => {
    const s = make({}, 50);
    const scope = api().post(PATH).delay(1_000).reply(200, { status: 'COMPLETE', ...BATCH_TIMES, results: [] }, JSON_HEADERS);
    const started = Date.now();
    const error = await failure(read(s));
    expect(Date.now() - started).toBeLessThan(900);
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'timeout', retryable: true, status: null });
    expect(error.message).toMatch(/within 50 ms/);
  });

  it('a body that stalls past timeoutMs is a timeout too', async () => {
    const s = make({}, 50);
    const scope = api().post(PATH).delayBody(1_000).reply(200, { status: 'COMPLETE', ...BATCH_TIMES, results: [] }, JSON_HEADERS);
    expect(await failure(read(s))).toMatchObject({ kind: 'timeout', retryable: true });
    expect(scope.isDone()).toBe(true);
  });

  it('a connection reset is a connection failure, retryable', async () => {
    const s = make();
    // nock ≥ 14 with native fetch: an Error with a code rejects fetch with it (a plain object trips @mswjs).
    const scope = api().post(PATH).replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    const error = await failure(read(s));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'connection', retryable: true, status: null });
    expect(error.message).toMatch(/ECONNRESET/);
  });

  it('replyWithError({ code: "ECONNRESET" }) (a plain object) is a connection failure as well', async () => {
    const s = make();
    // With native fetch this form rejects with a TypeError from @mswjs/interceptors, not the object itself:
    // whatever fetch throws (other than our abort) is a connection failure.
    const scope = api().post(PATH).replyWithError({ code: 'ECONNRESET' });
    expect(await failure(read(s))).toMatchObject({ kind: 'connection', retryable: true });
    expect(scope.isDone()).toBe(true);
  });

  it('never puts an email into logs or error texts, even when HubSpot echoes it', async () => {
    const s = make();
    const address = email(5);
    const scope = api()
      .get(`/communication-preferences/v4/statuses/${encoded(address)}`)
      .query({ channel: 'EMAIL' })
      .reply(400, { status: 'error', message: `Invalid email: ${address}`, category: 'VALIDATION_ERROR' }, JSON_HEADERS);
    const error = await failure(s.connector.subscriptionStatuses(s.tenant, [address]));
    expect(scope.isDone()).toBe(true);
    expect(error.message).not.toContain(address);
    expect(error.message).toContain('/communication-preferences/v4/statuses/{email}');
    expect(logs).toHaveLength(1);
  });
});

// ================================================================ subscriptions

describe('setSubscriptions', () => {
  const write = (over: Partial<SubscriptionWrite> = {}): SubscriptionWrite => ({
    key: 'k1',
    email: email(1),
    subscriptionTypeId: '1001',
    subscribed: true,
    legalBasis: 'CONSENT_WITH_NOTICE',
    legalBasisExplanation: 'Checkout opt-in on 2026-05-01 (event ev-1)',
    freshAffirmativeAct: false,
    ...over,
  });
  const v3Answer = (status: 'SUBSCRIBED' | 'NOT_SUBSCRIBED', sourceOfStatus = 'SUBSCRIPTION_STATUS') => ({
    id: '1001',
    name: 'Newsletter',
    description: '',
    status,
    sourceOfStatus,
    legalBasis: 'CONSENT_WITH_NOTICE',
    legalBasisExplanation: 'x',
  });
  const v4Answer = (address: string, status: string, reason = 'RESUBSCRIBE_OCCURRED') => ({
    status: 'COMPLETE',
    ...BATCH_TIMES,
    results: [{ channel: 'EMAIL', subscriberIdString: address, subscriptionId: 1001, status, source: 'Public API', legalBasis: 'CONSENT_WITH_NOTICE', timestamp: '2026-06-01T12:00:00Z', setStatusSuccessReason: reason }],
  });

  it('subscribes and unsubscribes through v3 with the legal basis and its explanation', async () => {
    const s = make();
    const bodies: unknown[] = [];
    const scope = api()
      .post('/communication-preferences/v3/subscribe', (b: unknown) => bodies.push(b) > 0)
      .reply(200, v3Answer('SUBSCRIBED'), JSON_HEADERS)
      .post('/communication-preferences/v3/unsubscribe', (b: unknown) => bodies.push(b) > 0)
      .reply(200, v3Answer('NOT_SUBSCRIBED'), JSON_HEADERS);
    const outcomes = await s.connector.setSubscriptions(s.tenant, [
      write({ key: 'sub', legalBasis: 'LEGITIMATE_INTEREST_CLIENT', legalBasisExplanation: 'Soft opt-in: order #1001 on 2026-05-01' }),
      write({ key: 'unsub', subscribed: false, legalBasis: null, legalBasisExplanation: 'Unsubscribed in Shopify on 2026-05-02' }),
    ]);
    expect(scope.isDone()).toBe(true);
    expect(bodies).toEqual([
      { emailAddress: email(1), subscriptionId: '1001', legalBasis: 'LEGITIMATE_INTEREST_CLIENT', legalBasisExplanation: 'Soft opt-in: order #1001 on 2026-05-01' },
      { emailAddress: email(1), subscriptionId: '1001', legalBasisExplanation: 'Unsubscribed in Shopify on 2026-05-02' },
    ]);
    expect(outcomes).toEqual([
      { key: 'sub', ok: true },
      { key: 'unsub', ok: true },
    ]);
  });

  it('re-subscribes through v4 only after a fresh affirmative act', async () => {
    const s = make();
    const address = 'first.last+shop@example.com';
    let v4Body: unknown;
    const scope = api()
      .post(`/communication-preferences/v4/statuses/${encoded(address)}`, (b: unknown) => {
        v4Body = b;
        return true;
      })
      .reply(200, v4Answer(address, 'SUBSCRIBED'), JSON_HEADERS)
      // The same person's unsubscribe with a fresh act and a subscribe without one stay on v3.
      .post('/communication-preferences/v3/unsubscribe')
      .reply(200, v3Answer('NOT_SUBSCRIBED'), JSON_HEADERS)
      .post('/communication-preferences/v3/subscribe')
      .reply(200, v3Answer('SUBSCRIBED'), JSON_HEADERS);
    const outcomes = await s.connector.setSubscriptions(s.tenant, [
      write({ key: 'fresh', email: address, freshAffirmativeAct: true }),
      write({ key: 'fresh-unsub', email: address, subscribed: false, legalBasis: null, freshAffirmativeAct: true }),
      write({ key: 'plain', email: address, freshAffirmativeAct: false }),
    ]);
    expect(scope.isDone()).toBe(true);
    expect(v4Body).toEqual({ channel: 'EMAIL', statusState: 'SUBSCRIBED', subscriptionId: 1001, legalBasis: 'CONSENT_WITH_NOTICE', legalBasisExplanation: 'Checkout opt-in on 2026-05-01 (event ev-1)' });
    expect(outcomes.every((o) => o.ok)).toBe(true);
  });

  it('v3 refusing to re-subscribe an opted-out contact is a failed item, not retryable, with a clear error', async () => {
    const s = make();
    const scope = api()
      .post('/communication-preferences/v3/subscribe')
      .reply(400, { status: 'error', message: `${email(1)} has opted out and cannot be resubscribed`, correlationId: 'c-refused', category: 'VALIDATION_ERROR' }, JSON_HEADERS)
      .post('/communication-preferences/v3/subscribe')
      .reply(200, v3Answer('NOT_SUBSCRIBED', 'PORTAL_WIDE_STATUS'), JSON_HEADERS)
      .post('/communication-preferences/v3/subscribe')
      .reply(200, v3Answer('SUBSCRIBED'), JSON_HEADERS);
    const outcomes = await s.connector.setSubscriptions(s.tenant, [write({ key: 'refused' }), write({ key: 'opted-out-of-all', email: email(2) }), write({ key: 'fine', email: email(3) })]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes[0]).toMatchObject({ key: 'refused', ok: false, retryable: false });
    expect((outcomes[0] as { error: string }).error).toMatch(/refused the subscribe .*HTTP 400.*does not re-subscribe a contact who opted out; only a fresh affirmative act/);
    expect((outcomes[0] as { error: string }).error).not.toContain(email(1));
    expect(outcomes[1]).toMatchObject({ ok: false, retryable: false, error: expect.stringMatching(/NOT_SUBSCRIBED \(from PORTAL_WIDE_STATUS\)/) });
    expect(outcomes[2]).toEqual({ key: 'fine', ok: true });
  });

  it('a subscribe without a legal basis is refused without calling HubSpot', async () => {
    const s = make();
    const outcomes = await s.connector.setSubscriptions(s.tenant, [write({ legalBasis: null })]);
    expect(outcomes).toEqual([{ key: 'k1', ok: false, retryable: false, error: expect.stringMatching(/needs a legal basis/) }]);
    expect(s.limiter.acquired).toEqual([]);
  });

  it('"already subscribed" counts as done', async () => {
    const s = make();
    const scope = api()
      .post('/communication-preferences/v3/subscribe')
      .reply(400, { status: 'error', message: `${email(1)} is already subscribed to subscription 1001`, category: 'VALIDATION_ERROR' }, JSON_HEADERS);
    expect(await s.connector.setSubscriptions(s.tenant, [write()])).toEqual([{ key: 'k1', ok: true, note: 'HubSpot: already subscribed' }]);
    expect(scope.isDone()).toBe(true);
  });

  it('a v4 refusal of the re-subscribe is a failed item', async () => {
    const s = make();
    const scope = api()
      .post(`/communication-preferences/v4/statuses/${encoded(email(1))}`)
      .reply(200, v4Answer(email(1), 'UNSUBSCRIBED', 'NO_STATUS_CHANGE'), JSON_HEADERS);
    const [outcome] = await s.connector.setSubscriptions(s.tenant, [write({ freshAffirmativeAct: true })]);
    expect(scope.isDone()).toBe(true);
    expect(outcome).toMatchObject({ ok: false, retryable: false, error: expect.stringMatching(/kept UNSUBSCRIBED/) });
  });

  it('a rate limit on the first request is thrown; on a later one the written items are reported and the rest fail retryably', async () => {
    const s = make();
    api().post('/communication-preferences/v3/subscribe').reply(429, SECONDLY_429, { ...JSON_HEADERS, 'Retry-After': '1' });
    expect(await failure(s.connector.setSubscriptions(s.tenant, [write(), write({ key: 'k2' })]))).toMatchObject({ kind: 'rate_limited', retryAfterMs: 1_000 });

    const scope = api()
      .post('/communication-preferences/v3/subscribe')
      .reply(200, v3Answer('SUBSCRIBED'), JSON_HEADERS)
      .post('/communication-preferences/v3/subscribe')
      .reply(429, TEN_SECONDLY_429, { ...JSON_HEADERS, 'Retry-After': '4' });
    const outcomes = await s.connector.setSubscriptions(s.tenant, [write(), write({ key: 'k2' }), write({ key: 'k3' })]);
    expect(scope.isDone()).toBe(true);
    expect(outcomes).toEqual([
      { key: 'k1', ok: true },
      { key: 'k2', ok: false, retryable: true, retryAfterMs: 4_000, error: expect.stringMatching(/^not written: .*TEN_SECONDLY_ROLLING/) },
      { key: 'k3', ok: false, retryable: true, retryAfterMs: 4_000, error: expect.stringMatching(/^not written/) },
    ]);
  });

  it('a 401 is thrown as auth, not retryable', async () => {
    const s = make();
    const scope = api().post('/communication-preferences/v3/subscribe').reply(401, { status: 'error', message: 'The OAuth token used to make this call expired', category: 'EXPIRED_AUTHENTICATION' }, JSON_HEADERS);
    expect(await failure(s.connector.setSubscriptions(s.tenant, [write()]))).toMatchObject({ kind: 'auth', retryable: false, status: 401 });
    expect(scope.isDone()).toBe(true);
  });

  it('with batchScopes, unsubscribes and fresh re-subscribes go 100 at a time through v4 batch/write; other subscribes stay on v3', async () => {
    const s = make({ batchScopes: (t) => t.hubspotPortalId === PORTAL });
    let batchBody: { inputs: unknown[] } | undefined;
    const scope = api()
      .post('/communication-preferences/v4/statuses/batch/write', (b: { inputs: unknown[] }) => {
        batchBody = b;
        return true;
      })
      .reply(
        207,
        {
          status: 'COMPLETE',
          ...BATCH_TIMES,
          numErrors: 1,
          results: [
            { channel: 'EMAIL', subscriberIdString: email(1), subscriptionId: 1001, status: 'UNSUBSCRIBED', source: 'Public API', timestamp: '2026-06-01T12:00:00Z' },
            { channel: 'EMAIL', subscriberIdString: email(2).toUpperCase(), subscriptionId: 1001, status: 'SUBSCRIBED', source: 'Public API', timestamp: '2026-06-01T12:00:00Z' },
          ],
          errors: [{ status: 'error', category: 'VALIDATION_ERROR', message: `Invalid subscriber ${email(3)}`, context: {} }],
        },
        JSON_HEADERS,
      )
      .post('/communication-preferences/v3/subscribe')
      .reply(200, v3Answer('SUBSCRIBED'), JSON_HEADERS);
    const outcomes = await s.connector.setSubscriptions(s.tenant, [
      write({ key: 'unsub', subscribed: false, legalBasis: null }),
      write({ key: 'fresh', email: email(2), freshAffirmativeAct: true }),
      write({ key: 'bad', email: email(3), subscribed: false, legalBasis: null }),
      write({ key: 'plain', email: email(4) }),
    ]);
    expect(scope.isDone()).toBe(true);
    expect(batchBody?.inputs).toEqual([
      { subscriberIdString: email(1), subscriptionId: 1001, statusState: 'UNSUBSCRIBED', channel: 'EMAIL', legalBasisExplanation: 'Checkout opt-in on 2026-05-01 (event ev-1)' },
      { subscriberIdString: email(2), subscriptionId: 1001, statusState: 'SUBSCRIBED', channel: 'EMAIL', legalBasis: 'CONSENT_WITH_NOTICE', legalBasisExplanation: 'Checkout opt-in on 2026-05-01 (event ev-1)' },
      { subscriberIdString: email(3), subscriptionId: 1001, statusState: 'UNSUBSCRIBED', channel: 'EMAIL', legalBasisExplanation: 'Checkout opt-in on 2026-05-01 (event ev-1)' },
    ]);
    expect(outcomes).toEqual([
      { key: 'unsub', ok: true },
      { key: 'fresh', ok: true },
      { key: 'bad', ok: false, retryable: false, error: expect.stringMatching(/VALIDATION_ERROR/) },
      { key: 'plain', ok: true },
    ]);
  });
});

// ================================================================ lists

describe('setListMembership', () => {
  type MembershipBody = { recordIdsToAdd: string[]; recordIdsToRemove: string[] };
  it('adds and removes in chunks of 100 ids (250 + 30 → 3 calls); an id in both is added', async () => {
    const s = make();
    const bodies: MembershipBody[] = [];
    const scope = api()
      .put('/crm/v3/lists/77/memberships/add-and-remove', (b: MembershipBody) => bodies.push(b) > 0)
      .times(3)
      .reply(200, (_uri, body) => ({ recordsIdsAdded: (body as MembershipBody).recordIdsToAdd, recordIdsRemoved: (body as MembershipBody).recordIdsToRemove, recordIdsMissing: ['5'] }), JSON_HEADERS);
    const add = Array.from({ length: 250 }, (_, i) => String(1000 + i));
    const remove = [...Array.from({ length: 30 }, (_, i) => String(5000 + i)), '1000'];
    await s.connector.setListMembership(s.tenant, { listId: '77', add, remove });
    expect(scope.isDone()).toBe(true);
    expect(bodies.map((b) => [b.recordIdsToAdd.length, b.recordIdsToRemove.length])).toEqual([
      [100, 0],
      [100, 0],
      [50, 30],
    ]);
    expect(bodies.flatMap((b) => b.recordIdsToRemove)).not.toContain('1000');
    expect(logs.find((l) => l.level === 'warn')?.fields).toMatchObject({ listId: '77', missing: 3 });
  });

  it('makes no call for an empty change', async () => {
    const s = make();
    await s.connector.setListMembership(s.tenant, { listId: '77', add: [], remove: [] });
    expect(s.limiter.acquired).toEqual([]);
  });

  it('a 404 (list deleted) is thrown, not retryable', async () => {
    const s = make();
    const scope = api().put('/crm/v3/lists/78/memberships/add-and-remove').reply(404, { status: 'error', message: 'List 78 does not exist', category: 'OBJECT_NOT_FOUND' }, JSON_HEADERS);
    expect(await failure(s.connector.setListMembership(s.tenant, { listId: '78', add: ['1'], remove: [] }))).toMatchObject({ kind: 'client_error', retryable: false, status: 404 });
    expect(scope.isDone()).toBe(true);
  });
});

// ================================================================ reads

describe('contactIdsByEmail', () => {
  type ReadBody = { inputs: Array<{ id: string }>; idProperty: string; properties: string[]; propertiesWithHistory: string[] };
  it('reads by email 100 at a time; contacts that do not exist are absent; any spelling finds the contact', async () => {
    const s = make();
    const bodies: ReadBody[] = [];
    const scope = api()
      .post('/crm/v3/objects/contacts/batch/read', (b: ReadBody) => bodies.push(b) > 0)
      .times(2)
      .reply(
        207,
        (_uri, body) => {
          const inputs = (body as ReadBody).inputs.map((i) => i.id);
          const known = inputs.filter((id) => !id.startsWith('person7'));
          return {
            status: 'COMPLETE',
            ...BATCH_TIMES,
            results: known.map((id) => ({ id: `c-${id.slice(6, id.indexOf('@'))}`, properties: { email: id.toLowerCase(), hs_object_id: '1' }, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', archived: false })),
            numErrors: 1,
            errors: [{ status: 'error', category: 'OBJECT_NOT_FOUND', message: 'Could not get some CONTACT objects, they may be deleted or not exist.', context: { ids: inputs.filter((id) => id.startsWith('person7')) } }],
          };
        },
        JSON_HEADERS,
      );
    const emails = [...Array.from({ length: 150 }, (_, i) => email(i)), email(3).toUpperCase()];
    const ids = await s.connector.contactIdsByEmail(s.tenant, emails);
    expect(scope.isDone()).toBe(true);
    expect(bodies.map((b) => b.inputs.length)).toEqual([100, 50]);
    expect(bodies[0]).toMatchObject({ idProperty: 'email', properties: ['email'], propertiesWithHistory: [] });
    expect(ids.get(email(3))).toBe('c-3');
    expect(ids.get(email(3).toUpperCase())).toBe('c-3');
    expect(ids.has(email(7))).toBe(false);
    expect(ids.has(email(70))).toBe(false);
    expect(ids.size).toBe(150 - 11 + 1);
  });
});

describe('contactsModifiedSince', () => {
  type SearchBody = { filterGroups: unknown; sorts: unknown; properties: string[]; limit: number; after?: string };
  const contact = (id: string, at: string) => ({ id, properties: { email: `${id}@example.com`, lastmodifieddate: at, hs_object_id: id }, createdAt: at, updatedAt: at, archived: false });

  it('searches lastmodifieddate ≥ since, oldest first, 200 a page, paging with after; takes the search budget too', async () => {
    const s = make();
    const bodies: SearchBody[] = [];
    const scope = api()
      .post('/crm/v3/objects/contacts/search', (b: SearchBody) => bodies.push(b) > 0)
      .reply(200, { total: 2, results: [contact('101', '2026-05-01T10:00:00.000Z'), contact('102', '2026-05-01T10:00:01.500Z')], paging: { next: { after: '200', link: '?after=200' } } }, JSON_HEADERS)
      .post('/crm/v3/objects/contacts/search', (b: SearchBody) => bodies.push(b) > 0)
      .reply(200, { total: 3, results: [{ ...contact('103', '2026-05-01T11:00:00Z'), properties: { lastmodifieddate: '2026-05-01T11:00:00Z', email: null } }] }, JSON_HEADERS);
    const first = await s.connector.contactsModifiedSince(s.tenant, '2026-05-01T09:59:00.000Z', null);
    const second = await s.connector.contactsModifiedSince(s.tenant, '2026-05-01T09:59:00.000Z', first.next);
    expect(scope.isDone()).toBe(true);
    expect(bodies[0]).toEqual({
      filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE', value: String(Date.parse('2026-05-01T09:59:00.000Z')) }] }],
      sorts: [{ propertyName: 'lastmodifieddate', direction: 'ASCENDING' }],
      properties: ['email', 'lastmodifieddate'],
      limit: 200,
    });
    expect(bodies[1]?.after).toBe('200');
    expect(first).toEqual({
      contacts: [
        { id: '101', email: '101@example.com', modifiedAt: '2026-05-01T10:00:00.000Z' },
        { id: '102', email: '102@example.com', modifiedAt: '2026-05-01T10:00:01.500Z' },
      ],
      next: '200',
    });
    expect(second).toEqual({ contacts: [{ id: '103', email: null, modifiedAt: '2026-05-01T11:00:00.000Z' }], next: null });
    const search = { key: `hubspot:${PORTAL}:search`, max: 4, windowMs: 1_000 };
    const tenSecondly = { key: `hubspot:${PORTAL}:10s`, max: 100, windowMs: 10_000 };
    expect(s.limiter.acquired.map((a) => a.limit)).toEqual([search, tenSecondly, search, tenSecondly]);
  });

  it('past 10,000 results restarts the query from the newest time seen instead of paging on', async () => {
    const s = make();
    const bodies: SearchBody[] = [];
    const scope = api()
      .post('/crm/v3/objects/contacts/search', (b: SearchBody) => bodies.push(b) > 0)
      .reply(200, { total: 25_000, results: [contact('9', '2026-05-02T08:00:00.000Z')], paging: { next: { after: '10000' } } }, JSON_HEADERS)
      .post('/crm/v3/objects/contacts/search', (b: SearchBody) => bodies.push(b) > 0)
      .reply(200, { total: 15_000, results: [] }, JSON_HEADERS);
    const page = await s.connector.contactsModifiedSince(s.tenant, '2026-05-01T00:00:00.000Z', '9800');
    expect(page.next).toBe('since:2026-05-02T08:00:00.000Z');
    await s.connector.contactsModifiedSince(s.tenant, '2026-05-01T00:00:00.000Z', page.next);
    expect(scope.isDone()).toBe(true);
    expect(bodies[0]?.after).toBe('9800');
    expect(bodies[1]).toMatchObject({ filterGroups: [{ filters: [{ value: String(Date.parse('2026-05-02T08:00:00.000Z')) }] }] });
    expect(bodies[1]?.after).toBeUndefined();
  });

  it('a search 429 (secondly limit) is rate_limited with Retry-After', async () => {
    const s = make();
    const scope = api().post('/crm/v3/objects/contacts/search').reply(429, SECONDLY_429, { ...JSON_HEADERS, 'Retry-After': '2' });
    expect(await failure(s.connector.contactsModifiedSince(s.tenant, '2026-05-01T00:00:00.000Z', null))).toMatchObject({ kind: 'rate_limited', retryAfterMs: 2_000 });
    expect(scope.isDone()).toBe(true);
  });
});

describe('subscriptionStatuses', () => {
  const status = (address: string, subscriptionId: number, state: string, timestamp: string, extra: Record<string, unknown> = {}) => ({
    channel: 'EMAIL',
    subscriberIdString: address,
    subscriptionId,
    status: state,
    source: 'Public API',
    legalBasis: 'CONSENT_WITH_NOTICE',
    legalBasisExplanation: 'x',
    timestamp,
    ...extra,
  });
  const action = (results: unknown[]) => ({ status: 'COMPLETE', ...BATCH_TIMES, results });

  it('reads v4 statuses per email, folds "opted out of all email" in, leaves out never-set types, and answers no statuses for an unknown email', async () => {
    const s = make();
    const a = email(1);
    const b = email(2);
    const c = email(3);
    const scope = api()
      .get(`/communication-preferences/v4/statuses/${encoded(a)}`)
      .query({ channel: 'EMAIL' })
      .reply(200, action([status(a, 1001, 'SUBSCRIBED', '2026-05-01T10:00:00Z'), status(a, 1002, 'NOT_SPECIFIED', '2026-05-01T10:00:00Z', { legalBasis: null })]), JSON_HEADERS)
      .get(`/communication-preferences/v4/statuses/${encoded(a)}/unsubscribe-all`)
      .query({ channel: 'EMAIL' })
      .reply(200, action([{ channel: 'EMAIL', subscriberIdString: a, status: 'NOT_SPECIFIED', wideStatusType: 'PORTAL_WIDE', timestamp: '2026-01-01T00:00:00Z' }]), JSON_HEADERS)
      .get(`/communication-preferences/v4/statuses/${encoded(b)}`)
      .query({ channel: 'EMAIL' })
      .reply(200, action([status(b, 1001, 'SUBSCRIBED', '2026-05-01T10:00:00Z')]), JSON_HEADERS)
      .get(`/communication-preferences/v4/statuses/${encoded(b)}/unsubscribe-all`)
      .query({ channel: 'EMAIL' })
      .reply(200, action([{ channel: 'EMAIL', subscriberIdString: b, status: 'UNSUBSCRIBED', wideStatusType: 'PORTAL_WIDE', timestamp: '2026-05-03T09:00:00Z' }]), JSON_HEADERS)
      .get(`/communication-preferences/v4/statuses/${encoded(c)}`)
      .query({ channel: 'EMAIL' })
      .reply(404, { status: 'error', message: 'not found', category: 'OBJECT_NOT_FOUND' }, JSON_HEADERS)
      .get(`/communication-preferences/v4/statuses/${encoded(c)}/unsubscribe-all`)
      .query({ channel: 'EMAIL' })
      .reply(404, { status: 'error', message: 'not found', category: 'OBJECT_NOT_FOUND' }, JSON_HEADERS);
    const result = await s.connector.subscriptionStatuses(s.tenant, [a, b, c, a.toUpperCase()]);
    expect(scope.isDone()).toBe(true);
    expect(result).toEqual([
      {
        email: a,
        statuses: [
          // 1002 is NOT_SPECIFIED (never set): reported as no status at all, not as an opt-out.
          { subscriptionTypeId: '1001', subscribed: true, legalBasis: 'CONSENT_WITH_NOTICE', timestamp: '2026-05-01T10:00:00.000Z' },
        ],
      },
      { email: b, statuses: [{ subscriptionTypeId: '1001', subscribed: false, legalBasis: 'CONSENT_WITH_NOTICE', timestamp: '2026-05-03T09:00:00.000Z' }] },
      { email: c, statuses: [] },
    ]);
  });

  it('with batchScopes reads 100 emails per batch/read and batch/unsubscribe-all/read', async () => {
    const s = make({ batchScopes: true });
    const emails = Array.from({ length: 120 }, (_, i) => email(i));
    const sizes: number[] = [];
    const scope = api()
      .post('/communication-preferences/v4/statuses/batch/read', (b: { inputs: string[] }) => sizes.push(b.inputs.length) > 0)
      .query({ channel: 'EMAIL' })
      .times(2)
      .reply(200, (_uri, body) => ({ status: 'COMPLETE', ...BATCH_TIMES, results: (body as { inputs: string[] }).inputs.map((e) => ({ subscriberIdString: e, statuses: [status(e, 1001, 'SUBSCRIBED', '2026-05-01T10:00:00Z')] })) }), JSON_HEADERS)
      .post('/communication-preferences/v4/statuses/batch/unsubscribe-all/read')
      .query({ channel: 'EMAIL' })
      .times(2)
      .reply(
        200,
        (_uri, body) => ({
          status: 'COMPLETE',
          ...BATCH_TIMES,
          results: (body as { inputs: string[] }).inputs.map((e) => ({ subscriberIdString: e, wideStatuses: e === email(5) ? [{ channel: 'EMAIL', subscriberIdString: e, status: 'UNSUBSCRIBED', wideStatusType: 'PORTAL_WIDE', timestamp: '2026-05-02T00:00:00Z' }] : [] })),
        }),
        JSON_HEADERS,
      );
    const result = await s.connector.subscriptionStatuses(s.tenant, emails);
    expect(scope.isDone()).toBe(true);
    expect(sizes).toEqual([100, 20]);
    expect(result).toHaveLength(120);
    expect(result[5]?.statuses[0]).toEqual({ subscriptionTypeId: '1001', subscribed: false, legalBasis: 'CONSENT_WITH_NOTICE', timestamp: '2026-05-02T00:00:00.000Z' });
    expect(result[6]?.statuses[0]?.subscribed).toBe(true);
  });
});

// ================================================================ batchScopes: 'detect'

describe("batchScopes: 'detect'", () => {
  const OTHER_TOKEN = 'hubspot-contract-refreshed-token-9876543210';
  const BATCH_SCOPES = ['communication_preferences.statuses.batch.read', 'communication_preferences.statuses.batch.write'];
  const BASE_SCOPES = ['oauth', 'crm.objects.contacts.read', 'crm.objects.contacts.write', 'communication_preferences.read_write'];

  /** AccessTokens whose token changes as a refresh would change it. */
  class SwitchingTokens implements AccessTokens {
    constructor(public token = TOKEN) {}
    async accessToken(): Promise<string> {
      return this.token;
    }
  }

  function detecting() {
    const limiter = new RecordingLimiter();
    const tokens = new SwitchingTokens();
    const clock = fixedClock('2026-06-01T12:00:00.000Z');
    const connector = new HubspotConnector({ tokens, limiter, logger: recordingLogger(logs), timeoutMs: 2_000, clock }, { batchScopes: 'detect' });
    return { connector, limiter, tokens, clock, tenant: tenant() };
  }

  /** `GET /oauth/v1/access-tokens/{token}` as HubSpot answers it on the wire (hubspot.md §7), without an Authorization header. */
  const introspection = (token = TOKEN) => nock(BASE, { badheaders: ['authorization'] }).get(`/oauth/v1/access-tokens/${token}`);
  const tokenInfo = (token: string, scopes: string[], expiresIn = 1800) => ({
    token,
    user: 'admin@hubspot.test',
    hub_domain: 'demo-4242.hubspot.com',
    scopes,
    hub_id: Number(PORTAL),
    app_id: 54321,
    expires_in: expiresIn,
    user_id: 2000001,
    token_type: 'access',
  });

  const unsubscribe = (i: number): SubscriptionWrite => ({
    key: `unsub-${i}`,
    email: email(i),
    subscriptionTypeId: '1001',
    subscribed: false,
    legalBasis: null,
    legalBasisExplanation: 'Unsubscribed in the shop',
    freshAffirmativeAct: false,
  });
  const v4Status = (address: string, state: string) => ({ channel: 'EMAIL', subscriberIdString: address, subscriptionId: 1001, status: state, source: 'Public API', legalBasis: null, timestamp: '2026-06-01T12:00:00Z' });
  const batchWriteAnswer = (_uri: string, body: unknown) => ({
    status: 'COMPLETE',
    ...BATCH_TIMES,
    results: (body as { inputs: Array<{ subscriberIdString: string; statusState: string }> }).inputs.map((i) => v4Status(i.subscriberIdString, i.statusState)),
  });
  const batchReadAnswer = (_uri: string, body: unknown) => ({
    status: 'COMPLETE',
    ...BATCH_TIMES,
    results: (body as { inputs: string[] }).inputs.map((e) => ({ subscriberIdString: e, statuses: [v4Status(e, 'SUBSCRIBED')] })),
  });
  const batchWideAnswer = (_uri: string, body: unknown) => ({ status: 'COMPLETE', ...BATCH_TIMES, results: (body as { inputs: string[] }).inputs.map((e) => ({ subscriberIdString: e, wideStatuses: [] })) });
  const v3Unsubscribed = { id: '1001', name: 'Newsletter', description: '', status: 'NOT_SUBSCRIBED', sourceOfStatus: 'SUBSCRIPTION_STATUS' };
  const perEmailRead = (scope: nock.Scope, address: string) =>
    scope
      .get(`/communication-preferences/v4/statuses/${encoded(address)}`)
      .query({ channel: 'EMAIL' })
      .reply(200, { status: 'COMPLETE', ...BATCH_TIMES, results: [v4Status(address, 'SUBSCRIBED')] }, JSON_HEADERS)
      .get(`/communication-preferences/v4/statuses/${encoded(address)}/unsubscribe-all`)
      .query({ channel: 'EMAIL' })
      .reply(200, { status: 'COMPLETE', ...BATCH_TIMES, results: [] }, JSON_HEADERS);

  it('with the batch scopes granted: one introspection (no Authorization header, on the portal’s budget), then batch/write and batch/read', async () => {
    const s = detecting();
    const asked = introspection().reply(200, tokenInfo(TOKEN, [...BASE_SCOPES, ...BATCH_SCOPES]), JSON_HEADERS);
    const scope = api()
      .post('/communication-preferences/v4/statuses/batch/write')
      .reply(200, batchWriteAnswer, JSON_HEADERS)
      .post('/communication-preferences/v4/statuses/batch/read')
      .query({ channel: 'EMAIL' })
      .reply(200, batchReadAnswer, JSON_HEADERS)
      .post('/communication-preferences/v4/statuses/batch/unsubscribe-all/read')
      .query({ channel: 'EMAIL' })
      .reply(200, batchWideAnswer, JSON_HEADERS);
    expect(await s.connector.setSubscriptions(s.tenant, [unsubscribe(1), unsubscribe(2)])).toEqual([
      { key: 'unsub-1', ok: true },
      { key: 'unsub-2', ok: true },
    ]);
    const statuses = await s.connector.subscriptionStatuses(s.tenant, [email(1), email(2)]);
    expect(statuses.map((x) => x.statuses[0]?.subscribed)).toEqual([true, true]);
    expect(asked.isDone()).toBe(true);
    expect(scope.isDone()).toBe(true);
    // Introspection + batch/write + batch/read + batch/unsubscribe-all/read, each a unit of the 10 s budget.
    expect(s.limiter.keys()).toEqual(Array(4).fill(`hubspot:${PORTAL}:10s`));
    expect(logs.find((l) => l.message === 'HubSpot batch scopes detected')?.fields).toMatchObject({ tenantId: s.tenant.id, batchRead: true, batchWrite: true });
  });

  it('without the batch scopes: per-email v3 unsubscribes and v4 reads', async () => {
    const s = detecting();
    const asked = introspection().reply(200, tokenInfo(TOKEN, BASE_SCOPES), JSON_HEADERS);
    const scope = api().post('/communication-preferences/v3/unsubscribe').times(2).reply(200, v3Unsubscribed, JSON_HEADERS);
    perEmailRead(scope, email(1));
    expect(await s.connector.setSubscriptions(s.tenant, [unsubscribe(1), unsubscribe(2)])).toEqual([
      { key: 'unsub-1', ok: true },
      { key: 'unsub-2', ok: true },
    ]);
    expect(await s.connector.subscriptionStatuses(s.tenant, [email(1)])).toHaveLength(1);
    expect(asked.isDone()).toBe(true);
    expect(scope.isDone()).toBe(true);
  });

  it('uses each kind of batch endpoint only with its own scope (batch.read without batch.write)', async () => {
    const s = detecting();
    const asked = introspection().reply(200, tokenInfo(TOKEN, [...BASE_SCOPES, 'communication_preferences.statuses.batch.read']), JSON_HEADERS);
    const scope = api()
      .post('/communication-preferences/v3/unsubscribe')
      .reply(200, v3Unsubscribed, JSON_HEADERS)
      .post('/communication-preferences/v4/statuses/batch/read')
      .query({ channel: 'EMAIL' })
      .reply(200, batchReadAnswer, JSON_HEADERS)
      .post('/communication-preferences/v4/statuses/batch/unsubscribe-all/read')
      .query({ channel: 'EMAIL' })
      .reply(200, batchWideAnswer, JSON_HEADERS);
    expect(await s.connector.setSubscriptions(s.tenant, [unsubscribe(1)])).toEqual([{ key: 'unsub-1', ok: true }]);
    expect(await s.connector.subscriptionStatuses(s.tenant, [email(1)])).toHaveLength(1);
    expect(asked.isDone()).toBe(true);
    expect(scope.isDone()).toBe(true);
  });

  it('one introspection for many calls, concurrent ones included, until the token’s expires_in has passed', async () => {
    const s = detecting();
    let introspections = 0;
    const asked = introspection()
      .times(2)
      .reply(200, () => {
        introspections++;
        return tokenInfo(TOKEN, [...BASE_SCOPES, ...BATCH_SCOPES]);
      }, JSON_HEADERS);
    const scope = api()
      .post('/communication-preferences/v4/statuses/batch/write')
      .times(7)
      .reply(200, batchWriteAnswer, JSON_HEADERS)
      .post('/communication-preferences/v4/statuses/batch/read')
      .query({ channel: 'EMAIL' })
      .times(3)
      .reply(200, batchReadAnswer, JSON_HEADERS)
      .post('/communication-preferences/v4/statuses/batch/unsubscribe-all/read')
      .query({ channel: 'EMAIL' })
      .times(3)
      .reply(200, batchWideAnswer, JSON_HEADERS);
    await Promise.all([1, 2, 3, 4, 5].map((i) => s.connector.setSubscriptions(s.tenant, [unsubscribe(i)])));
    await s.connector.subscriptionStatuses(s.tenant, [email(1)]);
    s.clock.advance(1_799_000);
    await s.connector.setSubscriptions(s.tenant, [unsubscribe(6)]);
    await s.connector.subscriptionStatuses(s.tenant, [email(2)]);
    expect(introspections).toBe(1);
    s.clock.advance(1_000); // the token's 1,800 s are over: asked again
    await s.connector.setSubscriptions(s.tenant, [unsubscribe(7)]);
    await s.connector.subscriptionStatuses(s.tenant, [email(3)]);
    expect(introspections).toBe(2);
    expect(asked.isDone()).toBe(true);
    expect(scope.isDone()).toBe(true);
  });

  it('asks nothing when no write could be batched (plain subscribes) or there is nothing to read', async () => {
    const s = detecting();
    const scope = api()
      .post('/communication-preferences/v3/subscribe')
      .reply(200, { ...v3Unsubscribed, status: 'SUBSCRIBED' }, JSON_HEADERS);
    const subscribe: SubscriptionWrite = { ...unsubscribe(1), key: 'sub', subscribed: true, legalBasis: 'CONSENT_WITH_NOTICE' };
    expect(await s.connector.setSubscriptions(s.tenant, [subscribe])).toEqual([{ key: 'sub', ok: true }]);
    expect(await s.connector.subscriptionStatuses(s.tenant, [])).toEqual([]);
    expect(scope.isDone()).toBe(true);
  });

  it('a new token (after a refresh) is introspected again, and what it grants is what counts', async () => {
    const s = detecting();
    const first = introspection().reply(200, tokenInfo(TOKEN, [...BASE_SCOPES, ...BATCH_SCOPES]), JSON_HEADERS);
    const second = introspection(OTHER_TOKEN).reply(200, tokenInfo(OTHER_TOKEN, BASE_SCOPES), JSON_HEADERS);
    const before = api().post('/communication-preferences/v4/statuses/batch/write').reply(200, batchWriteAnswer, JSON_HEADERS);
    const after = nock(BASE, { reqheaders: { authorization: `Bearer ${OTHER_TOKEN}` } })
      .post('/communication-preferences/v3/unsubscribe')
      .times(2)
      .reply(200, v3Unsubscribed, JSON_HEADERS);
    await s.connector.setSubscriptions(s.tenant, [unsubscribe(1)]);
    expect(first.isDone()).toBe(true);
    expect(before.isDone()).toBe(true);
    s.tokens.token = OTHER_TOKEN;
    await s.connector.setSubscriptions(s.tenant, [unsubscribe(2)]);
    await s.connector.setSubscriptions(s.tenant, [unsubscribe(3)]);
    expect(second.isDone()).toBe(true);
    expect(after.isDone()).toBe(true);
    expect(JSON.stringify(logs)).not.toContain(OTHER_TOKEN);
  });

  it.each<[string, (scope: nock.Interceptor) => nock.Scope]>([
    ['a 5xx', (i) => i.reply(503, { status: 'error', message: 'unavailable' }, JSON_HEADERS)],
    ['a 401 whose message echoes the token', (i) => i.reply(401, { status: 'error', message: `The OAuth token ${TOKEN} is expired`, category: 'EXPIRED_AUTHENTICATION' }, JSON_HEADERS)],
    ['a connection failure', (i) => i.replyWithError(Object.assign(new Error(`socket hang up on /oauth/v1/access-tokens/${TOKEN}`), { code: 'ECONNRESET' }))],
    ['an answer without scopes', (i) => i.reply(200, { token: TOKEN, hub_id: Number(PORTAL) }, JSON_HEADERS)],
  ])('introspection failing (%s): per-email paths for 5 minutes, then asked again', async (_name, fail) => {
    const s = detecting();
    const failed = fail(introspection());
    const perEmail = api().post('/communication-preferences/v3/unsubscribe').times(2).reply(200, v3Unsubscribed, JSON_HEADERS);
    perEmailRead(perEmail, email(1));
    expect(await s.connector.setSubscriptions(s.tenant, [unsubscribe(1)])).toEqual([{ key: 'unsub-1', ok: true }]);
    s.clock.advance(299_999);
    await s.connector.subscriptionStatuses(s.tenant, [email(1)]);
    await s.connector.setSubscriptions(s.tenant, [unsubscribe(2)]);
    expect(failed.isDone()).toBe(true);
    expect(perEmail.isDone()).toBe(true);
    const warning = logs.find((l) => l.message.startsWith('HubSpot token introspection failed'));
    expect(warning?.fields).toMatchObject({ tenantId: s.tenant.id, call: 'GET /oauth/v1/access-tokens/{token}', retryInMs: 300_000 });

    s.clock.advance(1);
    const again = introspection().reply(200, tokenInfo(TOKEN, [...BASE_SCOPES, ...BATCH_SCOPES]), JSON_HEADERS);
    const batched = api().post('/communication-preferences/v4/statuses/batch/write').reply(200, batchWriteAnswer, JSON_HEADERS);
    expect(await s.connector.setSubscriptions(s.tenant, [unsubscribe(3)])).toEqual([{ key: 'unsub-3', ok: true }]);
    expect(again.isDone()).toBe(true);
    expect(batched.isDone()).toBe(true);
    // The token is in the introspection's path: neither the logs nor the errors behind them may show it.
    expect(JSON.stringify(logs)).not.toContain(TOKEN);
    expect(JSON.stringify(logs)).not.toContain(encodeURIComponent(TOKEN).slice(0, 20));
  });

  it('a failure to get the token is thrown (no call could be made either)', async () => {
    const s = detecting();
    const refused = new PlatformCallError('hubspot', 'refresh token refused (invalid_grant)', { retryable: false, kind: 'auth' });
    s.tokens.accessToken = async () => {
      throw refused;
    };
    await expect(s.connector.setSubscriptions(s.tenant, [unsubscribe(1)])).rejects.toBe(refused);
    await expect(s.connector.subscriptionStatuses(s.tenant, [email(1)])).rejects.toBe(refused);
  });
});

// ================================================================ OAuth

describe('refreshHubspotToken', () => {
  const config = { clientId: 'client-id-1', clientSecret: 'client-secret-1', clock: fixedClock('2026-06-01T12:00:00.000Z') };

  it('posts the form and answers the tokens with expiresAt = now + expires_in', async () => {
    let form: string | undefined;
    const scope = nock(BASE, { reqheaders: { 'content-type': /application\/x-www-form-urlencoded/ } })
      .post('/oauth/v1/token', (body: unknown) => {
        form = typeof body === 'string' ? body : new URLSearchParams(body as Record<string, string>).toString();
        return true;
      })
      .reply(200, { token_type: 'bearer', refresh_token: 'refresh-2', access_token: 'access-2', expires_in: 1800 }, JSON_HEADERS);
    const tokens = await refreshHubspotToken(config, 'refresh-1');
    expect(scope.isDone()).toBe(true);
    expect(Object.fromEntries(new URLSearchParams(form))).toEqual({ grant_type: 'refresh_token', client_id: 'client-id-1', client_secret: 'client-secret-1', refresh_token: 'refresh-1' });
    expect(tokens).toEqual({ accessToken: 'access-2', refreshToken: 'refresh-2', expiresAt: '2026-06-01T12:30:00.000Z' });
  });

  it.each([
    ['v1 BAD_REFRESH_TOKEN', { status: 'BAD_REFRESH_TOKEN', message: 'missing or unknown refresh token', correlationId: 'c' }],
    ['RFC 6749 invalid_grant', { error: 'invalid_grant', error_description: 'refresh token is invalid', status: 'BAD_REFRESH_TOKEN' }],
  ])('%s is auth, not retryable (the uninstall signal)', async (_name, body) => {
    const scope = nock(BASE).post('/oauth/v1/token').reply(400, body, JSON_HEADERS);
    const error = await failure(refreshHubspotToken(config, 'refresh-1'));
    expect(scope.isDone()).toBe(true);
    expect(error).toMatchObject({ kind: 'auth', retryable: false, status: 400 });
    expect(error.message).toMatch(/invalid_grant/);
    expect(error.message).not.toContain('refresh-1');
  });

  it('a 5xx is retryable and a timeout is a timeout', async () => {
    const scope = nock(BASE).post('/oauth/v1/token').reply(502, 'Bad Gateway').post('/oauth/v1/token').delay(1_000).reply(200, {});
    expect(await failure(refreshHubspotToken(config, 'refresh-1'))).toMatchObject({ kind: 'server_error', retryable: true });
    expect(await failure(refreshHubspotToken({ ...config, timeoutMs: 50 }, 'refresh-1'))).toMatchObject({ kind: 'timeout', retryable: true });
    expect(scope.isDone()).toBe(true);
  });
});
