/**
 * Echo suppression (issue 5 §5): every platform write of ours is logged by a fingerprint of what it set; an
 * inbound webhook or poll observation carrying exactly that is our own write coming back and is dropped, so one
 * real change produces exactly one write per platform and never a ping-pong. A fingerprint holds the platform
 * record, the channel, the state and the change time, so a later real change (a new time) is never mistaken for
 * an echo. Kept 7 days: Shopify retries a webhook for up to 48 h (shopify.md §1.3).
 */
import type { Channel } from '../domain/consent';

export const WRITE_LOG_RETENTION_MS = 7 * 86_400_000;

/**
 * Our Shopify consent write, and the Shopify webhook that reflects it. `state` upper case (GraphQL form). The time
 * is kept to the whole second: Shopify's DateTime has no milliseconds (connectors/shopify/consent.ts), so the echo
 * of a write at 09:00:44.773 says 09:00:44.
 */
export function shopifyConsentFingerprint(customerId: string, channel: Channel, state: string, consentUpdatedAt: string): string {
  const second = Math.floor(Date.parse(consentUpdatedAt) / 1000) * 1000;
  return `shopify:${channel}:${customerId}:${state.toUpperCase()}:${new Date(second).toISOString()}`;
}

/** Our HubSpot subscription write, and an observation of it (poll or "Record consent change" action). */
export function hubspotSubscriptionFingerprint(email: string, subscriptionTypeId: string, subscribed: boolean): string {
  return `hubspot:sub:${email.toLowerCase()}:${subscriptionTypeId}:${subscribed ? 'SUBSCRIBED' : 'NOT_SUBSCRIBED'}`;
}
