/**
 * Jurisdiction profiles as data: one per row group of law.md §1 (EU default, NL, DE, FR, BE, UK, IE, AT, ES, IT,
 * and the design fallback for other EEA countries). Each rule cites its law.md source numbers; UNVERIFIED items
 * of law.md are marked and handled conservatively.
 *
 * A rule can change at a date (FR phone on 2026-08-11): every rule is a list of dated variants and the one in force
 * at the decision time applies. Profiles carry a version; a change to this file that changes a decision must bump
 * `PROFILES_VERSION` (it is recorded in soft opt-in evidence and decisions).
 *
 * Registers (Bloctel, TPS, ECG-Liste, Lista Robinson, RPO …) are out of scope for now: the app holds no register
 * data. Where a row needs a register check on the path it would allow by, the gate allows only when the caller
 * states in the request that it screened the recipient against that register (`registersCleared`); otherwise it
 * blocks with `register_unchecked`.
 */

/** law.md §1 regimes. `OPT_IN_SOI` = consent, or soft opt-in when every SOI condition holds. */
export type Regime = 'OPT_IN' | 'OPT_IN_SOI' | 'OPT_OUT' | 'OPT_OUT_REG' | 'PRESUMED_CONSENT';

/** law.md `sale`: what earns a soft opt-in. The app only ever sees completed, paid orders (orders/paid). */
export type SaleDefinition = 'SALE' | 'SALE_OR_NEGOTIATION' | 'SALE_INCL_INDIRECT';

export type Audience = 'B2C' | 'B2B';

/** Channels the rules distinguish. WhatsApp is decided as SMS (law.md R12, conservative). */
export type RuleChannel = 'email' | 'sms' | 'phone' | 'postal';

/** How long a soft opt-in (or a consent, where set) may be used. */
export type Validity =
  | { readonly kind: 'none' }
  /** Valid for `months` from the sale (IE: 12; EEA fallback: 12). */
  | { readonly kind: 'months_from_sale'; readonly months: number }
  /** Valid for `months` from the last contact, taken conservatively as the sale or grant itself (FR: 36). */
  | { readonly kind: 'months_from_last_contact'; readonly months: number };

export interface ChannelRule {
  readonly regime: Regime;
  /** What counts as a sale for soft opt-in; null where the regime has no soft opt-in. */
  readonly sale: SaleDefinition | null;
  /** Validity of a soft opt-in earned under this rule. */
  readonly softOptInValidity: Validity;
  /** Validity of consent under this rule (law.md R3; FR: 3 years from last contact). */
  readonly consentValidity: Validity;
  /** `DEFACTO`: a single opt-in without a confirmation is not valid consent (law.md R5). `REC`: recommended. */
  readonly doubleOptIn: 'DEFACTO' | 'REC' | null;
  /** Registers the rule names; see the module comment. `soiRegisters`: those the soft opt-in path needs. */
  readonly registers: readonly string[];
  readonly soiRegisters: readonly string[];
  /**
   * The opt-out regime only holds when the message relates to the recipient's profession or business
   * (FR, IE, BE B2B rows). The gate allows by it only when the request says so (`professionalContext`).
   */
  readonly needsProfessionalContext: boolean;
  /** law.md source numbers, e.g. `[9]`. */
  readonly sources: readonly string[];
  /** Plain-words summary shown by `explain`. */
  readonly summary: string;
  /** True where law.md marks a fact of this rule UNVERIFIED. */
  readonly unverified?: boolean;
}

export interface DatedRule {
  /** First day in force (UTC date, inclusive); null = always. */
  readonly from: string | null;
  readonly rule: ChannelRule;
}

export type ProfileId = 'EU' | 'NL' | 'DE' | 'FR' | 'BE' | 'UK' | 'IE' | 'AT' | 'ES' | 'IT' | 'EEA';

export interface JurisdictionProfile {
  readonly id: ProfileId;
  readonly name: string;
  /** ISO 3166-1 alpha-2 codes the profile applies to. */
  readonly countries: readonly string[];
  readonly rules: Readonly<Record<RuleChannel, Readonly<Record<Audience, readonly DatedRule[]>>>>;
}

/** Version of the rules below; recorded with every soft opt-in and decision. */
export const PROFILES_VERSION = '2026-11-24.1';
/** The research cut-off of law.md these profiles encode. */
export const PROFILES_SOURCE = 'law.md (sources as stored; latest item CJEU C-654/23, 13 Nov 2025)';

const NONE: Validity = { kind: 'none' };

function rule(partial: Partial<ChannelRule> & Pick<ChannelRule, 'regime' | 'sources' | 'summary'>): ChannelRule {
  return {
    sale: partial.regime === 'OPT_IN_SOI' ? 'SALE' : null,
    softOptInValidity: NONE,
    consentValidity: NONE,
    doubleOptIn: partial.regime === 'OPT_IN_SOI' ? 'REC' : null,
    registers: [],
    soiRegisters: [],
    needsProfessionalContext: false,
    ...partial,
  };
}

/** The same rule for B2C and B2B, always in force. */
const both = (r: ChannelRule): Record<Audience, DatedRule[]> => ({ B2C: [{ from: null, rule: r }], B2B: [{ from: null, rule: r }] });
const always = (r: ChannelRule): DatedRule[] => [{ from: null, rule: r }];

const EU_EMAIL_B2C = rule({ regime: 'OPT_IN_SOI', sale: 'SALE_INCL_INDIRECT', sources: ['[1]', '[3]'], summary: 'consent, or soft opt-in for own similar products after a sale (ePrivacy art 13(2))' });
const EU_EMAIL_B2B = rule({
  regime: 'OPT_IN_SOI',
  sale: 'SALE_INCL_INDIRECT',
  sources: ['[1]'],
  summary: 'member-state choice (art 13(5)); conservative default: consent or soft opt-in',
});
const EU_PHONE = rule({ regime: 'OPT_IN', sources: ['[1]'], summary: 'member-state choice for live calls, automated calls opt-in; decided as consent only' });
const EU_POST = rule({ regime: 'OPT_OUT', sources: ['[2]'], summary: 'GDPR legitimate interest (rec. 47); stop on objection (art 21)' });

const eu: JurisdictionProfile = {
  id: 'EU',
  name: 'EU default',
  countries: [],
  rules: { email: { B2C: always(EU_EMAIL_B2C), B2B: always(EU_EMAIL_B2B) }, sms: { B2C: always(EU_EMAIL_B2C), B2B: always(EU_EMAIL_B2B) }, phone: both(EU_PHONE), postal: both(EU_POST) },
};

const NL_EMAIL_B2C = rule({
  regime: 'OPT_IN_SOI',
  sources: ['[9]', '[10]', '[11]'],
  summary: 'consent, or soft opt-in: same legal entity, told at collection, opt-out not only in T&C; sender proves the basis',
});
const NL_EMAIL_B2B = rule({ regime: 'OPT_IN_SOI', sources: ['[9]', '[11]'], summary: 'legal persons covered since 1-10-2009: consent or soft opt-in' });
const nl: JurisdictionProfile = {
  id: 'NL',
  name: 'Netherlands',
  countries: ['NL'],
  rules: {
    email: { B2C: always(NL_EMAIL_B2C), B2B: always(NL_EMAIL_B2B) },
    sms: { B2C: always(NL_EMAIL_B2C), B2B: always(NL_EMAIL_B2B) },
    phone: {
      B2C: always(
        rule({
          regime: 'OPT_IN_SOI',
          softOptInValidity: { kind: 'months_from_sale', months: 36 },
          sources: ['[9]', '[12]', '[13]'],
          summary: 'opt-in since 1 July 2021, or soft opt-in for 3 years after the last purchase (Code Telemarketing)',
        }),
      ),
      B2B: always(rule({ regime: 'OPT_OUT', sources: ['[13]'], summary: 'legal persons: allowed unless objected' })),
    },
    postal: {
      B2C: always(rule({ regime: 'OPT_OUT_REG', registers: ['NL_POSTFILTER', 'NL_OVERLEDENENREGISTER'], sources: ['[14]'], summary: 'opt-out; Postfilter and deceased register' })),
      B2B: always(EU_POST),
    },
  },
};

const DE_EMAIL = rule({
  regime: 'OPT_IN_SOI',
  doubleOptIn: 'DEFACTO',
  sources: ['[15]', '[16]', '[17]', '[18]', '[19]'],
  summary: 'consent (double opt-in in practice), or soft opt-in for existing customers (UWG §7(3)); B2B the same',
});
const de: JurisdictionProfile = {
  id: 'DE',
  name: 'Germany',
  countries: ['DE'],
  rules: {
    email: both(DE_EMAIL),
    sms: both(DE_EMAIL),
    phone: {
      B2C: always(rule({ regime: 'OPT_IN', sources: ['[15]', '[20]', '[20b]'], summary: 'prior express consent; evidence kept 5 years (§7a UWG)' })),
      B2B: always(rule({ regime: 'PRESUMED_CONSENT', sources: ['[15]', '[19]'], summary: "at least presumed consent, judged on the business's likely interest" })),
    },
    postal: both(rule({ regime: 'OPT_OUT', sources: ['[15]', '[21]'], summary: 'stop on recognisable refusal (§7(1) UWG)' })),
  },
};

const FR_EMAIL_B2C = rule({
  regime: 'OPT_IN_SOI',
  softOptInValidity: { kind: 'months_from_last_contact', months: 36 },
  consentValidity: { kind: 'months_from_last_contact', months: 36 },
  sources: ['[23]', '[24]', '[25]'],
  summary: 'consent, or soft opt-in for analogous products; account creation is not a sale; 3 years from last contact (CNIL)',
});
const FR_EMAIL_B2B = rule({
  regime: 'OPT_OUT',
  consentValidity: { kind: 'months_from_last_contact', months: 36 },
  needsProfessionalContext: true,
  sources: ['[26]'],
  summary: "opt-out for a professional address when the message relates to the person's profession",
});
const FR_PHONE_B2C_UNTIL = rule({ regime: 'OPT_OUT_REG', registers: ['FR_BLOCTEL'], sources: ['[27]', '[28]'], summary: 'until 10-08-2026: opt-out with Bloctel' });
const FR_PHONE_B2C_FROM = rule({ regime: 'OPT_IN', sources: ['[27]', '[28]'], summary: 'from 11-08-2026: consent (Loi 2025-594 art 13); calling hours and caps always apply' });
const fr: JurisdictionProfile = {
  id: 'FR',
  name: 'France',
  countries: ['FR'],
  rules: {
    email: { B2C: always(FR_EMAIL_B2C), B2B: always(FR_EMAIL_B2B) },
    sms: { B2C: always(FR_EMAIL_B2C), B2B: always(FR_EMAIL_B2B) },
    phone: {
      B2C: [
        { from: null, rule: FR_PHONE_B2C_UNTIL },
        { from: '2026-08-11', rule: FR_PHONE_B2C_FROM },
      ],
      B2B: always(rule({ regime: 'OPT_OUT', sources: ['[25]', '[28]'], summary: 'opt-out (Bloctel and the 2026 law concern consumers)' })),
    },
    postal: both(rule({ regime: 'OPT_OUT', sources: ['[25]', '[29]'], summary: 'legitimate interest; objection at collection and in each mailing' })),
  },
};

const BE_EMAIL_B2C = rule({ regime: 'OPT_IN_SOI', sources: ['[30]', '[31]'], summary: 'consent, or soft opt-in (customers natural or legal persons); acknowledge unsubscribes' });
const BE_EMAIL_B2B = rule({
  regime: 'OPT_OUT',
  needsProfessionalContext: true,
  sources: ['[30]'],
  summary: 'opt-out for impersonal addresses of legal persons; personal work addresses follow the B2C rule',
});
const be: JurisdictionProfile = {
  id: 'BE',
  name: 'Belgium',
  countries: ['BE'],
  rules: {
    email: { B2C: always(BE_EMAIL_B2C), B2B: always(BE_EMAIL_B2B) },
    sms: { B2C: always(BE_EMAIL_B2C), B2B: always(BE_EMAIL_B2B) },
    phone: both(rule({ regime: 'OPT_OUT_REG', registers: ['BE_DNCM'], sources: ['[32]'], summary: "opt-out with the 'Ne m'appelez plus' register" })),
    postal: both(rule({ regime: 'OPT_OUT', sources: ['[32]', '[33]'], summary: 'GDPR legitimate interest; stop on objection' })),
  },
};

const UK_EMAIL_B2C = rule({
  regime: 'OPT_IN_SOI',
  sale: 'SALE_OR_NEGOTIATION',
  sources: ['[34]', '[35]', '[36]'],
  summary: 'consent, or soft opt-in on a sale or negotiation for one; no time limit set (UNVERIFIED)',
  unverified: true,
});
const UK_EMAIL_B2B = rule({ regime: 'OPT_OUT', sources: ['[36]'], summary: 'corporate subscribers: opt-out (identify the sender; UK GDPR objection applies)' });
const uk: JurisdictionProfile = {
  id: 'UK',
  name: 'United Kingdom',
  countries: ['GB', 'UK'],
  rules: {
    email: { B2C: always(UK_EMAIL_B2C), B2B: always(UK_EMAIL_B2B) },
    sms: { B2C: always(UK_EMAIL_B2C), B2B: always(UK_EMAIL_B2B) },
    phone: both(rule({ regime: 'OPT_OUT_REG', registers: ['UK_TPS', 'UK_CTPS'], sources: ['[37]'], summary: 'live calls opt-out with TPS/CTPS; automated calls need consent' })),
    postal: both(rule({ regime: 'OPT_OUT', sources: ['[38]'], summary: 'lawful basis; stop on request' })),
  },
};

const IE_EMAIL_B2C = rule({
  regime: 'OPT_IN_SOI',
  softOptInValidity: { kind: 'months_from_sale', months: 12 },
  sources: ['[39]', '[40]'],
  summary: 'consent, or soft opt-in: first message within 12 months of the sale (reg 13(11), DPC); not for browsing or abandoned checkouts',
});
const IE_EMAIL_B2B = rule({
  regime: 'OPT_OUT',
  needsProfessionalContext: true,
  sources: ['[41]'],
  summary: 'opt-out when the address is mainly used for business and the message relates solely to it',
});
const ie: JurisdictionProfile = {
  id: 'IE',
  name: 'Ireland',
  countries: ['IE'],
  rules: {
    email: { B2C: always(IE_EMAIL_B2C), B2B: always(IE_EMAIL_B2B) },
    sms: { B2C: always(IE_EMAIL_B2C), B2B: always(IE_EMAIL_B2B) },
    // Landlines opt-out with the NDD register, mobiles opt-in: the app cannot tell them apart, so consent only.
    phone: both(rule({ regime: 'OPT_IN', registers: ['IE_NDD'], sources: ['[42]'], summary: 'mobile opt-in, landline opt-out with NDD; decided as consent only', unverified: true })),
    postal: both(EU_POST),
  },
};

const AT_EMAIL = rule({
  regime: 'OPT_IN_SOI',
  doubleOptIn: 'DEFACTO',
  registers: ['AT_ECG'],
  soiRegisters: ['AT_ECG'],
  sources: ['[43]', '[44]'],
  summary: 'consent, or soft opt-in when the recipient is not on the ECG-Liste; asking for consent by e-mail is itself prohibited',
  unverified: true,
});
const at: JurisdictionProfile = {
  id: 'AT',
  name: 'Austria',
  countries: ['AT'],
  rules: {
    email: both(AT_EMAIL),
    sms: both(AT_EMAIL),
    phone: both(rule({ regime: 'OPT_IN', sources: ['[43]', '[44]'], summary: 'consent for all; no hidden caller ID' })),
    postal: both(rule({ regime: 'OPT_OUT', sources: ['[45]'], summary: 'opt-out; the Robinsonliste binds address publishers, not own-customer mailings' })),
  },
};

const ES_EMAIL = rule({
  regime: 'OPT_IN_SOI',
  registers: ['ES_ROBINSON'],
  soiRegisters: ['ES_ROBINSON'],
  sources: ['[46]', '[47]'],
  summary: 'consent, or soft opt-in after a prior contractual relationship (LSSI art 21); Lista Robinson for the non-consented',
});
const es: JurisdictionProfile = {
  id: 'ES',
  name: 'Spain',
  countries: ['ES'],
  rules: {
    email: both(ES_EMAIL),
    sms: both(ES_EMAIL),
    phone: both(
      rule({
        regime: 'OPT_IN_SOI',
        softOptInValidity: { kind: 'months_from_sale', months: 12 },
        registers: ['ES_ROBINSON'],
        soiRegisters: ['ES_ROBINSON'],
        sources: ['[48]', '[47]'],
        summary: 'since 29-06-2023: consent, or legitimate interest for ex-customers and similar products within 1 year',
      }),
    ),
    postal: both(rule({ regime: 'OPT_OUT_REG', registers: ['ES_ROBINSON'], sources: ['[47]'], summary: 'opt-out with Lista Robinson' })),
  },
};

const IT_EMAIL = rule({
  regime: 'OPT_IN_SOI',
  sources: ['[49]', '[50]', '[51]'],
  summary: 'consent, or soft opt-in for the same product category (Codice art 130(4)); B2B scope UNVERIFIED',
  unverified: true,
});
const IT_SMS = rule({ regime: 'OPT_IN', doubleOptIn: 'REC', sources: ['[49]', '[50]'], summary: 'consent only: soft opt-in covers e-mail, not SMS/MMS' });
const it: JurisdictionProfile = {
  id: 'IT',
  name: 'Italy',
  countries: ['IT'],
  rules: {
    email: both(IT_EMAIL),
    sms: both(IT_SMS),
    phone: both(rule({ regime: 'OPT_OUT_REG', registers: ['IT_RPO'], sources: ['[52]'], summary: 'opt-out with the RPO register' })),
    postal: both(rule({ regime: 'OPT_OUT_REG', registers: ['IT_RPO'], sources: ['[52]'], summary: 'opt-out; RPO for directory-sourced addresses' })),
  },
};

/** law.md "Fallback for an EEA country not listed" (a design default, not a legal finding). */
const EEA_EMAIL = rule({
  regime: 'OPT_IN_SOI',
  softOptInValidity: { kind: 'months_from_sale', months: 12 },
  sources: ['[1]'],
  summary: 'design fallback: consent, or soft opt-in for 12 months after the sale (strictest known, IE)',
});
const eea: JurisdictionProfile = {
  id: 'EEA',
  name: 'Other EEA country (fallback)',
  countries: ['BG', 'HR', 'CY', 'CZ', 'DK', 'EE', 'FI', 'GR', 'HU', 'LV', 'LT', 'LU', 'MT', 'PL', 'PT', 'RO', 'SK', 'SI', 'SE', 'IS', 'LI', 'NO'],
  rules: {
    email: both(EEA_EMAIL),
    sms: both(EEA_EMAIL),
    phone: both(rule({ regime: 'OPT_IN', sources: ['[1]'], summary: 'design fallback: consent (live and automated calls)' })),
    postal: both(EU_POST),
  },
};

export const PROFILES: Readonly<Record<ProfileId, JurisdictionProfile>> = { EU: eu, NL: nl, DE: de, FR: fr, BE: be, UK: uk, IE: ie, AT: at, ES: es, IT: it, EEA: eea };

const BY_COUNTRY = new Map<string, JurisdictionProfile>(Object.values(PROFILES).flatMap((p) => p.countries.map((c) => [c, p] as const)));

/** The profile for a country; unknown, missing or non-EEA countries get the EU default (issue 4 §2). */
export function profileForCountry(country: string | null | undefined): JurisdictionProfile {
  if (!country) return eu;
  // Stored countries are upper case already: try as given before making an upper-case copy.
  return BY_COUNTRY.get(country) ?? BY_COUNTRY.get(country.toUpperCase()) ?? eu;
}

export function ruleChannelOf(channel: string): RuleChannel | null {
  if (channel === 'email' || channel === 'sms' || channel === 'phone' || channel === 'postal') return channel;
  if (channel === 'whatsapp') return 'sms'; // law.md R12
  return null;
}

/**
 * The rule in force at `at` (ISO-8601) for a channel and audience. A variant's `from` is a day (`2026-08-11`);
 * compared with the whole timestamp it sorts before every time of that day and after every earlier day, the same
 * as comparing with the timestamp's date part, without cutting a new string for each decision.
 */
export function ruleAt(profile: JurisdictionProfile, channel: RuleChannel, audience: Audience, at: string): DatedRule {
  const variants = profile.rules[channel][audience];
  let current = variants[0]!;
  for (const variant of variants) if (variant.from === null || variant.from <= at) current = variant;
  return current;
}

/** `profile/channel/audience[@from]`, e.g. `FR/phone/B2C@2026-08-11`: how decisions and evidence name a row. */
export function rowName(profile: JurisdictionProfile, channel: RuleChannel, audience: Audience, dated: DatedRule): string {
  return `${profile.id}/${channel}/${audience}${dated.from ? `@${dated.from}` : ''}`;
}

/**
 * `start` plus whole calendar months, in UTC, time of day kept. A day the target month lacks becomes that month's
 * last day: 31 January + 1 month = 28 (or 29) February, 29 February 2024 + 12 months = 28 February 2025.
 * law.md counts windows in months without saying how to count from a month's end; ending on the shorter month's
 * last day is the stricter reading (JavaScript's own month arithmetic rolls over into March, up to three days
 * past the window).
 */
export function addCalendarMonths(start: Date, months: number): Date {
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0–99 as 1900–1999.
  const firstOfTarget = new Date(start.getTime());
  firstOfTarget.setUTCFullYear(start.getUTCFullYear(), start.getUTCMonth() + months, 1);
  const lastDayOfTarget = new Date(firstOfTarget.getTime());
  lastDayOfTarget.setUTCFullYear(firstOfTarget.getUTCFullYear(), firstOfTarget.getUTCMonth() + 1, 0);
  const end = new Date(firstOfTarget.getTime());
  end.setUTCDate(Math.min(start.getUTCDate(), lastDayOfTarget.getUTCDate()));
  return end;
}

/**
 * `start` plus a validity (calendar months, `addCalendarMonths`), or null for none.
 * Ends already computed are remembered per validity rule (rules are long-lived objects) and start time: the gate
 * asks the same question for the same grant on every check, and date parsing and formatting were a measurable
 * part of a decision. Bounded: a rule's memo is emptied when it reaches MEMO_LIMIT starts.
 */
const endMemo = new WeakMap<Validity, Map<string, string>>();
const MEMO_LIMIT = 100_000;

export function validityEnd(validity: Validity, start: string): string | null {
  if (validity.kind === 'none') return null;
  let memo = endMemo.get(validity);
  if (memo === undefined) endMemo.set(validity, (memo = new Map()));
  const known = memo.get(start);
  if (known !== undefined) return known;
  const end = addCalendarMonths(new Date(start), validity.months).toISOString();
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(start, end);
  return end;
}
