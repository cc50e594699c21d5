/**
 * HubspotPort over the HubSpot API (issue 5 §3; hubspot.md §3–8; design.md "Writing to the platforms"). Every
 * HubSpot call of the app goes through this adapter, because the numbered paths it uses (`/crm/v3`,
 * `/communication-preferences/v3|v4`, `/oauth/v1`) stop being supported in 2027 (hubspot.md §0): moving to the
 * date-versioned paths then touches only this folder.
 *
 * Transport: plain `fetch` with a timeout, not @hubspot/api-client (why: http.ts). Each request first takes a
 * unit of the portal's budgets from the shared `RateLimiter` (http.ts `hubspotLimits`) and the current token
 * from `AccessTokens`; nothing is retried here (the outbox retries, honouring `retryAfterMs`).
 *
 * Batches: CRM batch calls take at most 100 inputs (hubspot.md §5), so larger inputs are split, keeping two
 * writes for the same email in different requests (HubSpot refuses duplicate ids in one batch) and in their
 * order. When a request of a multi-request call fails as a whole after earlier ones succeeded, what HubSpot
 * already applied is reported done and the rest fails with the error (so nothing is written twice); when the
 * first one fails, the error is thrown.
 *
 * Batch scopes (`batchScopes: 'detect'`): whether the portal granted the optional Enterprise scopes is learnt
 * from the token itself, once per access token (see `#grantsOf`).
 *
 * Personal data: emails travel in bodies and in v4 paths, never in logs or error texts (masked). The access token
 * travels in the Authorization header, and in the path of its own introspection only, which is why that one
 * request is logged and reported by a label with `{token}` and its answer is scrubbed of the token.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { toIsoTimestamp } from '../../src/domain/time';
import { callOutcomeOf, type PlatformCallHook } from '../../src/metrics/metrics';
import { systemClock, type Clock, type Logger } from '../../src/ports';
import {
  PlatformCallError,
  type AccessTokens,
  type ContactPropertiesWrite,
  type HubspotContactStatus,
  type HubspotPort,
  type HubspotProvisioning,
  type HubspotSubscriptionDefinition,
  type ItemOutcome,
  type ListMembershipChange,
  type RateLimiter,
  type SubscriptionWrite,
} from '../../src/sync/ports';
import type { Tenant } from '../../src/tenants/tenants';
import {
  classifyHttpError,
  DEFAULT_HUBSPOT_BASE_URL,
  DEFAULT_TIMEOUT_MS,
  defaultFetch,
  describe,
  errorBody,
  exchange,
  hubspotLimits,
  malformed,
  parseJson,
  type FetchLike,
} from './http';
import { DEFAULT_PROPERTY_DEFINITIONS, DEFAULT_PROPERTY_GROUP, DEFAULT_SUPPRESSION_LIST_NAME, type HubspotPropertyDefinition } from './properties';

export { refreshHubspotToken, type HubspotOAuthConfig, type HubspotTokenSet } from './oauth';
export { hubspotLimits, DEFAULT_HUBSPOT_BASE_URL, DEFAULT_TIMEOUT_MS } from './http';
export * from './properties';

/** Inputs per CRM batch call (hubspot.md §5: "Batch operations are limited to 100 records"). */
export const CRM_BATCH_SIZE = 100;
/** Search page size (≤ 200) and the most results one search query pages through (10,000) (hubspot.md §5). */
export const SEARCH_PAGE_SIZE = 200;
export const SEARCH_RESULT_CAP = 10_000;
/** Record ids per list-membership call (adds + removes). UNVERIFIED: HubSpot documents no cap (hubspot.md §9.5). */
export const LIST_MEMBERSHIP_CHUNK_SIZE = 100;
/** Inputs per v4 batch call (Marketing Hub Enterprise). UNVERIFIED (hubspot.md §3.1, §9.5). */
export const V4_BATCH_SIZE = 100;
/** Rounds of re-sending a batch without the items a 400 named, before failing the rest with it. */
const MAX_RESEND_ROUNDS = 5;
/** Contacts are object type 0-1 (lists API). */
const CONTACT_OBJECT_TYPE_ID = '0-1';
/** `after` of our own search cursor that restarts the query from a later `since` (past SEARCH_RESULT_CAP). */
const RESTART_CURSOR = 'since:';
/** The optional Enterprise scopes of the v4 batch endpoints (hubspot.md §3.3). */
export const BATCH_READ_SCOPE = 'communication_preferences.statuses.batch.read';
export const BATCH_WRITE_SCOPE = 'communication_preferences.statuses.batch.write';
/** `batchScopes: 'detect'`: how long a failed token introspection counts as "no batch scopes" before it is tried again. */
export const SCOPE_DETECTION_RETRY_MS = 5 * 60_000;

export interface HubspotConnectorDeps {
  readonly tokens: AccessTokens;
  readonly limiter: RateLimiter;
  /** Emails and tokens are never passed to it. */
  readonly logger: Logger;
  /** Default https://api.hubapi.com (a simulator or sandbox later: HUBSPOT_API_BASE_URL). */
  readonly baseUrl?: string;
  /** Default `globalThis.fetch`. */
  readonly fetch?: FetchLike;
  /** For `Retry-After` given as an HTTP date. Default the system clock. */
  readonly clock?: Clock;
  /** Per request: connect, headers and body. Default 15,000. */
  readonly timeoutMs?: number;
  /** Called once per request sent, with its outcome (metrics). */
  readonly onCall?: PlatformCallHook;
}

export interface HubspotConnectorOptions {
  /** The app's contact property group. Default `consent_bridge` / "Consent Bridge". */
  readonly propertyGroup?: { readonly name: string; readonly label: string };
  /** The app's contact properties. Default DEFAULT_PROPERTY_DEFINITIONS. */
  readonly properties?: readonly HubspotPropertyDefinition[];
  /** Name of the MANUAL list of blocked contacts. Default DEFAULT_SUPPRESSION_LIST_NAME. */
  readonly listName?: string;
  /**
   * The portal granted the v4 batch scopes (`communication_preferences.statuses.batch.read|write`, Marketing Hub
   * Enterprise only, hubspot.md §3.3): statuses are read and unsubscribes / fresh re-subscribes written 100 at a
   * time. Subscribes without a fresh affirmative act always go through v3 (v4 would re-subscribe opted-out
   * contacts). `'detect'`: asked of HubSpot per tenant (token introspection, cached for the token's life), reads
   * batched only with `.batch.read` and writes only with `.batch.write`. Default false.
   */
  readonly batchScopes?: boolean | 'detect' | ((tenant: Tenant) => boolean);
  /** Record ids per list-membership call. Default LIST_MEMBERSHIP_CHUNK_SIZE. */
  readonly listMembershipChunkSize?: number;
}

// ---------------------------------------------------------------- wire shapes (v13 models named)

const idString = z.union([z.string().min(1), z.number()]).transform(String);
const properties = z.record(z.string(), z.string().nullable());

/** StandardError (207 `errors[]`). */
const standardError = z.object({
  status: z.string().optional(),
  category: z.string().optional(),
  message: z.string().optional(),
  context: z.record(z.string(), z.unknown()).optional(),
});

/** BatchResponseSimplePublicUpsertObject[WithErrors], BatchResponseSimplePublicObject[WithErrors]. */
const batchObjects = z.object({
  results: z.array(z.object({ id: idString, properties: properties.optional() })),
  errors: z.array(standardError).optional(),
});

/** CollectionResponseWithTotalSimplePublicObjectForwardPaging. */
const searchPage = z.object({
  results: z.array(z.object({ id: idString, properties, updatedAt: z.string().optional() })),
  paging: z.object({ next: z.object({ after: z.string() }).optional() }).optional(),
});

const propertyGroup = z.object({ name: z.string() });
const property = z.object({
  name: z.string(),
  type: z.string(),
  options: z.array(z.object({ label: z.string(), value: z.string(), displayOrder: z.number().optional(), hidden: z.boolean().optional() })).optional(),
});
/** ListFetchResponse / ListCreateResponse. */
const listAnswer = z.object({ list: z.object({ listId: idString, name: z.string(), processingType: z.string() }) });
/** MembershipsUpdateResponse (`recordsIdsAdded` sic). */
const membershipAnswer = z.object({ recordIdsMissing: z.array(z.string()).optional() });
/** SubscriptionDefinitionsResponse. */
const definitions = z.object({ subscriptionDefinitions: z.array(z.object({ id: idString, name: z.string(), isActive: z.boolean() })) });
/** PublicSubscriptionStatus (v3 subscribe/unsubscribe answer). */
const v3Status = z.object({ id: idString, status: z.string(), sourceOfStatus: z.string().optional() });
/** PublicStatus (v4). */
const v4Status = z.object({
  subscriberIdString: z.string(),
  subscriptionId: idString,
  status: z.string(),
  legalBasis: z.string().nullish(),
  timestamp: z.string().nullish(),
  businessUnitId: z.number().nullish(),
  setStatusSuccessReason: z.string().nullish(),
});
/**
 * `GET /oauth/v1/access-tokens/{token}` (hubspot.md §7). On the wire snake_case (`hub_id`, `expires_in`, …); the
 * v13 client's model (AccessTokenInfoResponse) is the camelCase twin, accepted too. Only the scopes are needed.
 */
const tokenInfo = z.object({ scopes: z.array(z.string()), expires_in: z.number().optional(), expiresIn: z.number().optional() });

/** PublicWideStatus (v4 unsubscribe-all). */
const v4WideStatus = z.object({
  status: z.string(),
  wideStatusType: z.string(),
  timestamp: z.string().nullish(),
  businessUnitId: z.number().nullish(),
});
/** ActionResponseWithResultsPublicStatus / BatchResponsePublicStatus. */
const v4Statuses = z.object({ results: z.array(v4Status), errors: z.array(standardError).optional() });
const v4WideStatuses = z.object({ results: z.array(v4WideStatus) });
/** BatchResponsePublicStatusBulkResponse / BatchResponsePublicWideStatusBulkResponse. */
const v4BulkStatuses = z.object({ results: z.array(z.object({ subscriberIdString: z.string(), statuses: z.array(v4Status) })) });
const v4BulkWideStatuses = z.object({ results: z.array(z.object({ subscriberIdString: z.string(), wideStatuses: z.array(v4WideStatus) })) });

type V4Status = z.infer<typeof v4Status>;
type V4WideStatus = z.infer<typeof v4WideStatus>;

// ---------------------------------------------------------------- helpers

interface Call {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  /** Encoded path. */
  readonly path: string;
  /** The call without personal data, for messages and logs. */
  readonly label: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  readonly search?: boolean;
  /** Non-2xx statuses answered as values (e.g. 404 of a lookup, 409 of a create) instead of thrown. */
  readonly accept?: (status: number) => boolean;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/** What the access token in use grants (`batchScopes: 'detect'`). `untilMs`: ask again from then on, even with the same token. */
interface Grants {
  readonly batchRead: boolean;
  readonly batchWrite: boolean;
  readonly untilMs: number;
}

/** Per tenant: the grants of the token with this fingerprint (a hash: the token itself is not kept), or the introspection under way. */
interface GrantEntry {
  readonly fingerprint: string;
  readonly grants: Promise<Grants>;
}

const fingerprintOf = (token: string) => createHash('sha256').update(token).digest('base64url');

/** `text` without the token (as is and URL-encoded). */
function scrub(text: string, token: string): string {
  let out = text;
  for (const form of new Set([token, encodeURIComponent(token)])) if (form !== '') out = out.split(form).join('{token}');
  return out;
}

interface Slot<T> {
  readonly index: number;
  readonly write: T;
}

const is =
  (...statuses: number[]) =>
  (status: number) =>
    statuses.includes(status);

/** A 4xx that concerns the item, not the call: not auth, not a limit, not a lock. */
const itemLevel = (status: number) => status >= 400 && status < 500 && ![401, 403, 423, 429].includes(status);

const ok = (key: string): ItemOutcome => ({ key, ok: true });
const failed = (key: string, error: string, retryable: boolean, retryAfterMs: number | null = null): ItemOutcome =>
  retryAfterMs === null ? { key, ok: false, error, retryable } : { key, ok: false, error, retryable, retryAfterMs };

const normEmail = (email: string) => email.trim().toLowerCase();

const EMAIL_CHAR = /[A-Za-z0-9._%+-]/;

/** Whether `haystack` (lower case) names `email` (lower case) as a whole address, not inside a longer one. */
function mentions(haystack: string, email: string): boolean {
  for (let at = haystack.indexOf(email); at !== -1; at = haystack.indexOf(email, at + 1)) {
    const before = at === 0 ? '' : haystack.charAt(at - 1);
    const after = haystack.charAt(at + email.length);
    if (!EMAIL_CHAR.test(before) && !EMAIL_CHAR.test(after)) return true;
  }
  return false;
}

/** An item error HubSpot reported is retryable unless it is about the input itself. */
function retryableCategory(category: string | undefined): boolean {
  return category === undefined || !/VALIDATION|INVALID|NOT_FOUND|CONFLICT|DUPLICATE/i.test(category);
}

/**
 * Splits into chunks of at most `size`, never two items with the same key in one chunk. First fit keeps the
 * items of one key in input order across chunks (each occurrence lands in a later chunk than the one before).
 */
function chunkDistinct<T>(items: readonly T[], size: number, keyOf: (item: T) => string): T[][] {
  const chunks: Array<{ items: T[]; keys: Set<string> }> = [];
  for (const item of items) {
    const key = keyOf(item);
    let chunk = chunks.find((c) => c.items.length < size && !c.keys.has(key));
    if (chunk === undefined) {
      chunk = { items: [], keys: new Set() };
      chunks.push(chunk);
    }
    chunk.items.push(item);
    chunk.keys.add(key);
  }
  return chunks.map((c) => c.items);
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Distinct emails (by normalised form), first spelling kept, in input order. */
function distinctEmails(emails: readonly string[]): string[] {
  const seen = new Map<string, string>();
  for (const email of emails) if (!seen.has(normEmail(email))) seen.set(normEmail(email), email);
  return [...seen.values()];
}

function later(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return a > b ? a : b;
}

const iso = (value: string | null | undefined): string | null => (value === null || value === undefined ? null : toIsoTimestamp(value));

/**
 * One contact's statuses, with "opted out of all email" (portal-wide, or business-unit-wide for that unit's
 * types) folded in: such a contact receives none of the types, whatever the per-type status says (whether v4
 * already reports it per type is UNVERIFIED, hubspot.md §9.2).
 */
function foldStatuses(email: string, statuses: readonly V4Status[], wide: readonly V4WideStatus[]): HubspotContactStatus {
  const optedOut = wide.filter((w) => w.status === 'UNSUBSCRIBED');
  return {
    email,
    // NOT_SPECIFIED means "never set": neither a subscription nor an opt-out, so it is not reported at all (a type
    // mapped after people consented must not read as everyone unsubscribing). An "opted out of all" still counts.
    statuses: statuses
      .filter((s) => s.status !== 'NOT_SPECIFIED' || optedOut.some((w) => w.wideStatusType === 'PORTAL_WIDE' || (w.businessUnitId != null && w.businessUnitId === s.businessUnitId)))
      .map((s) => {
      const out = optedOut.find((w) => w.wideStatusType === 'PORTAL_WIDE' || (w.businessUnitId != null && w.businessUnitId === s.businessUnitId));
      const own = iso(s.timestamp);
      return {
        subscriptionTypeId: s.subscriptionId,
        subscribed: s.status === 'SUBSCRIBED' && out === undefined,
        legalBasis: s.legalBasis ?? null,
        timestamp: out === undefined ? own : later(own, iso(out.timestamp)),
      };
    }),
  };
}

// ---------------------------------------------------------------- the connector

export class HubspotConnector implements HubspotPort {
  readonly #deps: HubspotConnectorDeps;
  readonly #baseUrl: string;
  readonly #fetch: FetchLike;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #group: { readonly name: string; readonly label: string };
  readonly #properties: readonly HubspotPropertyDefinition[];
  readonly #listName: string;
  readonly #batchScopes: boolean | 'detect' | ((tenant: Tenant) => boolean);
  /** `batchScopes: 'detect'`: by tenant id. */
  readonly #grants = new Map<string, GrantEntry>();
  readonly #listChunk: number;

  constructor(deps: HubspotConnectorDeps, options: HubspotConnectorOptions = {}) {
    this.#deps = deps;
    this.#baseUrl = (deps.baseUrl ?? DEFAULT_HUBSPOT_BASE_URL).replace(/\/+$/, '');
    this.#fetch = deps.fetch ?? defaultFetch;
    this.#clock = deps.clock ?? systemClock;
    this.#timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#group = options.propertyGroup ?? DEFAULT_PROPERTY_GROUP;
    this.#properties = options.properties ?? DEFAULT_PROPERTY_DEFINITIONS;
    this.#listName = options.listName ?? DEFAULT_SUPPRESSION_LIST_NAME;
    this.#batchScopes = options.batchScopes ?? false;
    this.#listChunk = options.listMembershipChunkSize ?? LIST_MEMBERSHIP_CHUNK_SIZE;
  }

  // ------------------------------------------------------------ provisioning

  /**
   * Makes sure the portal has the app's property group, properties, suppression list, and reads the
   * subscription types. Idempotent: everything is looked up first and created only when missing; a 409 on create
   * (another worker provisioning at the same time) counts as found.
   */
  async provision(tenant: Tenant): Promise<HubspotProvisioning> {
    const changes: string[] = [];
    await this.#ensureGroup(tenant, changes);
    for (const definition of this.#properties) await this.#ensureProperty(tenant, definition, changes);
    const suppressionListId = await this.#ensureList(tenant, changes);
    const subscriptionTypes = await this.#subscriptionDefinitions(tenant);
    this.#deps.logger.info({ tenantId: tenant.id, portalId: tenant.hubspotPortalId, changes }, changes.length === 0 ? 'HubSpot portal already provisioned' : 'HubSpot portal provisioned');
    return { propertyGroup: this.#group.name, properties: this.#properties.map((p) => p.name), suppressionListId, subscriptionTypes };
  }

  async #ensureGroup(tenant: Tenant, changes: string[]): Promise<void> {
    const name = this.#group.name;
    const path = `/crm/v3/properties/contacts/groups/${encodeURIComponent(name)}`;
    const found = await this.#call(tenant, { method: 'GET', path, label: 'GET /crm/v3/properties/contacts/groups/{groupName}', accept: is(404) });
    if (found.status !== 404) {
      this.#parse(propertyGroup, found, 'GET /crm/v3/properties/contacts/groups/{groupName}');
      return;
    }
    const label = 'POST /crm/v3/properties/contacts/groups';
    const answer = await this.#call(tenant, { method: 'POST', path: '/crm/v3/properties/contacts/groups', label, body: { name, label: this.#group.label, displayOrder: -1 }, accept: is(409) });
    if (answer.status !== 409) changes.push(`group:${name}`);
  }

  async #ensureProperty(tenant: Tenant, definition: HubspotPropertyDefinition, changes: string[]): Promise<void> {
    const path = `/crm/v3/properties/contacts/${encodeURIComponent(definition.name)}`;
    const getLabel = 'GET /crm/v3/properties/contacts/{propertyName}';
    const found = await this.#call(tenant, { method: 'GET', path, label: getLabel, accept: is(404) });
    if (found.status === 404) {
      const label = 'POST /crm/v3/properties/contacts';
      const body = { ...definition, groupName: this.#group.name, formField: definition.formField ?? false, hasUniqueValue: false };
      const answer = await this.#call(tenant, { method: 'POST', path: '/crm/v3/properties/contacts', label, body, accept: is(409) });
      if (answer.status !== 409) changes.push(`property:${definition.name}`);
      return;
    }
    const existing = this.#parse(property, found, getLabel);
    if (existing.type !== definition.type) {
      // Left alone: changing a property's type can lose the portal's data. Writes may be refused; said loudly.
      this.#deps.logger.warn({ tenantId: tenant.id, portalId: tenant.hubspotPortalId, property: definition.name, expected: definition.type, found: existing.type }, 'HubSpot property exists with another type');
      return;
    }
    // Enumeration options only grow: add the ones the portal's copy lacks (replacing the list keeps theirs).
    const have = existing.options ?? [];
    const missing = (definition.options ?? []).filter((o) => !have.some((h) => h.value === o.value));
    if (missing.length === 0) return;
    const options = [...have, ...missing.map((o, i) => ({ label: o.label, value: o.value, displayOrder: have.length + i, hidden: false }))];
    await this.#call(tenant, { method: 'PATCH', path, label: 'PATCH /crm/v3/properties/contacts/{propertyName}', body: { options } });
    changes.push(`options:${definition.name}:${missing.map((o) => o.value).join(',')}`);
  }

  async #ensureList(tenant: Tenant, changes: string[]): Promise<string> {
    const getLabel = 'GET /crm/v3/lists/object-type-id/0-1/name/{listName}';
    const get = () =>
      this.#call(tenant, { method: 'GET', path: `/crm/v3/lists/object-type-id/${CONTACT_OBJECT_TYPE_ID}/name/${encodeURIComponent(this.#listName)}`, label: getLabel, accept: is(404) });
    let answer = await get();
    let label = getLabel;
    if (answer.status === 404) {
      label = 'POST /crm/v3/lists/';
      const body = { name: this.#listName, objectTypeId: CONTACT_OBJECT_TYPE_ID, processingType: 'MANUAL' };
      answer = await this.#call(tenant, { method: 'POST', path: '/crm/v3/lists/', label, body, accept: is(409) });
      if (answer.status === 409) {
        label = getLabel;
        answer = await get();
        if (answer.status === 404) throw new PlatformCallError('hubspot', `HubSpot ${getLabel}: the list "${this.#listName}" conflicts on create but cannot be found`, { status: 404, retryable: true, kind: 'client_error' });
      } else {
        changes.push(`list:${this.#listName}`);
      }
    }
    const { list } = this.#parse(listAnswer, answer, label);
    if (list.processingType !== 'MANUAL') {
      // Only MANUAL (and SNAPSHOT) lists take membership changes; a DYNAMIC list of this name is the admin's.
      throw new PlatformCallError('hubspot', `HubSpot list "${this.#listName}" (${list.listId}) is ${list.processingType}, not MANUAL: rename it or configure another list name`, { retryable: false, kind: 'client_error' });
    }
    return list.listId;
  }

  async #subscriptionDefinitions(tenant: Tenant): Promise<HubspotSubscriptionDefinition[]> {
    const label = 'GET /communication-preferences/v3/definitions';
    const answer = await this.#call(tenant, { method: 'GET', path: '/communication-preferences/v3/definitions', label });
    return this.#parse(definitions, answer, label).subscriptionDefinitions.map((d) => ({ id: d.id, name: d.name, isActive: d.isActive }));
  }

  // ------------------------------------------------------------ contact properties

  /**
   * `POST /crm/v3/objects/contacts/batch/upsert` with `idProperty: email`, ≤ 100 per request. 200: every item
   * done. 207 (`…WithErrors`): each error is matched to items by the emails it names (in `context` or
   * `message`); items of unattributed errors fail retryably. A 400 for the whole batch (HubSpot rejects a batch
   * for one bad input) fails the items it names and sends the rest again, at most MAX_RESEND_ROUNDS times.
   */
  async upsertContactProperties(tenant: Tenant, writes: readonly ContactPropertiesWrite[]): Promise<ItemOutcome[]> {
    const outcomes: Array<ItemOutcome | undefined> = writes.map(() => undefined);
    const slots = writes.map((write, index) => ({ index, write }));
    const chunks = chunkDistinct(slots, CRM_BATCH_SIZE, (s) => normEmail(s.write.email));
    await this.#steps(
      chunks.map((c) => () => this.#upsertChunk(tenant, c, outcomes)),
      outcomes,
      writes,
    );
    return this.#finish(outcomes);
  }

  async #upsertChunk(tenant: Tenant, chunkSlots: ReadonlyArray<Slot<ContactPropertiesWrite>>, outcomes: Array<ItemOutcome | undefined>): Promise<void> {
    const label = 'POST /crm/v3/objects/contacts/batch/upsert';
    let pending = [...chunkSlots];
    for (let round = 0; pending.length > 0; round++) {
      const body = { inputs: pending.map((s) => ({ id: s.write.email.trim(), idProperty: 'email', properties: s.write.properties })) };
      const answer = await this.#call(tenant, { method: 'POST', path: '/crm/v3/objects/contacts/batch/upsert', label, body, accept: is(400) });
      if (answer.status === 400) {
        const error = classifyHttpError(label, 400, new Headers(), answer.body, this.#clock.now().getTime());
        const haystack = JSON.stringify(answer.body ?? '').toLowerCase();
        const named = pending.filter((s) => mentions(haystack, normEmail(s.write.email)));
        if (named.length === 0 || named.length === pending.length || round + 1 >= MAX_RESEND_ROUNDS) {
          for (const s of pending) outcomes[s.index] = failed(s.write.key, error.message, false);
          return;
        }
        for (const s of named) outcomes[s.index] = failed(s.write.key, error.message, false);
        this.#deps.logger.warn({ tenantId: tenant.id, portalId: tenant.hubspotPortalId, call: label, refused: named.length, resent: pending.length - named.length }, 'HubSpot refused a batch for some inputs; sending the others again');
        pending = pending.filter((s) => !named.includes(s));
        continue;
      }
      const result = this.#parse(batchObjects, answer, label);
      this.#batchOutcomes(pending, result, outcomes, (s) => s.write.email, (s) => s.write.key);
      return;
    }
  }

  /** 200/207 of a CRM batch: errors matched to items by the emails they name, results by `properties.email`. */
  #batchOutcomes<T>(
    slots: ReadonlyArray<Slot<T>>,
    result: z.infer<typeof batchObjects>,
    outcomes: Array<ItemOutcome | undefined>,
    emailOf: (s: Slot<T>) => string,
    keyOf: (s: Slot<T>) => string,
  ): void {
    let unattributed = 0;
    for (const error of result.errors ?? []) {
      const haystack = JSON.stringify(error).toLowerCase();
      const named = slots.filter((s) => mentions(haystack, normEmail(emailOf(s))));
      if (named.length === 0) unattributed++;
      const message = `HubSpot refused this item${error.category !== undefined ? ` (${error.category})` : ''}: ${describe(error.message ?? 'no message')}`;
      for (const s of named) outcomes[s.index] = failed(keyOf(s), message, retryableCategory(error.category));
    }
    const done = new Set(result.results.map((r) => normEmail(r.properties?.email ?? '')).filter((e) => e !== ''));
    for (const s of slots) {
      if (outcomes[s.index] !== undefined) continue;
      if (done.has(normEmail(emailOf(s))) || unattributed === 0) outcomes[s.index] = ok(keyOf(s));
      else outcomes[s.index] = failed(keyOf(s), `HubSpot reported ${unattributed} error(s) in this batch without naming the contact`, true);
    }
  }

  // ------------------------------------------------------------ subscriptions

  /**
   * One status change per item, in input order:
   * - subscribe with a fresh affirmative act: v4 `POST /communication-preferences/v4/statuses/{email}` (the
   *   only API that re-subscribes a contact who opted out, hubspot.md §3.1);
   * - any other subscribe or unsubscribe: v3 `/subscribe` or `/unsubscribe`. v3 refusing a subscribe (the
   *   contact opted out) is a failed item, not retryable: only a new affirmative act may change it;
   * - with `batchScopes` (or `.batch.write` detected), unsubscribes and fresh re-subscribes go 100 at a time
   *   through v4 `batch/write`.
   * A 4xx (not 401/403/423/429) concerns the item; anything else fails the call (see the header).
   */
  async setSubscriptions(tenant: Tenant, writes: readonly SubscriptionWrite[]): Promise<ItemOutcome[]> {
    const outcomes: Array<ItemOutcome | undefined> = writes.map(() => undefined);
    // Only asked when a write could go through batch/write (a plain subscribe never does).
    const batch = writes.some((w) => !w.subscribed || w.freshAffirmativeAct) && (await this.#batch(tenant, 'write'));
    const steps: Array<() => Promise<void>> = [];
    let group: Array<Slot<SubscriptionWrite>> = [];
    const flush = () => {
      if (group.length === 0) return;
      const slots = group;
      steps.push(() => this.#v4Batch(tenant, slots, outcomes));
      group = [];
    };
    writes.forEach((write, index) => {
      const refusal = this.#invalidSubscriptionWrite(write, batch);
      if (refusal !== null) {
        outcomes[index] = failed(write.key, refusal, false);
        return;
      }
      const viaV4 = write.subscribed && write.freshAffirmativeAct;
      if (batch && (viaV4 || !write.subscribed)) {
        const key = `${normEmail(write.email)} ${write.subscriptionTypeId}`;
        if (group.length >= V4_BATCH_SIZE || group.some((s) => `${normEmail(s.write.email)} ${s.write.subscriptionTypeId}` === key)) flush();
        group.push({ index, write });
        return;
      }
      flush();
      steps.push(async () => {
        outcomes[index] = viaV4 ? await this.#v4Subscribe(tenant, write) : await this.#v3(tenant, write);
      });
    });
    flush();
    await this.#steps(steps, outcomes, writes);
    return this.#finish(outcomes);
  }

  /** A write HubSpot cannot take, refused before any call (a bug of the caller). */
  #invalidSubscriptionWrite(write: SubscriptionWrite, batch: boolean): string | null {
    if (write.subscribed && write.legalBasis === null) return 'a subscribe needs a legal basis (CONSENT_WITH_NOTICE or LEGITIMATE_INTEREST_CLIENT)';
    if (write.subscriptionTypeId.trim() === '') return 'no subscription type id';
    const viaV4 = (write.subscribed && write.freshAffirmativeAct) || (batch && !write.subscribed);
    if (viaV4 && !/^\d+$/.test(write.subscriptionTypeId)) return `subscription type id ${write.subscriptionTypeId} is not numeric (v4 takes numbers)`;
    return null;
  }

  #basis(write: SubscriptionWrite): Record<string, string> {
    return {
      ...(write.legalBasis !== null ? { legalBasis: write.legalBasis } : {}),
      ...(write.legalBasisExplanation.trim() !== '' ? { legalBasisExplanation: write.legalBasisExplanation } : {}),
    };
  }

  async #v3(tenant: Tenant, write: SubscriptionWrite): Promise<ItemOutcome> {
    const action = write.subscribed ? 'subscribe' : 'unsubscribe';
    const label = `POST /communication-preferences/v3/${action}`;
    const body = { emailAddress: write.email.trim(), subscriptionId: write.subscriptionTypeId, ...this.#basis(write) };
    const answer = await this.#call(tenant, { method: 'POST', path: `/communication-preferences/v3/${action}`, label, body, accept: itemLevel });
    if (answer.status >= 400) {
      const message = errorBody(answer.body).message ?? (typeof answer.body === 'string' ? answer.body : '');
      // Setting what is already set is done (the wording is UNVERIFIED; hubspot.md §9.2).
      if ((write.subscribed ? /\balready subscribed\b/i : /\balready unsubscribed\b/i).test(message)) return { key: write.key, ok: true, note: `HubSpot: already ${action}d` };
      const said = `HTTP ${answer.status}${message !== '' ? `: ${describe(message)}` : ''}`;
      if (!write.subscribed) return failed(write.key, `HubSpot refused the unsubscribe (${label}, ${said})`, false);
      return failed(
        write.key,
        `HubSpot refused the subscribe (${label}, ${said}). The v3 API does not re-subscribe a contact who opted out; only a fresh affirmative act by the person may (v4), so this is not retried`,
        false,
      );
    }
    const parsed = v3Status.safeParse(answer.body);
    if (!parsed.success) return failed(write.key, malformed(label, answer.status, parsed.error.issues[0]?.message ?? 'not a subscription status').message, false);
    const expected = write.subscribed ? 'SUBSCRIBED' : 'NOT_SUBSCRIBED';
    if (parsed.data.status === expected) return ok(write.key);
    const source = parsed.data.sourceOfStatus !== undefined ? ` (from ${parsed.data.sourceOfStatus})` : '';
    return failed(
      write.key,
      `HubSpot answered ${parsed.data.status}${source} to ${label}${write.subscribed ? ': the contact opted out; only a fresh affirmative act may re-subscribe (v4)' : ''}`,
      false,
    );
  }

  async #v4Subscribe(tenant: Tenant, write: SubscriptionWrite): Promise<ItemOutcome> {
    const label = 'POST /communication-preferences/v4/statuses/{email}';
    const path = `/communication-preferences/v4/statuses/${encodeURIComponent(write.email.trim())}`;
    const subscriptionId = Number(write.subscriptionTypeId);
    const body = { channel: 'EMAIL', statusState: 'SUBSCRIBED', subscriptionId, ...this.#basis(write) };
    const answer = await this.#call(tenant, { method: 'POST', path, label, body, accept: itemLevel });
    if (answer.status >= 400) {
      const message = errorBody(answer.body).message;
      return failed(write.key, `HubSpot refused the re-subscribe (${label}, HTTP ${answer.status}${message !== undefined ? `: ${describe(message)}` : ''})`, false);
    }
    const parsed = v4Statuses.safeParse(answer.body);
    if (!parsed.success) return failed(write.key, malformed(label, answer.status, parsed.error.issues[0]?.message ?? 'not a status answer').message, false);
    const status = parsed.data.results.find((r) => r.subscriptionId === String(subscriptionId));
    if (status === undefined) return failed(write.key, malformed(label, answer.status, `no status for subscription ${subscriptionId}`).message, false);
    if (status.status !== 'SUBSCRIBED') return failed(write.key, `HubSpot kept ${status.status} after ${label}`, false);
    return ok(write.key);
  }

  async #v4Batch(tenant: Tenant, slots: ReadonlyArray<Slot<SubscriptionWrite>>, outcomes: Array<ItemOutcome | undefined>): Promise<void> {
    const label = 'POST /communication-preferences/v4/statuses/batch/write';
    const inputs = slots.map(({ write }) => ({
      subscriberIdString: write.email.trim(),
      subscriptionId: Number(write.subscriptionTypeId),
      statusState: write.subscribed ? 'SUBSCRIBED' : 'UNSUBSCRIBED',
      channel: 'EMAIL',
      ...this.#basis(write),
    }));
    const answer = await this.#call(tenant, { method: 'POST', path: '/communication-preferences/v4/statuses/batch/write', label, body: { inputs }, accept: itemLevel });
    if (answer.status >= 400) {
      const error = classifyHttpError(label, answer.status, new Headers(), answer.body, this.#clock.now().getTime());
      for (const s of slots) outcomes[s.index] = failed(s.write.key, error.message, false);
      return;
    }
    const result = this.#parse(v4Statuses, answer, label);
    for (const s of slots) {
      const email = normEmail(s.write.email);
      const status = result.results.find((r) => normEmail(r.subscriberIdString) === email && r.subscriptionId === String(Number(s.write.subscriptionTypeId)));
      const expected = s.write.subscribed ? 'SUBSCRIBED' : 'UNSUBSCRIBED';
      if (status !== undefined) {
        outcomes[s.index] = status.status === expected ? ok(s.write.key) : failed(s.write.key, `HubSpot kept ${status.status} after ${label}`, false);
        continue;
      }
      const error = (result.errors ?? []).find((e) => mentions(JSON.stringify(e).toLowerCase(), email));
      outcomes[s.index] =
        error !== undefined
          ? failed(s.write.key, `HubSpot refused this item${error.category !== undefined ? ` (${error.category})` : ''}: ${describe(error.message ?? 'no message')}`, retryableCategory(error.category))
          : failed(s.write.key, `HubSpot's answer to ${label} has no status for this item`, true);
    }
  }

  // ------------------------------------------------------------ lists

  /**
   * `PUT /crm/v3/lists/{listId}/memberships/add-and-remove`, at most `listMembershipChunkSize` ids per call
   * (UNVERIFIED cap). An id both added and removed is added: the list is the suppression list, and blocking is
   * the safe side. Ids HubSpot does not know (`recordIdsMissing`) are logged, not failed. Idempotent, so a
   * failure part-way throws and the whole change is retried.
   */
  async setListMembership(tenant: Tenant, change: ListMembershipChange): Promise<void> {
    const add = [...new Set(change.add)];
    const adding = new Set(add);
    const remove = [...new Set(change.remove)].filter((id) => !adding.has(id));
    const ids = [...add.map((id) => ({ id, add: true })), ...remove.map((id) => ({ id, add: false }))];
    const label = 'PUT /crm/v3/lists/{listId}/memberships/add-and-remove';
    const path = `/crm/v3/lists/${encodeURIComponent(change.listId)}/memberships/add-and-remove`;
    let missing = 0;
    for (const part of chunk(ids, this.#listChunk)) {
      const body = { recordIdsToAdd: part.filter((p) => p.add).map((p) => p.id), recordIdsToRemove: part.filter((p) => !p.add).map((p) => p.id) };
      const answer = await this.#call(tenant, { method: 'PUT', path, label, body });
      missing += this.#parse(membershipAnswer, answer, label).recordIdsMissing?.length ?? 0;
    }
    if (missing > 0) this.#deps.logger.warn({ tenantId: tenant.id, portalId: tenant.hubspotPortalId, listId: change.listId, missing }, 'HubSpot does not know some contact ids of a list change');
  }

  // ------------------------------------------------------------ reads

  /** `POST /crm/v3/objects/contacts/batch/read` by email, ≤ 100 per request; emails without a contact are absent. */
  async contactIdsByEmail(tenant: Tenant, emails: readonly string[]): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    const label = 'POST /crm/v3/objects/contacts/batch/read';
    for (const part of chunk(distinctEmails(emails), CRM_BATCH_SIZE)) {
      const body = { inputs: part.map((email) => ({ id: email.trim() })), idProperty: 'email', properties: ['email'], propertiesWithHistory: [] };
      const answer = await this.#call(tenant, { method: 'POST', path: '/crm/v3/objects/contacts/batch/read', label, body, accept: is(404) });
      // 404: none of them exists (a 404 that is not HubSpot's OBJECT_NOT_FOUND is a wrong base URL: thrown).
      if (answer.status === 404) {
        if (errorBody(answer.body).category === 'OBJECT_NOT_FOUND') continue;
        throw classifyHttpError(label, 404, new Headers(), answer.body, this.#clock.now().getTime());
      }
      for (const r of this.#parse(batchObjects, answer, label).results) {
        const email = r.properties?.email;
        if (email !== undefined && email !== null) ids.set(normEmail(email), r.id);
      }
    }
    // Keyed by the caller's spelling (every spelling of one address finds the contact).
    const found = new Map<string, string>();
    for (const email of emails) {
      const id = ids.get(normEmail(email));
      if (id !== undefined) found.set(email, id);
    }
    return found;
  }

  /**
   * One page (≤ 200) of contacts with `lastmodifieddate` ≥ `since`, oldest first (search API, its own limit).
   * HubSpot pages a query through at most 10,000 results; past that, `next` is a cursor of this connector that
   * restarts the query from the last page's newest time (contacts of that millisecond come again: callers are
   * idempotent). Search lags writes by a few moments [2nd]: overlap `since` a little.
   */
  async contactsModifiedSince(tenant: Tenant, since: string, after: string | null): Promise<{ contacts: Array<{ id: string; email: string | null; modifiedAt: string }>; next: string | null }> {
    const label = 'POST /crm/v3/objects/contacts/search';
    let from = since;
    let cursor: string | undefined;
    if (after !== null && after.startsWith(RESTART_CURSOR)) from = after.slice(RESTART_CURSOR.length);
    else if (after !== null) cursor = after;
    const fromMs = Date.parse(from);
    if (Number.isNaN(fromMs)) throw new TypeError(`contactsModifiedSince: ${from} is not a timestamp`);
    const body = {
      filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE', value: String(fromMs) }] }],
      sorts: [{ propertyName: 'lastmodifieddate', direction: 'ASCENDING' }],
      properties: ['email', 'lastmodifieddate'],
      limit: SEARCH_PAGE_SIZE,
      ...(cursor !== undefined ? { after: cursor } : {}),
    };
    const answer = await this.#call(tenant, { method: 'POST', path: '/crm/v3/objects/contacts/search', label, body, search: true });
    const page = this.#parse(searchPage, answer, label);
    const contacts = page.results.map((r) => {
      const modifiedAt = iso(r.properties.lastmodifieddate ?? r.updatedAt);
      if (modifiedAt === null) throw malformed(label, answer.status, `contact ${r.id} has no lastmodifieddate`);
      return { id: r.id, email: r.properties.email ?? null, modifiedAt };
    });
    let next = page.paging?.next?.after ?? null;
    if (next !== null && /^\d+$/.test(next) && Number(next) >= SEARCH_RESULT_CAP) {
      const newest = contacts.at(-1)?.modifiedAt;
      if (newest !== undefined && Date.parse(newest) > fromMs) {
        next = `${RESTART_CURSOR}${newest}`;
      } else {
        this.#deps.logger.error({ tenantId: tenant.id, portalId: tenant.hubspotPortalId, since: from }, `more than ${SEARCH_RESULT_CAP} HubSpot contacts share one lastmodifieddate; the rest of them are not listed`);
        next = null;
      }
    }
    return { contacts, next };
  }

  /**
   * Each email's subscription statuses from v4 (they carry timestamps, which the ledger orders by), with
   * "opted out of all email" folded in: `GET …/v4/statuses/{email}` and `…/unsubscribe-all` per email, or with
   * `batchScopes` (or `.batch.read` detected) `batch/read` and `batch/unsubscribe-all/read` per 100. An email
   * HubSpot does not know (404) has no statuses. One entry per distinct email, in input order.
   */
  async subscriptionStatuses(tenant: Tenant, emails: readonly string[]): Promise<HubspotContactStatus[]> {
    const wanted = distinctEmails(emails);
    const out: HubspotContactStatus[] = [];
    if (wanted.length === 0) return out;
    if (await this.#batch(tenant, 'read')) {
      for (const part of chunk(wanted, V4_BATCH_SIZE)) {
        const inputs = part.map((e) => e.trim());
        const readLabel = 'POST /communication-preferences/v4/statuses/batch/read';
        const read = await this.#call(tenant, { method: 'POST', path: '/communication-preferences/v4/statuses/batch/read', label: readLabel, query: { channel: 'EMAIL' }, body: { inputs } });
        const wideLabel = 'POST /communication-preferences/v4/statuses/batch/unsubscribe-all/read';
        const wide = await this.#call(tenant, { method: 'POST', path: '/communication-preferences/v4/statuses/batch/unsubscribe-all/read', label: wideLabel, query: { channel: 'EMAIL' }, body: { inputs } });
        const statuses = new Map(this.#parse(v4BulkStatuses, read, readLabel).results.map((r) => [normEmail(r.subscriberIdString), r.statuses]));
        const wides = new Map(this.#parse(v4BulkWideStatuses, wide, wideLabel).results.map((r) => [normEmail(r.subscriberIdString), r.wideStatuses]));
        for (const email of part) out.push(foldStatuses(email, statuses.get(normEmail(email)) ?? [], wides.get(normEmail(email)) ?? []));
      }
      return out;
    }
    for (const email of wanted) {
      const base = `/communication-preferences/v4/statuses/${encodeURIComponent(email.trim())}`;
      const readLabel = 'GET /communication-preferences/v4/statuses/{email}';
      const read = await this.#call(tenant, { method: 'GET', path: base, label: readLabel, query: { channel: 'EMAIL' }, accept: is(404) });
      const wideLabel = 'GET /communication-preferences/v4/statuses/{email}/unsubscribe-all';
      const wide = await this.#call(tenant, { method: 'GET', path: `${base}/unsubscribe-all`, label: wideLabel, query: { channel: 'EMAIL' }, accept: is(404) });
      const statuses = read.status === 404 ? [] : this.#parse(v4Statuses, read, readLabel).results;
      const wides = wide.status === 404 ? [] : this.#parse(v4WideStatuses, wide, wideLabel).results;
      out.push(foldStatuses(email, statuses, wides));
    }
    return out;
  }

  // ------------------------------------------------------------ batch scopes

  /** Whether the v4 batch endpoints of this kind may be used for the tenant (`batchScopes`). */
  async #batch(tenant: Tenant, kind: 'read' | 'write'): Promise<boolean> {
    const option = this.#batchScopes;
    if (typeof option === 'boolean') return option;
    if (typeof option === 'function') return option(tenant);
    const grants = await this.#grantsOf(tenant);
    return kind === 'read' ? grants.batchRead : grants.batchWrite;
  }

  /**
   * `batchScopes: 'detect'`: what the tenant's current access token grants. Asked of HubSpot once per token (a
   * new token, i.e. after a refresh, is asked again) and kept until the token's `expires_in`; callers that come
   * while the question is under way share it. A failed introspection counts as "no batch scopes" for
   * SCOPE_DETECTION_RETRY_MS, then it is asked again. A failure to get the token is thrown (the call itself could
   * not be made either).
   */
  async #grantsOf(tenant: Tenant): Promise<Grants> {
    const token = await this.#deps.tokens.accessToken(tenant, 'hubspot');
    const fingerprint = fingerprintOf(token);
    for (;;) {
      const cached = this.#grants.get(tenant.id);
      if (cached === undefined || cached.fingerprint !== fingerprint) break;
      const grants = await cached.grants;
      if (this.#clock.now().getTime() < grants.untilMs) return grants;
      // Stale: the first caller to notice asks again; the others wait for that answer.
      if (this.#grants.get(tenant.id) === cached) break;
    }
    const entry: GrantEntry = { fingerprint, grants: this.#introspect(tenant, token) };
    this.#grants.set(tenant.id, entry);
    return entry.grants;
  }

  /**
   * `GET /oauth/v1/access-tokens/{token}` (hubspot.md §7): the token is the credential, so no Authorization header.
   * It takes a unit of the portal's 10 s budget like any other call. Never rejects: a failure is "no batch scopes"
   * for SCOPE_DETECTION_RETRY_MS.
   */
  async #introspect(tenant: Tenant, token: string): Promise<Grants> {
    const label = 'GET /oauth/v1/access-tokens/{token}';
    try {
      const answer = await this.#send(tenant, { method: 'GET', path: `/oauth/v1/access-tokens/${encodeURIComponent(token)}`, label }, null, token);
      const info = this.#parse(tokenInfo, answer, label);
      const scopes = new Set(info.scopes);
      const expiresIn = info.expires_in ?? info.expiresIn;
      const grants: Grants = {
        batchRead: scopes.has(BATCH_READ_SCOPE),
        batchWrite: scopes.has(BATCH_WRITE_SCOPE),
        // No (or a nonsensical) lifetime: kept while the token is the same.
        untilMs: expiresIn !== undefined && expiresIn > 0 ? this.#clock.now().getTime() + expiresIn * 1000 : Number.POSITIVE_INFINITY,
      };
      this.#deps.logger.info({ tenantId: tenant.id, portalId: tenant.hubspotPortalId, batchRead: grants.batchRead, batchWrite: grants.batchWrite }, 'HubSpot batch scopes detected');
      return grants;
    } catch (err) {
      const message = scrub(err instanceof Error ? err.message : String(err), token);
      this.#deps.logger.warn(
        { tenantId: tenant.id, portalId: tenant.hubspotPortalId, call: label, retryInMs: SCOPE_DETECTION_RETRY_MS, error: describe(message) },
        'HubSpot token introspection failed: per-email subscription endpoints until it is asked again',
      );
      return { batchRead: false, batchWrite: false, untilMs: this.#clock.now().getTime() + SCOPE_DETECTION_RETRY_MS };
    }
  }

  // ------------------------------------------------------------ plumbing

  /**
   * Runs the requests of a multi-request call in order. A `PlatformCallError` (the request failed as a whole)
   * ends the run: thrown when it is the first request, otherwise the items still open fail with it (and its
   * `retryAfterMs`).
   */
  async #steps(steps: ReadonlyArray<() => Promise<void>>, outcomes: Array<ItemOutcome | undefined>, writes: ReadonlyArray<{ readonly key: string }>): Promise<void> {
    for (const [n, step] of steps.entries()) {
      try {
        await step();
      } catch (err) {
        if (!(err instanceof PlatformCallError) || n === 0) throw err;
        writes.forEach((write, i) => {
          if (outcomes[i] === undefined) outcomes[i] = failed(write.key, `not written: ${err.message}`, err.retryable, err.retryAfterMs);
        });
        return;
      }
    }
  }

  #finish(outcomes: ReadonlyArray<ItemOutcome | undefined>): ItemOutcome[] {
    return outcomes.map((o, i) => {
      if (o === undefined) throw new Error(`HubSpot connector: item ${i} got no outcome`);
      return o;
    });
  }

  #parse<T extends z.ZodType>(schema: T, answer: Answer, label: string): z.infer<T> {
    const result = schema.safeParse(answer.body);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw malformed(label, answer.status, issue === undefined ? 'does not match' : `${issue.path.join('.') || '(body)'}: ${issue.message}`);
    }
    return result.data;
  }

  /** One API request with the tenant's token as the bearer. */
  #call(tenant: Tenant, call: Call): Promise<Answer> {
    return this.#send(tenant, call, () => this.#deps.tokens.accessToken(tenant, 'hubspot'), null);
  }

  /**
   * One request: budgets, token (`bearer`; null: none), timeout; non-2xx (unless accepted) and non-JSON become
   * PlatformCallErrors. `secret`: a token in the path, scrubbed from the answer before anything reads it, and
   * from errors (which then carry no `cause`: a transport error may quote the URL).
   */
  async #send(tenant: Tenant, call: Call, bearer: (() => Promise<string>) | null, secret: string | null): Promise<Answer> {
    const limits = hubspotLimits(tenant.hubspotPortalId);
    let sent = false; // a failure before the request (token, limiter) is not a call
    try {
      if (call.search === true) await this.#deps.limiter.acquire(limits.search);
      await this.#deps.limiter.acquire(limits.tenSecondly);
      const headers: Record<string, string> = { Accept: 'application/json' };
      if (bearer !== null) headers.Authorization = `Bearer ${await bearer()}`;
      const query = call.query !== undefined ? `?${new URLSearchParams(call.query).toString()}` : '';
      if (call.body !== undefined) headers['Content-Type'] = 'application/json';
      const init: RequestInit = { method: call.method, headers, ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}) };
      sent = true;
      const exchanged = await exchange(this.#fetch, `${this.#baseUrl}${call.path}${query}`, init, this.#timeoutMs, call.label).catch((err: unknown) => {
        throw secret !== null && err instanceof PlatformCallError ? new PlatformCallError('hubspot', scrub(err.message, secret), { retryable: err.retryable, kind: err.kind }) : err;
      });
      const raw = secret === null ? exchanged : { ...exchanged, text: scrub(exchanged.text, secret) };
      const body = parseJson(raw.text);
      if (raw.status >= 200 && raw.status < 300) {
        if (body === undefined) throw malformed(call.label, raw.status, `not JSON: ${raw.text.slice(0, 80)}`);
        this.#deps.onCall?.('hubspot', { kind: 'ok', status: raw.status });
        return { status: raw.status, body };
      }
      if (call.accept?.(raw.status) === true) {
        this.#deps.onCall?.('hubspot', { kind: 'ok', status: raw.status });
        return { status: raw.status, body: body === undefined ? raw.text : body };
      }
      throw classifyHttpError(call.label, raw.status, raw.headers, body === undefined ? raw.text : body, this.#clock.now().getTime());
    } catch (err) {
      if (sent) this.#deps.onCall?.('hubspot', callOutcomeOf(err));
      if (err instanceof PlatformCallError) {
        this.#deps.logger.warn(
          { tenantId: tenant.id, portalId: tenant.hubspotPortalId, call: call.label, status: err.status, kind: err.kind, retryable: err.retryable, retryAfterMs: err.retryAfterMs, error: err.message },
          'HubSpot call failed',
        );
      }
      throw err;
    }
  }
}
