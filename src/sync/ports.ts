/**
 * Ports of the outbound sync (issue 5): what the core asks of the platforms. connectors/hubspot and
 * connectors/shopify implement them; only the composition root (src/main.ts) wires the concrete pieces. Every
 * call takes the tenant; credentials, base URLs, rate limits and token refresh are the connector's business
 * (through the `AccessTokens` and `RateLimiter` ports below, implemented in the core).
 *
 * Failures are reported per item where the platform answers per item (HubSpot 207, Shopify userErrors) and as a
 * thrown `PlatformCallError` for the whole call otherwise. `retryable` decides between a later retry (outbox
 * backoff, honouring `retryAfterMs`) and a dead letter.
 */
import type { Tenant } from '../tenants/tenants';

/** A failed platform call. `retryAfterMs` from `Retry-After` (seconds on both platforms) or a throttle state. */
export class PlatformCallError extends Error {
  readonly platform: 'shopify' | 'hubspot';
  readonly status: number | null;
  readonly retryable: boolean;
  readonly retryAfterMs: number | null;
  /** For metrics: `rate_limited`, `server_error`, `timeout`, `connection`, `auth`, `client_error`, `malformed`. */
  readonly kind: string;
  constructor(platform: 'shopify' | 'hubspot', message: string, options: { status?: number | null; retryable: boolean; retryAfterMs?: number | null; kind: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PlatformCallError';
    this.platform = platform;
    this.status = options.status ?? null;
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs ?? null;
    this.kind = options.kind;
  }
}

/**
 * Outcome of one item of a batch call, by the caller's key. `note`: done, but the platform kept something else
 * worth recording (e.g. Shopify keeps a newer consent record than the write). `retryAfterMs`: when a retryable
 * item may be tried again (a rate limit hit mid-batch), as on PlatformCallError.
 */
export type ItemOutcome =
  | { readonly key: string; readonly ok: true; readonly note?: string }
  | { readonly key: string; readonly ok: false; readonly error: string; readonly retryable: boolean; readonly retryAfterMs?: number };

// ---------------------------------------------------------------- HubSpot

/** HubSpot legal basis values the app writes (hubspot.md §3.2). */
export type HubspotLegalBasis = 'CONSENT_WITH_NOTICE' | 'LEGITIMATE_INTEREST_CLIENT';

export interface HubspotSubscriptionDefinition {
  readonly id: string;
  readonly name: string;
  readonly isActive: boolean;
}

/** What provisioning made sure exists in the portal (idempotent: found or created). */
export interface HubspotProvisioning {
  readonly propertyGroup: string;
  /** Names of the app's contact properties. */
  readonly properties: readonly string[];
  /** The MANUAL list of blocked contacts (suppression list). */
  readonly suppressionListId: string;
  readonly subscriptionTypes: readonly HubspotSubscriptionDefinition[];
}

export interface ContactPropertiesWrite {
  /** Caller's key for the outcome (the outbox row id). */
  readonly key: string;
  readonly email: string;
  readonly properties: Readonly<Record<string, string>>;
}

export interface SubscriptionWrite {
  readonly key: string;
  readonly email: string;
  readonly subscriptionTypeId: string;
  readonly subscribed: boolean;
  /** Required for `subscribed`; HubSpot also wants one for unsubscribes when GDPR settings are on (hubspot.md §3.1). */
  readonly legalBasis: HubspotLegalBasis | null;
  readonly legalBasisExplanation: string;
  /**
   * A fresh affirmative act by the person: only then may an opted-out contact be re-subscribed (v4). Without it
   * the v3 endpoint is used, which refuses to re-subscribe (hubspot.md §3.3).
   */
  readonly freshAffirmativeAct: boolean;
}

export interface ListMembershipChange {
  readonly listId: string;
  /** HubSpot contact ids. */
  readonly add: readonly string[];
  readonly remove: readonly string[];
}

export interface HubspotContactStatus {
  readonly email: string;
  readonly statuses: ReadonlyArray<{ readonly subscriptionTypeId: string; readonly subscribed: boolean; readonly legalBasis: string | null; readonly timestamp: string | null }>;
}

export interface HubspotPort {
  provision(tenant: Tenant): Promise<HubspotProvisioning>;
  /** Batch upsert by email, at most 100 per call (hubspot.md §5); 207 partial failures per item. */
  upsertContactProperties(tenant: Tenant, writes: readonly ContactPropertiesWrite[]): Promise<ItemOutcome[]>;
  /** Subscription status per (email, type): v3 subscribe/unsubscribe; v4 (batch when granted) to re-subscribe. */
  setSubscriptions(tenant: Tenant, writes: readonly SubscriptionWrite[]): Promise<ItemOutcome[]>;
  setListMembership(tenant: Tenant, change: ListMembershipChange): Promise<void>;
  /** HubSpot contact ids of these emails (absent: no contact). */
  contactIdsByEmail(tenant: Tenant, emails: readonly string[]): Promise<Map<string, string>>;
  /** Contacts modified after `since` (reconciliation poll), a page at a time. */
  contactsModifiedSince(tenant: Tenant, since: string, after: string | null): Promise<{ contacts: Array<{ id: string; email: string | null; modifiedAt: string }>; next: string | null }>;
  subscriptionStatuses(tenant: Tenant, emails: readonly string[]): Promise<HubspotContactStatus[]>;
}

// ---------------------------------------------------------------- Shopify

export type ShopifyEmailState = 'SUBSCRIBED' | 'UNSUBSCRIBED' | 'PENDING';
export type ShopifySmsState = 'SUBSCRIBED' | 'UNSUBSCRIBED' | 'PENDING';

export interface ShopifyConsentWrite {
  readonly key: string;
  /** Numeric customer id. */
  readonly customerId: string;
  readonly channel: 'email' | 'sms';
  /** Never NOT_SUBSCRIBED (Shopify refuses it), never SUBSCRIBED for a soft opt-in (not consent). */
  readonly state: ShopifyEmailState | ShopifySmsState;
  readonly optInLevel: 'SINGLE_OPT_IN' | 'CONFIRMED_OPT_IN' | 'UNKNOWN' | null;
  /** The real time of the change (the source event's occurredAt). */
  readonly consentUpdatedAt: string;
}

export interface ShopifyCustomerConsent {
  readonly customerId: string;
  readonly email: string | null;
  readonly phone: string | null;
  readonly updatedAt: string;
  readonly email_marketing: { readonly state: string; readonly optInLevel: string | null; readonly consentUpdatedAt: string | null } | null;
  readonly sms_marketing: { readonly state: string; readonly optInLevel: string | null; readonly consentUpdatedAt: string | null } | null;
  readonly countryCode: string | null;
}

export interface ShopifyConsentPort {
  /** One mutation per write (Shopify has no batch consent mutation); userErrors → a failed item, never a silent success. */
  updateConsent(tenant: Tenant, writes: readonly ShopifyConsentWrite[]): Promise<ItemOutcome[]>;
  /** A page of customers with their consent (backfill), by cursor; `query` narrows (e.g. `id:>123` for id ranges). */
  customersPage(tenant: Tenant, after: string | null, query?: string): Promise<{ customers: ShopifyCustomerConsent[]; next: string | null }>;
}

// ---------------------------------------------------------------- shared infrastructure ports (core implements)

/** Current access token of a tenant's platform, refreshed before expiry, one refresh at a time (no thundering herd). */
export interface AccessTokens {
  accessToken(tenant: Tenant, platform: 'shopify' | 'hubspot'): Promise<string>;
}

/** A limit of `max` units per rolling `windowMs`, named by `key` (e.g. `hubspot:<portal>:10s`). */
export interface RateLimit {
  readonly key: string;
  readonly max: number;
  readonly windowMs: number;
}

/**
 * Admission for platform calls, shared by every worker of the deployment (on PostgreSQL through the database).
 * `acquire` resolves when a call costing `cost` units (default 1) may be made under the limit.
 */
export interface RateLimiter {
  acquire(limit: RateLimit, cost?: number): Promise<void>;
}
