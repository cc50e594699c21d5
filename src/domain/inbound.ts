/**
 * What a webhook delivery means, in domain terms: the output of a platform mapper (webhooks/<platform>/map.ts)
 * and the input of the inbox worker (src/inbox/). Mappers are pure; the worker applies effects in one
 * transaction per delivery. Pure types; imports only other domain modules.
 */
import type { NewConsentEvent } from './consent';
import type { Identity } from './identity';

/** A consent event before its subject is resolved from the delivery's identities. */
export type SubjectlessEvent = Omit<NewConsentEvent, 'subjectId'>;

/** Country and business hints of a person, stamped with the source's own update time (newest wins). */
export interface ProfileFacts {
  /** ISO 3166-1 alpha-2, upper case; null when the source had no address country. */
  readonly country: string | null;
  /** Company on the default address (a B2B hint for issue 4's audience rule); null when none. */
  readonly company: string | null;
  readonly sourceUpdatedAt: string;
}

/**
 * The customer's tags as of `sourceUpdatedAt` (a B2B hint for issue 4's audience rule, setting
 * `b2b.customerTags`): trimmed, each once. Only when the source carried them; an empty list means "no tags".
 */
export interface CustomerTags {
  readonly tags: readonly string[];
  readonly sourceUpdatedAt: string;
}

export interface PurchaseLine {
  readonly productId: string | null;
  readonly variantId: string | null;
  readonly quantity: number;
}

/** A paid order: what the soft opt-in rules (law.md SOI) start from. */
export interface PurchaseFact {
  readonly orderId: string;
  readonly orderedAt: string;
  readonly paidAt: string;
  /** Billing address country, else the customer's default address country. */
  readonly country: string | null;
  /** Shopify `buyer_accepts_marketing` (the checkout box); its exact semantics are UNVERIFIED (shopify.md §2). */
  readonly buyerAcceptsMarketing: boolean | null;
  readonly lines: readonly PurchaseLine[];
  /** Order note attributes by name (a checkout objection checkbox writes one, issue 4). */
  readonly attributes: Readonly<Record<string, string>>;
}

/**
 * What a Shopify products/create or products/update delivery says about a product (REST shape, shopify.md §2).
 * Taxonomy category and collections are not among it: the catalog refetches them through GraphQL.
 */
export interface ProductUpdateFacts {
  /** Numeric Shopify product id. */
  readonly productId: string;
  readonly productType: string | null;
  readonly vendor: string | null;
  readonly tags: readonly string[];
  /** The product's `updated_at` (ISO-8601 UTC): newest wins. */
  readonly updatedAt: string;
}

export type InboundEffect =
  /** Consent events for the person the identities name (the first identity is the most specific). */
  | { readonly kind: 'consent'; readonly identities: readonly Identity[]; readonly events: readonly SubjectlessEvent[] }
  /** Identity (and profile) upsert; no consent change. */
  | { readonly kind: 'identify'; readonly identities: readonly Identity[]; readonly profile: ProfileFacts | null; readonly customerTags?: CustomerTags }
  | { readonly kind: 'purchase'; readonly identities: readonly Identity[]; readonly purchase: PurchaseFact; readonly profile: ProfileFacts | null; readonly customerTags?: CustomerTags }
  /** Product facts for similarity (issue 4 §3): cached, and marked stale so the next lookup refetches the rest. */
  | { readonly kind: 'product'; readonly product: ProductUpdateFacts }
  /** Unite the subjects of `merged` into the subject of `into`; the most restrictive state wins. */
  | { readonly kind: 'merge'; readonly into: Identity; readonly merged: readonly Identity[] }
  /** The platform record behind this identity is gone (HubSpot contact.deletion); the person stays. */
  | { readonly kind: 'unlink'; readonly identity: Identity }
  /** The app was uninstalled from the shop: tenant marked uninstalled, tokens discarded, sync stopped. */
  | { readonly kind: 'uninstall' }
  /** Nothing to do, and why (an echo of our own write, `not_subscribed`, an unhandled property …). */
  | { readonly kind: 'skip'; readonly reason: string };

/** A stored delivery as a mapper sees it. */
export interface InboundDelivery {
  readonly platform: 'shopify' | 'hubspot';
  readonly topic: string;
  readonly deliveryKey: string;
  /** Parsed JSON of the delivery (validated by the mapper's schemas, never trusted). */
  readonly payload: unknown;
  readonly meta: Readonly<Record<string, string>>;
  readonly receivedAt: string;
}

/**
 * Thrown by a mapper for a payload that can never be processed (schema mismatch). The worker dead-letters it
 * at once instead of retrying; `inbox retry` replays it after an upgrade.
 */
export class PermanentDeliveryError extends Error {
  readonly details: readonly string[];
  constructor(message: string, details: readonly string[] = []) {
    super(details.length > 0 ? `${message}: ${details.join('; ')}` : message);
    this.name = 'PermanentDeliveryError';
    this.details = details;
  }
}

export interface MapperContext {
  /** HUBSPOT_APP_ID: HubSpot property changes whose sourceId names it are echoes of our own writes. */
  readonly hubspotAppId: string | null;
}

export type InboundMapper = (delivery: InboundDelivery, context: MapperContext) => readonly InboundEffect[];
