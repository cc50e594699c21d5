/**
 * The expiry scheduler (src/consent/expiry.ts) on SQLite and PostgreSQL: state written through the worker's own
 * path (applyEffects), expiries appended as ledger events, and the send gate reading the changed projection.
 */
import { EMPTY_STATE, type ConsentState } from '../../src/domain/consent';
import type { SubjectlessEvent } from '../../src/domain/inbound';
import { AppError } from '../../src/domain/errors';
import { consentRuleFor, dueExpiries, expireDue, expiryJob } from '../../src/consent/expiry';
import { checkRecipients, parseGateRequest } from '../../src/gate/gate';
import { applyEffects } from '../../src/inbox/apply';
import { rebuildProjection, rowToEvent, verifyLedger } from '../../src/ledger/ledger';
import type { Store } from '../../src/store/database';
import { addTenant, type Tenant } from '../../src/tenants/tenants';
import { fixedClock } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { createHarness, type Harness } from '../helpers/webhooks';

const iso = (day: string): string => `${day}T00:00:00.000Z`;

function softOptIn(earned: string, validUntil: string, categories: string[], purpose = '*', channel: 'email' | 'sms' = 'email'): SubjectlessEvent {
  return {
    channel,
    purpose,
    kind: 'soft_opt_in_earned',
    basis: 'soft_opt_in',
    occurredAt: iso(earned),
    source: 'shopify',
    sourceDeliveryId: null,
    evidence: { affirmative: false, capturePoint: 'checkout', orderId: `o-${earned}`, categories, validUntil: iso(validUntil) },
  };
}

function grant(day: string, purpose = '*', affirmative = true): SubjectlessEvent {
  return {
    channel: 'email',
    purpose,
    kind: 'grant',
    basis: 'consent',
    occurredAt: iso(day),
    source: 'shopify',
    sourceDeliveryId: null,
    evidence: affirmative ? { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' } : { note: 'observed in HubSpot' },
  };
}

describe.each(testDialects())('expiry scheduler on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;
  let delivery = 0;

  beforeEach(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
  });
  afterEach(async () => {
    await store.close();
    await db.drop();
  });

  /** A person of `tenant` with a country (null: none known) and consent events, through the worker's write path. */
  async function person(tenant: Tenant, email: string, country: string | null, events: SubjectlessEvent[]): Promise<void> {
    delivery += 1;
    const identities = [{ kind: 'email' as const, value: email }];
    await store.db.transaction().execute((trx) =>
      applyEffects(trx, store.dialect, h.runtime, { tenantId: tenant.id, ledgerKey: `test:${delivery}` }, [
        { kind: 'identify', identities, profile: { country, company: null, sourceUpdatedAt: iso('2020-01-01') } },
        { kind: 'consent', identities, events },
      ]),
    );
  }

  async function tenant(shop: string, settings?: unknown): Promise<Tenant> {
    return addTenant(store, { ...h.runtime, secretBox: null }, { shopDomain: `${shop}.myshopify.com`, hubspotPortalId: String(1000 + shop.length * 7 + shop.charCodeAt(0)), ...(settings ? { settings } : {}) });
  }

  /** The gate's answer for one email: reason (and categories) at `at`. */
  async function gate(t: Tenant, email: string, at: string, categories: string[] = []): Promise<string> {
    const response = await checkRecipients(store, t, parseGateRequest({ channel: 'email', categories, recipients: [{ email }] }), new Date(at));
    return response.results[0]!.reason;
  }

  const expire = (at: string, options: { tenantId?: string; pageSize?: number } = {}) => expireDue(store, { clock: fixedClock(at), ids: h.runtime.ids }, options);

  async function events(tenantId: string, kind: string) {
    const rows = await store.db.selectFrom('consent_event').selectAll().where('tenant_id', '=', tenantId).where('kind', '=', kind).orderBy('seq').execute();
    return rows.map(rowToEvent);
  }

  async function stateOf(tenantId: string, email: string, purpose = '*', channel = 'email'): Promise<ConsentState> {
    const row = await store.db
      .selectFrom('consent_current')
      .innerJoin('subject_identity', (j) => j.onRef('subject_identity.subject_id', '=', 'consent_current.subject_id').onRef('subject_identity.tenant_id', '=', 'consent_current.tenant_id'))
      .select('consent_current.state')
      .where('consent_current.tenant_id', '=', tenantId)
      .where('subject_identity.kind', '=', 'email')
      .where('subject_identity.value', '=', email)
      .where('consent_current.channel', '=', channel)
      .where('consent_current.purpose', '=', purpose)
      .executeTakeFirstOrThrow();
    return JSON.parse(row.state) as ConsentState;
  }

  async function ledgerIntact(tenantId: string): Promise<void> {
    expect((await verifyLedger(store.db, tenantId)).ok).toBe(true);
    expect((await rebuildProjection(store, h.clock, tenantId)).differences).toBe(0);
  }

  it('IE: a soft opt-in past its validUntil ends by a ledger event; the gate blocks; a second run appends nothing', async () => {
    const a = h.tenantA;
    await person(a, 'one@example.ie', 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear'])]);
    await person(a, 'two@example.ie', 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear']), softOptIn('2025-05-01', '2026-05-01', ['apparel'])]);
    await person(a, 'later@example.ie', 'IE', [softOptIn('2025-09-01', '2026-09-01', ['footwear'])]);

    expect(await gate(a, 'one@example.ie', iso('2025-06-01'), ['footwear'])).toBe('soft_opt_in');
    // decide already blocks an ended window at decision time; the scheduler makes it part of the state.
    expect(await gate(a, 'one@example.ie', iso('2026-02-01'), ['footwear'])).toBe('soft_opt_in_expired');

    const first = await expire(iso('2026-02-01'));
    expect(first).toEqual({ tenants: 2, scanned: 3, softOptInExpired: 2, consentExpired: 0 });

    const expired = await events(a.id, 'soft_opt_in_expired');
    expect(expired).toHaveLength(2);
    for (const event of expired) {
      expect(event).toMatchObject({
        channel: 'email',
        purpose: '*',
        basis: null,
        source: 'system',
        occurredAt: iso('2026-01-10'),
        evidence: { categories: ['footwear'], validUntil: iso('2026-01-10'), note: expect.stringContaining('2026-01-10') },
      });
    }
    expect(await gate(a, 'one@example.ie', iso('2026-02-01'), ['footwear'])).toBe('no_consent');
    expect((await stateOf(a.id, 'one@example.ie')).softOptIn).toEqual({});
    // Only the ended group goes; the other purchase's group stays (and still allows).
    expect(await gate(a, 'two@example.ie', iso('2026-02-01'), ['footwear'])).toBe('not_similar');
    expect(await gate(a, 'two@example.ie', iso('2026-02-01'), ['apparel'])).toBe('soft_opt_in');
    expect(Object.keys((await stateOf(a.id, 'two@example.ie')).softOptIn)).toEqual(['apparel']);
    // A grant not yet ended is untouched.
    expect((await stateOf(a.id, 'later@example.ie')).softOptIn.footwear).toMatchObject({ validUntil: iso('2026-09-01') });
    expect(await gate(a, 'later@example.ie', iso('2026-02-01'), ['footwear'])).toBe('soft_opt_in');

    const second = await expire(iso('2026-02-01'));
    expect(second).toMatchObject({ softOptInExpired: 0, consentExpired: 0 });
    expect(await events(a.id, 'soft_opt_in_expired')).toHaveLength(2);
    // Even at a later time nothing already expired is emitted again; the next window to end is.
    expect(await expire(iso('2026-05-02'))).toMatchObject({ softOptInExpired: 1, consentExpired: 0 });
    expect((await stateOf(a.id, 'two@example.ie')).softOptIn).toEqual({});
    await ledgerIntact(a.id);
  });

  it('FR: consent granted 2022-01-01 expires 2025-01-01 (36 months); a renewal before the end survives', async () => {
    const a = h.tenantA;
    await person(a, 'fr@example.fr', 'FR', [grant('2022-01-01')]);
    await person(a, 'renewed@example.fr', 'FR', [grant('2022-01-01'), grant('2024-06-01')]);
    await person(a, 'synced@example.fr', 'FR', [grant('2022-01-01'), grant('2024-06-01', '*', false)]);
    await person(a, 'nl@example.nl', 'NL', [grant('2022-01-01')]);
    expect(await gate(a, 'fr@example.fr', iso('2024-12-01'))).toBe('consent');

    const result = await expire(iso('2025-02-01'));
    expect(result).toMatchObject({ softOptInExpired: 0, consentExpired: 2 });
    const expired = await events(a.id, 'consent_expired');
    expect(expired).toHaveLength(2);
    expect(expired[0]).toMatchObject({
      purpose: '*',
      basis: null,
      source: 'system',
      occurredAt: iso('2025-01-01'),
      evidence: { validUntil: iso('2025-01-01'), grantedAt: iso('2022-01-01'), profileRow: 'FR/email/B2C' },
    });
    expect(await stateOf(a.id, 'fr@example.fr')).toMatchObject({ status: 'expired', basis: null });
    expect(await gate(a, 'fr@example.fr', iso('2025-02-01'))).toBe('consent_expired');
    // A sync re-observing the old grant is no renewal: it expires too.
    expect(await gate(a, 'synced@example.fr', iso('2025-02-01'))).toBe('consent_expired');
    // A renewal (a new affirmative grant) before the end survives; NL sets no validity.
    expect(await stateOf(a.id, 'renewed@example.fr')).toMatchObject({ status: 'granted', grantedAt: iso('2024-06-01') });
    expect(await gate(a, 'renewed@example.fr', iso('2025-02-01'))).toBe('consent');
    expect(await gate(a, 'nl@example.nl', iso('2025-02-01'))).toBe('consent');

    // A renewal from before the end that arrives after the expiry event still survives it (the event names the
    // grant it ends), and the next run leaves it alone until its own end.
    await person(a, 'fr@example.fr', 'FR', [grant('2024-11-01')]);
    expect(await stateOf(a.id, 'fr@example.fr')).toMatchObject({ status: 'granted', grantedAt: iso('2024-11-01') });
    expect(await gate(a, 'fr@example.fr', iso('2025-02-01'))).toBe('consent');
    expect(await expire(iso('2025-02-01'))).toMatchObject({ consentExpired: 0 });
    expect(await expire(iso('2027-11-02'))).toMatchObject({ consentExpired: 2 }); // fr's renewal and renewed's
    expect(await gate(a, 'fr@example.fr', iso('2027-11-02'))).toBe('consent_expired');
    expect((await events(a.id, 'consent_expired')).map((e) => e.evidence.grantedAt).sort()).toEqual([iso('2022-01-01'), iso('2022-01-01'), iso('2024-06-01'), iso('2024-11-01')]);
    await ledgerIntact(a.id);
  });

  it('a stored validUntil on a consent ends it in any jurisdiction', async () => {
    const a = h.tenantA;
    const withEnd: SubjectlessEvent = { ...grant('2025-01-01'), evidence: { affirmative: true, capturePoint: 'form:/promo', validUntil: iso('2025-07-01') } };
    await person(a, 'promo@example.nl', 'NL', [withEnd]);
    expect(await expire(iso('2025-06-30'))).toMatchObject({ consentExpired: 0 });
    expect(await expire(iso('2025-07-01'))).toMatchObject({ consentExpired: 1 });
    const [event] = await events(a.id, 'consent_expired');
    expect(event).toMatchObject({ occurredAt: iso('2025-07-01'), evidence: { validUntil: iso('2025-07-01'), grantedAt: iso('2025-01-01'), profileRow: 'NL/email/B2C' } });
    expect(event!.evidence.note).toMatch(/validUntil recorded with the grant/);
    expect(await gate(a, 'promo@example.nl', iso('2025-07-02'))).toBe('consent_expired');
  });

  it('finds everything across tenants with pages smaller than the row count; purpose rows and channels; jurisdiction from shopCountry', async () => {
    const a = h.tenantA;
    const b = h.tenantB;
    const fr = await tenant('fr-shop', { shopCountry: 'FR' });
    for (let i = 0; i < 5; i++) await person(a, `a${i}@example.ie`, 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear'])]);
    // A `*` soft opt-in shows in the newsletter row too: one `*` expiry ends it in both.
    await person(a, 'news@example.ie', 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear']), grant('2025-03-01', 'newsletter')]);
    // A purpose-specific soft opt-in ends by an event of that purpose; SMS is its own channel.
    await person(a, 'own@example.ie', 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear'], 'newsletter'), softOptIn('2025-01-10', '2026-01-10', ['footwear'], '*', 'sms')]);
    for (let i = 0; i < 3; i++) await person(b, `b${i}@example.ie`, 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear', 'apparel'])]);
    // No country known: the shop's country (FR) decides.
    await person(fr, 'nocountry@example.com', null, [grant('2022-01-01')]);
    await person(fr, 'recent@example.com', null, [grant('2025-06-01')]);

    const result = await expire(iso('2026-02-01'), { pageSize: 2 });
    expect(result).toMatchObject({ tenants: 3, softOptInExpired: 5 + 1 + 2 + 3, consentExpired: 1 });
    expect(result.scanned).toBeGreaterThan(2);

    const soiA = await events(a.id, 'soft_opt_in_expired');
    expect(soiA).toHaveLength(8);
    expect(soiA.filter((e) => e.purpose === 'newsletter')).toHaveLength(1);
    expect(soiA.filter((e) => e.channel === 'sms')).toHaveLength(1);
    expect((await stateOf(a.id, 'news@example.ie', 'newsletter')).softOptIn).toEqual({});
    expect((await stateOf(a.id, 'news@example.ie', 'newsletter')).status).toBe('granted');
    expect((await stateOf(a.id, 'own@example.ie', 'newsletter')).softOptIn).toEqual({});
    expect((await stateOf(a.id, 'own@example.ie', '*', 'sms')).softOptIn).toEqual({});

    const soiB = await events(b.id, 'soft_opt_in_expired');
    expect(soiB).toHaveLength(3);
    expect(soiB[0]!.evidence.categories).toEqual(['apparel', 'footwear']);
    expect(await events(fr.id, 'consent_expired')).toHaveLength(1);
    expect(await gate(fr, 'nocountry@example.com', iso('2026-02-01'))).toBe('consent_expired');
    expect(await gate(fr, 'recent@example.com', iso('2026-02-01'))).toBe('consent');

    // Nothing due is left anywhere, whatever the page size.
    for (const t of [a, b, fr]) {
      for (const row of await store.db.selectFrom('consent_current').select('state').where('tenant_id', '=', t.id).execute()) {
        const state = JSON.parse(row.state) as ConsentState;
        for (const g of Object.values(state.softOptIn)) expect(g.validUntil! > iso('2026-02-01')).toBe(true);
      }
      await ledgerIntact(t.id);
    }
    expect(await expire(iso('2026-02-01'), { pageSize: 1 })).toMatchObject({ tenants: 3, softOptInExpired: 0, consentExpired: 0 });
  });

  it('one tenant only with tenantId; uninstalled tenants are left to an explicit run; unknown tenant is not_found', async () => {
    const a = h.tenantA;
    const b = h.tenantB;
    await person(a, 'a@example.ie', 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear'])]);
    await person(b, 'b@example.ie', 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear'])]);
    expect(await expire(iso('2026-02-01'), { tenantId: b.id })).toMatchObject({ tenants: 1, softOptInExpired: 1 });
    expect(await events(a.id, 'soft_opt_in_expired')).toHaveLength(0);

    await store.db.transaction().execute((trx) => applyEffects(trx, store.dialect, h.runtime, { tenantId: a.id, ledgerKey: 'test:uninstall' }, [{ kind: 'uninstall' }]));
    expect(await expire(iso('2026-02-01'))).toMatchObject({ tenants: 1, softOptInExpired: 0 });
    expect(await expire(iso('2026-02-01'), { tenantId: a.shopDomain })).toMatchObject({ tenants: 1, softOptInExpired: 1 });

    await expect(expire(iso('2026-02-01'), { tenantId: 'nobody' })).rejects.toMatchObject({ code: 'not_found' });
    await expect(expire(iso('2026-02-01'), { tenantId: 'nobody' })).rejects.toBeInstanceOf(AppError);
    await expect(expire(iso('2026-02-01'), { pageSize: 0 })).rejects.toThrow(/pageSize/);
  });

  it('expiryJob runs expireDue for the worker loop and returns the events appended', async () => {
    await person(h.tenantA, 'job@example.ie', 'IE', [softOptIn('2025-01-10', '2026-01-10', ['footwear'])]);
    await person(h.tenantA, 'job@example.fr', 'FR', [grant('2022-01-01')]);
    const job = expiryJob(store, { clock: fixedClock(iso('2026-02-01')), ids: h.runtime.ids }, { pageSize: 1 });
    expect(job).toMatchObject({ name: 'expiry', intervalMs: 15 * 60_000 });
    expect(await job.run()).toBe(2);
    expect(await job.run()).toBe(0);
  });
});

describe('dueExpiries and consentRuleFor (pure)', () => {
  const state = (over: Partial<ConsentState>): ConsentState => ({ ...EMPTY_STATE, ...over });
  const settings = { shopCountry: null, doubleOptInCountries: ['DE', 'AT'], categoryGroups: [], defaultTaxonomyDepth: 2, purposes: [], objectionOrderAttribute: null, inboxRetentionDays: 30, allowLegacyHubspotSignatures: false, reconciliationIntervalMinutes: 5 };
  const facts = (country: string | null, over: { hasCompany?: boolean; emails?: string[]; tags?: string[] } = {}) => ({
    subjectId: 's',
    identities: [],
    emails: over.emails ?? [],
    country: country ? { country, source: 'customer_address' as const } : null,
    hasCompany: over.hasCompany ?? false,
    tags: over.tags ?? [],
    states: new Map(),
  });

  it('groups ended soft opt-ins by end time, one event each, and keys them deterministically', () => {
    const s = state({
      softOptIn: {
        footwear: { earnedAt: iso('2025-01-10'), validUntil: iso('2026-01-10'), eventId: 'e1', orderId: '1' },
        apparel: { earnedAt: iso('2025-01-10'), validUntil: iso('2026-01-10'), eventId: 'e1', orderId: '1' },
        bags: { earnedAt: iso('2025-01-05'), validUntil: iso('2026-01-05'), eventId: 'e0', orderId: '0' },
        hats: { earnedAt: iso('2025-06-01'), validUntil: iso('2026-06-01'), eventId: 'e2', orderId: '2' },
        open: { earnedAt: iso('2025-06-01'), validUntil: null, eventId: 'e3', orderId: '3' },
      },
    });
    const due = dueExpiries('s1', 'email', '*', s, null, iso('2026-02-01'));
    expect(due.map((d) => d.deliveryKey)).toEqual([`expiry:soi:s1:email:*:${iso('2026-01-05')}`, `expiry:soi:s1:email:*:${iso('2026-01-10')}`]);
    expect(due[1]!.event.evidence.categories).toEqual(['apparel', 'footwear']);
    expect(dueExpiries('s1', 'email', '*', s, null, iso('2026-02-01'))).toEqual(due);
  });

  it('computes the consent end as decide does: earliest of stored validUntil and the row validity; soft-opt-in-based grants and other statuses never', () => {
    const fr = consentRuleFor(settings, facts('FR'), 'email', iso('2025-02-01'));
    expect(fr).toEqual({ row: 'FR/email/B2C', consentValidity: { kind: 'months_from_last_contact', months: 36 } });
    const granted = state({ status: 'granted', basis: 'consent', grantedAt: iso('2022-01-01') });
    expect(dueExpiries('s', 'email', '*', granted, fr, iso('2024-12-31'))).toEqual([]);
    expect(dueExpiries('s', 'email', '*', granted, fr, iso('2025-01-01'))[0]).toMatchObject({ deliveryKey: `expiry:consent:s:email:*:${iso('2022-01-01')}`, event: { occurredAt: iso('2025-01-01') } });
    expect(dueExpiries('s', 'email', '*', { ...granted, validUntil: iso('2023-01-01') }, fr, iso('2025-02-01'))[0]!.event.occurredAt).toBe(iso('2023-01-01'));
    expect(dueExpiries('s', 'email', '*', { ...granted, basis: 'soft_opt_in' }, fr, iso('2025-02-01'))).toEqual([]);
    expect(dueExpiries('s', 'email', '*', { ...granted, status: 'withdrawn' }, fr, iso('2025-02-01'))).toEqual([]);
    expect(dueExpiries('s', 'email', '*', granted, consentRuleFor(settings, facts('NL'), 'email', iso('2025-02-01')), iso('2025-02-01'))).toEqual([]);
  });

  it('resolves the row as the gate does: shopCountry fallback, EU default, B2B by company, customer tag or email domain, WhatsApp as SMS', () => {
    expect(consentRuleFor({ ...settings, shopCountry: 'FR' }, undefined, 'email', iso('2025-01-01'))!.row).toBe('FR/email/B2C');
    expect(consentRuleFor({ ...settings, shopCountry: 'FR' }, facts('IE'), 'email', iso('2025-01-01'))!.row).toBe('IE/email/B2C');
    expect(consentRuleFor(settings, facts(null), 'email', iso('2025-01-01'))!.row).toBe('EU/email/B2C');
    const b2b = { ...settings, b2b: { companyOnAddress: true, customerTags: ['Wholesale'], emailDomains: ['corp.fr'] } };
    expect(consentRuleFor(b2b, facts('FR', { tags: ['vip', 'wholesale'] }), 'email', iso('2025-01-01'))!.row).toBe('FR/email/B2B');
    expect(consentRuleFor(b2b, facts('FR', { tags: ['vip'] }), 'email', iso('2025-01-01'))!.row).toBe('FR/email/B2C');
    expect(consentRuleFor(b2b, facts('FR', { hasCompany: true }), 'email', iso('2025-01-01'))!.row).toBe('FR/email/B2B');
    expect(consentRuleFor(b2b, facts('FR', { emails: ['x@corp.fr'] }), 'email', iso('2025-01-01'))!.row).toBe('FR/email/B2B');
    expect(consentRuleFor(b2b, facts('FR', { emails: ['x@home.fr'] }), 'email', iso('2025-01-01'))!.row).toBe('FR/email/B2C');
    expect(consentRuleFor(settings, facts('FR'), 'whatsapp', iso('2025-01-01'))!.row).toBe('FR/sms/B2C');
  });
});
