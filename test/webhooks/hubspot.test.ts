/**
 * POST /webhooks/hubspot over supertest, on SQLite and PostgreSQL: v3 signatures with their replay window, v1/v2
 * only where a tenant allows them, the bad-input table (status, and nothing written), whole-batch retries,
 * per-event tenant routing, privacy deletions, and what the worker makes of each event (echo, merge, SMS).
 */
import request from 'supertest';
import type { Store } from '../../src/store/database';
import { setTenantSettings } from '../../src/tenants/tenants';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { signV1, signV2 } from '../../webhooks/hubspot/verify';
import { APP_URL, createHarness, fixture, hubspotHeaders, HUBSPOT_SECRET, HUBSPOT_SECRET_PREVIOUS, NOW, writtenRows, type Harness } from '../helpers/webhooks';

const nowMs = Date.parse(NOW);
const event = (name: string, changes: Record<string, unknown> = {}) => ({ ...JSON.parse(fixture(`hubspot/${name}.json`)), ...changes });
const batch = (...events: unknown[]) => JSON.stringify(events);

describe.each(testDialects())('HubSpot webhooks on %s', (dialect) => {
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

  const post = (body: string, headers: Record<string, string>, path = '/webhooks/hubspot') => request(h.app.callback()).post(path).set(headers).send(body);

  describe('bad input: the documented status, and nothing written', () => {
    const body = batch(event('contact-creation'));
    const rows: Array<{ name: string; status: number; send: () => request.Test }> = [
      { name: 'no signature', status: 401, send: () => post(body, { 'Content-Type': 'application/json' }) },
      { name: 'wrong secret', status: 401, send: () => post(body, hubspotHeaders(body, { secret: 'wrong' })) },
      { name: 'timestamp 5 min + 1 s old', status: 401, send: () => post(body, hubspotHeaders(body, { timestampMs: nowMs - 301_000 })) },
      { name: 'timestamp 10 min in the future', status: 401, send: () => post(body, hubspotHeaders(body, { timestampMs: nowMs + 600_000 })) },
      { name: 'timestamp 5 s in the future', status: 401, send: () => post(body, hubspotHeaders(body, { timestampMs: nowMs + 5_000 })) },
      {
        name: 'missing timestamp header',
        status: 401,
        send: () => {
          const headers = hubspotHeaders(body);
          delete headers['X-HubSpot-Request-Timestamp'];
          return post(body, headers);
        },
      },
      { name: 'signed for another URI', status: 401, send: () => post(body, hubspotHeaders(body, { uri: `${APP_URL}/webhooks/other` })) },
      { name: 'signed for another host', status: 401, send: () => post(body, hubspotHeaders(body, { uri: 'https://evil.example.com/webhooks/hubspot' })) },
      { name: 'signed for another method', status: 401, send: () => post(body, hubspotHeaders(body, { method: 'PUT' })) },
      { name: 'signed body differs', status: 401, send: () => post(body.replace('501', '502'), hubspotHeaders(body)) },
      {
        name: 'v1 signature while legacy signatures are off (default)',
        status: 401,
        send: () => post(body, { 'Content-Type': 'application/json', 'X-HubSpot-Signature': signV1(HUBSPOT_SECRET, Buffer.from(body)), 'X-HubSpot-Signature-Version': 'v1' }),
      },
      { name: 'empty body', status: 400, send: () => post('', hubspotHeaders('')) },
      { name: 'not JSON', status: 400, send: () => post('eventId=1', hubspotHeaders('eventId=1')) },
      { name: 'JSON object instead of an array', status: 400, send: () => post('{"eventId":1}', hubspotHeaders('{"eventId":1}')) },
      { name: 'empty array', status: 400, send: () => post('[]', hubspotHeaders('[]')) },
      {
        name: '101 events',
        status: 400,
        send: () => {
          const big = JSON.stringify(Array.from({ length: 101 }, (_, i) => event('contact-creation', { eventId: 5000 + i })));
          return post(big, hubspotHeaders(big));
        },
      },
      {
        name: 'one malformed event in a batch (whole batch refused)',
        status: 400,
        send: () => {
          const mixed = batch(event('contact-creation', { eventId: 6001 }), event('contact-creation', { portalId: 'not-a-number' }));
          return post(mixed, hubspotHeaders(mixed));
        },
      },
      {
        name: 'deeply nested JSON',
        status: 400,
        send: () => {
          const deep = '['.repeat(5000) + ']'.repeat(5000);
          return post(deep, hubspotHeaders(deep));
        },
      },
      {
        name: 'oversize body',
        status: 413,
        send: () => {
          const big = batch(event('contact-creation', { padding: 'x'.repeat(70_000) }));
          return post(big, hubspotHeaders(big));
        },
      },
      { name: 'wrong content type', status: 415, send: () => post(body, { ...hubspotHeaders(body), 'Content-Type': 'text/plain' }) },
      { name: 'wrong method', status: 405, send: () => request(h.app.callback()).put('/webhooks/hubspot').set(hubspotHeaders(body, { method: 'PUT' })).send(body) },
    ];

    it.each(rows)('$name → $status', async ({ status, send }) => {
      const before = await writtenRows(store.db);
      const res = await send();
      expect(res.status).toBe(status);
      expect(res.body.error).toEqual({ code: expect.any(String), message: expect.any(String), ...(res.body.error.details ? { details: expect.any(Array) } : {}) });
      expect(await writtenRows(store.db)).toEqual(before);
    });
  });

  it('accepts v3 signed with the previous secret, a query string, and HubSpot URI decoding', async () => {
    const body = batch(event('contact-creation', { eventId: 7001 }));
    const path = '/webhooks/hubspot?source=hs%3Aapp&x=a%2Cb';
    // HubSpot signs the URI with %3A and %2C decoded.
    const res = await post(body, hubspotHeaders(body, { secret: HUBSPOT_SECRET_PREVIOUS, uri: `${APP_URL}/webhooks/hubspot?source=hs:app&x=a,b` }), path);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', accepted: 1, duplicates: 0, ignored: 0 });
  });

  it('stores each event of a batch once; a batch retried whole adds nothing', async () => {
    const body = batch(event('contact-creation', { eventId: 8001, objectId: 801 }), event('contact-property-email', { eventId: 8002, objectId: 801, propertyValue: 'batch@example.com' }));
    const first = await post(body, hubspotHeaders(body));
    expect(first.body).toEqual({ status: 'ok', accepted: 2, duplicates: 0, ignored: 0 });
    const before = await writtenRows(store.db);
    const retried = await post(body, hubspotHeaders(body));
    expect(retried.body).toEqual({ status: 'ok', accepted: 0, duplicates: 2, ignored: 0 });
    expect(await writtenRows(store.db)).toEqual(before);
    // eventId alone is not the key: the same eventId for another object is a different delivery.
    const sameEventId = batch(event('contact-creation', { eventId: 8001, objectId: 802 }));
    expect((await post(sameEventId, hubspotHeaders(sameEventId))).body.accepted).toBe(1);
    await h.worker.drain();
  });

  it('routes each event by its portalId: unknown portals and unhandled types are counted, privacy deletions recorded', async () => {
    const body = batch(
      event('contact-creation', { eventId: 9001, objectId: 901 }),
      event('contact-creation', { eventId: 9002, objectId: 902, portalId: 11111 }),
      event('contact-creation', { eventId: 9003, objectId: 903, subscriptionType: 'contact.associationChange' }),
      event('contact-privacy-deletion', { eventId: 9004, portalId: 11111 }),
      event('contact-privacy-deletion', { eventId: 9005 }),
    );
    const res = await post(body, hubspotHeaders(body));
    expect(res.body).toEqual({ status: 'ok', accepted: 3, duplicates: 0, ignored: 2 });
    const inbox = await store.db.selectFrom('inbox').select(['tenant_id', 'delivery_key']).where('delivery_key', 'like', '900%').execute();
    expect(inbox).toEqual([{ tenant_id: h.tenantA.id, delivery_key: '9001:12345:62515:901:1777708800000' }]);
    const privacy = await store.db.selectFrom('privacy_request').select(['tenant_id', 'account', 'topic']).where('delivery_key', 'like', '900%').orderBy('delivery_key').execute();
    expect(privacy).toEqual([
      { tenant_id: null, account: '11111', topic: 'contact.privacyDeletion' },
      { tenant_id: h.tenantA.id, account: '62515', topic: 'contact.privacyDeletion' },
    ]);
    const counted = await store.db.selectFrom('unrouted_delivery').select(['account', 'topic', 'reason']).where('platform', '=', 'hubspot').orderBy('account').execute();
    expect(counted).toEqual([
      { account: '11111', topic: 'contact.creation', reason: 'unknown_tenant' },
      { account: '62515', topic: 'contact.associationChange', reason: 'unhandled_topic' },
    ]);
    await h.worker.drain();
  });

  it('accepts v1 and v2 signatures only once the tenant allows legacy signatures', async () => {
    const body = batch(event('contact-creation', { eventId: 10_001, objectId: 1001 }));
    const v2Headers = { 'Content-Type': 'application/json', 'X-HubSpot-Signature': signV2(HUBSPOT_SECRET, 'POST', `${APP_URL}/webhooks/hubspot`, Buffer.from(body)), 'X-HubSpot-Signature-Version': 'v2' };
    expect((await post(body, v2Headers)).status).toBe(401);
    await setTenantSettings(store, h.runtime, h.tenantA.id, { ...h.tenantA.settings, allowLegacyHubspotSignatures: true });
    expect((await post(body, v2Headers)).body).toEqual({ status: 'ok', accepted: 1, duplicates: 0, ignored: 0 });
    const v1Body = batch(event('contact-creation', { eventId: 10_002, objectId: 1002 }));
    const v1Headers = { 'Content-Type': 'application/json', 'X-HubSpot-Signature': signV1(HUBSPOT_SECRET, Buffer.from(v1Body)) };
    expect((await post(v1Body, v1Headers)).body.accepted).toBe(1);
    // A batch that also names a portal which did not opt in is refused whole.
    const mixed = batch(event('contact-creation', { eventId: 10_003 }), event('contact-creation', { eventId: 10_004, portalId: 99999 }));
    expect((await post(mixed, { 'Content-Type': 'application/json', 'X-HubSpot-Signature': signV1(HUBSPOT_SECRET, Buffer.from(mixed)) })).status).toBe(401);
    await setTenantSettings(store, h.runtime, h.tenantA.id, { ...h.tenantA.settings, allowLegacyHubspotSignatures: false });
    await h.worker.drain();
  });

  it('maps events through the worker: identities, SMS withdrawal, echo dropped, merge keeps the most restrictive state, deletion unlinks', async () => {
    const send = async (...events: unknown[]) => {
      const body = batch(...events);
      expect((await post(body, hubspotHeaders(body))).status).toBe(200);
      await h.worker.drain();
    };
    const subjectOf = async (kind: string, value: string) =>
      (await store.db.selectFrom('subject_identity').select('subject_id').where('tenant_id', '=', h.tenantA.id).where('kind', '=', kind).where('value', '=', value).executeTakeFirst())?.subject_id;
    const smsState = async (subjectId: string) => {
      const row = await store.db.selectFrom('consent_current').select('state').where('subject_id', '=', subjectId).where('channel', '=', 'sms').where('purpose', '=', '*').executeTakeFirst();
      return row ? JSON.parse(row.state).status : 'none';
    };

    await send(event('contact-creation'), event('contact-property-email'), event('contact-property-phone'));
    const ana = await subjectOf('hubspot_contact', '501');
    expect(ana).toBeDefined();
    expect(await subjectOf('email', 'ana@example.com')).toBe(ana);
    expect(await subjectOf('phone', '+4915112345678')).toBe(ana);

    // Contact 777 has SMS consent granted in HubSpot (a CRM edit: an observation).
    await send(event('contact-property-sms-consent', { eventId: 2001, objectId: 777, propertyValue: 'subscribed', occurredAt: 1777708700000 }));
    const other = (await subjectOf('hubspot_contact', '777'))!;
    expect(await smsState(other)).toBe('granted');

    // Contact 501 unsubscribes from SMS; then our own write of "subscribed" comes back as an echo and is dropped.
    await send(event('contact-property-sms-consent'));
    expect(await smsState(ana!)).toBe('withdrawn');
    await send(event('contact-property-echo'));
    expect(await smsState(ana!)).toBe('withdrawn');
    const echo = await store.db.selectFrom('inbox').select(['status', 'outcome']).where('delivery_key', 'like', '1005:%').executeTakeFirstOrThrow();
    expect(echo).toEqual({ status: 'done', outcome: 'skipped: echo of our own write' });

    // 777 merged into 501: one subject; the withdrawal (more restrictive than 777's grant) wins.
    await send(event('contact-merge'));
    expect(await subjectOf('hubspot_contact', '777')).toBe(ana);
    expect(await smsState(ana!)).toBe('withdrawn');
    const merge = await store.db.selectFrom('subject_merge').selectAll().where('merged_subject_id', '=', other).executeTakeFirstOrThrow();
    expect(merge).toMatchObject({ into_subject_id: ana, reason: 'merge' });

    // Deleting the contact unlinks its id; the person, their email and history remain.
    await send(event('contact-deletion'));
    expect(await subjectOf('hubspot_contact', '501')).toBeUndefined();
    expect(await subjectOf('email', 'ana@example.com')).toBe(ana);
    expect(await smsState(ana!)).toBe('withdrawn');
  });

  it('merging a withdrawn record into a granted one withdraws the survivor (most restrictive wins)', async () => {
    const send = async (...events: unknown[]) => {
      const body = batch(...events);
      expect((await post(body, hubspotHeaders(body))).status).toBe(200);
      await h.worker.drain();
    };
    await send(
      event('contact-property-sms-consent', { eventId: 3001, objectId: 3100, propertyValue: 'subscribed', occurredAt: 1777708900000 }),
      event('contact-property-sms-consent', { eventId: 3002, objectId: 3200, propertyValue: 'unsubscribed', occurredAt: 1777708800000 }),
    );
    await send(event('contact-merge', { eventId: 3003, objectId: 3100, primaryObjectId: 3100, mergedObjectIds: [3200], occurredAt: 1777709000000 }));
    const survivor = await store.db.selectFrom('subject_identity').select('subject_id').where('tenant_id', '=', h.tenantA.id).where('kind', '=', 'hubspot_contact').where('value', '=', '3200').executeTakeFirstOrThrow();
    const row = await store.db.selectFrom('consent_current').select('state').where('subject_id', '=', survivor.subject_id).where('channel', '=', 'sms').where('purpose', '=', '*').executeTakeFirstOrThrow();
    // The survivor's grant (occurred later than the withdrawal) is a CRM observation, not an affirmative act,
    // and the carried-over withdrawal ends soft opt-in for good.
    expect(JSON.parse(row.state)).toMatchObject({ status: 'withdrawn', softOptInEnded: true });
    const carried = await store.db.selectFrom('consent_event').select(['kind', 'evidence']).where('subject_id', '=', survivor.subject_id).where('kind', '=', 'withdraw').execute();
    expect(carried).toHaveLength(1);
    expect(JSON.parse(carried[0]!.evidence).mergedFrom).toEqual({ subjectId: expect.any(String), eventId: expect.any(String) });
  });
});
