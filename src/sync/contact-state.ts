/**
 * What the app writes to a HubSpot contact (its own properties, src/domain/hubspot-properties.ts) and whether the
 * contact belongs on the suppression list, from the subject's current facts. Pure; the `hubspot.sync_contact`
 * handler calls it at dispatch time, so HubSpot always receives the newest state whatever order writes go out in.
 *
 * Gate per channel: `allowed` when the send gate would allow a campaign of purpose `*` for the channel, either on
 * consent or on the subject's live soft opt-ins (for their own category groups); otherwise `blocked`. The
 * suppression list holds the contacts whose email gate is `blocked`.
 *
 * Soft opt-in categories: the grants within their window (the gate's own end, `softOptInEnd`), listed whether or
 * not the row lets the gate send on them today (a register to screen first, an opt-out row, an invalid address):
 * they are what the person earned; the gate property says whether a send may go.
 */
import type { TenantSettings } from '../config/manifest';
import { EMPTY_STATE, type ConsentState } from '../domain/consent';
import { HUBSPOT_PROPERTIES } from '../domain/hubspot-properties';
import { audienceOf, b2bRuleOf, countryOf, stateKey, type SubjectFacts } from '../gate/facts';
import { decide, softOptInEnd, type DecisionSettings } from '../rules/decide';
import { profileForCountry, ruleAt, type Audience, type JurisdictionProfile } from '../rules/profiles';

export interface ContactState {
  readonly properties: Readonly<Record<string, string>>;
  /** Belongs on the suppression list (email blocked). */
  readonly suppressed: boolean;
}

/** The grants still live at `now` with their ends, by the gate's own definition of a grant's end (`softOptInEnd`). */
function liveSoftOptIns(state: ConsentState, channel: 'email' | 'sms', profile: JurisdictionProfile, audience: Audience, settings: DecisionSettings, now: string): Array<[string, string | null]> {
  if (state.softOptInEnded) return [];
  const rule = ruleAt(profile, channel, audience, now).rule;
  return Object.entries(state.softOptIn)
    .map(([category, grant]): [string, string | null] => [category, softOptInEnd(grant, rule, settings)])
    .filter(([, end]) => end === null || end > now);
}

function smsConsentValue(state: ConsentState): string {
  switch (state.status) {
    case 'granted':
      return state.basis === 'consent' ? 'subscribed' : 'not_subscribed';
    case 'pending':
      return 'pending';
    case 'withdrawn':
    case 'erased':
      return 'unsubscribed';
    default:
      return 'not_subscribed';
  }
}

export function contactStateOf(facts: SubjectFacts, settings: TenantSettings, now: string): ContactState {
  const { country, source: countrySource } = countryOf(facts, settings.shopCountry);
  const audience = audienceOf(facts, b2bRuleOf(settings.b2b));
  const profile = profileForCountry(country);
  const decisionSettings = { doubleOptInCountries: settings.doubleOptInCountries, softOptInMaxMonths: settings.softOptInMaxMonths ?? null };
  const gate = (channel: 'email' | 'sms') => {
    const state = facts.states.get(stateKey(channel, '*')) ?? EMPTY_STATE;
    const live = liveSoftOptIns(state, channel, profile, audience, decisionSettings, now);
    const decision = decide({ consent: state, country, countrySource, audience }, profile, decisionSettings, { channel, purpose: '*', categories: live.map(([c]) => c) }, now, { trace: false });
    return { state, live, decision };
  };
  const email = gate('email');
  const sms = gate('sms');
  const ends = email.live.map(([, end]) => end).filter((e): e is string => e !== null).sort();
  const evidence = email.state.evidenceEventIds.at(-1) ?? sms.state.evidenceEventIds.at(-1) ?? '';
  return {
    properties: {
      [HUBSPOT_PROPERTIES.emailGate]: email.decision.allowed ? 'allowed' : 'blocked',
      [HUBSPOT_PROPERTIES.smsGate]: sms.decision.allowed ? 'allowed' : 'blocked',
      // An enumeration of legal bases: a blocked contact has none, written as '' (clears the value in HubSpot).
      [HUBSPOT_PROPERTIES.basis]: email.decision.allowed ? (email.decision.basis ?? '') : '',
      [HUBSPOT_PROPERTIES.softOptInCategories]: email.live.map(([c]) => c).sort().join(';'),
      [HUBSPOT_PROPERTIES.softOptInValidUntil]: ends[0] ?? '',
      [HUBSPOT_PROPERTIES.smsConsent]: smsConsentValue(sms.state),
      [HUBSPOT_PROPERTIES.lastEvidenceId]: evidence,
    },
    suppressed: !email.decision.allowed,
  };
}
