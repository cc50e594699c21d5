/**
 * Recording HubspotPort / ShopifyConsentPort fakes for the reconciliation poll and backfill suites (the approach
 * of test/sync/sync.test.ts: the connectors have their own nock contract suites). Both behave like the platforms
 * where the sync depends on it: HubSpot search returns contacts with `lastmodifieddate` ≥ since, oldest first,
 * in pages with offset cursors; Shopify answers `id:>N` queries with customers sorted by id.
 */
import {
  PlatformCallError,
  type ContactPropertiesWrite,
  type HubspotContactStatus,
  type HubspotPort,
  type HubspotProvisioning,
  type ItemOutcome,
  type ListMembershipChange,
  type ShopifyConsentPort,
  type ShopifyConsentWrite,
  type ShopifyCustomerConsent,
  type SubscriptionWrite,
} from '../../src/sync/ports';
import type { SubjectlessEvent } from '../../src/domain/inbound';
import type { Tenant } from '../../src/tenants/tenants';

export interface FakeContact {
  id: string;
  email: string | null;
  modifiedAt: string;
}

export type FakeStatus = HubspotContactStatus['statuses'][number];

export class FakeHubspot implements HubspotPort {
  contacts: FakeContact[] = [];
  /** Statuses by lower-case email. */
  statuses = new Map<string, FakeStatus[]>();
  pageSize = 200;
  searches: Array<{ since: string; after: string | null }> = [];
  statusReads: string[][] = [];
  idReads: string[][] = [];
  properties: ContactPropertiesWrite[][] = [];
  subscriptions: SubscriptionWrite[][] = [];
  lists: ListMembershipChange[] = [];
  /** Throw on the n-th subscriptionStatuses call (1-based) from now on, once. */
  failStatusesOnCall: number | null = null;

  async provision(_t?: Tenant): Promise<HubspotProvisioning> {
    return { propertyGroup: 'consent_bridge', properties: [], suppressionListId: 'L1', subscriptionTypes: [] };
  }
  async upsertContactProperties(_t: Tenant, writes: readonly ContactPropertiesWrite[]): Promise<ItemOutcome[]> {
    this.properties.push([...writes]);
    return writes.map((w) => ({ key: w.key, ok: true }));
  }
  async setSubscriptions(_t: Tenant, writes: readonly SubscriptionWrite[]): Promise<ItemOutcome[]> {
    this.subscriptions.push([...writes]);
    return writes.map((w) => ({ key: w.key, ok: true }));
  }
  async setListMembership(_t: Tenant, change: ListMembershipChange): Promise<void> {
    this.lists.push(change);
  }
  async contactIdsByEmail(_t: Tenant, emails: readonly string[]): Promise<Map<string, string>> {
    this.idReads.push([...emails]);
    const found = new Map<string, string>();
    for (const email of emails) {
      const contact = this.contacts.find((c) => c.email?.toLowerCase() === email.toLowerCase());
      if (contact) found.set(email, contact.id);
    }
    return found;
  }
  async contactsModifiedSince(_t: Tenant, since: string, after: string | null) {
    this.searches.push({ since, after });
    const matching = this.contacts.filter((c) => c.modifiedAt >= since).sort((a, b) => (a.modifiedAt < b.modifiedAt ? -1 : a.modifiedAt > b.modifiedAt ? 1 : 0));
    const offset = after === null ? 0 : Number(after);
    const page = matching.slice(offset, offset + this.pageSize);
    const next = offset + this.pageSize < matching.length ? String(offset + this.pageSize) : null;
    return { contacts: page.map((c) => ({ ...c })), next };
  }
  async subscriptionStatuses(_t: Tenant, emails: readonly string[]): Promise<HubspotContactStatus[]> {
    this.statusReads.push([...emails]);
    if (this.failStatusesOnCall !== null && --this.failStatusesOnCall === 0) {
      this.failStatusesOnCall = null;
      throw new PlatformCallError('hubspot', 'HubSpot answered 502 (simulated crash)', { status: 502, retryable: true, kind: 'server_error' });
    }
    return [...new Set(emails)].map((email) => ({ email, statuses: (this.statuses.get(email.toLowerCase()) ?? []).map((s) => ({ ...s })) }));
  }
  resetWrites(): void {
    this.properties = [];
    this.subscriptions = [];
    this.lists = [];
  }
}

export class FakeShopify implements ShopifyConsentPort {
  customers: ShopifyCustomerConsent[] = [];
  pageSize = 200;
  queries: Array<string | undefined> = [];
  writes: ShopifyConsentWrite[][] = [];
  /** Throw on the n-th customersPage call (1-based) from now on, once. */
  failPageOnCall: number | null = null;

  async updateConsent(_t: Tenant, writes: readonly ShopifyConsentWrite[]): Promise<ItemOutcome[]> {
    this.writes.push([...writes]);
    return writes.map((w) => ({ key: w.key, ok: true }));
  }
  async customersPage(_t: Tenant, after: string | null, query?: string) {
    if (after !== null) throw new Error('the backfill must page by id range, not by cursor');
    this.queries.push(query);
    if (this.failPageOnCall !== null && --this.failPageOnCall === 0) {
      this.failPageOnCall = null;
      throw new PlatformCallError('shopify', 'Shopify throttled (simulated crash)', { retryable: true, retryAfterMs: 1000, kind: 'rate_limited' });
    }
    const range = query === undefined ? null : /^id:>(\d+)$/.exec(query);
    if (query !== undefined && range === null) throw new Error(`unexpected query ${query}`);
    const after_ = range === null ? -1n : BigInt(range[1]!);
    const sorted = [...this.customers].sort((a, b) => (BigInt(a.customerId) < BigInt(b.customerId) ? -1 : 1)).filter((c) => BigInt(c.customerId) > after_);
    const page = sorted.slice(0, this.pageSize);
    return { customers: page.map((c) => structuredClone(c)), next: sorted.length > this.pageSize ? 'cursor-not-used' : null };
  }
}

/** A customer as `customersPage` returns it. */
export function customer(
  id: string,
  email: string | null,
  emailState: string | null,
  over: Partial<Omit<ShopifyCustomerConsent, 'customerId'>> & { emailAt?: string | null } = {},
): ShopifyCustomerConsent {
  const { emailAt, ...rest } = over;
  return {
    customerId: id,
    email,
    phone: null,
    updatedAt: '2026-04-01T00:00:00.000Z',
    email_marketing: emailState === null ? null : { state: emailState, optInLevel: 'SINGLE_OPT_IN', consentUpdatedAt: emailAt === undefined ? '2026-03-01T10:00:00.000Z' : emailAt },
    sms_marketing: null,
    countryCode: 'NL',
    ...rest,
  };
}

/** A Shopify checkout opt-in (an affirmative act), as the webhook mapper produces it. */
export const shopifyGrant = (occurredAt: string): SubjectlessEvent => ({
  channel: 'email',
  purpose: '*',
  kind: 'grant',
  basis: 'consent',
  occurredAt,
  source: 'shopify',
  sourceDeliveryId: null,
  evidence: { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' },
});
