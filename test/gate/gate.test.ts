/**
 * The gate API and `explain`, on SQLite and PostgreSQL: API keys (hashed, revocable, per tenant), bad input
 * answered 4xx with nothing leaked, one result per recipient in order, tenant isolation, a 10,000-recipient
 * batch, and the plain-words explanation naming the law.md row and the evidence events.
 */
import request from 'supertest';
import { createApiKey, revokeApiKey } from '../../src/gate/api-keys';
import { appendToLedger } from '../../src/ledger/ledger';
import type { ConsentEvent, NewConsentEvent } from '../../src/domain/consent';
import { upsertProfile } from '../../src/store/subject.repository';
import { resolveSubject } from '../../src/subjects/subjects';
import { setTenantSettings } from '../../src/tenants/tenants';
import { runCli } from '../../src/cli';
import { createHarness, type Harness } from '../helpers/webhooks';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import type { Store } from '../../src/store/database';

const PATH = '/api/v1/gate/check';

describe.each(testDialects())('gate API on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let keyA: string;
  let keyB: string;
  const appended: Record<string, ConsentEvent[]> = {};

  /** A subject with an email, a profile country and these events on the email channel. */
  async function person(email: string, country: string | null, events: Array<Omit<NewConsentEvent, 'subjectId' | 'channel' | 'purpose' | 'source' | 'sourceDeliveryId'>>) {
    const subjectId = await store.db.transaction().execute(async (trx) => {
      const { subjectId: id } = await resolveSubject(trx, h.runtime, h.tenantA.id, [{ kind: 'email', value: email }]);
      if (country) await upsertProfile(trx, { tenant_id: h.tenantA.id, subject_id: id, country, company: null, source_updated_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z' });
      return id;
    });
    const result = await appendToLedger(store, h.runtime, {
      tenantId: h.tenantA.id,
      deliveryKey: null,
      events: events.map((e) => ({ ...e, subjectId, channel: 'email', purpose: '*', source: 'shopify', sourceDeliveryId: null })),
    });
    appended[email] = [...result.events];
  }

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    await setTenantSettings(store, h.runtime, h.tenantA.id, { ...h.tenantA.settings, shopCountry: 'NL' });
    keyA = (await createApiKey(store, h.runtime, h.tenantA.id, 'test')).key;
    keyB = (await createApiKey(store, h.runtime, h.tenantB.id, 'test')).key;
    const ticked = { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' as const };
    await person('consent@example.com', 'NL', [{ kind: 'grant', basis: 'consent', occurredAt: '2026-03-01T10:00:00.000Z', evidence: ticked }]);
    await person('single-de@example.com', 'DE', [{ kind: 'grant', basis: 'consent', occurredAt: '2026-03-01T10:00:00.000Z', evidence: ticked }]);
    await person('shoes@example.com', null, [
      { kind: 'soft_opt_in_earned', basis: 'soft_opt_in', occurredAt: '2026-09-01T10:00:00.000Z', evidence: { orderId: '1001', categories: ['footwear'], profileRow: 'NL/email/B2C' } },
    ]);
    await person('gone@example.com', 'NL', [
      { kind: 'grant', basis: 'consent', occurredAt: '2026-03-01T10:00:00.000Z', evidence: ticked },
      { kind: 'withdraw', basis: null, occurredAt: '2026-04-01T10:00:00.000Z', evidence: { capturePoint: 'hubspot' } },
    ]);
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const check = (body: unknown, key: string | null = keyA, query = '') => {
    const r = request(h.app.callback()).post(PATH + query).set('Content-Type', 'application/json');
    return (key ? r.set('Authorization', `Bearer ${key}`) : r).send(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const campaign = (recipients: unknown[], extra: Record<string, unknown> = {}) => ({ channel: 'email', categories: ['footwear'], recipients, ...extra });

  it('answers one result per recipient, in order, with reasons and evidence', async () => {
    const res = await check(campaign([{ email: 'consent@example.com' }, { email: 'nobody@example.com' }, { email: 'SHOES@example.com' }, { email: 'gone@example.com' }, { email: 'single-de@example.com' }]));
    expect(res.status).toBe(200);
    expect(res.body.rulesVersion).toMatch(/^\d{4}-/);
    expect(res.body.results.map((r: { allowed: boolean; reason: string }) => [r.allowed, r.reason])).toEqual([
      [true, 'consent'],
      [false, 'unknown_recipient'],
      [true, 'soft_opt_in'],
      [false, 'withdrawn'],
      [false, 'double_opt_in_missing'],
    ]);
    expect(res.body.results[0]).toMatchObject({ basis: 'consent', jurisdiction: { row: 'NL/email/B2C', countrySource: 'customer_address' }, evidence: [appended['consent@example.com']![0]!.id] });
    // No address country: the shop's country (setting shopCountry) decides the jurisdiction.
    expect(res.body.results[2]).toMatchObject({ basis: 'soft_opt_in', jurisdiction: { country: 'NL', countrySource: 'shop_country' }, evidence: [appended['shoes@example.com']![0]!.id] });
    expect(res.body.results[0].conditions).toBeUndefined();
  });

  it('soft opt-in covers similar products only; explain=1 lists every check', async () => {
    const res = await check(campaign([{ email: 'shoes@example.com' }], { categories: ['insurance'] }), keyA, '?explain=1');
    expect(res.body.results[0]).toMatchObject({ allowed: false, reason: 'not_similar' });
    expect(res.body.results[0].conditions).toContainEqual({ check: 'similar_products', passed: false, detail: 'no soft opt-in for insurance' });
  });

  it("a tenant's key never sees another tenant's contacts", async () => {
    const res = await check(campaign([{ email: 'consent@example.com' }]), keyB);
    expect(res.status).toBe(200);
    expect(res.body.results[0]).toMatchObject({ allowed: false, reason: 'unknown_recipient' });
  });

  it('answers a 10,000-recipient batch', async () => {
    const recipients = Array.from({ length: 10_000 }, (_, i) => ({ email: i % 2 === 0 ? 'consent@example.com' : `n${i}@example.com` }));
    const res = await check(campaign(recipients));
    expect(res.status).toBe(200);
    expect(res.body.results).toHaveLength(10_000);
    expect(res.body.results.filter((r: { allowed: boolean }) => r.allowed)).toHaveLength(5_000);
  });

  it.each([
    ['no Authorization header', null, 401],
    ['a malformed key', 'not-a-key', 401],
    ['a well-formed unknown key', `cbk_${'A'.repeat(43)}`, 401],
  ])('refuses %s with 401', async (_label, key, status) => {
    const res = await check(campaign([{ email: 'consent@example.com' }]), key as string | null);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe('unauthorized');
    expect(JSON.stringify(res.body)).not.toContain('consent@example.com');
  });

  it('serve mounts the objection route next to the check, and the (cached) check sees the objection at once', async () => {
    await person('objector@example.com', 'NL', [{ kind: 'grant', basis: 'consent', occurredAt: '2026-03-01T10:00:00.000Z', evidence: { affirmative: true, capturePoint: 'checkout' } }]);
    expect((await check(campaign([{ email: 'objector@example.com' }])).expect(200)).body.results[0]).toMatchObject({ allowed: true });
    await request(h.app.callback())
      .post('/api/v1/gate/objection')
      .set('Authorization', `Bearer ${keyA}`)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ channel: 'email', recipients: [{ email: 'objector@example.com' }] }))
      .expect(200);
    const res = await check(campaign([{ email: 'objector@example.com' }])).expect(200);
    expect(res.body.results[0]).toMatchObject({ allowed: false, reason: 'withdrawn' });
  });

  it('a revoked key stops working at once', async () => {
    const { key, info } = await createApiKey(store, h.runtime, h.tenantA.id, 'to revoke');
    expect((await check(campaign([{ email: 'consent@example.com' }]), key)).status).toBe(200);
    await revokeApiKey(store, h.runtime, h.tenantA.id, info.id);
    expect((await check(campaign([{ email: 'consent@example.com' }]), key)).status).toBe(401);
  });

  it.each([
    ['not JSON', '{nope', 'bad_request'],
    ['an unknown channel', campaign([{ email: 'a@example.com' }], { channel: 'fax' }), 'bad_request'],
    ['no recipients', campaign([]), 'bad_request'],
    ['two identities in one recipient', campaign([{ email: 'a@example.com', phone: '+31612345678' }]), 'bad_request'],
    ['an unknown field', campaign([{ email: 'a@example.com' }], { sendAt: 'now' }), 'bad_request'],
    ['a bad decision time', campaign([{ email: 'a@example.com' }], { at: 'yesterday' }), 'bad_request'],
    ['10,001 recipients', campaign(Array.from({ length: 10_001 }, () => ({ email: 'a@example.com' }))), 'bad_request'],
  ])('answers %s with 400 and a message', async (_label, body, code) => {
    const res = await check(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
    expect(typeof res.body.error.message).toBe('string');
  });

  it('a decision time in the future evaluates windows then', async () => {
    // Soft opt-in in NL has no window; consent in FR would (3 years). Here: the same NL consent stays valid.
    const res = await check(campaign([{ email: 'consent@example.com' }], { at: '2030-01-01T00:00:00Z' }));
    expect(res.body).toMatchObject({ decidedAt: '2030-01-01T00:00:00.000Z', results: [{ allowed: true }] });
  });

  it('`explain` names the law.md row and the evidence events, for an allowed and a blocked contact', async () => {
    const out: string[] = [];
    // The CLI opens the suite's database by URL (PostgreSQL: the suite's schema through the `options` parameter).
    const url = db.target.kind === 'sqlite' ? `sqlite:${db.target.file}` : `${db.target.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
    const cli = (args: string[]) => runCli(['node', 'consent-bridge', ...args], { env: { DATABASE_URL: url }, cwd: process.cwd(), stdout: (t) => out.push(t), stderr: (t) => out.push(t) });
    expect(await cli(['explain', '--tenant', h.tenantA.id, '--email', 'shoes@example.com', '--channel', 'email', '--category', 'footwear'])).toBe(0);
    const allowed = out.join('');
    expect(allowed).toContain('ALLOWED (soft_opt_in)');
    expect(allowed).toContain('law.md row NL/email/B2C');
    expect(allowed).toContain(`event ${appended['shoes@example.com']![0]!.id}`);
    expect(allowed).toContain('soft_opt_in_earned');
    out.length = 0;
    expect(await cli(['explain', '--tenant', h.tenantA.id, '--email', 'gone@example.com', '--channel', 'email'])).toBe(0);
    const blocked = out.join('');
    expect(blocked).toContain('BLOCKED (withdrawn)');
    expect(blocked).toContain('✗ not_withdrawn');
    expect(blocked).toContain(`event ${appended['gone@example.com']![1]!.id}`);
    expect(blocked).toMatch(/withdraw\s+email\/\*\s+source shopify/);
  });
});
