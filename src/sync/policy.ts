/**
 * The sync policy (issue 5 §5; README "Sync policy"): which platform writes a ledger append needs. Pure: the
 * ledger calls it inside the append's transaction with the events that took effect and the resulting states,
 * and the outbox stores what it returns in that same transaction.
 *
 * | Change (event that took effect)                  | HubSpot                                              | Shopify                         |
 * |--------------------------------------------------|------------------------------------------------------|---------------------------------|
 * | consent granted/confirmed (not from HubSpot)     | subscribe the purpose's types, CONSENT_WITH_NOTICE   | —  (it came from there, or: ↓)  |
 * | consent granted in HubSpot / by the gate         | properties + list                                    | SUBSCRIBED (email, `*` only)    |
 * | withdrawn / objected (not from HubSpot)          | unsubscribe the purpose's types                      | UNSUBSCRIBED unless from Shopify|
 * | withdrawn in HubSpot                             | properties + list                                    | UNSUBSCRIBED (`*` only)         |
 * | soft opt-in earned                               | subscribe types of purposes with those category      | nothing (a soft opt-in is not   |
 * |                                                  | groups, LEGITIMATE_INTEREST_CLIENT (not over consent) | consent)                        |
 * | soft opt-in / consent expired, merges, any other | properties + list                                    | —                               |
 *
 * Consent writes carry the state they reflect; the handlers check it again at dispatch and drop a write that a
 * newer change has superseded (retries can otherwise deliver an older write after a newer one).
 *
 * Every touched subject also gets one `hubspot.sync_contact` write (gate properties and suppression-list
 * membership), computed from the state current when it is dispatched, so out-of-order dispatch cannot regress
 * HubSpot. A write never goes back to the platform a change came from (no ping-pong); echoes of our own writes
 * coming back in are dropped on the way in (src/sync/echo.ts).
 */
import type { TenantSettings } from '../config/manifest';
import { isAffirmativeAct, type ConsentEvent, type ConsentState } from '../domain/consent';
import type { OutboxItem } from '../outbox/outbox';
import type { HubspotLegalBasis } from './ports';

export const SYNC_OPERATIONS = {
  hubspotContact: 'hubspot.sync_contact',
  hubspotSubscription: 'hubspot.subscription',
  shopifyConsent: 'shopify.consent',
} as const;

export interface HubspotContactPayload {
  readonly subjectId: string;
}

export interface HubspotSubscriptionPayload {
  readonly subjectId: string;
  readonly subscriptionTypeId: string;
  readonly subscribed: boolean;
  readonly legalBasis: HubspotLegalBasis | null;
  readonly legalBasisExplanation: string;
  readonly freshAffirmativeAct: boolean;
  readonly eventId: string;
  /** The purpose whose state the write reflects (checked again at dispatch: a newer change supersedes it). */
  readonly purpose?: string;
}

export interface ShopifyConsentPayload {
  readonly subjectId: string;
  readonly channel: 'email' | 'sms';
  readonly state: 'SUBSCRIBED' | 'UNSUBSCRIBED';
  readonly optInLevel: 'SINGLE_OPT_IN' | 'CONFIRMED_OPT_IN' | 'UNKNOWN' | null;
  readonly consentUpdatedAt: string;
  readonly eventId: string;
}

/** State after the append, by subject, channel and purpose. */
export type StateAfter = (subjectId: string, channel: string, purpose: string) => ConsentState | undefined;

function typesOfPurpose(settings: Pick<TenantSettings, 'purposes'>, purpose: string): string[] {
  const purposes = purpose === '*' ? settings.purposes : settings.purposes.filter((p) => p.id === purpose);
  return [...new Set(purposes.flatMap((p) => p.hubspotSubscriptionTypeIds))];
}

function typesOfCategories(settings: Pick<TenantSettings, 'purposes'>, categories: readonly string[]): string[] {
  return [...new Set(settings.purposes.filter((p) => p.categoryGroups.some((g) => categories.includes(g))).flatMap((p) => p.hubspotSubscriptionTypeIds))];
}

/** Whether the event is what the resulting state rests on (a grant ignored under conflict rule 3 is not). */
function tookEffect(event: ConsentEvent, state: ConsentState | undefined): boolean {
  return state !== undefined && state.evidenceEventIds.includes(event.id);
}

function explanation(event: ConsentEvent): string {
  const e = event.evidence;
  const where = typeof e.capturePoint === 'string' ? ` at ${e.capturePoint}` : '';
  const order = typeof e.orderId === 'string' ? ` order ${e.orderId}` : '';
  return `consent-bridge ${event.kind}${where}${order} on ${event.occurredAt} (${event.source}; evidence event ${event.id})`.slice(0, 500);
}

function optInLevelOf(state: ConsentState): ShopifyConsentPayload['optInLevel'] {
  if (state.confirmedAt !== null || state.optInLevel === 'confirmed_opt_in') return 'CONFIRMED_OPT_IN';
  if (state.optInLevel === 'single_opt_in') return 'SINGLE_OPT_IN';
  return 'UNKNOWN';
}

/** Outbox items for the events of one append (already validated and folded). */
export function planWrites(tenantId: string, settings: Pick<TenantSettings, 'purposes'>, events: readonly ConsentEvent[], stateAfter: StateAfter, lastSeq: number): OutboxItem[] {
  const items: OutboxItem[] = [];
  const subjects = new Set<string>();
  const item = (platform: 'hubspot' | 'shopify', operation: string, idempotencyKey: string, subjectId: string, payload: unknown): OutboxItem => ({
    tenantId,
    platform,
    operation,
    idempotencyKey,
    subjectId,
    payload,
    sourceSeq: lastSeq,
  });

  for (const event of events) {
    subjects.add(event.subjectId);
    const state = stateAfter(event.subjectId, event.channel, event.purpose);
    if (!tookEffect(event, state) && event.kind !== 'soft_opt_in_earned') continue;
    const carriedOver = event.evidence.mergedFrom !== undefined;
    if (carriedOver) continue;

    // HubSpot subscription statuses: email only (HubSpot has no SMS consent API, hubspot.md §3.1).
    if (event.channel === 'email' && event.source !== 'hubspot') {
      const subscribe = (types: string[], legalBasis: HubspotLegalBasis, fresh: boolean): void => {
        for (const typeId of types) {
          const payload: HubspotSubscriptionPayload = { subjectId: event.subjectId, subscriptionTypeId: typeId, subscribed: true, legalBasis, legalBasisExplanation: explanation(event), freshAffirmativeAct: fresh, eventId: event.id, purpose: event.purpose };
          items.push(item('hubspot', SYNC_OPERATIONS.hubspotSubscription, `hs-sub:${event.id}:${typeId}`, event.subjectId, payload));
        }
      };
      if ((event.kind === 'grant' || event.kind === 'confirm') && state?.status === 'granted' && state.basis === 'consent') {
        subscribe(typesOfPurpose(settings, event.purpose), 'CONSENT_WITH_NOTICE', isAffirmativeAct(event));
      } else if (event.kind === 'withdraw' || event.kind === 'object' || event.kind === 'erase') {
        for (const typeId of typesOfPurpose(settings, event.purpose)) {
          const payload: HubspotSubscriptionPayload = { subjectId: event.subjectId, subscriptionTypeId: typeId, subscribed: false, legalBasis: null, legalBasisExplanation: explanation(event), freshAffirmativeAct: false, eventId: event.id, purpose: event.purpose };
          items.push(item('hubspot', SYNC_OPERATIONS.hubspotSubscription, `hs-sub:${event.id}:${typeId}`, event.subjectId, payload));
        }
      } else if (event.kind === 'soft_opt_in_earned' && state !== undefined && !state.softOptInEnded && state.softOptIn !== undefined) {
        const categories = Object.entries(state.softOptIn)
          .filter(([, grant]) => grant.eventId === event.id)
          .map(([category]) => category);
        // A soft opt-in never overwrites consent (a stronger basis) in HubSpot.
        if (categories.length > 0 && !(state.status === 'granted' && state.basis === 'consent')) subscribe(typesOfCategories(settings, categories), 'LEGITIMATE_INTEREST_CLIENT', false);
      }
    }

    // Shopify consent: one flag per channel, so only `*` changes; never for a soft opt-in; never back to Shopify.
    if ((event.channel === 'email' || event.channel === 'sms') && event.source !== 'shopify' && event.purpose === '*' && state !== undefined) {
      const base = { subjectId: event.subjectId, channel: event.channel, consentUpdatedAt: event.occurredAt, eventId: event.id };
      let payload: ShopifyConsentPayload | null = null;
      if ((event.kind === 'grant' || event.kind === 'confirm') && state.status === 'granted' && state.basis === 'consent') payload = { ...base, state: 'SUBSCRIBED', optInLevel: optInLevelOf(state) };
      if ((event.kind === 'withdraw' || event.kind === 'object' || event.kind === 'erase') && state.status !== 'granted') payload = { ...base, state: 'UNSUBSCRIBED', optInLevel: null };
      if (payload) items.push(item('shopify', SYNC_OPERATIONS.shopifyConsent, `shop-consent:${event.id}`, event.subjectId, payload));
    }
  }

  for (const subjectId of subjects) {
    const payload: HubspotContactPayload = { subjectId };
    items.push(item('hubspot', SYNC_OPERATIONS.hubspotContact, `hs-contact:${subjectId}:${lastSeq}`, subjectId, payload));
  }
  return items;
}
