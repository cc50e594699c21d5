/**
 * The gate's in-memory cache (src/gate/cache.ts) against the database, on SQLite and PostgreSQL: every change
 * made through the real write paths (the inbox's applyEffects, the ledger append, `ledger rebuild`) is seen by
 * the next batch, whether this cache or another instance's was warm; and for random histories the cached answer
 * equals the one read straight from the database.
 */
import fc from 'fast-check';
import type { InboundEffect, SubjectlessEvent } from '../../src/domain/inbound';
import { GateCache } from '../../src/gate/cache';
import { databaseFacts } from '../../src/gate/facts';
import { checkRecipients, parseGateRequest, type GateResponse } from '../../src/gate/gate';
import { applyEffects } from '../../src/inbox/apply';
import { pruneSubjectChanges } from '../../src/ledger/changes';
import type { Store } from '../../src/store/database';
import type { Tenant } from '../../src/tenants/tenants';
import { createHarness, type Harness } from '../helpers/webhooks';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

const grant: SubjectlessEvent = {
  channel: 'email',
  purpose: '*',
  kind: 'grant',
  basis: 'consent',
  occurredAt: '2026-03-01T10:00:00.000Z',
  source: 'shopify',
  sourceDeliveryId: null,
  evidence: { affirmative: true, capturePoint: 'checkout', optInLevel: 'confirmed_opt_in' },
};
const withdraw = (occurredAt: string): SubjectlessEvent => ({ ...grant, kind: 'withdraw', basis: null, occurredAt, evidence: { capturePoint: 'hubspot' } });
const email = (value: string) => ({ kind: 'email' as const, value });
const customer = (value: string) => ({ kind: 'shopify_customer' as const, value });

describe.each(testDialects())('gate cache on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let tenant: Tenant;
  let delivery = 0;

  /** Apply effects through the worker's own write path, as one delivery. */
  async function apply(effects: InboundEffect[]): Promise<void> {
    delivery += 1;
    await store.db.transaction().execute((trx) => applyEffects(trx, store.dialect, h.runtime, { tenantId: tenant.id, ledgerKey: `test:${dialect}:${delivery}` }, effects));
  }

  const check = (facts: GateCache | undefined, recipients: Array<Record<string, string | number>>): Promise<GateResponse> =>
    checkRecipients(store, tenant, parseGateRequest({ channel: 'email', recipients }), h.clock.now(), facts ? { facts } : {});
  const reasons = (response: GateResponse) => response.results.map((r) => r.reason);

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
    tenant = h.tenantA;
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('sees a withdrawal committed after the cache was warm, in this cache and in another instance\u2019s', async () => {
    await apply([{ kind: 'consent', identities: [customer('1'), email('ana@example.com')], events: [grant] }]);
    const mine = new GateCache();
    const theirs = new GateCache();
    expect(reasons(await check(mine, [{ email: 'ana@example.com' }]))).toEqual(['consent']);
    expect(reasons(await check(theirs, [{ email: 'ana@example.com' }]))).toEqual(['consent']);

    await apply([{ kind: 'consent', identities: [customer('1')], events: [withdraw('2026-04-01T10:00:00.000Z')] }]);
    expect(reasons(await check(mine, [{ email: 'ana@example.com' }]))).toEqual(['withdrawn']);
    expect(reasons(await check(theirs, [{ shopifyCustomerId: '1' }]))).toEqual(['withdrawn']);
    expect(mine.stats().hits + mine.stats().misses).toBeGreaterThan(0);
  });

  it('learns a new identity of a known person, though it answered "unknown" for it before', async () => {
    await apply([{ kind: 'consent', identities: [customer('2'), email('bo@example.com')], events: [grant] }]);
    const cache = new GateCache();
    expect(reasons(await check(cache, [{ email: 'bo.new@example.com' }, { email: 'bo@example.com' }]))).toEqual(['unknown_recipient', 'consent']);
    await apply([{ kind: 'identify', identities: [customer('2'), email('bo.new@example.com')], profile: null }]);
    expect(reasons(await check(cache, [{ email: 'bo.new@example.com' }]))).toEqual(['consent']);
  });

  it('follows a merge: the merged identity answers with the survivor\u2019s most restrictive state', async () => {
    await apply([{ kind: 'consent', identities: [customer('3'), email('cy@example.com')], events: [grant] }]);
    await apply([{ kind: 'consent', identities: [customer('4'), email('cy.work@example.com')], events: [grant, withdraw('2026-05-01T10:00:00.000Z')] }]);
    const cache = new GateCache();
    expect(reasons(await check(cache, [{ email: 'cy@example.com' }, { email: 'cy.work@example.com' }]))).toEqual(['consent', 'withdrawn']);
    await apply([{ kind: 'merge', into: customer('3'), merged: [customer('4')] }]);
    expect(reasons(await check(cache, [{ email: 'cy@example.com' }, { email: 'cy.work@example.com' }]))).toEqual(['withdrawn', 'withdrawn']);
  });

  it('follows an unlink and a profile change (jurisdiction)', async () => {
    await apply([{ kind: 'consent', identities: [customer('5'), email('di@example.com')], events: [{ ...grant, evidence: { affirmative: true, optInLevel: 'single_opt_in' } }] }]);
    await apply([{ kind: 'identify', identities: [customer('5')], profile: { country: 'NL', company: null, sourceUpdatedAt: '2026-05-01T00:00:00.000Z' } }]);
    const cache = new GateCache();
    const first = await check(cache, [{ email: 'di@example.com' }]);
    expect(first.results[0]).toMatchObject({ reason: 'consent', jurisdiction: { country: 'NL' } });
    // DE expects double opt-in (tenant default doubleOptInCountries): the same single opt-in no longer holds.
    await apply([{ kind: 'identify', identities: [customer('5')], profile: { country: 'DE', company: null, sourceUpdatedAt: '2026-06-01T00:00:00.000Z' } }]);
    expect((await check(cache, [{ email: 'di@example.com' }])).results[0]).toMatchObject({ reason: 'double_opt_in_missing', jurisdiction: { country: 'DE' } });
    await apply([{ kind: 'unlink', identity: email('di@example.com') }]);
    expect(reasons(await check(cache, [{ email: 'di@example.com' }]))).toEqual(['unknown_recipient']);
  });

  it('starts over when the change feed was pruned past its watermark, and after being idle', async () => {
    let nowMs = 0;
    const cache = new GateCache({ nowMs: () => nowMs });
    await apply([{ kind: 'consent', identities: [customer('6'), email('ed@example.com')], events: [grant] }]);
    expect(reasons(await check(cache, [{ email: 'ed@example.com' }]))).toEqual(['consent']);
    await apply([{ kind: 'consent', identities: [customer('6')], events: [withdraw('2026-05-02T10:00:00.000Z')] }]);
    h.clock.advance(2 * 3_600_000);
    expect(await pruneSubjectChanges(store, h.clock.now())).toBeGreaterThan(0);
    nowMs += 31 * 60_000;
    expect(reasons(await check(cache, [{ email: 'ed@example.com' }]))).toEqual(['withdrawn']);
    expect(cache.stats().resets).toBe(1);
  });

  it('keeps no more subjects than its bound, and still answers from the database beyond it', async () => {
    for (let i = 0; i < 12; i++) await apply([{ kind: 'consent', identities: [customer(String(100 + i)), email(`bound${i}@example.com`)], events: [grant] }]);
    const cache = new GateCache({ maxSubjects: 5 });
    const recipients = Array.from({ length: 12 }, (_, i) => ({ email: `bound${i}@example.com` }));
    expect(reasons(await check(cache, recipients))).toEqual(Array(12).fill('consent'));
    expect(cache.stats().subjects).toBeLessThanOrEqual(5);
    expect(cache.stats().evictions).toBeGreaterThan(0);
    expect(reasons(await check(cache, recipients))).toEqual(Array(12).fill('consent'));
  });

  it('answers exactly as the database does, for random histories of grants, withdrawals, identities, merges and unlinks', async () => {
    const people = ['p0', 'p1', 'p2', 'p3', 'p4'];
    const operation = fc.oneof(
      fc.record({ op: fc.constant('grant' as const), who: fc.constantFrom(...people), day: fc.integer({ min: 1, max: 28 }) }),
      fc.record({ op: fc.constant('withdraw' as const), who: fc.constantFrom(...people), day: fc.integer({ min: 1, max: 28 }) }),
      fc.record({ op: fc.constant('alias' as const), who: fc.constantFrom(...people), alias: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ op: fc.constant('merge' as const), who: fc.constantFrom(...people), other: fc.constantFrom(...people) }),
      fc.record({ op: fc.constant('unlink' as const), who: fc.constantFrom(...people), alias: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ op: fc.constant('country' as const), who: fc.constantFrom(...people), country: fc.constantFrom('NL', 'DE', 'FR', 'IE', null) }),
      fc.record({ op: fc.constant('check' as const) }),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), async (operations) => {
        run += 1;
        const id = (who: string) => customer(`${run}${who.slice(1)}000`);
        const mail = (who: string, alias = 0) => email(`${who}.${alias}.${run}@example.com`);
        const recipients = people.flatMap((who) => [
          ...[0, 1, 2, 3].map((alias) => ({ email: mail(who, alias).value })),
          // As senders type them: the cache tries a value as given before normalising it, and must answer as
          // normalising first does.
          { email: ` ${mail(who, 0).value.toUpperCase()} ` },
          { shopifyCustomerId: Number(id(who).value) },
          { shopifyCustomerId: id(who).value },
        ]);
        const cache = new GateCache();
        const compare = async () => {
          const cached = await check(cache, recipients);
          const direct = await check(undefined, recipients);
          expect(cached.results).toEqual(direct.results);
        };
        await compare();
        let seq = 0;
        for (const o of operations) {
          seq += 1;
          const at = `2026-05-${String(o.op === 'grant' || o.op === 'withdraw' ? o.day : 1).padStart(2, '0')}T10:00:${String(seq % 60).padStart(2, '0')}.000Z`;
          if (o.op === 'grant') await apply([{ kind: 'consent', identities: [id(o.who), mail(o.who)], events: [{ ...grant, occurredAt: at }] }]);
          if (o.op === 'withdraw') await apply([{ kind: 'consent', identities: [id(o.who), mail(o.who)], events: [withdraw(at)] }]);
          if (o.op === 'alias') await apply([{ kind: 'identify', identities: [id(o.who), mail(o.who, o.alias)], profile: null }]);
          if (o.op === 'merge' && o.who !== o.other) await apply([{ kind: 'merge', into: id(o.who), merged: [id(o.other)] }]);
          if (o.op === 'unlink') await apply([{ kind: 'unlink', identity: mail(o.who, o.alias) }]);
          if (o.op === 'country') {
            await apply([{ kind: 'identify', identities: [id(o.who)], profile: { country: o.country, company: null, sourceUpdatedAt: `2026-06-01T00:00:${String(seq % 60).padStart(2, '0')}.000Z` } }]);
          }
          if (o.op === 'check') await compare();
        }
        await compare();
        // A batch decides each recipient as a batch of one would: contexts shared within a batch (one per
        // country and audience) change nothing.
        const alone = [];
        for (const recipient of recipients) alone.push(...(await check(undefined, [recipient])).results);
        expect((await check(cache, recipients)).results).toEqual(alone);
      }),
      { numRuns: 25 },
    );
  });

  it('decides a batch mixing countries, B2B and B2C of one country, and single and confirmed opt-ins as one by one', async () => {
    // B2B by email domain; DE expects double opt-in (law.md, and the default setting), so a single opt-in there
    // is refused: the batch's shared contexts must keep audiences and countries apart.
    const b2bTenant: Tenant = { ...tenant, settings: { ...tenant.settings, b2b: { companyOnAddress: false, customerTags: [], emailDomains: ['corp.example'] }, doubleOptInCountries: ['DE', 'AT'] } };
    const single: SubjectlessEvent = { ...grant, evidence: { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' } };
    const people = [
      { id: '501', email: 'ada@corp.example', country: 'DE', event: single },
      { id: '502', email: 'bea@home.example', country: 'DE', event: single },
      { id: '503', email: 'cem@corp.example', country: 'DE', event: grant },
      { id: '504', email: 'dan@home.example', country: 'FR', event: single },
      { id: '505', email: 'eva@corp.example', country: 'FR', event: single },
      { id: '506', email: 'fay@home.example', country: null, event: single },
    ];
    for (const p of people) {
      await apply([{ kind: 'consent', identities: [customer(p.id), email(p.email)], events: [p.event] }]);
      await apply([{ kind: 'identify', identities: [customer(p.id)], profile: { country: p.country, company: null, sourceUpdatedAt: '2026-06-01T00:00:00.000Z' } }]);
    }
    const recipients = [...people, ...people].map((p) => ({ email: p.email }));
    const checkAs = (facts: GateCache | undefined, list: typeof recipients) =>
      checkRecipients(store, b2bTenant, parseGateRequest({ channel: 'email', recipients: list }), h.clock.now(), facts ? { facts } : {});
    const batch = await checkAs(new GateCache(), recipients);
    const alone = [];
    for (const recipient of recipients) alone.push(...(await checkAs(undefined, [recipient])).results);
    expect(batch.results).toEqual(alone);
    const audiences = batch.results.slice(0, people.length).map((r) => `${r.jurisdiction.country}/${r.jurisdiction.audience}`);
    expect(audiences).toEqual(['DE/B2B', 'DE/B2C', 'DE/B2B', 'FR/B2C', 'FR/B2B', 'null/B2C']);
    expect(batch.results.slice(0, 3).map((r) => r.reason)).toEqual(['double_opt_in_missing', 'double_opt_in_missing', 'consent']);
  });

  it('finds no one by a stored identity value that is not normal, as the database lookup finds no one', async () => {
    // Every write normalises; a row written otherwise (by hand, or by an older normalisation) can never be looked
    // up, so the cache's as-given lookup must not find it either, even with its subject loaded.
    await apply([{ kind: 'consent', identities: [customer('77'), email('odd@example.com')], events: [grant] }]);
    const { subject_id } = await store.db.selectFrom('subject_identity').select('subject_id').where('tenant_id', '=', tenant.id).where('kind', '=', 'shopify_customer').where('value', '=', '77').executeTakeFirstOrThrow();
    await store.db.insertInto('subject_identity').values({ tenant_id: tenant.id, kind: 'email', value: 'Weird@Example.com', subject_id, created_at: '2026-05-01T00:00:00.000Z' }).execute();
    const cache = new GateCache();
    expect(reasons(await check(cache, [{ shopifyCustomerId: '77' }]))).toEqual(['consent']); // the subject is loaded
    const recipients = [{ email: 'Weird@Example.com' }, { email: 'weird@example.com' }, { email: 'ODD@example.com' }];
    expect(reasons(await check(cache, recipients))).toEqual(['unknown_recipient', 'unknown_recipient', 'consent']);
    expect((await check(cache, recipients)).results).toEqual((await check(undefined, recipients)).results);
  });

  it('is what the gate route uses in serve, and databaseFacts is what it falls back to', async () => {
    const direct = await databaseFacts.resolve(store, tenant.id, [{ email: 'ana@example.com' }, { email: 'not an address' }]);
    expect(direct[0]?.states.size).toBeGreaterThan(0);
    expect(direct[1]).toBeUndefined();
  });
});
