/**
 * The send decision against law.md §1–2: a table over every email and SMS row (B2C and B2B) of every profile,
 * then the cross-cutting cases (sale definitions, windows, double opt-in, objections, similarity, registers,
 * dated rules), then the property of conflict rule 2 / R0 (1).
 *
 * States are built by folding real events (src/domain/fold.ts), as the projection does.
 */
import fc from 'fast-check';
import type { ConsentEvent, EventKind, Evidence } from '../../../src/domain/consent';
import { foldConsent } from '../../../src/domain/fold';
import { decide, type DecisionRequest, type DecisionSettings, type SubjectForDecision } from '../../../src/rules/decide';
import { PROFILES, profileForCountry, type Audience, type ProfileId } from '../../../src/rules/profiles';

const NOW = '2026-11-24T12:00:00.000Z';
const SETTINGS: DecisionSettings = { doubleOptInCountries: ['DE', 'AT'], softOptInMaxMonths: null };

let counter = 0;
function ev(kind: EventKind, occurredAt: string, evidence: Evidence = {}, channel = 'email'): ConsentEvent {
  counter += 1;
  return {
    id: `ev${String(counter).padStart(5, '0')}`,
    tenantId: 't',
    subjectId: 's',
    channel: channel as ConsentEvent['channel'],
    purpose: '*',
    kind,
    basis: kind === 'soft_opt_in_earned' ? 'soft_opt_in' : kind === 'grant' || kind === 'confirm' || kind === 'pending' ? 'consent' : null,
    occurredAt,
    receivedAt: occurredAt,
    source: 'shopify',
    sourceDeliveryId: null,
    evidence,
  };
}

const TICKED: Evidence = { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' };
const grant = (at = '2026-06-01T00:00:00.000Z', evidence: Evidence = TICKED) => ev('grant', at, evidence);
const confirmed = (at = '2026-06-01T00:00:00.000Z') => ev('grant', at, { ...TICKED, optInLevel: 'confirmed_opt_in' });
const soi = (at: string, categories: string[], validUntil?: string) =>
  ev('soft_opt_in_earned', at, { orderId: 'o1', orderDate: at, categories, ...(validUntil ? { validUntil } : {}) });

type Country = string | null;
const COUNTRY_OF: Record<ProfileId, Country> = { EU: null, NL: 'NL', DE: 'DE', FR: 'FR', BE: 'BE', UK: 'GB', IE: 'IE', AT: 'AT', ES: 'ES', IT: 'IT', EEA: 'PL' };

function subject(events: ConsentEvent[] | null, country: Country, audience: Audience = 'B2C'): SubjectForDecision {
  return { consent: events === null ? null : foldConsent(events), country, countrySource: country ? 'customer_address' : 'none', audience };
}
function request(channel: string, categories: string[] = [], extra: Partial<DecisionRequest> = {}): DecisionRequest {
  return { channel, purpose: '*', categories, ...extra };
}
function run(events: ConsentEvent[] | null, country: Country, channel: string, categories: string[] = [], options: { audience?: Audience; now?: string; extra?: Partial<DecisionRequest>; settings?: Partial<DecisionSettings> } = {}) {
  return decide(subject(events, country, options.audience), profileForCountry(country), { ...SETTINGS, ...options.settings }, request(channel, categories, options.extra), options.now ?? NOW);
}

/**
 * Expected reasons per email/SMS row, written out from law.md §1 (not computed):
 * [profile, channel, audience, single opt-in, confirmed opt-in, soft opt-in for the campaign's category, nothing recorded]
 */
type Row = [ProfileId, 'email' | 'sms', Audience, string, string, string, string];
const ROWS: Row[] = [];
const add = (p: ProfileId, a: Audience, single: string, soft: string, nothing: string, channels: Array<'email' | 'sms'> = ['email', 'sms']) => {
  for (const c of channels) ROWS.push([p, c, a, single, 'consent', soft, nothing]);
};
add('EU', 'B2C', 'consent', 'soft_opt_in', 'no_consent');
add('EU', 'B2B', 'consent', 'soft_opt_in', 'no_consent');
add('NL', 'B2C', 'consent', 'soft_opt_in', 'no_consent');
add('NL', 'B2B', 'consent', 'soft_opt_in', 'no_consent');
// DE: double opt-in de facto, B2B the same as B2C.
add('DE', 'B2C', 'double_opt_in_missing', 'soft_opt_in', 'no_consent');
add('DE', 'B2B', 'double_opt_in_missing', 'soft_opt_in', 'no_consent');
add('FR', 'B2C', 'consent', 'soft_opt_in', 'no_consent');
// FR B2B: opt-out only for professional subjects; without that context, consent only.
add('FR', 'B2B', 'consent', 'professional_context_missing', 'professional_context_missing');
add('BE', 'B2C', 'consent', 'soft_opt_in', 'no_consent');
add('BE', 'B2B', 'consent', 'professional_context_missing', 'professional_context_missing');
add('UK', 'B2C', 'consent', 'soft_opt_in', 'no_consent');
// UK corporate subscribers: opt-out.
add('UK', 'B2B', 'consent', 'opt_out_regime', 'opt_out_regime');
add('IE', 'B2C', 'consent', 'soft_opt_in', 'no_consent');
add('IE', 'B2B', 'consent', 'professional_context_missing', 'professional_context_missing');
// AT: double opt-in (UNVERIFIED, conservative) and the ECG-Liste for soft opt-in.
add('AT', 'B2C', 'double_opt_in_missing', 'register_unchecked', 'no_consent');
add('AT', 'B2B', 'double_opt_in_missing', 'register_unchecked', 'no_consent');
// ES: Lista Robinson for the non-consented.
add('ES', 'B2C', 'consent', 'register_unchecked', 'no_consent');
add('ES', 'B2B', 'consent', 'register_unchecked', 'no_consent');
add('IT', 'B2C', 'consent', 'soft_opt_in', 'no_consent', ['email']);
add('IT', 'B2B', 'consent', 'soft_opt_in', 'no_consent', ['email']);
// IT SMS: consent only (soft spam is e-mail only).
add('IT', 'B2C', 'consent', 'no_consent', 'no_consent', ['sms']);
add('IT', 'B2B', 'consent', 'no_consent', 'no_consent', ['sms']);
add('EEA', 'B2C', 'consent', 'soft_opt_in', 'no_consent');
add('EEA', 'B2B', 'consent', 'soft_opt_in', 'no_consent');

const ALLOWING = new Set(['consent', 'soft_opt_in', 'opt_out_regime']);

describe('decide: every email and SMS row of law.md §1', () => {
  it('covers every profile, channel and audience', () => {
    const covered = new Set(ROWS.map(([p, c, a]) => `${p}/${c}/${a}`));
    for (const id of Object.keys(PROFILES)) for (const c of ['email', 'sms']) for (const a of ['B2C', 'B2B']) expect(covered).toContain(`${id}/${c}/${a}`);
  });

  describe.each(ROWS)('%s %s %s', (profile, channel, audience, single, confirmedReason, soft, nothing) => {
    const country = COUNTRY_OF[profile];
    const withChannel = (events: ConsentEvent[]) => events.map((e) => ({ ...e, channel: channel as ConsentEvent['channel'] }));
    const check = (reason: string, decision: ReturnType<typeof run>) => {
      expect(decision.reason).toBe(reason);
      expect(decision.allowed).toBe(ALLOWING.has(reason));
      expect(decision.jurisdiction.profile).toBe(profile);
      expect(decision.jurisdiction.row.startsWith(`${profile}/${channel}/${audience}`)).toBe(true);
    };
    it(`single opt-in → ${single}`, () => check(single, run(withChannel([grant()]), country, channel, [], { audience })));
    it(`confirmed opt-in → ${confirmedReason}`, () => check(confirmedReason, run(withChannel([confirmed()]), country, channel, [], { audience })));
    it(`soft opt-in for the campaign category → ${soft}`, () => check(soft, run(withChannel([soi('2026-09-01T00:00:00.000Z', ['footwear'])]), country, channel, ['footwear'], { audience })));
    it(`nothing recorded → ${nothing}`, () => check(nothing, run(withChannel([]), country, channel, ['footwear'], { audience })));
    it('withdrawal after a confirmed grant → withdrawn', () => {
      const events = withChannel([confirmed('2026-06-01T00:00:00.000Z'), ev('withdraw', '2026-07-01T00:00:00.000Z')]);
      const decision = run(events, country, channel, ['footwear'], { audience, extra: { professionalContext: true } });
      expect(decision).toMatchObject({ allowed: false, reason: 'withdrawn', evidence: [events[1]!.id] });
    });
  });
});

describe('decide: cross-cutting cases', () => {
  const footwear = ['footwear'];

  it('allows by consent with its evidence and no validity end where the row sets none', () => {
    const g = grant();
    expect(run([g], 'NL', 'email')).toMatchObject({ allowed: true, basis: 'consent', reason: 'consent', validUntil: null, evidence: [g.id] });
  });

  it('an unknown recipient is blocked', () => {
    expect(run(null, 'NL', 'email', footwear)).toMatchObject({ allowed: false, reason: 'unknown_recipient', evidence: [] });
  });

  it('an unknown country uses the EU default profile; a non-EEA country too', () => {
    expect(run([grant()], null, 'email').jurisdiction).toMatchObject({ profile: 'EU', row: 'EU/email/B2C', countrySource: 'none' });
    expect(run([grant()], 'US', 'email').jurisdiction.profile).toBe('EU');
  });

  it('pending double opt-in is never allowed, even where double opt-in is not expected', () => {
    for (const country of ['NL', 'DE', 'FR', 'UK']) {
      const p = ev('pending', '2026-06-01T00:00:00.000Z', TICKED);
      expect(run([p], country, 'email')).toMatchObject({ allowed: false, reason: 'consent_pending' });
    }
  });

  it('a pending sign-up does not stop a soft opt-in earned by a purchase', () => {
    const events = [ev('pending', '2026-06-01T00:00:00.000Z', TICKED), soi('2026-07-01T00:00:00.000Z', footwear)];
    expect(run(events, 'NL', 'email', footwear)).toMatchObject({ allowed: true, reason: 'soft_opt_in' });
  });

  it('DE: single opt-in confirmed later by double opt-in is valid', () => {
    const events = [ev('pending', '2026-06-01T00:00:00.000Z', TICKED), ev('confirm', '2026-06-01T00:10:00.000Z', TICKED)];
    expect(run(events, 'DE', 'email')).toMatchObject({ allowed: true, reason: 'consent' });
  });

  it('DE and AT expect double opt-in by their profile, even with an empty doubleOptInCountries setting', () => {
    for (const country of ['DE', 'AT']) {
      expect(run([grant()], country, 'email', [], { settings: { doubleOptInCountries: [] } })).toMatchObject({ allowed: false, reason: 'double_opt_in_missing' });
    }
  });

  it('the merchant can expect double opt-in in another country (setting doubleOptInCountries)', () => {
    expect(run([grant()], 'NL', 'email', [], { settings: { doubleOptInCountries: ['NL'] } })).toMatchObject({ allowed: false, reason: 'double_opt_in_missing' });
    expect(run([grant()], 'NL', 'email')).toMatchObject({ allowed: true });
  });

  it('DE: single opt-in without confirmation still allows a covered soft opt-in', () => {
    const events = [grant('2026-06-01T00:00:00.000Z'), soi('2026-07-01T00:00:00.000Z', footwear)];
    expect(run(events, 'DE', 'email', footwear)).toMatchObject({ allowed: true, reason: 'soft_opt_in', basis: 'soft_opt_in' });
  });

  it('similar vs not similar: a footwear soft opt-in allows footwear, not insurance, and not a mixed campaign', () => {
    const events = [soi('2026-09-01T00:00:00.000Z', footwear)];
    expect(run(events, 'NL', 'email', footwear)).toMatchObject({ allowed: true, basis: 'soft_opt_in', evidence: [events[0]!.id] });
    expect(run(events, 'NL', 'email', ['insurance'])).toMatchObject({ allowed: false, reason: 'not_similar' });
    expect(run(events, 'NL', 'email', ['footwear', 'insurance'])).toMatchObject({ allowed: false, reason: 'not_similar' });
  });

  it('a campaign without categories never rides on soft opt-in', () => {
    expect(run([soi('2026-09-01T00:00:00.000Z', footwear)], 'NL', 'email', [])).toMatchObject({ allowed: false, reason: 'categories_missing' });
  });

  it('a withdrawal newer than a soft opt-in blocks, and soft opt-in stays ended for good', () => {
    const events = [soi('2026-07-01T00:00:00.000Z', footwear), ev('withdraw', '2026-08-01T00:00:00.000Z'), soi('2026-09-01T00:00:00.000Z', footwear)];
    expect(run(events, 'NL', 'email', footwear)).toMatchObject({ allowed: false, reason: 'withdrawn' });
  });

  it('an objection at checkout ends soft opt-in; explicit consent afterwards can still grant', () => {
    const objection = ev('object', '2026-07-01T00:00:00.000Z', { capturePoint: 'checkout:objection-attribute' });
    const purchase = soi('2026-07-01T00:00:01.000Z', footwear);
    expect(run([objection, purchase], 'NL', 'email', footwear)).toMatchObject({ allowed: false, reason: 'withdrawn' });
    const later = confirmed('2026-10-01T00:00:00.000Z');
    const decision = run([objection, purchase, later], 'NL', 'email', footwear);
    expect(decision).toMatchObject({ allowed: true, reason: 'consent', evidence: [later.id] });
  });

  it('a later objection (HubSpot, gate) blocks an allowed soft opt-in', () => {
    const events = [soi('2026-07-01T00:00:00.000Z', footwear), ev('object', '2026-10-01T00:00:00.000Z', { capturePoint: 'gate' })];
    expect(run(events, 'FR', 'email', footwear)).toMatchObject({ allowed: false, reason: 'withdrawn' });
  });

  it('a sync re-observing "subscribed" after a withdrawal does not re-grant (rule 3)', () => {
    const events = [confirmed('2026-05-01T00:00:00.000Z'), ev('withdraw', '2026-06-01T00:00:00.000Z'), ev('grant', '2026-07-01T00:00:00.000Z', { optInLevel: 'single_opt_in', note: 'backfill' })];
    expect(run(events, 'NL', 'email')).toMatchObject({ allowed: false, reason: 'withdrawn' });
  });

  it('erasure and an invalid address block', () => {
    expect(run([confirmed(), ev('erase', '2026-07-01T00:00:00.000Z')], 'NL', 'email')).toMatchObject({ allowed: false, reason: 'erased' });
    expect(run([confirmed(), ev('address_invalid', '2026-07-01T00:00:00.000Z')], 'NL', 'email')).toMatchObject({ allowed: false, reason: 'address_invalid' });
  });

  describe('expiry windows', () => {
    it('IE: soft opt-in is usable for 12 months from the sale', () => {
      const events = [soi('2025-12-01T00:00:00.000Z', footwear)];
      expect(run(events, 'IE', 'email', footwear, { now: '2026-11-30T23:59:59.000Z' })).toMatchObject({ allowed: true, validUntil: '2026-12-01T00:00:00.000Z' });
      expect(run(events, 'IE', 'email', footwear, { now: '2026-12-01T00:00:00.000Z' })).toMatchObject({ allowed: false, reason: 'soft_opt_in_expired' });
    });

    it('FR: soft opt-in and consent last 3 years from the last contact', () => {
      const events = [soi('2023-12-01T00:00:00.000Z', footwear)];
      expect(run(events, 'FR', 'email', footwear, { now: '2026-11-30T00:00:00.000Z' })).toMatchObject({ allowed: true, validUntil: '2026-12-01T00:00:00.000Z' });
      expect(run(events, 'FR', 'email', footwear, { now: '2026-12-02T00:00:00.000Z' })).toMatchObject({ reason: 'soft_opt_in_expired' });
      const consent = [confirmed('2023-12-01T00:00:00.000Z')];
      expect(run(consent, 'FR', 'email', [], { now: '2026-11-30T00:00:00.000Z' })).toMatchObject({ allowed: true, validUntil: '2026-12-01T00:00:00.000Z' });
      expect(run(consent, 'FR', 'email', [], { now: '2026-12-02T00:00:00.000Z' })).toMatchObject({ allowed: false, reason: 'consent_expired' });
    });

    it('EEA fallback: 12 months from the sale; NL: no window in law', () => {
      const events = [soi('2025-06-01T00:00:00.000Z', footwear)];
      expect(run(events, 'PL', 'email', footwear)).toMatchObject({ allowed: false, reason: 'soft_opt_in_expired' });
      expect(run(events, 'NL', 'email', footwear)).toMatchObject({ allowed: true, validUntil: null });
    });

    it("the merchant's own cap (softOptInMaxMonths) is applied when stricter", () => {
      const events = [soi('2025-06-01T00:00:00.000Z', footwear)];
      expect(run(events, 'NL', 'email', footwear, { settings: { softOptInMaxMonths: 24 } })).toMatchObject({ allowed: true, validUntil: '2027-06-01T00:00:00.000Z' });
      expect(run(events, 'NL', 'email', footwear, { settings: { softOptInMaxMonths: 12 } })).toMatchObject({ allowed: false, reason: 'soft_opt_in_expired' });
    });

    it('an expiry stored with the soft opt-in (validUntil) is honoured, and a scheduler expiry event removes it', () => {
      const earned = soi('2026-01-01T00:00:00.000Z', footwear, '2026-07-01T00:00:00.000Z');
      expect(run([earned], 'NL', 'email', footwear)).toMatchObject({ allowed: false, reason: 'soft_opt_in_expired' });
      const expired = ev('soft_opt_in_expired', '2026-07-01T00:00:00.000Z', { categories: footwear });
      expect(run([earned, expired], 'NL', 'email', footwear)).toMatchObject({ allowed: false, reason: 'no_consent' });
    });

    it('a consent with a stored validity end expires; a consent_expired event blocks too', () => {
      const g = ev('grant', '2026-01-01T00:00:00.000Z', { ...TICKED, optInLevel: 'confirmed_opt_in', validUntil: '2026-10-01T00:00:00.000Z' });
      expect(run([g], 'NL', 'email')).toMatchObject({ allowed: false, reason: 'consent_expired' });
      expect(run([g, ev('consent_expired', '2026-10-01T00:00:00.000Z')], 'NL', 'email')).toMatchObject({ allowed: false, reason: 'consent_expired' });
    });
  });

  describe('registers and professional context (the app holds no register data)', () => {
    it('AT and ES soft opt-in allow once the sender screened the register', () => {
      const events = [soi('2026-09-01T00:00:00.000Z', footwear)];
      expect(run(events, 'AT', 'email', footwear, { extra: { registersCleared: ['AT_ECG'] } })).toMatchObject({ allowed: true, reason: 'soft_opt_in' });
      expect(run(events, 'ES', 'sms', footwear, { extra: { registersCleared: ['ES_ROBINSON'] } })).toMatchObject({ allowed: true, reason: 'soft_opt_in' });
      expect(run(events, 'ES', 'sms', footwear, { extra: { registersCleared: ['AT_ECG'] } })).toMatchObject({ allowed: false, reason: 'register_unchecked' });
    });

    it('FR, IE and BE B2B allow by opt-out only for a professional subject', () => {
      for (const country of ['FR', 'IE', 'BE']) {
        expect(run([], country, 'email', [], { audience: 'B2B', extra: { professionalContext: true } })).toMatchObject({ allowed: true, reason: 'opt_out_regime', basis: 'legitimate_interest' });
      }
    });
  });

  describe('phone and postal rows', () => {
    it('FR phone B2C: Bloctel opt-out until 10-08-2026, consent from 11-08-2026 (evaluated at the decision time)', () => {
      const before = run([], 'FR', 'phone', [], { now: '2026-08-10T12:00:00.000Z', extra: { registersCleared: ['FR_BLOCTEL'] } });
      expect(before).toMatchObject({ allowed: true, reason: 'opt_out_regime', jurisdiction: { row: 'FR/phone/B2C' } });
      const unscreened = run([], 'FR', 'phone', [], { now: '2026-08-10T12:00:00.000Z' });
      expect(unscreened).toMatchObject({ allowed: false, reason: 'register_unchecked' });
      const after = run([], 'FR', 'phone', [], { now: '2026-08-11T00:00:00.000Z', extra: { registersCleared: ['FR_BLOCTEL'] } });
      expect(after).toMatchObject({ allowed: false, reason: 'no_consent', jurisdiction: { row: 'FR/phone/B2C@2026-08-11' } });
      expect(run([confirmed()].map((e) => ({ ...e, channel: 'phone' as const })), 'FR', 'phone', [], { now: '2026-09-01T00:00:00.000Z' })).toMatchObject({ allowed: true, reason: 'consent' });
    });

    it('DE phone: consent for consumers, presumed consent for businesses', () => {
      expect(run([], 'DE', 'phone')).toMatchObject({ allowed: false, reason: 'no_consent' });
      expect(run([], 'DE', 'phone', [], { audience: 'B2B' })).toMatchObject({ allowed: true, reason: 'opt_out_regime' });
    });

    it('NL phone B2C: soft opt-in for 3 years after the last purchase; B2B opt-out', () => {
      const events = [soi('2024-01-01T00:00:00.000Z', footwear)].map((e) => ({ ...e, channel: 'phone' as const }));
      expect(run(events, 'NL', 'phone', footwear)).toMatchObject({ allowed: true, validUntil: '2027-01-01T00:00:00.000Z' });
      expect(run(events, 'NL', 'phone', footwear, { now: '2027-01-02T00:00:00.000Z' })).toMatchObject({ reason: 'soft_opt_in_expired' });
      expect(run([], 'NL', 'phone', [], { audience: 'B2B' })).toMatchObject({ allowed: true, reason: 'opt_out_regime' });
    });

    it('postal: opt-out where no register applies, blocked when a register applies and was not screened', () => {
      expect(run([], 'DE', 'postal')).toMatchObject({ allowed: true, reason: 'opt_out_regime' });
      expect(run([], 'NL', 'postal')).toMatchObject({ allowed: false, reason: 'register_unchecked' });
      expect(run([ev('object', '2026-05-01T00:00:00.000Z')].map((e) => ({ ...e, channel: 'postal' as const })), 'DE', 'postal')).toMatchObject({ allowed: false, reason: 'withdrawn' });
    });

    it('IT and BE phone need the register; AT phone needs consent', () => {
      expect(run([], 'IT', 'phone')).toMatchObject({ allowed: false, reason: 'register_unchecked' });
      expect(run([], 'BE', 'phone', [], { extra: { registersCleared: ['BE_DNCM'] } })).toMatchObject({ allowed: true });
      expect(run([], 'AT', 'phone')).toMatchObject({ allowed: false, reason: 'no_consent' });
    });
  });

  it('WhatsApp is decided as SMS (law.md R12): IT blocks soft opt-in on it', () => {
    const events = [soi('2026-09-01T00:00:00.000Z', footwear)];
    expect(run(events, 'IT', 'whatsapp', footwear)).toMatchObject({ allowed: false, reason: 'no_consent', jurisdiction: { row: 'IT/sms/B2C' } });
    expect(run(events, 'NL', 'whatsapp', footwear)).toMatchObject({ allowed: true, jurisdiction: { row: 'NL/sms/B2C' } });
  });

  it('every decision names its rules version and law.md sources, and lists the checks made', () => {
    const decision = run([soi('2026-09-01T00:00:00.000Z', footwear)], 'NL', 'email', footwear);
    expect(decision.jurisdiction.sources).toEqual(['[9]', '[10]', '[11]']);
    expect(decision.jurisdiction.rulesVersion).toMatch(/^\d{4}-\d{2}-\d{2}\.\d+$/);
    expect(decision.conditions!.map((c) => c.check)).toEqual([
      'channel_covered',
      'recipient_known',
      'not_erased',
      'not_withdrawn',
      'address_valid',
      'consent',
      'soft_opt_in_allowed',
      'soft_opt_in_not_ended',
      'campaign_categories',
      'similar_products',
      'soft_opt_in_in_window',
      'registers_cleared',
    ]);
    // Only the consent check fails: the soft opt-in allows.
    expect(decision.conditions!.filter((c) => !c.passed).map((c) => c.check)).toEqual(['consent']);
  });
});

describe('decide: property', () => {
  const TIMES = Array.from({ length: 6 }, (_, i) => new Date(Date.UTC(2026, 0, 1 + i * 30)).toISOString());
  const GRANTING: EventKind[] = ['grant', 'confirm', 'pending', 'soft_opt_in_earned'];
  const RESTRICTIVE: EventKind[] = ['withdraw', 'object', 'erase'];
  const eventArb = fc.record({
    kind: fc.constantFrom<EventKind>(...GRANTING, ...RESTRICTIVE, 'soft_opt_in_expired', 'consent_expired'),
    at: fc.constantFrom(...TIMES),
    affirmative: fc.boolean(),
    confirmedLevel: fc.boolean(),
  });

  it('never allows when a withdrawal or objection is as new as or newer than every grant for the channel and purpose', () => {
    fc.assert(
      fc.property(
        fc.array(eventArb, { minLength: 1, maxLength: 12 }),
        fc.constantFrom(...Object.values(COUNTRY_OF)),
        fc.constantFrom<Audience>('B2C', 'B2B'),
        fc.constantFrom('email', 'sms', 'whatsapp', 'phone', 'postal'),
        fc.subarray(['footwear', 'insurance']),
        fc.boolean(),
        (specs, country, audience, channel, categories, professionalContext) => {
          const events = specs.map((s) =>
            ev(
              s.kind,
              s.at,
              s.kind === 'soft_opt_in_earned'
                ? { categories: ['footwear', 'insurance'] }
                : { ...(s.affirmative ? TICKED : {}), optInLevel: s.confirmedLevel ? 'confirmed_opt_in' : 'single_opt_in' },
            ),
          );
          const restrictive = events.filter((e) => RESTRICTIVE.includes(e.kind)).map((e) => e.occurredAt);
          const granting = events.filter((e) => GRANTING.includes(e.kind)).map((e) => e.occurredAt);
          if (restrictive.length === 0) return;
          const newestRestriction = restrictive.reduce((a, b) => (a > b ? a : b));
          if (granting.some((g) => g > newestRestriction)) return;
          const decision = decide(
            subject(events, country, audience),
            profileForCountry(country),
            SETTINGS,
            request(channel, categories, { professionalContext, registersCleared: ['AT_ECG', 'ES_ROBINSON', 'FR_BLOCTEL', 'BE_DNCM', 'IT_RPO', 'UK_TPS', 'UK_CTPS', 'NL_POSTFILTER', 'NL_OVERLEDENENREGISTER'] }),
            '2026-11-24T00:00:00.000Z',
          );
          expect(decision.allowed).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
