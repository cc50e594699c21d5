/**
 * The send decision (issue 4 §7): a pure function of the subject's consent state for the channel and purpose,
 * the jurisdiction profile, the tenant's settings, the request and the decision time. It follows law.md R0:
 *
 * 1. withdrawal, objection, erasure or an invalid address → BLOCK;
 * 2. valid consent (R1, R2; double opt-in where the profile or the merchant expects it, R5; validity, R3) → ALLOW;
 * 3. soft opt-in: every campaign category covered by a live soft opt-in of the same group, within the row's
 *    window, the row's registers cleared → ALLOW;
 * 4. an opt-out regime (with its conditions) → ALLOW;
 * 5. otherwise BLOCK. Never ALLOW on missing data: no subject, no categories, no context → BLOCK.
 *
 * Reason codes are stable API (README "Gate reason codes"); they only grow.
 */
import type { ConsentState, LegalBasis, SoftOptInGrant } from '../domain/consent';
import { type Audience, type DatedRule, type JurisdictionProfile, PROFILES_VERSION, type RuleChannel, ruleAt, ruleChannelOf, rowName, type Validity, validityEnd } from './profiles';

export const ALLOW_REASONS = ['consent', 'soft_opt_in', 'opt_out_regime'] as const;
export const BLOCK_REASONS = [
  'unknown_recipient',
  'channel_not_covered',
  'erased',
  'withdrawn',
  'address_invalid',
  'consent_pending',
  'double_opt_in_missing',
  'consent_expired',
  'no_consent',
  'soft_opt_in_ended',
  'categories_missing',
  'not_similar',
  'soft_opt_in_expired',
  'register_unchecked',
  'professional_context_missing',
] as const;
export type AllowReason = (typeof ALLOW_REASONS)[number];
export type BlockReason = (typeof BLOCK_REASONS)[number];
export type Reason = AllowReason | BlockReason;

/** Where the subject's country came from (issue 4 §2). */
export type CountrySource = 'customer_address' | 'order_billing' | 'shop_country' | 'none';

export interface SubjectForDecision {
  /** Consent state for the request's channel and purpose; null when the recipient is unknown to the tenant. */
  readonly consent: ConsentState | null;
  readonly country: string | null;
  readonly countrySource: CountrySource;
  readonly audience: Audience;
}

export interface DecisionSettings {
  /** Countries where a single opt-in without confirmation is not valid consent (tenant setting; DE, AT default). */
  readonly doubleOptInCountries: readonly string[];
  /** A merchant's own cap on soft opt-in age in months (stricter than the profile), or null. */
  readonly softOptInMaxMonths: number | null;
}

export interface DecisionRequest {
  readonly channel: string;
  readonly purpose: string;
  /** Category groups the campaign promotes (soft opt-in must cover every one). */
  readonly categories: readonly string[];
  /** The message relates to the recipient's profession (FR, IE, BE B2B opt-out rows). Default false. */
  readonly professionalContext?: boolean;
  /** Registers the sender screened this recipient against (e.g. `AT_ECG`); the app holds no register data. */
  readonly registersCleared?: readonly string[];
}

export interface Condition {
  readonly check: string;
  readonly passed: boolean;
  readonly detail: string;
}

export interface Decision {
  readonly allowed: boolean;
  readonly basis: LegalBasis | null;
  readonly reason: Reason;
  readonly jurisdiction: {
    readonly profile: string;
    readonly row: string;
    readonly country: string | null;
    readonly countrySource: CountrySource;
    readonly audience: Audience;
    readonly rulesVersion: string;
    readonly sources: readonly string[];
  };
  /** Until when the allowing basis holds (ISO-8601), or null for no set end. */
  readonly validUntil: string | null;
  /** Ledger event ids behind the decision. */
  readonly evidence: readonly string[];
  /** Every check made, in order, for `explain`; only when traced (`DecideOptions.trace`). */
  readonly conditions?: readonly Condition[];
}

export interface DecideOptions {
  /**
   * Record every check with its detail (`explain`, `?explain=1`). Default true. The gate's plain answers turn it
   * off: the outcome is the same, only the per-check record and its text are not built.
   */
  readonly trace?: boolean;
}

type Jurisdiction = Decision['jurisdiction'];

/**
 * Jurisdiction blocks are immutable and few (profiles × dated rows × audiences × countries × sources), so each
 * is built once and shared by every decision that has it. Keyed by nested maps on the inputs themselves, so a
 * lookup builds no key string.
 */
type Nested<K, V> = Map<K, V>;
const jurisdictions: Nested<JurisdictionProfile, Nested<DatedRule, Nested<Audience, Nested<string | null, Nested<CountrySource, Jurisdiction>>>>> = new Map();

/** The map under `key`, made when missing. Plain code, no callback: this runs for every decision. */
function child<K, K2, V>(map: Map<K, Map<K2, V>>, key: K): Map<K2, V> {
  let value = map.get(key);
  if (value === undefined) map.set(key, (value = new Map()));
  return value;
}

function jurisdictionOf(profile: JurisdictionProfile, channel: RuleChannel, subject: Omit<SubjectForDecision, 'consent'>, dated: DatedRule): Jurisdiction {
  const byCountry = child(child(child(jurisdictions, profile), dated), subject.audience);
  // Countries come from stored data; a bound keeps a stream of odd values from growing the map without end.
  if (byCountry.size > 1000) byCountry.clear();
  const bySource = child(byCountry, subject.country);
  let jurisdiction = bySource.get(subject.countrySource);
  if (jurisdiction === undefined) {
    jurisdiction = Object.freeze({
      profile: profile.id,
      row: rowName(profile, channel, subject.audience, dated),
      country: subject.country,
      countrySource: subject.countrySource,
      audience: subject.audience,
      rulesVersion: PROFILES_VERSION,
      sources: dated.rule.sources,
    });
    bySource.set(subject.countrySource, jurisdiction);
  }
  return jurisdiction;
}

/** The earlier of two ends (ISO-8601, null = no end). No rest arguments: this runs for every decision. */
function earliest(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  return b === null || a < b ? a : b;
}

/** One validity object per month count, so `validityEnd` can remember its ends. */
const monthsFromSale = new Map<number, Validity>();

function monthsAfter(start: string, months: number | null): string | null {
  if (months === null) return null;
  let validity = monthsFromSale.get(months);
  if (validity === undefined) monthsFromSale.set(months, (validity = { kind: 'months_from_sale', months }));
  return validityEnd(validity, start);
}

/**
 * When a soft opt-in grant ends under a rule: the earliest of the end stored with it, the row's window from the
 * sale, and the merchant's cap (`softOptInMaxMonths`); null for no end. The one definition the gate and the
 * HubSpot contact state (src/sync/contact-state.ts) share, so the two never disagree about when a grant ends.
 */
export function softOptInEnd(grant: SoftOptInGrant, rule: DatedRule['rule'], settings: DecisionSettings): string | null {
  return earliest(earliest(grant.validUntil, validityEnd(rule.softOptInValidity, grant.earnedAt)), monthsAfter(grant.earnedAt, settings.softOptInMaxMonths));
}

function hasAnyKey(record: Readonly<Record<string, unknown>>): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return true;
  return false;
}

/** Record a check when traced (`conditions` non-null); returns `passed`. A module function, not a closure per decision. */
function check(conditions: Condition[] | null, name: string, passed: boolean, detail: string | false): boolean {
  if (conditions !== null) conditions.push({ check: name, passed, detail: detail as string });
  return passed;
}

/**
 * An untraced decision (the gate's plain answers). A class, not an object literal: V8 records where object
 * literals are allocated and, once most objects from one place have outlived a young-generation collection,
 * allocates every later one there straight in the old generation ("pretenuring"). A gate batch keeps its 10,000
 * answers until it replies, and a cold batch waits on the database meanwhile, so the answers' literal was soon
 * pretenured, and then each short-lived answer could only be freed by a full mark-compact: about a fifth of the
 * gate's time in bench:gate. Instances of a class get no allocation site. (The soft opt-in evidence list below is
 * made with `new Array()`, which was not pretenured in bench:gate on Node 20 where `[]` was; V8 can pretenure
 * `Array` calls too, so that part is measured, not guaranteed.) Same fields, same order, same JSON.
 */
class PlainDecision implements Decision {
  constructor(
    readonly allowed: boolean,
    readonly basis: LegalBasis | null,
    readonly reason: Reason,
    readonly jurisdiction: Jurisdiction,
    readonly validUntil: string | null,
    readonly evidence: readonly string[],
  ) {}
}

function outcome(
  conditions: Condition[] | null,
  jurisdiction: Jurisdiction,
  allowed: boolean,
  reason: Reason,
  basis: LegalBasis | null,
  validUntil: string | null,
  evidence: readonly string[],
): Decision {
  return conditions !== null ? { allowed, basis, reason, jurisdiction, validUntil, evidence, conditions } : new PlainDecision(allowed, basis, reason, jurisdiction, validUntil, evidence);
}

const NO_EVIDENCE: readonly string[] = Object.freeze([]);

const NO_REGISTERS: readonly string[] = Object.freeze([]);

/** The registers of a rule the sender did not screen against; most rules have none, and then nothing is allocated. */
function unscreened(registers: readonly string[], cleared: readonly string[] | undefined): readonly string[] {
  if (registers.length === 0) return NO_REGISTERS;
  return registers.filter((r) => !(cleared ?? []).includes(r));
}

/**
 * What a decision needs besides the subject's consent: the rule in force for the channel and audience at the
 * decision time, the shared jurisdiction block and whether double opt-in is expected there. It depends only on
 * (country, country source, audience) for a given request, tenant and time, so the gate builds it once per
 * distinct combination in a batch (`decideWithin`) instead of once per recipient; `decide` builds it every time.
 */
export interface DecisionContext {
  /** The channel as the rules know it, or null when no row covers it (blocked as `channel_not_covered`). */
  readonly coveredChannel: RuleChannel | null;
  readonly rule: DatedRule['rule'];
  readonly jurisdiction: Jurisdiction;
  /** R5: the profile expects double opt-in (DEFACTO), or the merchant does for this country. */
  readonly doubleOptInExpected: boolean;
}

/** The context of a decision for a subject placed in `country` with `audience`, at `now` (ISO-8601). */
export function decisionContext(
  profile: JurisdictionProfile,
  channel: string,
  placement: Omit<SubjectForDecision, 'consent'>,
  settings: DecisionSettings,
  now: string,
): DecisionContext {
  const coveredChannel = ruleChannelOf(channel);
  const ruleChannel: RuleChannel = coveredChannel ?? 'email';
  const dated = ruleAt(profile, ruleChannel, placement.audience, now);
  const doubleOptInExpected = dated.rule.doubleOptIn === 'DEFACTO' || (placement.country !== null && settings.doubleOptInCountries.includes(placement.country));
  return { coveredChannel, rule: dated.rule, jurisdiction: jurisdictionOf(profile, ruleChannel, placement, dated), doubleOptInExpected };
}

export function decide(
  subject: SubjectForDecision,
  profile: JurisdictionProfile,
  settings: DecisionSettings,
  request: DecisionRequest,
  now: string,
  options: DecideOptions = {},
): Decision {
  return decideWithin(decisionContext(profile, request.channel, subject, settings, now), subject.consent, settings, request, now, options);
}

/**
 * `decide` with its context already built (`decisionContext` with the same profile, channel, subject placement,
 * settings and time) and the subject's consent state (null: unknown recipient). The gate's batches share one
 * context among the recipients of a country, source and audience.
 */
export function decideWithin(
  context: DecisionContext,
  state: ConsentState | null,
  settings: DecisionSettings,
  request: DecisionRequest,
  now: string,
  options: DecideOptions = {},
): Decision {
  const trace = options.trace ?? true;
  // Traced: every check with its detail. Untraced (the gate's plain answers): no record, and the detail text
  // is never built (`trace && …` short-circuits), so a decision allocates little beyond its result.
  const conditions: Condition[] | null = trace ? [] : null;
  const { coveredChannel, rule, jurisdiction, doubleOptInExpected } = context;

  if (!check(conditions, 'channel_covered', coveredChannel !== null, trace && `channel ${request.channel}`)) return outcome(conditions, jurisdiction, false, 'channel_not_covered', null, null, NO_EVIDENCE);
  if (state === null) {
    check(conditions, 'recipient_known', false, trace && 'no subject with this identity');
    return outcome(conditions, jurisdiction, false, 'unknown_recipient', null, null, NO_EVIDENCE);
  }
  check(conditions, 'recipient_known', true, trace && 'a subject of this tenant');

  // R0 (1): suppression, objection, withdrawal.
  if (!check(conditions, 'not_erased', state.status !== 'erased', trace && (state.status === 'erased' ? 'personal data erased' : 'ok'))) return outcome(conditions, jurisdiction, false, 'erased', null, null, state.evidenceEventIds);
  if (!check(conditions, 'not_withdrawn', state.status !== 'withdrawn', trace && (state.status === 'withdrawn' ? `withdrawn or objected at ${state.withdrawnAt}` : 'no withdrawal or objection newer than the grants'))) {
    return outcome(conditions, jurisdiction, false, 'withdrawn', null, null, state.evidenceEventIds);
  }
  if (!check(conditions, 'address_valid', !state.addressInvalid, trace && (state.addressInvalid ? 'the platform marked the address invalid' : 'ok'))) return outcome(conditions, jurisdiction, false, 'address_invalid', null, null, state.evidenceEventIds);

  // R0 (3): valid consent (R1, R2, R3, R5).
  let consentFailure: BlockReason | null = null;
  if (state.status === 'granted' && state.basis !== 'soft_opt_in') {
    const confirmed = state.confirmedAt !== null || state.optInLevel === 'confirmed_opt_in';
    const end = earliest(state.validUntil, state.grantedAt ? validityEnd(rule.consentValidity, state.grantedAt) : null);
    if (!check(conditions, 'double_opt_in', !doubleOptInExpected || confirmed, trace && (doubleOptInExpected ? (confirmed ? 'confirmed' : 'expected here, no confirmation recorded') : 'not expected'))) {
      consentFailure = 'double_opt_in_missing';
    } else if (!check(conditions, 'consent_in_validity', end === null || end > now, trace && (end === null ? 'no validity end' : `valid until ${end}`))) {
      consentFailure = 'consent_expired';
    } else {
      return outcome(conditions, jurisdiction, true, 'consent', 'consent', end, state.evidenceEventIds);
    }
  } else {
    check(conditions, 'consent', false, trace && (state.status === 'pending' ? `double opt-in pending since ${state.pendingSince}` : `status ${state.status}`));
    if (state.status === 'pending') consentFailure = 'consent_pending';
    if (state.status === 'expired') consentFailure = 'consent_expired';
  }

  // R0 (4): soft opt-in (SOI conditions, sale, window, channel covered).
  let softFailure: BlockReason | null = null;
  if (!check(conditions, 'soft_opt_in_allowed', rule.regime === 'OPT_IN_SOI', trace && `${jurisdiction.row}: ${rule.regime}`)) {
    // Nothing more to check for soft opt-in.
  } else if (!check(conditions, 'soft_opt_in_not_ended', !state.softOptInEnded, trace && (state.softOptInEnded ? `ended at ${state.softOptInEndedAt}` : 'ok'))) {
    softFailure = 'soft_opt_in_ended';
  } else if (!check(conditions, 'campaign_categories', request.categories.length > 0, trace && (request.categories.length > 0 ? request.categories.join(', ') : 'the request names no product category'))) {
    softFailure = hasAnyKey(state.softOptIn) ? 'categories_missing' : null;
  } else {
    // Untraced, the categories that fail are only counted: the lists exist for the explanation's text.
    const missing: string[] | null = trace ? [] : null;
    const expired: string[] | null = trace ? [] : null;
    let missingCount = 0;
    let expiredCount = 0;
    // A constructor call, not a literal: see PlainDecision (one list per soft opt-in answer).
    const evidence = new Array<string>();
    let end: string | null = null;
    for (const category of request.categories) {
      const grant = state.softOptIn[category];
      if (grant === undefined) {
        missingCount += 1;
        missing?.push(category);
        continue;
      }
      const grantEnd = softOptInEnd(grant, rule, settings);
      if (grantEnd !== null && grantEnd <= now) {
        expiredCount += 1;
        expired?.push(category);
      }
      evidence.push(grant.eventId);
      end = earliest(end, grantEnd);
    }
    if (!check(conditions, 'similar_products', missingCount === 0, trace && (missingCount === 0 ? 'every category covered' : `no soft opt-in for ${missing!.join(', ')}`))) {
      softFailure = hasAnyKey(state.softOptIn) ? 'not_similar' : null;
    } else if (!check(conditions, 'soft_opt_in_in_window', expiredCount === 0, trace && (expiredCount === 0 ? (end ? `valid until ${end}` : 'no window set') : `window passed for ${expired!.join(', ')}`))) {
      softFailure = 'soft_opt_in_expired';
    } else {
      const uncleared = unscreened(rule.soiRegisters, request.registersCleared);
      if (!check(conditions, 'registers_cleared', uncleared.length === 0, trace && (uncleared.length === 0 ? 'none needed or all screened' : `not screened against ${uncleared.join(', ')}`))) {
        softFailure = 'register_unchecked';
      } else {
        return outcome(conditions, jurisdiction, true, 'soft_opt_in', 'soft_opt_in', end, evidence.length < 2 ? evidence : [...new Set(evidence)]);
      }
    }
  }

  // R0 (5): opt-out regimes.
  let optOutFailure: BlockReason | null = null;
  if (rule.regime === 'OPT_OUT' || rule.regime === 'OPT_OUT_REG' || rule.regime === 'PRESUMED_CONSENT') {
    const uncleared = unscreened(rule.registers, request.registersCleared);
    if (rule.needsProfessionalContext && !check(conditions, 'professional_context', request.professionalContext === true, trace && ('the message must relate to the recipient\'s profession'))) {
      optOutFailure = 'professional_context_missing';
    } else if (rule.regime === 'OPT_OUT_REG' && !check(conditions, 'registers_cleared', uncleared.length === 0, trace && (uncleared.length === 0 ? 'all screened' : `not screened against ${uncleared.join(', ')}`))) {
      optOutFailure = 'register_unchecked';
    } else {
      check(conditions, 'opt_out_regime', true, trace && `${rule.regime}: allowed unless objected; no objection recorded`);
      return outcome(conditions, jurisdiction, true, 'opt_out_regime', 'legitimate_interest', null, state.evidenceEventIds);
    }
  }

  // R0 (6): block with the most specific reason.
  return outcome(conditions, jurisdiction, false, consentFailure ?? softFailure ?? optOutFailure ?? 'no_consent', null, null, state.evidenceEventIds);
}
