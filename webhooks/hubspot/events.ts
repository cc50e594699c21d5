/**
 * HubSpot webhook event shapes (hubspot.md §1.1). The request path checks the routing fields of every event
 * before storing any (a malformed batch is refused whole); the mapper reads the rest.
 */
import { z } from 'zod';

const numericId = z.union([z.number().int().nonnegative(), z.string().regex(/^\d{1,20}$/)]).transform(String);

/** Fields the delivery key and tenant routing need. Extra fields are kept as received. */
export const routedEventSchema = z.looseObject({
  eventId: numericId,
  subscriptionId: numericId,
  portalId: numericId,
  occurredAt: z.number().int().nonnegative(),
  subscriptionType: z.string().min(1).max(100),
  objectId: numericId.optional(),
  primaryObjectId: numericId.optional(),
});
export type RoutedEvent = z.infer<typeof routedEventSchema>;

/** A batch is a JSON array of 1–100 events (hubspot.md §1.3). */
export const MAX_EVENTS_PER_BATCH = 100;

export const eventSchema = routedEventSchema.extend({
  attemptNumber: z.number().int().nonnegative().optional(),
  propertyName: z.string().optional(),
  propertyValue: z.union([z.string(), z.number(), z.boolean()]).nullish(),
  changeSource: z.string().optional(),
  sourceId: z.union([z.string(), z.number()]).transform(String).optional(),
  changeFlag: z.string().optional(),
  mergedObjectIds: z.array(numericId).optional(),
  newObjectId: numericId.optional(),
});

/** Subscription types stored for the worker. `contact.privacyDeletion` goes to the privacy requests instead. */
export const HANDLED_TYPES = ['contact.creation', 'contact.deletion', 'contact.merge', 'contact.propertyChange'] as const;
export const PRIVACY_TYPES = ['contact.privacyDeletion'] as const;

export function isHandledType(type: string): boolean {
  return (HANDLED_TYPES as readonly string[]).includes(type);
}

export function isPrivacyType(type: string): boolean {
  return (PRIVACY_TYPES as readonly string[]).includes(type);
}

/**
 * The delivery key: `eventId` alone is not unique (hubspot.md §1.1), so the whole tuple
 * eventId:subscriptionId:portalId:objectId:occurredAt.
 */
export function deliveryKeyOf(event: RoutedEvent): string {
  return [event.eventId, event.subscriptionId, event.portalId, event.objectId ?? event.primaryObjectId ?? '', event.occurredAt].join(':');
}
