/**
 * The consent model of design.md "Consent model". Pure types and small predicates; imports nothing.
 *
 * Enums only grow (style.md §16): values are stored in the ledger and hashed, so renaming one would break
 * `ledger verify` for every existing event.
 */

/** Marketing channels. WhatsApp is treated like SMS where law.md R12 says so (decided by the rules, not here). */
export const CHANNELS = ['email', 'sms', 'whatsapp', 'phone', 'postal'] as const;
export type Channel = (typeof CHANNELS)[number];

/** A purpose the merchant defines (mapped to HubSpot subscription types); `ALL_PURPOSES` applies to every one. */
export type Purpose = string;
export const ALL_PURPOSES: Purpose = '*';

export const EVENT_KINDS = [
  /** Consent given (a ticked box, a form, an observed "subscribed" state). */
  'grant',
  /** Sign-up whose double opt-in confirmation is outstanding: never sendable (conflict rule 5). */
  'pending',
  /** Double opt-in confirmation of an earlier sign-up. */
  'confirm',
  /** Consent withdrawn (unsubscribe). */
  'withdraw',
  /** Objection to direct marketing (GDPR art 21): blocks, and ends soft opt-in for the channel for good (rule 4). */
  'object',
  /** Soft opt-in earned by a purchase, scoped to one category group (law.md SOI). */
  'soft_opt_in_earned',
  /** A soft opt-in's validity window passed (emitted by the scheduler). */
  'soft_opt_in_expired',
  /** A consent's validity window passed where a profile sets one (law.md R3). */
  'consent_expired',
  /** The platform marked the address invalid (Shopify `invalid`): not sendable, not a withdrawal. */
  'address_invalid',
  /** Personal data erased (Shopify `redacted`, a redact request): behaves like a withdrawal (rule 7). */
  'erase',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export const LEGAL_BASES = ['consent', 'soft_opt_in', 'legitimate_interest', 'contract'] as const;
export type LegalBasis = (typeof LEGAL_BASES)[number];

export const EVENT_SOURCES = ['shopify', 'hubspot', 'gate', 'admin', 'system'] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

export const OPT_IN_LEVELS = ['single_opt_in', 'confirmed_opt_in', 'unknown'] as const;
export type OptInLevel = (typeof OPT_IN_LEVELS)[number];

/**
 * Proof of consent (law.md R2). Every field optional because each source gives a different subset; the rules
 * decide what is sufficient. Values must be JSON (they are hashed into the ledger).
 */
export interface Evidence {
  /**
   * True only for a fresh affirmative act by the person (a ticked box, a confirmed double opt-in, a form).
   * A sync, backfill, poll observation or echo is never affirmative (conflict rule 3).
   */
  readonly affirmative?: boolean;
  /** Where it was captured: `checkout`, `form:<url>`, `pos:<location>`, `import`, `hubspot:<workflow>` … */
  readonly capturePoint?: string;
  readonly noticeText?: string;
  readonly noticeVersion?: string;
  readonly optInLevel?: OptInLevel;
  /** Shopify SMS `consent_collected_from` (SHOPIFY or OTHER). */
  readonly collectedFrom?: string;
  readonly orderId?: string;
  readonly orderDate?: string;
  /** Category groups a soft opt-in covers (one group per soft_opt_in_earned event). */
  readonly categories?: readonly string[];
  /** End of validity for soft opt-in or consent (ISO-8601 UTC). */
  readonly validUntil?: string;
  /** `consent_expired`: the `grantedAt` of the grant the expiry was computed for; the fold ends only that grant. */
  readonly grantedAt?: string;
  /** law.md row the rules applied, e.g. `NL/email/B2C`. */
  readonly profileRow?: string;
  readonly ip?: string;
  readonly userAgent?: string;
  /** Free-form, for admins and observations ("observed in HubSpot at T"). */
  readonly note?: string;
  readonly [extra: string]: unknown;
}

/** One ledger event. Timestamps are ISO-8601 UTC with milliseconds (`2026-05-02T08:20:11.000Z`). */
export interface ConsentEvent {
  readonly id: string;
  readonly tenantId: string;
  readonly subjectId: string;
  readonly channel: Channel;
  readonly purpose: Purpose;
  readonly kind: EventKind;
  readonly basis: LegalBasis | null;
  /** The source's own timestamp: the only ordering key (conflict rule 1). */
  readonly occurredAt: string;
  readonly receivedAt: string;
  readonly source: EventSource;
  readonly sourceDeliveryId: string | null;
  readonly evidence: Evidence;
}

/** A new event before the ledger assigns its id, tenant and receipt time. */
export type NewConsentEvent = Omit<ConsentEvent, 'id' | 'tenantId' | 'receivedAt'>;

export const CONSENT_STATUSES = ['none', 'pending', 'granted', 'withdrawn', 'expired', 'erased'] as const;
export type ConsentStatus = (typeof CONSENT_STATUSES)[number];

export interface SoftOptInGrant {
  readonly earnedAt: string;
  readonly validUntil: string | null;
  readonly eventId: string;
  readonly orderId: string | null;
}

/** Current state per (subject, channel, purpose), derived only from events (the projection). */
export interface ConsentState {
  readonly status: ConsentStatus;
  /** Basis of the current grant; null unless status is `granted`. */
  readonly basis: LegalBasis | null;
  readonly optInLevel: OptInLevel | null;
  readonly grantedAt: string | null;
  readonly confirmedAt: string | null;
  readonly pendingSince: string | null;
  readonly withdrawnAt: string | null;
  readonly validUntil: string | null;
  readonly addressInvalid: boolean;
  /** Soft opt-in has ended for good on this channel (an objection or an unsubscribe; conflict rule 4). */
  readonly softOptInEnded: boolean;
  readonly softOptInEndedAt: string | null;
  /** Live soft opt-ins per category group. */
  readonly softOptIn: Readonly<Record<string, SoftOptInGrant>>;
  /** Events that explain the current status, oldest first. */
  readonly evidenceEventIds: readonly string[];
  /** Newest occurredAt folded in (null for no events). */
  readonly lastEventAt: string | null;
}

export const EMPTY_STATE: ConsentState = Object.freeze({
  status: 'none',
  basis: null,
  optInLevel: null,
  grantedAt: null,
  confirmedAt: null,
  pendingSince: null,
  withdrawnAt: null,
  validUntil: null,
  addressInvalid: false,
  softOptInEnded: false,
  softOptInEndedAt: null,
  softOptIn: Object.freeze({}),
  evidenceEventIds: Object.freeze([]),
  lastEventAt: null,
});

/** Withdrawal-like events: they block, and beat a grant with an equal or older timestamp (conflict rule 2). */
export function isRestrictive(kind: EventKind): boolean {
  return kind === 'withdraw' || kind === 'object' || kind === 'erase';
}

/**
 * A new affirmative act with evidence (conflict rule 3): the only thing that may re-grant after a withdrawal.
 * It must say so (`affirmative: true`) and name where it was captured.
 */
export function isAffirmativeAct(event: Pick<ConsentEvent, 'kind' | 'basis' | 'evidence'>): boolean {
  const { evidence } = event;
  return (
    (event.kind === 'grant' || event.kind === 'confirm' || event.kind === 'pending') &&
    event.basis === 'consent' &&
    evidence.affirmative === true &&
    typeof evidence.capturePoint === 'string' &&
    evidence.capturePoint.trim().length > 0
  );
}
