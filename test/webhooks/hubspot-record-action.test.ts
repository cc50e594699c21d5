/**
 * POST /hubspot/actions/record-consent-change (HubSpot custom workflow action "Record consent change", issue 5
 * §5 (a)) over supertest, on SQLite and PostgreSQL: an unsubscribe from all email blocks the gate and owes Shopify
 * an UNSUBSCRIBED write; a mapped subscription type withdraws its purpose only; a subscription observed after an
 * unsubscribe never re-grants, the contact's own re-subscribe does; the contact's email unites records; echoes of
 * our own writes record nothing; one answer and one ledger append per callbackId; refused requests store nothing.
 */
import { createHash } from 'node:crypto';
import request from 'supertest';
import type { SubjectlessEvent } from '../../src/domain/inbound';
import type { Identity } from '../../src/domain/identity';
import { checkRecipients, parseGateRequest } from '../../src/gate/gate';
import { applyEffects } from '../../src/inbox/apply';
import { createLogger } from '../../src/log/logger';
import { buildApp, createRuntime } from '../../src/main';
import type { Store } from '../../src/store/database';
import { recordWrites } from '../../src/store/sync-write.repository';
import { hubspotSubscriptionFingerprint } from '../../src/sync/echo';
import { SYNC_OPERATIONS } from '../../src/sync/policy';
import { addTenant, setTenantSettings, type Tenant } from '../../src/tenants/tenants';
import { WORKFLOW_ACTION_BODY_LIMIT_BYTES } from '../../webhooks/hubspot/action-common';
import { HUBSPOT_CHECK_CONSENT_PATH } from '../../webhooks/hubspot/actions';
import { HUBSPOT_RECORD_CONSENT_CHANGE_PATH } from '../../webhooks/hubspot/record-action';
import { countingIds } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { APP_URL, createHarness, hubspotHeaders, HUBSPOT_SECRET, NOW, testConfig, type Harness } from '../helpers/webhooks';

const PATH = HUBSPOT_RECORD_CONSENT_CHANGE_PATH;
const URI = `${APP_URL}${PATH}`;
const PORTAL_A = 62515;
const WORKFLOW_ID = 192814114;

/** Signers written from hubspot.md §2, independently of webhooks/hubspot/verify.ts. */
const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const v2Headers = (body: string, options: { secret?: string; uri?: string } = {}): Record<string, string> => ({
  'Content-Type': 'application/json',
  'X-HubSpot-Signature': sha256Hex(`${options.secret ?? HUBSPOT_SECRET}POST${options.uri ?? URI}${body}`),
  'X-HubSpot-Signature-Version': 'v2',
});
const v1Headers = (body: string): Record<string, string> => ({
  'Content-Type': 'application/json',
  'X-HubSpot-Signature': sha256Hex(`${HUBSPOT_SECRET}${body}`),
  'X-HubSpot-Signature-Version': 'v1',
});
const v3Headers = (body: string, options: { secret?: string; timestampMs?: number } = {}) => hubspotHeaders(body, { path: PATH, ...options });

let callbackCounter = 0;
const nextCallbackId = () => `ap-${PORTAL_A}-record-${++callbackCounter}-0`;

interface ExecutionOptions {
  callbackId?: string;
  portalId?: number;
  /** The contact's `email` property (objectRequestOptions); omitted when undefined. */
  email?: string | null;
}

/** An execution request as HubSpot sends it (hubspot.md §6; ids as JSON numbers, extra fields included). */
function execution(contactId: number | string, inputFields: Record<string, unknown>, options: ExecutionOptions = {}) {
  return {
    callbackId: options.callbackId ?? nextCallbackId(),
    origin: { portalId: options.portalId ?? PORTAL_A, actionDefinitionId: 10860299, actionDefinitionVersion: 1, extensionDefinitionId: 10860299 },
    context: { source: 'WORKFLOWS', workflowId: WORKFLOW_ID },
    object: { objectId: contactId, objectType: 'CONTACT', ...(options.email !== undefined ? { properties: { email: options.email } } : {}) },
    inputFields,
  };
}

const answer = (recorded: 'yes' | 'no', reason: string) => ({ outputFields: { recorded, reason, hs_execution_state: 'SUCCESS' } });

const unsubscribeAll = (changedAt = '2026-05-20T08:00:00Z', source = 'preferences_page') => ({ channel: 'email', subscription_type: '', status: 'NOT_SUBSCRIBED', changed_at: changedAt, source });

const shopifyEvent = (kind: 'grant' | 'withdraw', occurredAt: string): SubjectlessEvent => ({
  channel: 'email',
  purpose: '*',
  kind,
  basis: kind === 'grant' ? 'consent' : null,
  occurredAt,
  source: 'shopify',
  sourceDeliveryId: null,
  evidence: kind === 'grant' ? { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' } : { capturePoint: 'shopify' },
});

describe.each(testDialects())('HubSpot "Record consent change" action on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let tenant: Tenant;
  let seedCounter = 0;

  /** A person known to the store (as the inbox worker records them), with these Shopify email events. */
  async function person(identities: Identity[], events: SubjectlessEvent[]): Promise<string> {
    seedCounter += 1;
    await store.db
      .transaction()
      .execute((trx) => applyEffects(trx, store.dialect, h.runtime, { tenantId: tenant.id, ledgerKey: `seed:${seedCounter}` }, [{ kind: 'consent', identities, events }]));
    return subjectOf(identities[0]!);
  }
  async function subjectOf(identity: Identity): Promise<string> {
    const row = await store.db
      .selectFrom('subject_identity')
      .select('subject_id')
      .where('tenant_id', '=', tenant.id)
      .where('kind', '=', identity.kind)
      .where('value', '=', identity.value)
      .executeTakeFirst();
    if (row === undefined) throw new Error(`no subject for ${identity.kind} ${identity.value}`);
    return row.subject_id;
  }
  const customer = (customerId: string, contactId: string, email: string): Identity[] => [
    { kind: 'shopify_customer', value: customerId },
    { kind: 'hubspot_contact', value: contactId },
    { kind: 'email', value: email },
  ];

  /** The send gate's answer for one recipient, now. */
  async function gate(recipient: Record<string, string>, purpose = '*') {
    const { results } = await checkRecipients(store, tenant, parseGateRequest({ channel: 'email', purpose, recipients: [recipient] }), new Date(NOW));
    return { allowed: results[0]!.allowed, reason: results[0]!.reason };
  }
  const blocked = { allowed: false, reason: 'withdrawn' };
  const allowed = { allowed: true, reason: 'consent' };

  /** Ledger events one execution appended. */
  const eventsOf = (callbackId: string) =>
    store.db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenant.id).where('source_delivery_id', '=', `hubspot-action:${callbackId}`).orderBy('seq').execute();
  const outboxOf = (subjectId: string, operation: string) =>
    store.db.selectFrom('outbox').selectAll().where('tenant_id', '=', tenant.id).where('subject_id', '=', subjectId).where('operation', '=', operation).execute();
  const count = async (table: 'consent_event' | 'workflow_action_call' | 'outbox' | 'subject' | 'ledger_delivery') =>
    Number((await store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  const counts = async () => ({
    events: await count('consent_event'),
    calls: await count('workflow_action_call'),
    outbox: await count('outbox'),
    subjects: await count('subject'),
    deliveries: await count('ledger_delivery'),
  });

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    tenant = await setTenantSettings(store, h.runtime, h.tenantA.id, {
      ...h.tenantA.settings,
      shopCountry: 'NL',
      purposes: [
        { id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: ['12345'], categoryGroups: [] },
        { id: 'offers', label: 'Offers', hubspotSubscriptionTypeIds: ['777'], categoryGroups: [] },
        { id: 'flash-sales', label: 'Flash sales', hubspotSubscriptionTypeIds: ['777'], categoryGroups: [] },
      ],
    });
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const post = (body: string, headers: Record<string, string>, path = PATH) => request(h.app.callback()).post(path).set(headers).send(body);

  it('an unsubscribe from all email blocks the contact at the gate and owes Shopify an UNSUBSCRIBED write', async () => {
    const subjectId = await person(customer('7001', '601', 'ana@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')]);
    expect(await gate({ hubspotContactId: '601' })).toEqual(allowed);

    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(601, unsubscribeAll(), { callbackId, email: 'ana@example.com' }));
    const res = await post(body, v3Headers(body));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(answer('yes', 'recorded'));

    for (const recipient of [{ hubspotContactId: '601' }, { email: 'ana@example.com' }, { shopifyCustomerId: '7001' }] as Array<Record<string, string>>) expect(await gate(recipient)).toEqual(blocked);
    expect(await gate({ hubspotContactId: '601' }, 'newsletter')).toEqual(blocked);

    const events = await eventsOf(callbackId);
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event).toMatchObject({ subject_id: subjectId, channel: 'email', purpose: '*', kind: 'withdraw', basis: null, source: 'hubspot', occurred_at: '2026-05-20T08:00:00.000Z' });
    expect(JSON.parse(event!.evidence)).toEqual({ capturePoint: `hubspot:workflow:${WORKFLOW_ID}`, subscriptionTypeId: null, note: 'recorded by workflow action', reportedSource: 'preferences_page' });

    // The ledger enqueued the Shopify write in the same transaction (src/sync/policy.ts: purpose `*`, not from Shopify).
    const shopify = await outboxOf(subjectId, SYNC_OPERATIONS.shopifyConsent);
    const owed = shopify.map((row) => JSON.parse(row.payload)).filter((p) => p.eventId === event!.id);
    expect(owed).toEqual([{ subjectId, channel: 'email', state: 'UNSUBSCRIBED', optInLevel: null, consentUpdatedAt: '2026-05-20T08:00:00.000Z', eventId: event!.id }]);
    // Never written back to HubSpot, where it came from.
    const hubspot = await outboxOf(subjectId, SYNC_OPERATIONS.hubspotSubscription);
    expect(hubspot.map((row) => JSON.parse(row.payload)).filter((p) => p.eventId === event!.id)).toEqual([]);
  });

  it('a subscription type mapped to a purpose withdraws that purpose only, with no Shopify write', async () => {
    const subjectId = await person(customer('7002', '602', 'ben@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')]);
    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(602, { channel: 'email', subscription_type: '12345', status: 'NOT_SUBSCRIBED', changed_at: '2026-05-20T08:00:00Z' }, { callbackId, email: 'ben@example.com' }));
    expect((await post(body, v2Headers(body))).body).toEqual(answer('yes', 'recorded'));

    const events = await eventsOf(callbackId);
    expect(events.map((e) => [e.purpose, e.kind])).toEqual([['newsletter', 'withdraw']]);
    expect(JSON.parse(events[0]!.evidence)).toMatchObject({ subscriptionTypeId: '12345', reportedSource: 'unknown' });
    expect(await gate({ hubspotContactId: '602' }, 'newsletter')).toEqual(blocked);
    expect(await gate({ hubspotContactId: '602' }, 'offers')).toEqual(allowed);
    expect(await gate({ hubspotContactId: '602' })).toEqual(allowed);
    // Shopify has one flag per channel: a purpose's unsubscribe does not change it.
    const shopify = await outboxOf(subjectId, SYNC_OPERATIONS.shopifyConsent);
    expect(shopify.map((row) => JSON.parse(row.payload)).filter((p) => p.eventId === events[0]!.id)).toEqual([]);
  });

  it('a subscription observed after an unsubscribe never re-grants; the contact\'s own re-subscribe on the preferences page does', async () => {
    const subjectId = await person(customer('7003', '603', 'cem@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')]);
    const withdrawal = JSON.stringify(execution(603, unsubscribeAll('2026-05-10T08:00:00Z'), { email: 'cem@example.com' }));
    expect((await post(withdrawal, v3Headers(withdrawal))).body).toEqual(answer('yes', 'recorded'));

    // A workflow, import or unknown source: recorded as evidence, but it is an observation (conflict rule 3).
    for (const [source, changedAt] of [['workflow_or_import', '2026-05-15T08:00:00Z'], [undefined, '2026-05-15T09:00:00Z']] as const) {
      const callbackId = nextCallbackId();
      const inputs = { channel: 'email', subscription_type: '', status: 'SUBSCRIBED', changed_at: changedAt, ...(source ? { source } : {}) };
      const body = JSON.stringify(execution(603, inputs, { callbackId, email: 'cem@example.com' }));
      expect((await post(body, v3Headers(body))).body).toEqual(answer('yes', 'no_change'));
      const [event] = await eventsOf(callbackId);
      expect(event).toMatchObject({ kind: 'grant', basis: 'consent', purpose: '*' });
      expect(JSON.parse(event!.evidence)).toMatchObject({ affirmative: false, reportedSource: source ?? 'unknown' });
      expect(await gate({ hubspotContactId: '603' })).toEqual(blocked);
    }

    const callbackId = nextCallbackId();
    const regrant = JSON.stringify(execution(603, { channel: 'email', status: 'SUBSCRIBED', changed_at: '2026-05-16T08:00:00Z', source: 'preferences_page' }, { callbackId, email: 'cem@example.com' }));
    expect((await post(regrant, v3Headers(regrant))).body).toEqual(answer('yes', 'recorded'));
    const [event] = await eventsOf(callbackId);
    expect(JSON.parse(event!.evidence)).toMatchObject({ affirmative: true, capturePoint: `hubspot:workflow:${WORKFLOW_ID}` });
    expect(await gate({ hubspotContactId: '603' })).toEqual(allowed);
    const shopify = await outboxOf(subjectId, SYNC_OPERATIONS.shopifyConsent);
    expect(shopify.map((row) => JSON.parse(row.payload)).filter((p) => p.eventId === event!.id)).toEqual([
      expect.objectContaining({ state: 'SUBSCRIBED', consentUpdatedAt: '2026-05-16T08:00:00.000Z' }),
    ]);
  });

  it('uses the contact\'s email property as a second identity: records of one person are united', async () => {
    // Known to Shopify by customer id and email, not yet by HubSpot contact id.
    const subjectId = await person(
      [
        { kind: 'shopify_customer', value: '7004' },
        { kind: 'email', value: 'dana@example.com' },
      ],
      [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')],
    );
    const body = JSON.stringify(execution(604, unsubscribeAll(), { email: ' Dana@Example.com ' }));
    expect((await post(body, v3Headers(body))).body).toEqual(answer('yes', 'recorded'));
    expect(await subjectOf({ kind: 'hubspot_contact', value: '604' })).toBe(subjectId);
    expect(await gate({ shopifyCustomerId: '7004' })).toEqual(blocked);

    // A contact nobody knew, without an email: the withdrawal is kept under its contact id.
    const unknown = JSON.stringify(execution(605, unsubscribeAll(), { email: null }));
    expect((await post(unknown, v3Headers(unknown))).body).toEqual(answer('yes', 'recorded'));
    expect(await gate({ hubspotContactId: '605' })).toEqual(blocked);
  });

  it('an unsubscribe from an unmapped type withdraws every purpose; several purposes of one type each withdraw; a subscribe to an unmapped type records nothing', async () => {
    await person(customer('7006', '606', 'eli@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')]);

    const before = await counts();
    const subscribe = JSON.stringify(execution(606, { channel: 'email', subscription_type: '4242', status: 'SUBSCRIBED' }, { email: 'eli@example.com' }));
    expect((await post(subscribe, v3Headers(subscribe))).body).toEqual(answer('no', 'subscription_type_unmapped'));
    expect(await counts()).toEqual({ ...before, calls: before.calls + 1 });

    const ambiguous = nextCallbackId();
    const offers = JSON.stringify(execution(606, { channel: 'email', subscription_type: 777, status: 'NOT_SUBSCRIBED', changed_at: '2026-05-01T08:00:00Z' }, { callbackId: ambiguous, email: 'eli@example.com' }));
    expect((await post(offers, v3Headers(offers))).body).toEqual(answer('yes', 'recorded'));
    expect((await eventsOf(ambiguous)).map((e) => e.purpose)).toEqual(['flash-sales', 'offers']);
    expect(await gate({ hubspotContactId: '606' }, 'offers')).toEqual(blocked);
    expect(await gate({ hubspotContactId: '606' }, 'newsletter')).toEqual(allowed);

    const unmapped = nextCallbackId();
    const body = JSON.stringify(execution(606, { channel: 'email', subscription_type: '4242', status: 'NOT_SUBSCRIBED', changed_at: '2026-05-02T08:00:00Z' }, { callbackId: unmapped, email: 'eli@example.com' }));
    expect((await post(body, v3Headers(body))).body).toEqual(answer('yes', 'recorded'));
    expect((await eventsOf(unmapped)).map((e) => [e.purpose, e.kind])).toEqual([['*', 'withdraw']]);
    expect(await gate({ hubspotContactId: '606' }, 'newsletter')).toEqual(blocked);
  });

  describe('echoes of our own subscription writes', () => {
    it('record nothing when the write log has the change and the state already says it', async () => {
      // Withdrawn in Shopify; the sync then unsubscribed newsletter (12345) in HubSpot, and the workflow reports it.
      await person(customer('7007', '607', 'fay@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z'), shopifyEvent('withdraw', '2026-05-01T10:00:00.000Z')]);
      await recordWrites(store.db, tenant.id, [hubspotSubscriptionFingerprint('fay@example.com', '12345', false)], NOW);

      const before = await counts();
      const callbackId = nextCallbackId();
      const body = JSON.stringify(execution(607, { channel: 'email', subscription_type: '12345', status: 'NOT_SUBSCRIBED', source: 'workflow_or_import' }, { callbackId, email: 'FAY@example.com' }));
      expect((await post(body, v3Headers(body))).body).toEqual(answer('no', 'echo'));
      // Without the email property, the email the store holds for the contact finds the write just the same.
      const noEmail = JSON.stringify(execution(607, { channel: 'email', subscription_type: '12345', status: 'NOT_SUBSCRIBED' }));
      expect((await post(noEmail, v3Headers(noEmail))).body).toEqual(answer('no', 'echo'));
      expect(await counts()).toEqual({ ...before, calls: before.calls + 2 });
      expect(await eventsOf(callbackId)).toEqual([]);

      // Our subscribe of a consent coming back: nothing recorded either.
      await person(customer('7008', '608', 'gus@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')]);
      await recordWrites(store.db, tenant.id, [hubspotSubscriptionFingerprint('gus@example.com', '12345', true)], NOW);
      const beforeGrant = await counts();
      const grant = JSON.stringify(execution(608, { channel: 'email', subscription_type: '12345', status: 'SUBSCRIBED', source: 'preferences_page' }, { email: 'gus@example.com' }));
      expect((await post(grant, v3Headers(grant))).body).toEqual(answer('no', 'echo'));
      expect(await counts()).toEqual({ ...beforeGrant, calls: beforeGrant.calls + 1 });
    });

    it('a matching write of ours does not hide a newer real change: the state says otherwise, so it is recorded', async () => {
      // We unsubscribed hal in HubSpot after a Shopify withdrawal; hal then re-consented at checkout, and now
      // unsubscribes in HubSpot: the same (email, type, status) as our old write, but a withdrawal to keep.
      await person(customer('7009', '609', 'hal@example.com'), [
        shopifyEvent('grant', '2026-03-01T10:00:00.000Z'),
        shopifyEvent('withdraw', '2026-04-01T10:00:00.000Z'),
        shopifyEvent('grant', '2026-05-01T10:00:00.000Z'),
      ]);
      await recordWrites(store.db, tenant.id, [hubspotSubscriptionFingerprint('hal@example.com', '12345', false)], NOW);
      expect(await gate({ hubspotContactId: '609' }, 'newsletter')).toEqual(allowed);
      const body = JSON.stringify(execution(609, { channel: 'email', subscription_type: '12345', status: 'NOT_SUBSCRIBED', changed_at: '2026-05-30T10:00:00Z' }, { email: 'hal@example.com' }));
      expect((await post(body, v3Headers(body))).body).toEqual(answer('yes', 'recorded'));
      expect(await gate({ hubspotContactId: '609' }, 'newsletter')).toEqual(blocked);
    });
  });

  it('answers a repeated callbackId with the stored answer and appends once; other inputs under it get 409', async () => {
    await person(customer('7010', '610', 'ida@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')]);
    const callbackId = nextCallbackId();
    // No changed_at: the request time is used, and a retry (at another time) is still the same execution.
    const body = JSON.stringify(execution(610, { channel: 'email', subscription_type: '', status: 'NOT_SUBSCRIBED' }, { callbackId, email: 'ida@example.com' }));
    const first = await post(body, v2Headers(body));
    expect(first.body).toEqual(answer('yes', 'recorded'));
    expect((await eventsOf(callbackId)).map((e) => e.occurred_at)).toEqual([NOW]);

    const before = await counts();
    h.clock.advance(60_000);
    try {
      const retry = await post(body, v3Headers(body, { timestampMs: Date.parse(NOW) + 60_000 }));
      expect(retry.status).toBe(200);
      expect(retry.text).toBe(first.text);
      expect(await counts()).toEqual(before);
      expect(await eventsOf(callbackId)).toHaveLength(1);

      const other = JSON.stringify(execution(610, { channel: 'email', subscription_type: '', status: 'SUBSCRIBED' }, { callbackId, email: 'ida@example.com' }));
      const res = await post(other, v2Headers(other));
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('conflict');
      expect(await counts()).toEqual(before);
    } finally {
      h.clock.set(NOW);
    }
  });

  it('refuses a callbackId that "Check marketing consent" answered (409), recording nothing', async () => {
    const callbackId = nextCallbackId();
    const check = JSON.stringify({ ...execution(610, { channel: 'email' }, { callbackId }) });
    const checked = await post(check, hubspotHeaders(check, { path: HUBSPOT_CHECK_CONSENT_PATH }), HUBSPOT_CHECK_CONSENT_PATH);
    expect(checked.status).toBe(200);
    const before = await counts();
    const body = JSON.stringify(execution(610, unsubscribeAll(), { callbackId }));
    const res = await post(body, v3Headers(body));
    expect(res.status).toBe(409);
    expect(await counts()).toEqual(before);
  });

  it('concurrent deliveries of one execution append once and give one answer', async () => {
    await person(customer('7011', '611', 'jo@example.com'), [shopifyEvent('grant', '2026-03-01T10:00:00.000Z')]);
    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(611, unsubscribeAll(), { callbackId, email: 'jo@example.com' }));
    const responses = await Promise.all([post(body, v2Headers(body)), post(body, v2Headers(body)), post(body, v3Headers(body))]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(new Set(responses.map((r) => r.text))).toEqual(new Set([JSON.stringify(answer('yes', 'recorded'))]));
    expect(await eventsOf(callbackId)).toHaveLength(1);
    const calls = await store.db.selectFrom('workflow_action_call').selectAll().where('callback_id', '=', callbackId).execute();
    expect(calls).toHaveLength(1);
  });

  it.each([
    ['epoch milliseconds (number)', Date.parse('2026-05-03T04:05:06.789Z'), '2026-05-03T04:05:06.789Z'],
    ['epoch milliseconds (text)', String(Date.parse('2026-05-03T04:05:06.789Z')), '2026-05-03T04:05:06.789Z'],
    ['ISO-8601 with an offset', '2026-05-03T06:05:06+02:00', '2026-05-03T04:05:06.000Z'],
    ['a date', '2026-05-03', '2026-05-03T00:00:00.000Z'],
    ['empty (the request time)', '', NOW],
  ])('reads changed_at given as %s', async (_label, changedAt, occurredAt) => {
    // A new contact each time: an older withdrawal than the one the state rests on would be `no_change`.
    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(7000 + callbackCounter, { channel: 'email', status: 'NOT_SUBSCRIBED', changed_at: changedAt }, { callbackId }));
    expect((await post(body, v3Headers(body))).body).toEqual(answer('yes', 'recorded'));
    expect((await eventsOf(callbackId)).map((e) => e.occurred_at)).toEqual([occurredAt]);
  });

  describe('refused requests: the documented status, and nothing stored', () => {
    const body = JSON.stringify(execution(601, unsubscribeAll(), { callbackId: 'ap-record-refused-0', email: 'ana@example.com' }));
    const unknownPortal = JSON.stringify(execution(601, unsubscribeAll(), { portalId: 123123 }));
    const rows: Array<{ name: string; status: number; code: string; send: () => request.Test }> = [
      { name: 'no signature', status: 401, code: 'unauthorized', send: () => post(body, { 'Content-Type': 'application/json' }) },
      { name: 'a v2 signature of another body', status: 401, code: 'unauthorized', send: () => post(body, v2Headers(body.replace('601', '602'))) },
      { name: 'a v2 signature with a wrong secret', status: 401, code: 'unauthorized', send: () => post(body, v2Headers(body, { secret: 'not-the-secret' })) },
      { name: 'a v2 signature for the other action\'s URI', status: 401, code: 'unauthorized', send: () => post(body, v2Headers(body, { uri: `${APP_URL}${HUBSPOT_CHECK_CONSENT_PATH}` })) },
      { name: 'a valid v1 signature', status: 401, code: 'unauthorized', send: () => post(body, v1Headers(body)) },
      { name: 'a v3 signature older than 5 minutes', status: 401, code: 'unauthorized', send: () => post(body, v3Headers(body, { timestampMs: Date.parse(NOW) - 5 * 60_000 - 1 })) },
      { name: 'a body over the limit', status: 413, code: 'payload_too_large', send: () => post('x'.repeat(WORKFLOW_ACTION_BODY_LIMIT_BYTES + 1), v2Headers('x'.repeat(WORKFLOW_ACTION_BODY_LIMIT_BYTES + 1))) },
      { name: 'a signed body that is not declared JSON', status: 415, code: 'unsupported_media_type', send: () => post(body, { ...v2Headers(body), 'Content-Type': 'text/plain' }) },
      { name: 'an unknown portal', status: 404, code: 'not_found', send: () => post(unknownPortal, v2Headers(unknownPortal)) },
    ];
    it.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
      const before = await counts();
      const res = await row.send();
      expect(res.status).toBe(row.status);
      expect(res.body.error.code).toBe(row.code);
      expect(await counts()).toEqual(before);
    });

    it('403 for a portal whose tenant uninstalled the app', async () => {
      const gone = await addTenant(store, { ...h.runtime, secretBox: null }, { shopDomain: 'gone-record.myshopify.com', hubspotPortalId: '55556' });
      await store.db.updateTable('tenant').set({ status: 'uninstalled' }).where('id', '=', gone.id).execute();
      const before = await counts();
      const goneBody = JSON.stringify(execution(601, unsubscribeAll(), { portalId: 55556 }));
      const res = await post(goneBody, v2Headers(goneBody));
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
      expect(await counts()).toEqual(before);
    });
  });

  it.each([
    ['not JSON', '{"callbackId":', /not valid JSON/],
    ['SMS (no HubSpot subscription API)', JSON.stringify(execution(601, { channel: 'sms', status: 'NOT_SUBSCRIBED' })), /inputFields\.channel: must be email/],
    ['no status', JSON.stringify(execution(601, { channel: 'email' })), /inputFields\.status/],
    ['an unknown status', JSON.stringify(execution(601, { channel: 'email', status: 'UNSUBSCRIBED' })), /inputFields\.status: must be SUBSCRIBED or NOT_SUBSCRIBED/],
    ['an unknown source', JSON.stringify(execution(601, { channel: 'email', status: 'SUBSCRIBED', source: 'form' })), /inputFields\.source/],
    ['a malformed subscription type', JSON.stringify(execution(601, { channel: 'email', status: 'SUBSCRIBED', subscription_type: 'newsletter' })), /inputFields\.subscription_type/],
    ['a changed_at that is no date', JSON.stringify(execution(601, { channel: 'email', status: 'SUBSCRIBED', changed_at: 'yesterday' })), /inputFields\.changed_at: must be a date-time/],
    ['a changed_at without a zone', JSON.stringify(execution(601, { channel: 'email', status: 'SUBSCRIBED', changed_at: '2026-05-03T04:05:06' })), /inputFields\.changed_at/],
    ['a changed_at in the future', JSON.stringify(execution(601, { channel: 'email', status: 'SUBSCRIBED', changed_at: '2026-06-01T12:06:00Z' })), /changed_at: .* is in the future/],
    ['a changed_at in epoch seconds', JSON.stringify(execution(601, { channel: 'email', status: 'SUBSCRIBED', changed_at: 1746093600 })), /epoch seconds/],
    ['a company instead of a contact', JSON.stringify({ ...execution(601, { channel: 'email', status: 'SUBSCRIBED' }), object: { objectId: 601, objectType: 'COMPANY' } }), /object\.objectType: must be CONTACT/],
    ['no callbackId', JSON.stringify({ ...execution(601, { channel: 'email', status: 'SUBSCRIBED' }), callbackId: undefined }), /callbackId/],
  ])('answers %s with 400 naming the problem, storing nothing', async (_label, body, problem) => {
    const before = await counts();
    const res = await post(body, v2Headers(body));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('bad_request');
    expect([res.body.error.message, ...(res.body.error.details ?? [])].join('\n')).toMatch(problem);
    expect(await counts()).toEqual(before);
  });

  it('logs the outcome without the contact id or email', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (chunk: string) => void lines.push(chunk) } });
    const runtime = createRuntime(testConfig({ LOG_LEVEL: 'debug' }), { store, logger, clock: h.clock, ids: countingIds('log') });
    const contactId = 918273645;
    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(contactId, unsubscribeAll(), { callbackId, email: 'private.person@example.com' }));
    const res = await request(buildApp(runtime).callback()).post(PATH).set(v2Headers(body)).send(body);
    expect(res.body).toEqual(answer('yes', 'recorded'));
    const text = lines.join('');
    expect(text).toContain('workflow action recorded consent change');
    expect(text).toContain(callbackId);
    expect(text).not.toContain(String(contactId));
    expect(text).not.toContain('private.person');
  });
});
