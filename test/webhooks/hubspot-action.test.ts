/**
 * POST /hubspot/actions/check-consent (HubSpot custom workflow action, hubspot.md §6) over supertest, on SQLite
 * and PostgreSQL: v2 and v3 signatures (v1 refused), the answer for allowed, blocked and unknown contacts, the
 * subscription type → purpose mapping, malformed requests, unknown portals, one stored answer per callbackId,
 * and no personal data in the logs.
 */
import { createHash } from 'node:crypto';
import request from 'supertest';
import type { NewConsentEvent } from '../../src/domain/consent';
import { appendToLedger } from '../../src/ledger/ledger';
import { createLogger } from '../../src/log/logger';
import { buildApp, createRuntime } from '../../src/main';
import type { Store } from '../../src/store/database';
import { upsertProfile } from '../../src/store/subject.repository';
import { resolveSubject } from '../../src/subjects/subjects';
import { addTenant, setTenantSettings } from '../../src/tenants/tenants';
import { HUBSPOT_CHECK_CONSENT_PATH, WORKFLOW_ACTION_BODY_LIMIT_BYTES } from '../../webhooks/hubspot/actions';
import { countingIds } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { APP_URL, createHarness, hubspotHeaders, HUBSPOT_SECRET, HUBSPOT_SECRET_PREVIOUS, NOW, testConfig, type Harness } from '../helpers/webhooks';

const URI = `${APP_URL}${HUBSPOT_CHECK_CONSENT_PATH}`;
const PORTAL_A = 62515;
const PORTAL_B = 99999;

/** Signers written from hubspot.md §2, independently of webhooks/hubspot/verify.ts. */
const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const v2Headers = (body: string, options: { secret?: string; uri?: string; withVersion?: boolean } = {}): Record<string, string> => ({
  'Content-Type': 'application/json',
  'X-HubSpot-Signature': sha256Hex(`${options.secret ?? HUBSPOT_SECRET}POST${options.uri ?? URI}${body}`),
  ...(options.withVersion === false ? {} : { 'X-HubSpot-Signature-Version': 'v2' }),
});
const v1Headers = (body: string): Record<string, string> => ({
  'Content-Type': 'application/json',
  'X-HubSpot-Signature': sha256Hex(`${HUBSPOT_SECRET}${body}`),
  'X-HubSpot-Signature-Version': 'v1',
});
const v3Headers = (body: string, options: { secret?: string; timestampMs?: number } = {}) => hubspotHeaders(body, { path: HUBSPOT_CHECK_CONSENT_PATH, ...options });

let callbackCounter = 0;
const nextCallbackId = () => `ap-${PORTAL_A}-56777914962-${++callbackCounter}-0`;

/** An execution request as HubSpot sends it (hubspot.md §6; ids as JSON numbers, extra fields included). */
function execution(contactId: number | string, inputFields: Record<string, unknown>, changes: { callbackId?: string; portalId?: number } = {}) {
  return {
    callbackId: changes.callbackId ?? nextCallbackId(),
    origin: { portalId: changes.portalId ?? PORTAL_A, actionDefinitionId: 10860211, actionDefinitionVersion: 1, extensionDefinitionId: 10860211 },
    context: { source: 'WORKFLOWS', workflowId: 192814114 },
    object: { objectId: contactId, objectType: 'CONTACT' },
    inputFields,
  };
}

const answer = (allowed: 'yes' | 'no', reason: string, basis = 'none') => ({
  outputFields: { consent_allowed: allowed, consent_reason: reason, consent_basis: basis, hs_execution_state: 'SUCCESS' },
});

const ticked = { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' as const };
const grant = (purpose = '*', occurredAt = '2026-03-01T10:00:00.000Z') => ({ kind: 'grant' as const, basis: 'consent' as const, purpose, occurredAt, evidence: ticked });
const withdraw = (purpose = '*', occurredAt = '2026-04-01T10:00:00.000Z') => ({ kind: 'withdraw' as const, basis: null, purpose, occurredAt, evidence: { capturePoint: 'hubspot' } });

describe.each(testDialects())('HubSpot "Check marketing consent" action on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;

  /** A HubSpot contact of tenant A in the Netherlands with these email events. */
  async function contact(contactId: string, events: Array<Pick<NewConsentEvent, 'kind' | 'basis' | 'purpose' | 'occurredAt' | 'evidence'>>) {
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

  const storedCalls = async (callbackId?: string) => {
    let query = store.db.selectFrom('workflow_action_call').selectAll();
    if (callbackId !== undefined) query = query.where('callback_id', '=', callbackId);
    return query.execute();
  };

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    await setTenantSettings(store, h.runtime, h.tenantA.id, {
      ...h.tenantA.settings,
      shopCountry: 'NL',
      purposes: [
        { id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: ['12345'], categoryGroups: [] },
        { id: 'offers', label: 'Offers', hubspotSubscriptionTypeIds: ['777'], categoryGroups: [] },
        { id: 'flash-sales', label: 'Flash sales', hubspotSubscriptionTypeIds: ['777'], categoryGroups: [] },
      ],
    });
    await contact('501', [grant()]);
    await contact('502', [grant(), withdraw()]);
    // Consent for every purpose, then an unsubscribe from the newsletter only.
    await contact('503', [grant('*'), withdraw('newsletter')]);
    await contact('504', [grant()]);
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const post = (body: string, headers: Record<string, string>, path = HUBSPOT_CHECK_CONSENT_PATH) => request(h.app.callback()).post(path).set(headers).send(body);

  it('answers "yes" for a contact with consent, signed with v2 (with or without the version header)', async () => {
    const body = JSON.stringify(execution(501, { channel: 'email' }));
    const res = await post(body, v2Headers(body));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(answer('yes', 'consent', 'consent'));

    const unversioned = JSON.stringify(execution(501, { channel: 'email' }));
    const again = await post(unversioned, v2Headers(unversioned, { withVersion: false }));
    expect(again.status).toBe(200);
    expect(again.body).toEqual(answer('yes', 'consent', 'consent'));
  });

  it('answers "no" with the reason for a withdrawn contact, signed with v3 (current or previous secret)', async () => {
    const body = JSON.stringify(execution(502, { channel: 'email' }));
    const res = await post(body, v3Headers(body));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(answer('no', 'withdrawn'));

    const rotated = JSON.stringify(execution(502, { channel: 'email' }));
    expect((await post(rotated, v3Headers(rotated, { secret: HUBSPOT_SECRET_PREVIOUS }))).body).toEqual(answer('no', 'withdrawn'));
  });

  it('answers "no" (unknown_recipient) for a contact the tenant does not know, and for another portal\'s contact', async () => {
    const unknown = JSON.stringify(execution(999001, { channel: 'email' }));
    expect((await post(unknown, v3Headers(unknown))).body).toEqual(answer('no', 'unknown_recipient'));
    // Contact 501 has consent in portal A; portal B's workflow must not see it.
    const otherPortal = JSON.stringify(execution(501, { channel: 'email' }, { portalId: PORTAL_B }));
    const res = await post(otherPortal, v3Headers(otherPortal));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(answer('no', 'unknown_recipient'));
  });

  it('decides SMS on the SMS channel: email consent does not carry over', async () => {
    const body = JSON.stringify(execution(501, { channel: 'sms' }));
    expect((await post(body, v3Headers(body))).body).toEqual(answer('no', 'no_consent'));
  });

  it('maps a subscription type to its purpose through the settings', async () => {
    // 503 unsubscribed from the newsletter only: subscription type 12345 is the newsletter.
    const newsletter = JSON.stringify(execution(503, { channel: 'email', subscription_type: '12345' }));
    expect((await post(newsletter, v3Headers(newsletter))).body).toEqual(answer('no', 'withdrawn'));
    // The same contact, any purpose (no purpose or subscription type given): consent holds.
    const anyPurpose = JSON.stringify(execution(503, { channel: 'email', subscription_type: '', purpose: '' }));
    expect((await post(anyPurpose, v3Headers(anyPurpose))).body).toEqual(answer('yes', 'consent', 'consent'));
    // Naming the purpose directly gives the same answer as its subscription type.
    const byPurpose = JSON.stringify(execution(503, { channel: 'email', purpose: 'newsletter' }));
    expect((await post(byPurpose, v3Headers(byPurpose))).body).toEqual(answer('no', 'withdrawn'));
    // A subscription type sent as a JSON number is the same id.
    const numeric = JSON.stringify(execution(503, { channel: 'email', subscription_type: 12345 }));
    expect((await post(numeric, v3Headers(numeric))).body).toEqual(answer('no', 'withdrawn'));
  });

  it('never guesses a purpose: unmapped or ambiguous subscription types and unknown purposes answer "no"', async () => {
    // 501 has consent for every purpose, so only the configuration problem can block.
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ channel: 'email', subscription_type: '4242' }, 'subscription_type_unmapped'],
      [{ channel: 'email', subscription_type: '777' }, 'subscription_type_ambiguous'],
      [{ channel: 'email', purpose: 'newsleter' }, 'purpose_unknown'],
    ];
    for (const [inputs, reason] of cases) {
      const body = JSON.stringify(execution(501, inputs));
      const res = await post(body, v3Headers(body));
      expect(res.status).toBe(200);
      expect(res.body).toEqual(answer('no', reason));
    }
  });

  it('answers a repeated callbackId with the stored answer, unchanged after consent changed, and stores one row', async () => {
    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(504, { channel: 'email' }, { callbackId }));
    const first = await post(body, v2Headers(body));
    expect(first.body).toEqual(answer('yes', 'consent', 'consent'));

    await contact('504', [withdraw('*', '2026-05-01T10:00:00.000Z')]);
    const fresh = JSON.stringify(execution(504, { channel: 'email' }));
    expect((await post(fresh, v2Headers(fresh))).body).toEqual(answer('no', 'withdrawn'));

    // HubSpot's retry of the first execution (same callbackId, same request), signed v3 this time.
    const retry = await post(body, v3Headers(body));
    expect(retry.status).toBe(200);
    expect(retry.text).toBe(first.text);
    const rows = await storedCalls(callbackId);
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0]!.answer)).toEqual(first.body);
    expect(rows[0]!.tenant_id).toBe(h.tenantA.id);
  });

  it('concurrent deliveries of one execution store one row and give one answer', async () => {
    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(501, { channel: 'email' }, { callbackId }));
    const responses = await Promise.all([post(body, v2Headers(body)), post(body, v2Headers(body)), post(body, v2Headers(body))]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(new Set(responses.map((r) => r.text)).size).toBe(1);
    expect(await storedCalls(callbackId)).toHaveLength(1);
  });

  it('refuses a callbackId reused for another contact (409) and keeps the first answer', async () => {
    const callbackId = nextCallbackId();
    const first = JSON.stringify(execution(501, { channel: 'email' }, { callbackId }));
    expect((await post(first, v3Headers(first))).body).toEqual(answer('yes', 'consent', 'consent'));
    const other = JSON.stringify(execution(502, { channel: 'email' }, { callbackId }));
    const res = await post(other, v3Headers(other));
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    const rows = await storedCalls(callbackId);
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0]!.answer)).toEqual(answer('yes', 'consent', 'consent'));
  });

  describe('refused requests: the documented status, and nothing stored', () => {
    const body = JSON.stringify(execution(501, { channel: 'email' }, { callbackId: 'ap-refused-0' }));
    const rows: Array<{ name: string; status: number; code: string; send: () => request.Test }> = [
      { name: 'no signature', status: 401, code: 'unauthorized', send: () => post(body, { 'Content-Type': 'application/json' }) },
      { name: 'a v2 signature of another body', status: 401, code: 'unauthorized', send: () => post(body, v2Headers(body.replace('501', '502'))) },
      { name: 'a v2 signature with a wrong secret', status: 401, code: 'unauthorized', send: () => post(body, v2Headers(body, { secret: 'not-the-secret' })) },
      { name: 'a v2 signature for another URI', status: 401, code: 'unauthorized', send: () => post(body, v2Headers(body, { uri: `${APP_URL}/webhooks/hubspot` })) },
      { name: 'a valid v1 signature (version header v1)', status: 401, code: 'unauthorized', send: () => post(body, v1Headers(body)) },
      {
        name: 'a valid v1 signature without a version header',
        status: 401,
        code: 'unauthorized',
        send: () => post(body, { 'Content-Type': 'application/json', 'X-HubSpot-Signature': sha256Hex(`${HUBSPOT_SECRET}${body}`) }),
      },
      { name: 'a v3 signature older than 5 minutes', status: 401, code: 'unauthorized', send: () => post(body, v3Headers(body, { timestampMs: Date.parse(NOW) - 5 * 60_000 - 1 })) },
      { name: 'a bad v3 signature next to a valid v2 one', status: 401, code: 'unauthorized', send: () => post(body, { ...v2Headers(body), ...v3Headers(body, { secret: 'wrong' }) }) },
      { name: 'a body over the limit', status: 413, code: 'payload_too_large', send: () => post('x'.repeat(WORKFLOW_ACTION_BODY_LIMIT_BYTES + 1), v2Headers('x'.repeat(WORKFLOW_ACTION_BODY_LIMIT_BYTES + 1))) },
      { name: 'a signed body that is not declared JSON', status: 415, code: 'unsupported_media_type', send: () => post(body, { ...v2Headers(body), 'Content-Type': 'text/plain' }) },
      { name: 'an unknown portal', status: 404, code: 'not_found', send: () => post(body.replace(String(PORTAL_A), '123123'), v2Headers(body.replace(String(PORTAL_A), '123123'))) },
    ];
    it.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
      const before = (await storedCalls()).length;
      const res = await row.send();
      expect(res.status).toBe(row.status);
      expect(res.body.error.code).toBe(row.code);
      expect(typeof res.body.error.message).toBe('string');
      expect((await storedCalls()).length).toBe(before);
    });
  });

  it.each([
    ['not JSON', '{"callbackId":', /not valid JSON/],
    ['no callbackId', JSON.stringify({ ...execution(501, { channel: 'email' }), callbackId: undefined }), /callbackId/],
    ['no portalId', JSON.stringify({ ...execution(501, { channel: 'email' }), origin: { actionDefinitionId: 1 } }), /origin\.portalId/],
    ['a company instead of a contact', JSON.stringify({ ...execution(501, { channel: 'email' }), object: { objectId: 501, objectType: 'COMPANY' } }), /object\.objectType: must be CONTACT/],
    ['a non-numeric contact id', JSON.stringify(execution('abc', { channel: 'email' })), /object\.objectId/],
    ['no channel', JSON.stringify(execution(501, {})), /inputFields\.channel/],
    ['an unknown channel', JSON.stringify(execution(501, { channel: 'fax' })), /inputFields\.channel/],
    ['both purpose and subscription type', JSON.stringify(execution(501, { channel: 'email', purpose: 'newsletter', subscription_type: '12345' })), /not both/],
    ['a malformed category', JSON.stringify(execution(501, { channel: 'email', category: 'shoes, Bad Category' })), /inputFields\.category/],
  ])('answers %s with 400 and a message naming the problem', async (_label, body, problem) => {
    const before = (await storedCalls()).length;
    const res = await post(body, v2Headers(body));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('bad_request');
    expect([res.body.error.message, ...(res.body.error.details ?? [])].join('\n')).toMatch(problem);
    expect((await storedCalls()).length).toBe(before);
  });

  it('answers 403 for a portal whose tenant uninstalled the app', async () => {
    const gone = await addTenant(store, { ...h.runtime, secretBox: null }, { shopDomain: 'gone-shop.myshopify.com', hubspotPortalId: '55555' });
    await store.db.updateTable('tenant').set({ status: 'uninstalled' }).where('id', '=', gone.id).execute();
    const body = JSON.stringify(execution(501, { channel: 'email' }, { portalId: 55555 }));
    const res = await post(body, v2Headers(body));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
  });

  it('logs the answer without the contact id', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (chunk: string) => void lines.push(chunk) } });
    const runtime = createRuntime(testConfig({ LOG_LEVEL: 'debug' }), { store, logger, clock: h.clock, ids: countingIds('log') });
    const app = buildApp(runtime);
    const contactId = 918273645;
    const callbackId = nextCallbackId();
    const body = JSON.stringify(execution(contactId, { channel: 'email' }, { callbackId }));
    const res = await request(app.callback()).post(HUBSPOT_CHECK_CONSENT_PATH).set(v2Headers(body)).send(body);
    expect(res.body).toEqual(answer('no', 'unknown_recipient'));
    const text = lines.join('');
    expect(text).toContain('workflow action answered');
    expect(text).toContain(callbackId);
    expect(text).not.toContain(String(contactId));
  });
});
