/**
 * The simulated store's data model. Enum values are GraphQL's (upper case); the REST webhook payloads lower-case
 * them (payloads.ts), as Shopify does (shopify.md §2.1).
 */

/** Structurally the app's `Clock` port; the simulator imports nothing from the app. */
export interface SimulatorClock {
  now(): Date;
}

export const EMAIL_STATES = ['NOT_SUBSCRIBED', 'PENDING', 'SUBSCRIBED', 'UNSUBSCRIBED', 'REDACTED', 'INVALID'] as const;
export const SMS_STATES = ['NOT_SUBSCRIBED', 'PENDING', 'SUBSCRIBED', 'UNSUBSCRIBED', 'REDACTED'] as const;
export const OPT_IN_LEVELS = ['SINGLE_OPT_IN', 'CONFIRMED_OPT_IN', 'UNKNOWN'] as const;
export const COLLECTED_FROM = ['SHOPIFY', 'OTHER'] as const;

export type EmailMarketingState = (typeof EMAIL_STATES)[number];
export type SmsMarketingState = (typeof SMS_STATES)[number];
export type OptInLevel = (typeof OPT_IN_LEVELS)[number];
export type CollectedFrom = (typeof COLLECTED_FROM)[number];
export type MarketingChannel = 'email' | 'sms';

export interface ConsentRecord {
  readonly state: EmailMarketingState;
  readonly optInLevel: OptInLevel | null;
  /** Whole seconds (Shopify's DateTime has no fraction); null while never set. */
  readonly updatedAt: Date | null;
  /** SMS only: SHOPIFY when captured in Shopify's checkout, OTHER otherwise (shopify.md §6). */
  readonly collectedFrom: CollectedFrom | null;
}

export interface Address {
  readonly id: number;
  firstName: string | null;
  lastName: string | null;
  company: string | null;
  address1: string | null;
  city: string | null;
  province: string | null;
  zip: string | null;
  /** ISO 3166-1 alpha-2, upper case. */
  countryCode: string | null;
  phone: string | null;
}

export interface Customer {
  readonly id: number;
  email: string | null;
  phone: string | null;
  firstName: string | null;
  lastName: string | null;
  locale: string | null;
  tags: string[];
  state: 'disabled' | 'invited' | 'enabled' | 'declined';
  verifiedEmail: boolean;
  readonly createdAt: Date;
  updatedAt: Date;
  address: Address | null;
  emailConsent: ConsentRecord;
  smsConsent: ConsentRecord;
}

export interface Collection {
  readonly id: number;
  readonly handle: string;
  title: string;
}

export interface Variant {
  readonly id: number;
  title: string;
  sku: string | null;
  price: string;
}

export interface Product {
  readonly id: number;
  title: string;
  handle: string;
  productType: string;
  vendor: string;
  tags: string[];
  /** Shopify standard taxonomy (`aa-1-2`), as `TaxonomyCategory` in GraphQL. */
  category: { readonly id: string; readonly fullName: string; readonly name: string } | null;
  /** Collection ids, in the order the product was added to them. */
  collectionIds: number[];
  variants: Variant[];
  readonly createdAt: Date;
  updatedAt: Date;
}

export interface LineItem {
  readonly id: number;
  readonly productId: number | null;
  readonly variantId: number | null;
  readonly title: string;
  readonly variantTitle: string | null;
  readonly vendor: string | null;
  readonly sku: string | null;
  readonly quantity: number;
  readonly price: string;
}

export interface OrderAddress {
  readonly firstName: string | null;
  readonly lastName: string | null;
  readonly company: string | null;
  readonly address1: string | null;
  readonly city: string | null;
  readonly zip: string | null;
  readonly countryCode: string | null;
}

export interface Order {
  readonly id: number;
  readonly number: number;
  readonly email: string | null;
  readonly phone: string | null;
  readonly customerId: number | null;
  readonly buyerAcceptsMarketing: boolean;
  readonly customerLocale: string | null;
  financialStatus: 'pending' | 'paid';
  readonly currency: string;
  readonly noteAttributes: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly lineItems: readonly LineItem[];
  readonly billingAddress: OrderAddress | null;
  readonly createdAt: Date;
  updatedAt: Date;
  processedAt: Date;
}

export interface IssuedToken {
  /** null: never expires (a legacy offline token). */
  readonly expiresAt: Date | null;
}

export interface Shop {
  readonly id: number;
  readonly domain: string;
  name: string;
  email: string;
  /** Minutes east of UTC, used in REST timestamps (`2026-05-02T10:14:03+02:00`). */
  readonly utcOffsetMinutes: number;
  /** The merchant's "double opt-in" setting: a ticked email box gives PENDING until confirmed. */
  doubleOptIn: boolean;
  installed: boolean;
  readonly accessTokens: Map<string, IssuedToken>;
  refreshToken: { readonly token: string; readonly expiresAt: Date | null } | null;
  readonly customers: Map<number, Customer>;
  readonly products: Map<number, Product>;
  readonly collections: Map<number, Collection>;
  readonly orders: Map<number, Order>;
  nextOrderNumber: number;
  readonly counters: { graphqlRequests: number; throttled: number };
}
