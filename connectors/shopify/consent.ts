/**
 * ShopifyConsentPort over the Shopify Admin GraphQL API (issue 5 §4; shopify.md §3, §6; design.md "Writing to the
 * platforms"). Scopes: `write_customers` for the mutations, `read_customers` for the pages.
 *
 * Writes. One mutation per write, one after another (they share the shop's leaky bucket; Shopify has no batch
 * consent mutation), each costing 10 points (shopify.md §3.5):
 * - email: `customerEmailMarketingConsentUpdate(input: {customerId, emailMarketingConsent: {marketingState,
 *   marketingOptInLevel, consentUpdatedAt}})`, reading back `customer.defaultEmailAddress`;
 * - SMS: `customerSmsMarketingConsentUpdate(input: {customerId, smsMarketingConsent: {…the same three}})`,
 *   reading back `customer.defaultPhoneNumber` (its marketing fields are deprecated from 2026-04 in favour of
 *   `CustomerPhoneNumber.smsMarketingConsent`, which arrives in 2026-10; they still answer in 2026-04).
 * Shopify accepts only SUBSCRIBED, UNSUBSCRIBED and PENDING (shopify.dev CustomerEmailMarketingConsentInput,
 * 2026-07: "NOT_SUBSCRIBED, REDACTED, and INVALID are rejected"); anything else is refused here, before any call,
 * as a failed item that is not retryable. `consentUpdatedAt` is always sent (the real time of the change), so a
 * replayed write cannot look newer than it is.
 *
 * Never a silent success: `userErrors` (they arrive with HTTP 200) make the item fail with their messages
 * (retryable only when one says it was throttled), and the state Shopify answers is compared with what was asked.
 * A different state is a failed item, except when Shopify holds a consent record *newer* than the write: the
 * state "reflects the consent record with the most recent consentUpdatedAt" (shopify.md §3.1, §6), so the write
 * lost to newer information, which reaches us by webhook; the item is then ok with a `note`.
 *
 * Failures of the call itself (PlatformCallError, graphql.ts `shopifyCallError`): throttling, 5xx, timeouts and
 * dropped connections are retried in-process a few times when the wait is short, then handed back with
 * `retryAfterMs`. Retrying a mutation is safe: the same state with the same consentUpdatedAt is idempotent.
 * - While no write of the call has been answered, such a failure is thrown: nothing was written, the whole call
 *   can be retried as it is, and the caller sees its kind (`auth`, `rate_limited` …).
 * - Once a write was answered, the failure never loses those outcomes: every write from the failing one on is a
 *   failed item carrying the failure's `retryable` and `retryAfterMs` (a rate limit hit mid-list stops the list
 *   rather than hammering a drained bucket); writes refused locally keep their own refusal.
 *
 * Reads. `customers(first: 200, after, query, sortKey: ID)`: 200, not 250, because a page costs 2 + first × 4
 * (the customer and its three objects, shopify.md §3.5), and 250 would request 1,002 points, over the 1,000-point
 * limit of a single query. Cursor paging stops after 25,000 customers (shopify.dev/api/usage/limits), so a
 * backfill pages by id range instead: sorted by ID, it remembers the last customer id it stored and asks for
 * `customerIdRangeQuery(lastId)` (`id:>lastId`) with no cursor, which starts a fresh search each time (never
 * deep) and lets a backfill restart where it stopped.
 *
 * Personal data: emails and phone numbers are returned to the caller and never logged; messages from Shopify that
 * go into outcomes are masked.
 */
import type { Shopify } from '@shopify/shopify-api';
import { z } from 'zod';
import { toIsoTimestamp } from '../../src/domain/time';
import { maskString } from '../../src/log/mask';
import type { Logger } from '../../src/ports';
import {
  PlatformCallError,
  type AccessTokens,
  type ItemOutcome,
  type ShopifyConsentPort,
  type ShopifyConsentWrite,
  type ShopifyCustomerConsent,
} from '../../src/sync/ports';
import type { Tenant } from '../../src/tenants/tenants';
import {
  endpointFetch,
  graphqlClient,
  numericGid,
  requestGraphql,
  shopifyGid,
  type FetchFn,
  type GraphqlCallPolicy,
  type GraphqlClient,
  type ThrottleRetryOptions,
} from './graphql';

/** Customers per page (see the module comment for why not 250). */
export const CUSTOMERS_PAGE_SIZE = 200;

/** States a consent mutation accepts (shopify.md §3.1). */
export const WRITABLE_STATES: ReadonlySet<string> = new Set(['SUBSCRIBED', 'UNSUBSCRIBED', 'PENDING']);
const OPT_IN_LEVELS: ReadonlySet<string> = new Set(['SINGLE_OPT_IN', 'CONFIRMED_OPT_IN', 'UNKNOWN']);
const CUSTOMER_ID = /^\d{1,20}$/;

/** In-process retries of one call: few and short (the outbox does the long waits). */
export const DEFAULT_CONSENT_RETRY: ThrottleRetryOptions = { maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 10_000 };
export const DEFAULT_MAX_INLINE_WAIT_MS = 10_000;
export const DEFAULT_TIMEOUT_MS = 30_000;

const EMAIL_MUTATION = `#graphql
mutation ConsentBridgeEmailConsent($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer { id defaultEmailAddress { marketingState marketingOptInLevel marketingUpdatedAt } }
    userErrors { field message code }
  }
}`;

const SMS_MUTATION = `#graphql
mutation ConsentBridgeSmsConsent($input: CustomerSmsMarketingConsentUpdateInput!) {
  customerSmsMarketingConsentUpdate(input: $input) {
    customer { id defaultPhoneNumber { marketingState marketingOptInLevel marketingUpdatedAt } }
    userErrors { field message code }
  }
}`;

const CUSTOMERS_QUERY = `#graphql
query ConsentBridgeCustomers($after: String, $query: String) {
  customers(first: ${CUSTOMERS_PAGE_SIZE}, after: $after, query: $query, sortKey: ID) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      updatedAt
      defaultEmailAddress { emailAddress marketingState marketingOptInLevel marketingUpdatedAt }
      defaultPhoneNumber { phoneNumber marketingState marketingOptInLevel marketingUpdatedAt }
      defaultAddress { countryCodeV2 }
    }
  }
}`;

/**
 * The search query of the customers after `lastCustomerId` (numeric), optionally narrowed by `query` (Shopify search
 * syntax, e.g. `updated_at:>'2026-05-01T00:00:00Z'`). Pass it to `customersPage` with no cursor.
 */
export function customerIdRangeQuery(lastCustomerId: string, query?: string): string {
  if (!CUSTOMER_ID.test(lastCustomerId)) throw new Error(`not a numeric Shopify customer id: ${JSON.stringify(lastCustomerId)}`);
  const range = `id:>${lastCustomerId}`;
  return query === undefined || query.trim() === '' ? range : `${range} AND (${query})`;
}

const marketing = z.object({
  marketingState: z.string(),
  marketingOptInLevel: z.string().nullable(),
  marketingUpdatedAt: z.string().nullable(),
});

const userErrors = z.array(z.object({ field: z.array(z.string()).nullable().optional(), message: z.string(), code: z.string().nullable().optional() }));

const emailPayload = z.object({
  customerEmailMarketingConsentUpdate: z
    .object({ customer: z.object({ id: numericGid('Customer'), defaultEmailAddress: marketing.nullable() }).nullable(), userErrors })
    .nullable(),
});

const smsPayload = z.object({
  customerSmsMarketingConsentUpdate: z
    .object({ customer: z.object({ id: numericGid('Customer'), defaultPhoneNumber: marketing.nullable() }).nullable(), userErrors })
    .nullable(),
});

const customersData = z.object({
  customers: z.object({
    pageInfo: z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullable() }),
    nodes: z.array(
      z.object({
        id: numericGid('Customer'),
        updatedAt: z.string(),
        // Null when the customer has none, and for fields the app is not approved to read (protected customer data).
        defaultEmailAddress: marketing.extend({ emailAddress: z.string().nullable() }).nullable(),
        defaultPhoneNumber: marketing.extend({ phoneNumber: z.string().nullable() }).nullable(),
        defaultAddress: z.object({ countryCodeV2: z.string().nullable() }).nullable(),
      }),
    ),
  }),
});

/** The consent Shopify answered after a write. */
export interface ReadBack {
  readonly state: string;
  readonly optInLevel: string | null;
  readonly updatedAt: string | null;
}

export type ReadBackVerdict = { readonly ok: true; readonly note?: string } | { readonly ok: false; readonly error: string };

function epochSeconds(iso: string): number | null {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}

/**
 * Whether Shopify's answer shows the write took effect (pure). The state must be the one asked; for SUBSCRIBED
 * with an opt-in level, the level too. Otherwise it is fine only when Shopify's record is newer than the write
 * (compared in whole seconds: Shopify's DateTime has no milliseconds).
 */
export function judgeReadBack(write: Pick<ShopifyConsentWrite, 'state' | 'optInLevel' | 'consentUpdatedAt'>, readBack: ReadBack): ReadBackVerdict {
  const sameState = readBack.state === write.state;
  const sameLevel = write.state !== 'SUBSCRIBED' || write.optInLevel === null || readBack.optInLevel === write.optInLevel;
  if (sameState && sameLevel) return { ok: true };
  const theirs = readBack.updatedAt === null ? null : epochSeconds(readBack.updatedAt);
  const ours = epochSeconds(write.consentUpdatedAt);
  const shown = `${readBack.state}${readBack.optInLevel === null ? '' : ` (${readBack.optInLevel})`} updated ${readBack.updatedAt ?? 'at no time given'}`;
  if (theirs !== null && ours !== null && theirs > ours) {
    return { ok: true, note: `Shopify keeps a newer consent record (${shown}) than this write of ${write.state} at ${write.consentUpdatedAt}; the newest record wins` };
  }
  return { ok: false, error: `Shopify reports ${shown} after a write of ${write.state}${write.optInLevel === null ? '' : ` (${write.optInLevel})`} at ${write.consentUpdatedAt}` };
}

/** Why a write is refused before any call, or null when it may be sent. */
export function refuseWrite(write: ShopifyConsentWrite): string | null {
  if (write.channel !== 'email' && write.channel !== 'sms') return `channel ${String(write.channel)} has no Shopify consent mutation`;
  if (!WRITABLE_STATES.has(write.state)) {
    return `Shopify consent mutations accept only SUBSCRIBED, UNSUBSCRIBED and PENDING, not ${String(write.state)} (NOT_SUBSCRIBED cannot be restored, REDACTED and INVALID are Shopify's)`;
  }
  if (write.optInLevel !== null && !OPT_IN_LEVELS.has(write.optInLevel)) return `unknown opt-in level ${String(write.optInLevel)}`;
  if (!CUSTOMER_ID.test(write.customerId)) return `customer id ${JSON.stringify(write.customerId)} is not a numeric Shopify customer id`;
  if (toIsoTimestamp(write.consentUpdatedAt) === null) return `consentUpdatedAt ${JSON.stringify(write.consentUpdatedAt)} is not a timestamp`;
  return null;
}

export interface ShopifyConsentConnectorDeps {
  /** The shared library instance (connectors/shopify/admin-api.ts). */
  readonly shopify: Pick<Shopify, 'clients'>;
  /** The tenant's current Admin API token (refreshed by the core before expiry). */
  readonly tokens: AccessTokens;
  readonly logger: Logger;
  /** Waits between in-process attempts. Default `setTimeout`. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** SHOPIFY_API_BASE_URL: every call goes there instead of `https://{shop}` (graphql.ts `ShopifyEndpoint`). */
  readonly baseUrl?: string;
  /** fetch for this connector's calls (graphql.ts `ShopifyEndpoint`). */
  readonly fetch?: FetchFn;
  /** Called once per request sent, with its outcome (metrics). */
  readonly onCall?: GraphqlCallPolicy['onCall'];
}

export interface ShopifyConsentConnectorOptions {
  /** In-process attempts of one call. Default `DEFAULT_CONSENT_RETRY` (3 attempts, 1 s doubling, ≤ 10 s). */
  readonly retry?: Partial<ThrottleRetryOptions>;
  /** Longest wait slept in-process; a longer one goes back to the caller as `retryAfterMs`. Default 10,000 ms. */
  readonly maxInlineWaitMs?: number;
  /** Each request is aborted after this long. Default 30,000 ms. */
  readonly timeoutMs?: number;
}

type Channel = ShopifyConsentWrite['channel'];

export class ShopifyConsentConnector implements ShopifyConsentPort {
  readonly #deps: ShopifyConsentConnectorDeps;
  readonly #policy: GraphqlCallPolicy;
  readonly #fetch: FetchFn | null;

  constructor(deps: ShopifyConsentConnectorDeps, options: ShopifyConsentConnectorOptions = {}) {
    this.#deps = deps;
    this.#fetch = endpointFetch({ baseUrl: deps.baseUrl, fetch: deps.fetch });
    this.#policy = {
      retry: { ...DEFAULT_CONSENT_RETRY, ...options.retry },
      maxInlineWaitMs: options.maxInlineWaitMs ?? DEFAULT_MAX_INLINE_WAIT_MS,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      sleep: deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      random: deps.random ?? Math.random,
      logger: deps.logger,
      ...(deps.onCall ? { onCall: deps.onCall } : {}),
    };
  }

  async updateConsent(tenant: Tenant, writes: readonly ShopifyConsentWrite[]): Promise<ItemOutcome[]> {
    const refusals = writes.map((write) => {
      const refusal = refuseWrite(write);
      return refusal === null ? null : maskString(refusal);
    });
    const outcomes: ItemOutcome[] = [];
    // No token is asked for (and no call made) when every write is refused.
    const client = refusals.some((r) => r === null) ? await this.#client(tenant) : null;
    let answered = 0;
    for (const [i, write] of writes.entries()) {
      const refusal = refusals[i] ?? null;
      if (refusal !== null || client === null) {
        // An invalid customer id can be anything (even an email address): it is not logged.
        const customerId = CUSTOMER_ID.test(write.customerId) ? write.customerId : '(invalid)';
        this.#deps.logger.warn({ tenantId: tenant.id, key: write.key, customerId, channel: write.channel }, `Shopify consent write refused: ${refusal}`);
        outcomes.push({ key: write.key, ok: false, error: refusal ?? 'refused', retryable: false });
        continue;
      }
      let payload: unknown;
      try {
        payload = await requestGraphql(client, write.channel === 'email' ? EMAIL_MUTATION : SMS_MUTATION, { input: mutationInput(write) }, this.#policy, {
          action: `Shopify ${write.channel} consent update for ${tenant.shopDomain}`,
          tenantId: tenant.id,
        });
      } catch (err) {
        const error = err instanceof PlatformCallError ? err : new PlatformCallError('shopify', 'Shopify consent update failed', { retryable: false, kind: 'client_error', cause: err });
        if (answered === 0) throw error;
        this.#deps.logger.warn(
          { tenantId: tenant.id, key: write.key, kind: error.kind, status: error.status, retryAfterMs: error.retryAfterMs, remaining: writes.length - i },
          'Shopify consent writes stopped; the rest are handed back',
        );
        for (const [j, rest] of writes.slice(i).entries()) {
          const ownRefusal = refusals[i + j] ?? null;
          outcomes.push(
            ownRefusal !== null
              ? { key: rest.key, ok: false, error: ownRefusal, retryable: false }
              : {
                  key: rest.key,
                  ok: false,
                  error: `not written: ${error.message}`,
                  retryable: error.retryable,
                  ...(error.retryAfterMs !== null ? { retryAfterMs: error.retryAfterMs } : {}),
                },
          );
        }
        return outcomes;
      }
      answered++;
      const outcome = this.#outcome(write, payload);
      if (!outcome.ok) this.#deps.logger.warn({ tenantId: tenant.id, key: write.key, customerId: write.customerId, channel: write.channel, retryable: outcome.retryable }, `Shopify consent write failed: ${outcome.error}`);
      else if (outcome.note !== undefined) this.#deps.logger.info({ tenantId: tenant.id, key: write.key, customerId: write.customerId, channel: write.channel }, outcome.note);
      outcomes.push(outcome);
    }
    return outcomes;
  }

  async customersPage(tenant: Tenant, after: string | null, query?: string): Promise<{ customers: ShopifyCustomerConsent[]; next: string | null }> {
    const client = await this.#client(tenant);
    const action = `Shopify customers page for ${tenant.shopDomain}`;
    const data = await requestGraphql(client, CUSTOMERS_QUERY, { after, query: query ?? null }, this.#policy, { action, tenantId: tenant.id });
    const parsed = customersData.safeParse(data);
    if (!parsed.success) throw malformed(action, parsed.error);
    const { pageInfo, nodes } = parsed.data.customers;
    if (pageInfo.hasNextPage && pageInfo.endCursor === null) throw new PlatformCallError('shopify', `${action}: hasNextPage without endCursor`, { status: 200, retryable: false, kind: 'malformed' });
    const customers = nodes.map((node): ShopifyCustomerConsent => {
      const updatedAt = toIsoTimestamp(node.updatedAt);
      if (updatedAt === null) throw new PlatformCallError('shopify', `${action}: customer ${node.id} has an updatedAt that is not a timestamp`, { status: 200, retryable: false, kind: 'malformed' });
      const consent = (m: z.infer<typeof marketing> | null) => {
        if (m === null) return null;
        const consentUpdatedAt = m.marketingUpdatedAt === null ? null : toIsoTimestamp(m.marketingUpdatedAt);
        if (m.marketingUpdatedAt !== null && consentUpdatedAt === null) {
          throw new PlatformCallError('shopify', `${action}: customer ${node.id} has a marketingUpdatedAt that is not a timestamp`, { status: 200, retryable: false, kind: 'malformed' });
        }
        return { state: m.marketingState, optInLevel: m.marketingOptInLevel, consentUpdatedAt };
      };
      return {
        customerId: node.id,
        email: node.defaultEmailAddress?.emailAddress ?? null,
        phone: node.defaultPhoneNumber?.phoneNumber ?? null,
        updatedAt,
        email_marketing: consent(node.defaultEmailAddress),
        sms_marketing: consent(node.defaultPhoneNumber),
        countryCode: node.defaultAddress?.countryCodeV2 ?? null,
      };
    });
    this.#deps.logger.debug({ tenantId: tenant.id, customers: customers.length, more: pageInfo.hasNextPage }, 'Shopify customers page read');
    return { customers, next: pageInfo.hasNextPage ? pageInfo.endCursor : null };
  }

  async #client(tenant: Tenant): Promise<GraphqlClient> {
    if (tenant.status !== 'active') {
      throw new PlatformCallError('shopify', `tenant ${tenant.id} (${tenant.shopDomain}) is uninstalled: no Shopify calls`, { retryable: false, kind: 'auth' });
    }
    const token = await this.#deps.tokens.accessToken(tenant, 'shopify');
    if (typeof token !== 'string' || token === '') {
      throw new PlatformCallError('shopify', `no Shopify access token for tenant ${tenant.id} (${tenant.shopDomain})`, { retryable: false, kind: 'auth' });
    }
    return graphqlClient(this.#deps.shopify, tenant.shopDomain, token, this.#fetch);
  }

  /** The item's outcome from the mutation's answer. */
  #outcome(write: ShopifyConsentWrite, payload: unknown): ItemOutcome {
    const fail = (error: string, retryable = false): ItemOutcome => ({ key: write.key, ok: false, error: maskString(error), retryable });
    const answer = readAnswer(write.channel, payload);
    if (answer === null) return fail(`Shopify's answer to the ${write.channel} consent update has an unexpected shape`);
    if (answer.userErrors.length > 0) {
      const messages = answer.userErrors.map((e) => `${e.code ? `${e.code}: ` : ''}${e.message}${e.field && e.field.length > 0 ? ` (${e.field.join('.')})` : ''}`);
      const throttled = answer.userErrors.some((e) => /throttl/i.test(`${e.code ?? ''} ${e.message}`));
      return fail(`Shopify refused the ${write.channel} consent update: ${messages.join('; ')}`, throttled);
    }
    if (answer.customer === null) return fail(`Shopify answered the ${write.channel} consent update without a customer or an error`);
    if (answer.customer.id !== write.customerId) return fail(`Shopify answered the ${write.channel} consent update for customer ${answer.customer.id}, not ${write.customerId}`);
    if (answer.customer.consent === null) return fail(`customer ${write.customerId} has no ${write.channel === 'email' ? 'email address' : 'phone number'} in Shopify`);
    const verdict = judgeReadBack(write, {
      state: answer.customer.consent.marketingState,
      optInLevel: answer.customer.consent.marketingOptInLevel,
      updatedAt: answer.customer.consent.marketingUpdatedAt,
    });
    if (!verdict.ok) return fail(verdict.error);
    return verdict.note === undefined ? { key: write.key, ok: true } : { key: write.key, ok: true, note: verdict.note };
  }
}

/** The mutation's `input` variable (shopify.md §3.1; shopify.dev Customer{Email,Sms}MarketingConsentInput). */
function mutationInput(write: ShopifyConsentWrite): Record<string, unknown> {
  const consent = {
    marketingState: write.state,
    ...(write.optInLevel !== null ? { marketingOptInLevel: write.optInLevel } : {}),
    consentUpdatedAt: toIsoTimestamp(write.consentUpdatedAt),
  };
  const customerId = shopifyGid('Customer', write.customerId);
  return write.channel === 'email' ? { customerId, emailMarketingConsent: consent } : { customerId, smsMarketingConsent: consent };
}

interface Answer {
  readonly userErrors: z.infer<typeof userErrors>;
  readonly customer: { readonly id: string; readonly consent: z.infer<typeof marketing> | null } | null;
}

function readAnswer(channel: Channel, payload: unknown): Answer | null {
  if (channel === 'email') {
    const parsed = emailPayload.safeParse(payload);
    const body = parsed.success ? parsed.data.customerEmailMarketingConsentUpdate : null;
    if (body === null) return null;
    return { userErrors: body.userErrors, customer: body.customer && { id: body.customer.id, consent: body.customer.defaultEmailAddress } };
  }
  const parsed = smsPayload.safeParse(payload);
  const body = parsed.success ? parsed.data.customerSmsMarketingConsentUpdate : null;
  if (body === null) return null;
  return { userErrors: body.userErrors, customer: body.customer && { id: body.customer.id, consent: body.customer.defaultPhoneNumber } };
}

function malformed(action: string, error: z.ZodError): PlatformCallError {
  const details = error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`)
    .join('; ');
  return new PlatformCallError('shopify', `${action}: unexpected answer (${details})`, { status: 200, retryable: false, kind: 'malformed' });
}
