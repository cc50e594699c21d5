/**
 * The gate's objection endpoint (`POST /api/v1/gate/objection`, issue 4 §5) on SQLite and PostgreSQL: an
 * objection blocks at once and ends soft opt-in for good (law.md R4 (f), conflict rule 4), an unknown person's
 * objection is kept as a suppression, an Idempotency-Key replay changes nothing, bad keys and bodies are refused
 * with nothing written, and one tenant's key never touches another tenant's people.
 *
 * Every gate check runs twice, straight from the database and through a warm gate cache (src/gate/cache.ts),
 * and both must agree: the objection's transaction must reach the cache's change feed.
 */
import request from 'supertest';
import type Koa from 'koa';
import { createApiKey, revokeApiKey } from '../../src/gate/api-keys';
import { GateCache } from '../../src/gate/cache';
import { GATE_OBJECTION_PATH, MAX_CLOCK_SKEW_MS, gateObjectionRoutes } from '../../src/gate/objection';
import { gateRoutes } from '../../src/gate/routes';
import { appendToLedger, currentStateOf, verifyLedger } from '../../src/ledger/ledger';
import { silentLogger } from '../../src/log/logger';
import { createServer } from '../../src/server/app';
import type { Store } from '../../src/store/database';
import { resolveSubject } from '../../src/subjects/subjects';
import { setTenantSettings } from '../../src/tenants/tenants';
import { createHarness, writtenRows, type Harness } from '../helpers/webhooks';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

const CHECK_PATH = '/api/v1/gate/check';

interface Decision {
  allowed: boolean;
  reason: string;
}

describe.each(testDialects())('gate objection API on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let keyA: string;
  let keyB: string;
  /** Gate reading the database on every request. */
  let plainApp: Koa;
  /** Gate in front of a warm cache, as in `serve`. */
  let cachedApp: Koa;

  /** A customer of tenant A with an email and a soft opt-in for footwear earned by an order. */
  async function softOptInCustomer(email: string, occurredAt = '2026-05-01T10:00:00.000Z', orderId = '1001') {
    const subjectId = await store.db.transaction().execute(async (trx) => (await resolveSubject(trx, h.runtime, h.tenantA.id, [{ kind: 'email', value: email }])).subjectId);
    await earnSoftOptIn(subjectId, occurredAt, orderId);
    return subjectId;
  }
  async function earnSoftOptIn(subjectId: string, occurredAt: string, orderId: string) {
    await appendToLedger(store, h.runtime, {
      tenantId: h.tenantA.id,
      deliveryKey: null,
      events: [
        {
          subjectId,
          channel: 'email',
          purpose: '*',
          kind: 'soft_opt_in_earned',
          basis: 'soft_opt_in',
          occurredAt,
          source: 'shopify',
          sourceDeliveryId: `order:${orderId}`,
          evidence: { orderId, categories: ['footwear'], profileRow: 'NL/email/B2C' },
        },
      ],
    });
  }

  const object = (body: unknown, key: string | null = keyA, headers: Record<string, string> = {}) => {
    let r = request(plainApp.callback()).post(GATE_OBJECTION_PATH).set('Content-Type', 'application/json');
    if (key) r = r.set('Authorization', `Bearer ${key}`);
    for (const [name, value] of Object.entries(headers)) r = r.set(name, value);
    return r.send(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const objection = (recipients: unknown[], extra: Record<string, unknown> = {}) => ({ channel: 'email', recipients, ...extra });

  /** The gate's decision for one recipient of a footwear email campaign; the cached and uncached gate must agree. */
  async function decision(recipient: Record<string, unknown>, key = keyA, extra: Record<string, unknown> = {}): Promise<Decision> {
    const body = JSON.stringify({ channel: 'email', categories: ['footwear'], recipients: [recipient], ...extra });
    const answers: Decision[] = [];
    for (const app of [plainApp, cachedApp]) {
      const res = await request(app.callback()).post(CHECK_PATH).set('Content-Type', 'application/json').set('Authorization', `Bearer ${key}`).send(body);
      expect(res.status).toBe(200);
      answers.push(res.body.results[0]);
    }
    expect(answers[1]).toEqual(answers[0]);
    return answers[0]!;
  }

  async function ledgerEvents(tenantId: string) {
    return store.db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenantId).orderBy('seq').execute();
  }

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    await setTenantSettings(store, h.runtime, h.tenantA.id, { ...h.tenantA.settings, shopCountry: 'NL' });
    await setTenantSettings(store, h.runtime, h.tenantB.id, { ...h.tenantB.settings, shopCountry: 'NL' });
    keyA = (await createApiKey(store, h.runtime, h.tenantA.id, 'test')).key;
    keyB = (await createApiKey(store, h.runtime, h.tenantB.id, 'test')).key;
    const serverDeps = { config: h.runtime.config, logger: silentLogger, ids: h.runtime.ids, readiness: async () => ({ ready: true, checks: {} }) };
    const objectionRoutes = gateObjectionRoutes({ store, clock: h.clock, ids: h.runtime.ids });
    plainApp = createServer(serverDeps, [objectionRoutes, gateRoutes({ store, clock: h.clock })]);
    cachedApp = createServer(serverDeps, [gateRoutes({ store, clock: h.clock, facts: new GateCache() })]);
  });
  beforeEach(() => h.clock.set('2026-06-01T12:00:00.000Z'));
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('an objection blocks a soft opt-in contact, and a later purchase does not revive the soft opt-in', async () => {
    const subjectId = await softOptInCustomer('shoes@example.com');
    expect(await decision({ email: 'shoes@example.com' })).toMatchObject({ allowed: true, reason: 'soft_opt_in' });

    const res = await object(objection([{ email: 'Shoes@Example.com ' }], { capturePoint: 'preference-center', note: 'clicked "no more offers"' }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ recorded: 1, duplicate: false, results: [{ subjectCreated: false, eventId: expect.any(String) }] });
    expect(await decision({ email: 'shoes@example.com' })).toMatchObject({ allowed: false, reason: 'withdrawn' });

    const [event] = (await ledgerEvents(h.tenantA.id)).filter((e) => e.id === res.body.results[0].eventId);
    expect(event).toMatchObject({ subject_id: subjectId, channel: 'email', purpose: '*', kind: 'object', basis: null, source: 'gate', occurred_at: '2026-06-01T12:00:00.000Z', source_delivery_id: null });
    expect(JSON.parse(event!.evidence)).toEqual({ affirmative: true, capturePoint: 'preference-center', note: 'clicked "no more offers"', channelObjected: 'email' });

    // A new order two weeks later earns nothing: the objection ended soft opt-in on email for good.
    h.clock.set('2026-06-15T12:00:00.000Z');
    await earnSoftOptIn(subjectId, '2026-06-15T10:00:00.000Z', '1002');
    const after = await decision({ email: 'shoes@example.com' });
    expect(after.allowed).toBe(false);
    expect(after.reason).toBe('withdrawn');
    const email = (await currentStateOf(store.db, h.tenantA.id, subjectId)).find((s) => s.channel === 'email' && s.purpose === '*')!.state;
    expect(email).toMatchObject({ status: 'withdrawn', softOptInEnded: true, softOptInEndedAt: '2026-06-01T12:00:00.000Z', softOptIn: {} });
    expect((await verifyLedger(store.db, h.tenantA.id)).ok).toBe(true);
  });

  it('an objection on one channel leaves the others alone', async () => {
    await softOptInCustomer('sandals@example.com');
    expect((await object(objection([{ email: 'sandals@example.com' }], { channel: 'sms' }))).status).toBe(200);
    expect(await decision({ email: 'sandals@example.com' })).toMatchObject({ allowed: true, reason: 'soft_opt_in' });
    expect(await decision({ email: 'sandals@example.com' }, keyA, { channel: 'sms' })).toMatchObject({ allowed: false, reason: 'withdrawn' });
  });

  it("an unknown person's objection creates a subject and suppresses them", async () => {
    // The cache remembers the identity as unknown; the objection's change-feed row must end that.
    expect(await decision({ email: 'stranger@example.com' })).toMatchObject({ allowed: false, reason: 'unknown_recipient' });
    const before = await writtenRows(store.db);
    const res = await object(objection([{ email: 'stranger@example.com' }]));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ recorded: 1, duplicate: false, results: [{ subjectCreated: true }] });
    const after = await writtenRows(store.db);
    expect(after).toEqual({ ...before, subject: before.subject! + 1, subject_identity: before.subject_identity! + 1, consent_event: before.consent_event! + 1 });

    const blocked = await decision({ email: 'stranger@example.com' });
    expect(blocked.allowed).toBe(false);
    expect(blocked.reason).not.toBe('unknown_recipient');
    expect(blocked.reason).toBe('withdrawn');
  });

  it('records every recipient in order, whatever identity names them, in one append', async () => {
    await softOptInCustomer('mixed@example.com');
    const res = await object(
      objection(
        [{ email: 'mixed@example.com' }, { phone: '+31 6 1234 5678' }, { shopifyCustomerId: 7001 }, { hubspotContactId: '501' }, { email: 'MIXED@example.com' }, { phone: '+31612345678' }],
        { occurredAt: '2026-06-01T09:30:00+02:00', purpose: 'newsletter' },
      ),
    );
    expect(res.status).toBe(200);
    expect(res.body.recorded).toBe(6);
    expect(res.body.results.map((r: { subjectCreated: boolean }) => r.subjectCreated)).toEqual([false, true, true, true, false, false]);
    const ids = res.body.results.map((r: { eventId: string }) => r.eventId);
    const events = (await ledgerEvents(h.tenantA.id)).slice(-6);
    expect(events.map((e) => e.id)).toEqual(ids);
    // One append: consecutive seqs, same occurredAt normalised to UTC, the purpose given.
    expect(events.map((e) => Number(e.seq))).toEqual(events.map((_, i) => Number(events[0]!.seq) + i));
    expect(new Set(events.map((e) => `${e.occurred_at}|${e.purpose}|${e.kind}`))).toEqual(new Set(['2026-06-01T07:30:00.000Z|newsletter|object']));
    expect(events[0]!.subject_id).toBe(events[4]!.subject_id);
    expect(events[1]!.subject_id).toBe(events[5]!.subject_id);
    for (const recipient of [{ email: 'mixed@example.com' }, { phone: '+31612345678' }, { shopifyCustomerId: '7001' }, { hubspotContactId: 501 }]) {
      expect(await decision(recipient, keyA, { purpose: 'newsletter' })).toMatchObject({ allowed: false, reason: 'withdrawn' });
    }
    // The objection named one purpose: the soft opt-in recorded for every purpose (`*`) still stands for the others.
    expect(await decision({ email: 'mixed@example.com' })).toMatchObject({ allowed: true, reason: 'soft_opt_in' });
  });

  it('an Idempotency-Key replay appends nothing and creates nothing', async () => {
    const body = objection([{ email: 'replay-known@example.com' }, { email: 'replay-new@example.com' }]);
    const first = await object(body, keyA, { 'Idempotency-Key': 'pref-centre-42' });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ recorded: 2, duplicate: false });
    const events = (await ledgerEvents(h.tenantA.id)).slice(-2);
    expect(events.map((e) => e.source_delivery_id)).toEqual(['gate-objection:pref-centre-42', 'gate-objection:pref-centre-42']);
    const before = await writtenRows(store.db);

    const again = await object(body, keyA, { 'Idempotency-Key': 'pref-centre-42' });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ recorded: 0, duplicate: true, results: [] });
    // The same key with other recipients is still the same delivery: not even their subjects are created.
    const other = await object(objection([{ email: 'replay-other@example.com' }]), keyA, { 'Idempotency-Key': 'pref-centre-42' });
    expect(other.body).toEqual({ recorded: 0, duplicate: true, results: [] });
    expect(await writtenRows(store.db)).toEqual(before);
    expect(await decision({ email: 'replay-other@example.com' })).toMatchObject({ reason: 'unknown_recipient' });

    // Keys are per tenant: tenant B's first use of the same key is not a replay.
    const b = await object(body, keyB, { 'Idempotency-Key': 'pref-centre-42' });
    expect(b.body).toMatchObject({ recorded: 2, duplicate: false });
    // Without a key, every request appends.
    for (let i = 0; i < 2; i++) expect((await object(objection([{ email: 'replay-new@example.com' }]))).body).toMatchObject({ recorded: 1, duplicate: false });
  });

  it("tenant B's key cannot object for tenant A's contact: it records B's own subject", async () => {
    const subjectA = await softOptInCustomer('boots@example.com');
    const eventsA = await ledgerEvents(h.tenantA.id);
    const res = await object(objection([{ email: 'boots@example.com' }]), keyB);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ recorded: 1, results: [{ subjectCreated: true }] });
    const [eventB] = (await ledgerEvents(h.tenantB.id)).filter((e) => e.id === res.body.results[0].eventId);
    expect(eventB!.subject_id).not.toBe(subjectA);
    expect(await ledgerEvents(h.tenantA.id)).toEqual(eventsA);
    expect(await decision({ email: 'boots@example.com' }, keyA)).toMatchObject({ allowed: true, reason: 'soft_opt_in' });
    expect(await decision({ email: 'boots@example.com' }, keyB)).toMatchObject({ allowed: false, reason: 'withdrawn' });
  });

  it('accepts 1,000 recipients in one request', async () => {
    const recipients = Array.from({ length: 1_000 }, (_, i) => ({ email: `bulk-${i}@example.com` }));
    const res = await object(objection(recipients));
    expect(res.status).toBe(200);
    expect(res.body.recorded).toBe(1_000);
    expect(res.body.results.every((r: { subjectCreated: boolean }) => r.subjectCreated)).toBe(true);
    expect((await decision({ email: 'bulk-999@example.com' })).reason).toBe('withdrawn');
  });

  it(`accepts an occurredAt up to ${MAX_CLOCK_SKEW_MS / 60_000} minutes ahead (clock skew)`, async () => {
    const res = await object(objection([{ email: 'skew@example.com' }], { occurredAt: '2026-06-01T12:04:59Z' }));
    expect(res.status).toBe(200);
    expect((await ledgerEvents(h.tenantA.id)).at(-1)!.occurred_at).toBe('2026-06-01T12:04:59.000Z');
  });

  describe('refusals write nothing', () => {
    let revokedKey: string;
    beforeAll(async () => {
      const created = await createApiKey(store, h.runtime, h.tenantA.id, 'revoked');
      await revokeApiKey(store, h.runtime, h.tenantA.id, created.info.id);
      revokedKey = created.key;
    });

    it.each([
      ['no Authorization header', null],
      ['a malformed key', 'not-a-key'],
      ['a well-formed unknown key', `cbk_${'A'.repeat(43)}`],
      ['a revoked key', 'revoked'],
    ])('401 for %s', async (_label, key) => {
      const before = await writtenRows(store.db);
      const res = await object(objection([{ email: 'refused@example.com' }]), key === 'revoked' ? revokedKey : key);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthorized');
      expect(JSON.stringify(res.body)).not.toContain('refused@example.com');
      expect(await writtenRows(store.db)).toEqual(before);
    });

    const one = [{ email: 'refused@example.com' }];
    it.each([
      ['not JSON', '{nope', null],
      ['an empty body', '', null],
      ['an unknown channel', objection(one, { channel: 'fax' }), 'channel'],
      ['no recipients', objection([]), 'recipients'],
      ['1,001 recipients', objection(Array.from({ length: 1_001 }, (_, i) => ({ email: `r${i}@example.com` }))), 'recipients'],
      ['a recipient with two identities', objection([{ email: 'a@example.com', phone: '+31612345678' }]), 'recipients.0'],
      ['a recipient with no identity', objection([{}]), 'recipients.0'],
      ['an unknown recipient field', objection([{ mail: 'a@example.com' }]), 'recipients.0'],
      ['an unknown field', objection(one, { kind: 'withdraw' }), '(body)'],
      ['a malformed purpose', objection(one, { purpose: 'News Letter' }), 'purpose'],
      ['an occurredAt without zone', objection(one, { occurredAt: '2026-06-01T12:00:00' }), 'occurredAt'],
      ['an occurredAt 6 minutes ahead', objection(one, { occurredAt: '2026-06-01T12:06:00Z' }), 'occurredAt'],
      ['a capturePoint over 200 characters', objection(one, { capturePoint: 'x'.repeat(201) }), 'capturePoint'],
      ['an empty capturePoint', objection(one, { capturePoint: '  ' }), 'capturePoint'],
      ['an email that is no address', objection([{ email: 'someone' }]), 'recipients.0.email'],
      ['a phone that is no number', objection([{ email: 'a@example.com' }, { phone: '12-ab' }]), 'recipients.1.phone'],
    ])('400 for %s', async (_label, body, detail) => {
      const before = await writtenRows(store.db);
      const res = await object(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('bad_request');
      expect(typeof res.body.error.message).toBe('string');
      if (detail !== null) expect(res.body.error.details.some((d: string) => d.startsWith(`${detail}`))).toBe(true);
      expect(await writtenRows(store.db)).toEqual(before);
    });

    it.each([
      ['with a space', 'two words'],
      ['over 255 characters', 'k'.repeat(256)],
    ])('400 for an Idempotency-Key %s', async (_label, key) => {
      const before = await writtenRows(store.db);
      const res = await object(objection(one), keyA, { 'Idempotency-Key': key });
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([expect.stringContaining('Idempotency-Key')]);
      expect(await writtenRows(store.db)).toEqual(before);
    });

    it('415 for a body that is not declared JSON', async () => {
      const before = await writtenRows(store.db);
      const res = await request(plainApp.callback())
        .post(GATE_OBJECTION_PATH)
        .set('Authorization', `Bearer ${keyA}`)
        .set('Content-Type', 'text/plain')
        .send(JSON.stringify(objection(one)));
      expect(res.status).toBe(415);
      expect(res.body.error.code).toBe('unsupported_media_type');
      expect(await writtenRows(store.db)).toEqual(before);
    });

    it('413 for a body over 256 KiB', async () => {
      const before = await writtenRows(store.db);
      const res = await object(objection(one, { note: 'x'.repeat(256 * 1024) }));
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('payload_too_large');
      expect(await writtenRows(store.db)).toEqual(before);
    });

    it('405 for GET', async () => {
      const res = await request(plainApp.callback()).get(GATE_OBJECTION_PATH).set('Authorization', `Bearer ${keyA}`);
      expect(res.status).toBe(405);
    });
  });
});
