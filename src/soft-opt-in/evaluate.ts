/**
 * Soft opt-in from a paid order (issue 4 §4, law.md SOI conditions and R4): which channels earn a soft opt-in
 * for which category groups, or why not. Pure: the runner (runner.ts) gathers the inputs and appends the events.
 *
 * All conditions are required, and each failure is recorded with its own reason for `explain`:
 * 1. a paid order (a purchase fact exists only for orders/paid: never account creation or an abandoned checkout);
 * 2. no objection at checkout (setting `objectionOrderAttribute`: an order attribute set by a checkbox) — an
 *    objection is itself recorded, as an `object` event on every channel, and ends soft opt-in for good (R4);
 * 3. the merchant confirmed that checkout shows a soft opt-in notice with an objection option (setting
 *    `softOptInNotice`: confirmed, text, version, since), and the order was placed on or after `since`;
 * 4. per channel: the jurisdiction row (country and audience at the time of the order) allows soft opt-in;
 *    the person gave the contact detail for it (an email for email, a phone for SMS); no earlier objection or
 *    withdrawal ended soft opt-in on that channel;
 * 5. the products bought belong to at least one category group (unmapped products are never similar).
 */
import type { TenantSettings } from '../config/manifest';
import type { Channel, ConsentState, NewConsentEvent } from '../domain/consent';
import type { PurchaseLine } from '../domain/inbound';
import type { Audience, JurisdictionProfile } from '../rules/profiles';
import { ruleAt, rowName, validityEnd } from '../rules/profiles';

/** Channels soft opt-in is evaluated for (WhatsApp follows the SMS rows, law.md §1). */
export const SOFT_OPT_IN_CHANNELS = ['email', 'sms'] as const satisfies readonly Channel[];
export type SoftOptInChannel = (typeof SOFT_OPT_IN_CHANNELS)[number];

export const NOT_EARNED_REASONS = [
  'objected_at_checkout',
  'notice_not_confirmed',
  'order_before_notice',
  'profile_disallows',
  'no_contact_detail',
  'soft_opt_in_ended',
  'no_category',
] as const;
export type NotEarnedReason = (typeof NOT_EARNED_REASONS)[number];

export type ChannelOutcome =
  | { readonly earned: true; readonly categories: readonly string[]; readonly row: string; readonly validUntil: string | null }
  | { readonly earned: false; readonly reason: NotEarnedReason; readonly detail: string; readonly row?: string };

export interface PurchaseOutcome {
  readonly orderId: string;
  readonly evaluatedAt: string;
  readonly objection: boolean;
  readonly channels: Readonly<Record<SoftOptInChannel, ChannelOutcome>>;
}

export interface PurchaseForSoftOptIn {
  readonly orderId: string;
  readonly orderedAt: string;
  readonly paidAt: string;
  readonly lines: readonly PurchaseLine[];
  readonly attributes: Readonly<Record<string, string>>;
}

export interface SubjectForSoftOptIn {
  readonly subjectId: string;
  readonly country: string | null;
  readonly audience: Audience;
  readonly hasEmail: boolean;
  readonly hasPhone: boolean;
  /** Current `*` state per channel (undefined: nothing recorded). */
  readonly states: Readonly<Partial<Record<SoftOptInChannel, ConsentState>>>;
}

/** Values of a checkbox attribute that mean "ticked" (Shopify stores cart attributes as strings). */
const TICKED = new Set(['true', 'yes', 'on', '1', 'checked', 'x']);

/** Whether the order carries the merchant's objection attribute, ticked. */
export function objectedAtCheckout(purchase: PurchaseForSoftOptIn, settings: Pick<TenantSettings, 'objectionOrderAttribute'>): boolean {
  const name = settings.objectionOrderAttribute;
  if (!name) return false;
  const value = purchase.attributes[name];
  return value !== undefined && TICKED.has(String(value).trim().toLowerCase());
}

/**
 * Conditions that need no catalog: objection, notice, and per channel the row and the contact detail. Returns
 * the outcome when it is already decided for every channel (nothing can be earned), else null.
 */
export function precheck(purchase: PurchaseForSoftOptIn, subject: SubjectForSoftOptIn, profile: JurisdictionProfile, settings: TenantSettings, evaluatedAt: string): PurchaseOutcome | null {
  const all = (outcome: ChannelOutcome): PurchaseOutcome => ({ orderId: purchase.orderId, evaluatedAt, objection: outcome.earned === false && outcome.reason === 'objected_at_checkout', channels: { email: outcome, sms: outcome } });
  if (objectedAtCheckout(purchase, settings)) {
    return all({ earned: false, reason: 'objected_at_checkout', detail: `order attribute ${settings.objectionOrderAttribute} ticked` });
  }
  const notice = settings.softOptInNotice;
  if (!notice || !notice.confirmed) return all({ earned: false, reason: 'notice_not_confirmed', detail: 'setting softOptInNotice is not confirmed' });
  if (purchase.orderedAt < new Date(notice.since).toISOString()) {
    return all({ earned: false, reason: 'order_before_notice', detail: `ordered ${purchase.orderedAt}, notice shown since ${notice.since}` });
  }
  const channels = Object.fromEntries(SOFT_OPT_IN_CHANNELS.map((channel) => [channel, channelPrecheck(channel, purchase, subject, profile)])) as Record<SoftOptInChannel, ChannelOutcome | null>;
  if (SOFT_OPT_IN_CHANNELS.some((c) => channels[c] === null)) return null;
  return { orderId: purchase.orderId, evaluatedAt, objection: false, channels: channels as Record<SoftOptInChannel, ChannelOutcome> };
}

function channelPrecheck(channel: SoftOptInChannel, purchase: PurchaseForSoftOptIn, subject: SubjectForSoftOptIn, profile: JurisdictionProfile): ChannelOutcome | null {
  // The row in force when the order was placed (dated rows, e.g. FR phone from 2026-08-11).
  const dated = ruleAt(profile, channel, subject.audience, purchase.orderedAt);
  const row = rowName(profile, channel, subject.audience, dated);
  if (dated.rule.regime !== 'OPT_IN_SOI') return { earned: false, reason: 'profile_disallows', detail: `${row}: ${dated.rule.regime}`, row };
  const hasDetail = channel === 'email' ? subject.hasEmail : subject.hasPhone;
  if (!hasDetail) return { earned: false, reason: 'no_contact_detail', detail: `no ${channel === 'email' ? 'email address' : 'phone number'} given`, row };
  const state = subject.states[channel];
  if (state?.softOptInEnded) return { earned: false, reason: 'soft_opt_in_ended', detail: `ended at ${state.softOptInEndedAt} (objection or withdrawal)`, row };
  return null;
}

/** The full evaluation, given the category groups of the order's products. */
export function evaluatePurchase(
  purchase: PurchaseForSoftOptIn,
  subject: SubjectForSoftOptIn,
  profile: JurisdictionProfile,
  settings: TenantSettings,
  groups: readonly string[],
  evaluatedAt: string,
): PurchaseOutcome {
  const decided = precheck(purchase, subject, profile, settings, evaluatedAt);
  if (decided) return decided;
  const channels = {} as Record<SoftOptInChannel, ChannelOutcome>;
  for (const channel of SOFT_OPT_IN_CHANNELS) {
    const failed = channelPrecheck(channel, purchase, subject, profile);
    if (failed) {
      channels[channel] = failed;
      continue;
    }
    const dated = ruleAt(profile, channel, subject.audience, purchase.orderedAt);
    const row = rowName(profile, channel, subject.audience, dated);
    if (groups.length === 0) {
      channels[channel] = { earned: false, reason: 'no_category', detail: 'no product of the order belongs to a category group', row };
      continue;
    }
    const ends = [validityEnd(dated.rule.softOptInValidity, purchase.paidAt), settings.softOptInMaxMonths ? validityEnd({ kind: 'months_from_sale', months: settings.softOptInMaxMonths }, purchase.paidAt) : null].filter(
      (e): e is string => e !== null,
    );
    const validUntil = ends.length === 0 ? null : ends.reduce((a, b) => (a < b ? a : b));
    channels[channel] = { earned: true, categories: [...groups].sort(), row, validUntil };
  }
  return { orderId: purchase.orderId, evaluatedAt, objection: false, channels };
}

/** Ledger events for an outcome: `object` per channel for a checkout objection, else `soft_opt_in_earned`. */
export function eventsOf(outcome: PurchaseOutcome, purchase: PurchaseForSoftOptIn, subjectId: string, settings: TenantSettings): NewConsentEvent[] {
  const base = { subjectId, purpose: '*', source: 'shopify' as const, sourceDeliveryId: `order:${purchase.orderId}` };
  if (outcome.objection) {
    return SOFT_OPT_IN_CHANNELS.map((channel) => ({
      ...base,
      channel,
      kind: 'object' as const,
      basis: null,
      occurredAt: purchase.orderedAt,
      evidence: { affirmative: true, capturePoint: 'checkout', orderId: purchase.orderId, orderDate: purchase.orderedAt, note: `objection checkbox (${settings.objectionOrderAttribute})` },
    }));
  }
  const notice = settings.softOptInNotice;
  const events: NewConsentEvent[] = [];
  for (const channel of SOFT_OPT_IN_CHANNELS) {
    const result = outcome.channels[channel];
    if (!result.earned) continue;
    events.push({
      ...base,
      channel,
      kind: 'soft_opt_in_earned',
      basis: 'soft_opt_in',
      occurredAt: purchase.paidAt,
      evidence: {
        affirmative: false,
        capturePoint: 'checkout',
        orderId: purchase.orderId,
        orderDate: purchase.orderedAt,
        categories: result.categories,
        profileRow: result.row,
        ...(result.validUntil ? { validUntil: result.validUntil } : {}),
        ...(notice ? { noticeText: notice.text, noticeVersion: notice.version } : {}),
      },
    });
  }
  return events;
}
