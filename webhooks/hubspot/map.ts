/**
 * HubSpot event → domain effects (README mapping table, issue 3 §8). Pure: no I/O, no clock.
 *
 * | subscriptionType           | effect                                                                   |
 * |----------------------------|--------------------------------------------------------------------------|
 * | contact.creation           | the contact id becomes an identity (its email arrives as a propertyChange) |
 * | contact.propertyChange     | `email`/`phone`: identity; `consent_bridge_sms_consent`: SMS consent event; |
 * |                            | other app properties: skipped (the next sync restores them)              |
 * | contact.merge              | identities united into the surviving contact; most restrictive state wins |
 * | contact.deletion           | the contact id is unlinked; the person and their consent history remain  |
 * | (any, written by this app) | dropped as an echo (sourceId names HUBSPOT_APP_ID, design.md rule 6)     |
 */
import { ALL_PURPOSES } from '../../src/domain/consent';
import { HUBSPOT_PROPERTIES, HUBSPOT_PROPERTY_PREFIX } from '../../src/domain/hubspot-properties';
import {
  PermanentDeliveryError,
  type InboundDelivery,
  type InboundEffect,
  type MapperContext,
  type SubjectlessEvent,
} from '../../src/domain/inbound';
import { normalizeIdentity, type Identity } from '../../src/domain/identity';
import { toIsoTimestamp } from '../../src/domain/time';
import { eventSchema } from './events';

type HubspotEvent = ReturnType<typeof eventSchema.parse>;

/**
 * True when the change was written by this app. HubSpot reports the writer in `changeSource`/`sourceId`; for
 * an app's OAuth writes `sourceId` carries the app id, bare or prefixed (`app:123`, `appId:123`) depending on
 * the event (UNVERIFIED across all variants, hubspot.md §1.1), so both forms are recognised.
 */
export function isEcho(event: Pick<HubspotEvent, 'sourceId'>, appId: string | null): boolean {
  if (appId === null || event.sourceId === undefined) return false;
  const source = event.sourceId.trim();
  return source === appId || new RegExp(`^[A-Za-z_]+:${appId}$`).test(source);
}

function contact(id: string | undefined, field: string): Identity {
  const identity = id === undefined ? null : normalizeIdentity('hubspot_contact', id);
  if (identity === null) throw new PermanentDeliveryError(`${field} is missing or not a contact id`);
  return identity;
}

/** SMS consent property values → ledger events (the app's property; HubSpot has no SMS consent API). */
function smsConsentEffect(delivery: InboundDelivery, event: HubspotEvent, who: Identity, value: string): InboundEffect[] {
  const occurredAt = toIsoTimestamp(event.occurredAt);
  if (occurredAt === null) throw new PermanentDeliveryError('occurredAt is not a timestamp');
  const evidence = {
    changeSource: event.changeSource ?? null,
    sourceId: event.sourceId ?? null,
    hubspotProperty: HUBSPOT_PROPERTIES.smsConsent,
    hubspotValue: value,
    // A HubSpot form submission is the person's own act; a CRM edit, import or integration write is an
    // observation of what someone else recorded, which never re-grants after a withdrawal (rule 3).
    ...(event.changeSource === 'FORM' ? { affirmative: true, capturePoint: 'hubspot:form' } : { note: `observed in HubSpot at ${occurredAt}` }),
  };
  const base = { channel: 'sms' as const, purpose: ALL_PURPOSES, occurredAt, source: 'hubspot' as const, sourceDeliveryId: delivery.deliveryKey, evidence };
  let change: SubjectlessEvent | null;
  switch (value) {
    case 'subscribed':
      change = { ...base, kind: 'grant', basis: 'consent' };
      break;
    case 'pending':
      change = { ...base, kind: 'pending', basis: 'consent' };
      break;
    case 'unsubscribed':
      change = { ...base, kind: 'withdraw', basis: null };
      break;
    case 'not_subscribed':
    case '':
      change = null;
      break;
    default:
      return [{ kind: 'skip', reason: `unknown ${HUBSPOT_PROPERTIES.smsConsent} value` }];
  }
  if (change === null) return [{ kind: 'identify', identities: [who], profile: null }, { kind: 'skip', reason: 'sms not_subscribed: no consent change' }];
  return [{ kind: 'consent', identities: [who], events: [change] }];
}

function propertyChange(delivery: InboundDelivery, event: HubspotEvent): InboundEffect[] {
  const who = contact(event.objectId, 'objectId');
  const name = event.propertyName ?? '';
  const value = event.propertyValue === null || event.propertyValue === undefined ? '' : String(event.propertyValue).trim();
  if (name === 'email' || name === 'phone') {
    const identity = value === '' ? null : normalizeIdentity(name, value);
    if (identity === null) return [{ kind: 'identify', identities: [who], profile: null }, { kind: 'skip', reason: `${name} empty or not valid` }];
    return [{ kind: 'identify', identities: [who, identity], profile: null }];
  }
  if (name === HUBSPOT_PROPERTIES.smsConsent) return smsConsentEffect(delivery, event, who, value.toLowerCase());
  if (name.startsWith(HUBSPOT_PROPERTY_PREFIX)) {
    return [{ kind: 'skip', reason: `app property ${name} changed outside the app; the next sync restores it` }];
  }
  return [{ kind: 'skip', reason: `property ${name || '(none)'} is not used` }];
}

export function mapHubspotDelivery(delivery: InboundDelivery, context: MapperContext): readonly InboundEffect[] {
  const parsed = eventSchema.safeParse(delivery.payload);
  if (!parsed.success) {
    throw new PermanentDeliveryError(
      `${delivery.topic} event does not match its schema`,
      parsed.error.issues.slice(0, 10).map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`),
    );
  }
  const event = parsed.data;
  if (isEcho(event, context.hubspotAppId)) return [{ kind: 'skip', reason: 'echo of our own write' }];
  switch (event.subscriptionType) {
    case 'contact.creation':
      return [{ kind: 'identify', identities: [contact(event.objectId, 'objectId')], profile: null }];
    case 'contact.deletion':
      return [{ kind: 'unlink', identity: contact(event.objectId, 'objectId') }];
    case 'contact.merge': {
      // Newer merges create a new record (newObjectId); older ones keep the primary.
      const survivor = contact(event.newObjectId ?? event.primaryObjectId ?? event.objectId, 'primaryObjectId');
      const merged = [event.primaryObjectId, ...(event.mergedObjectIds ?? [])]
        .filter((id): id is string => id !== undefined && id !== survivor.value)
        .map((id) => contact(id, 'mergedObjectIds'));
      if (merged.length === 0) return [{ kind: 'skip', reason: 'merge names no other record' }];
      return [{ kind: 'merge', into: survivor, merged }];
    }
    case 'contact.propertyChange':
      return propertyChange(delivery, event);
    default:
      throw new PermanentDeliveryError(`no mapping for HubSpot subscription type ${event.subscriptionType}`);
  }
}
