/**
 * Tenants: a Shopify shop linked to a HubSpot portal, with settings and encrypted platform credentials.
 * Until marketplace install exists, self-hosters and tests create them with `consent-bridge tenant add`.
 */
import type { SecretBox } from '../crypto/secret-box';
import { defaultSettings, validateSettings, type TenantSettings } from '../config/manifest';
import { AppError } from '../domain/errors';
import type { Clock, IdGenerator } from '../ports';
import type { Store } from '../store/database';
import type { Kysely, Transaction } from 'kysely';
import type { Database, TenantTable } from '../store/schema';
import * as repo from '../store/tenant.repository';
import type { Identity } from '../domain/identity';
import { isIdentityHeldByOtherTenant } from '../store/identity.repository';

export const PLATFORMS = ['shopify', 'hubspot'] as const;
export type Platform = (typeof PLATFORMS)[number];

export interface PlatformCredentials {
  readonly accessToken: string;
  readonly refreshToken?: string;
  /** ISO-8601; expiring offline tokens (Shopify) and 30-minute access tokens (HubSpot) carry one. */
  readonly expiresAt?: string;
}

export interface Tenant {
  readonly id: string;
  readonly shopDomain: string;
  readonly hubspotPortalId: string;
  readonly status: 'active' | 'uninstalled';
  readonly settings: TenantSettings;
  readonly hasShopifyCredentials: boolean;
  readonly hasHubspotCredentials: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface TenantDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
  /** Null when ENCRYPTION_KEY is not set: tenants can exist, but no token can be stored. */
  readonly secretBox: SecretBox | null;
}

const SHOP_DOMAIN = /^[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com$/;
const PORTAL_ID = /^[1-9]\d{0,19}$/;

export function normalizeShopDomain(input: string): string | null {
  const domain = input.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/\/+$/, '');
  return SHOP_DOMAIN.test(domain) ? domain : null;
}

function toTenant(row: TenantTable): Tenant {
  return {
    id: row.id,
    shopDomain: row.shop_domain,
    hubspotPortalId: row.hubspot_portal_id,
    status: row.status as Tenant['status'],
    settings: JSON.parse(row.settings) as TenantSettings,
    hasShopifyCredentials: row.shopify_credentials !== null,
    hasHubspotCredentials: row.hubspot_credentials !== null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function credentialsAad(tenantId: string, platform: Platform): string {
  return `tenant:${tenantId}:${platform}-credentials`;
}

function validateCredentials(platform: Platform, credentials: PlatformCredentials, problems: string[]): void {
  if (typeof credentials.accessToken !== 'string' || credentials.accessToken.trim().length < 8) {
    problems.push(`${platform} access token must be at least 8 characters`);
  }
  if (credentials.expiresAt !== undefined && Number.isNaN(Date.parse(credentials.expiresAt))) {
    problems.push(`${platform} token expiry must be an ISO-8601 date-time`);
  }
}

function seal(deps: TenantDeps, tenantId: string, platform: Platform, credentials: PlatformCredentials | undefined): string | null {
  if (credentials === undefined) return null;
  if (deps.secretBox === null) {
    throw new AppError('feature_disabled', 'cannot store platform tokens: ENCRYPTION_KEY is not set (tokens are never stored in plain text)');
  }
  return deps.secretBox.seal(JSON.stringify(credentials), credentialsAad(tenantId, platform));
}

export interface AddTenantInput {
  readonly shopDomain: string;
  readonly hubspotPortalId: string;
  readonly shopify?: PlatformCredentials;
  readonly hubspot?: PlatformCredentials;
  readonly settings?: unknown;
}

export async function addTenant(store: Store, deps: TenantDeps, input: AddTenantInput): Promise<Tenant> {
  const problems: string[] = [];
  const shopDomain = normalizeShopDomain(input.shopDomain);
  if (shopDomain === null) problems.push(`shop domain "${input.shopDomain}" is not a *.myshopify.com domain`);
  const portalId = input.hubspotPortalId.trim();
  if (!PORTAL_ID.test(portalId)) problems.push(`HubSpot portal id "${input.hubspotPortalId}" must be a positive number`);
  if (input.shopify) validateCredentials('shopify', input.shopify, problems);
  if (input.hubspot) validateCredentials('hubspot', input.hubspot, problems);
  let settings = defaultSettings();
  if (input.settings !== undefined) {
    const result = validateSettings(input.settings);
    if (result.ok) settings = result.settings;
    else problems.push(...result.errors);
  }
  if (problems.length > 0 || shopDomain === null) throw new AppError('validation_failed', 'invalid tenant', { details: problems });

  const id = deps.ids.next();
  const now = deps.clock.now().toISOString();
  const row: TenantTable = {
    id,
    shop_domain: shopDomain,
    hubspot_portal_id: portalId,
    status: 'active',
    settings: JSON.stringify(settings),
    shopify_credentials: seal(deps, id, 'shopify', input.shopify),
    hubspot_credentials: seal(deps, id, 'hubspot', input.hubspot),
    created_at: now,
    updated_at: now,
  };
  if (!(await repo.insertTenant(store.db, row))) {
    throw new AppError('conflict', `a tenant already links ${shopDomain} or HubSpot portal ${portalId}`);
  }
  return toTenant(row);
}

/** Find a tenant by id, shop domain or HubSpot portal id. */
export async function findTenant(store: Store, ref: string): Promise<Tenant | undefined> {
  const shopDomain = normalizeShopDomain(ref);
  const row =
    (shopDomain !== null ? await repo.findTenant(store.db, { shopDomain }) : undefined) ??
    (PORTAL_ID.test(ref.trim()) ? await repo.findTenant(store.db, { portalId: ref.trim() }) : undefined) ??
    (await repo.findTenant(store.db, { id: ref.trim() }));
  return row ? toTenant(row) : undefined;
}

export async function requireTenant(store: Store, ref: string): Promise<Tenant> {
  const tenant = await findTenant(store, ref);
  if (!tenant) throw new AppError('not_found', `no tenant "${ref}" (give its id, shop domain or HubSpot portal id)`);
  return tenant;
}

export async function listTenants(store: Store): Promise<Tenant[]> {
  return (await repo.listTenants(store.db)).map(toTenant);
}

/** Replace a tenant's settings. A bad document is refused with every error listed, and nothing changes. */
export async function setTenantSettings(store: Store, deps: Pick<TenantDeps, 'clock'>, ref: string, input: unknown): Promise<Tenant> {
  const tenant = await requireTenant(store, ref);
  const result = validateSettings(input);
  if (!result.ok) throw new AppError('validation_failed', 'settings refused; nothing was changed', { details: result.errors });
  const now = deps.clock.now().toISOString();
  await repo.updateTenant(store.db, tenant.id, { settings: JSON.stringify(result.settings), updated_at: now });
  return { ...tenant, settings: result.settings, updatedAt: now };
}

/** Decrypt a tenant's stored credentials for a platform (null when none are stored). */
export async function readCredentials(store: Store, secretBox: SecretBox, tenantId: string, platform: Platform): Promise<PlatformCredentials | null> {
  const row = await repo.findTenant(store.db, { id: tenantId });
  if (!row) throw new AppError('not_found', `no tenant ${tenantId}`);
  const sealed = platform === 'shopify' ? row.shopify_credentials : row.hubspot_credentials;
  return sealed === null ? null : (JSON.parse(secretBox.open(sealed, credentialsAad(tenantId, platform))) as PlatformCredentials);
}

function credentialsColumn(platform: Platform): 'shopify_credentials' | 'hubspot_credentials' {
  return platform === 'shopify' ? 'shopify_credentials' : 'hubspot_credentials';
}

function openCredentials(secretBox: SecretBox, row: TenantTable, platform: Platform): PlatformCredentials | null {
  const sealed = row[credentialsColumn(platform)];
  return sealed === null ? null : (JSON.parse(secretBox.open(sealed, credentialsAad(row.id, platform))) as PlatformCredentials);
}

/** Store new credentials of a tenant's platform (e.g. refreshed tokens), sealed; validated like `addTenant`'s. */
export async function writeCredentials(
  db: Kysely<Database> | Transaction<Database>,
  deps: { readonly secretBox: SecretBox; readonly clock: Clock },
  tenantId: string,
  platform: Platform,
  credentials: PlatformCredentials,
): Promise<void> {
  const problems: string[] = [];
  validateCredentials(platform, credentials, problems);
  if (problems.length > 0) throw new AppError('validation_failed', `invalid ${platform} credentials`, { details: problems });
  const stored: PlatformCredentials = {
    accessToken: credentials.accessToken,
    ...(credentials.refreshToken !== undefined ? { refreshToken: credentials.refreshToken } : {}),
    ...(credentials.expiresAt !== undefined ? { expiresAt: credentials.expiresAt } : {}),
  };
  const sealed = deps.secretBox.seal(JSON.stringify(stored), credentialsAad(tenantId, platform));
  await repo.updateTenant(db, tenantId, { [credentialsColumn(platform)]: sealed, updated_at: deps.clock.now().toISOString() });
}

/**
 * Read a tenant's credentials for a platform, let `refresh` decide on them, and store what it returns (null:
 * keep them), all under one lock against other processes:
 * - PostgreSQL: one transaction with the tenant row locked (`SELECT … FOR UPDATE`) around read, refresh and
 *   write, so a second process waits, then reads the credentials the first one stored. The lock is held during
 *   the platform's token call: other writes of this tenant row (settings, status) wait for it meanwhile.
 * - SQLite: no lock (holding the database write lock during a network call would stall every writer, webhook
 *   intake included). A SQLite deployment is one process, and the caller is single-flight within it.
 * Returns the credentials in effect afterwards.
 */
export async function refreshCredentials(
  store: Store,
  deps: { readonly secretBox: SecretBox; readonly clock: Clock },
  tenantId: string,
  platform: Platform,
  refresh: (current: PlatformCredentials | null) => Promise<PlatformCredentials | null>,
): Promise<PlatformCredentials | null> {
  const run = async (db: Kysely<Database> | Transaction<Database>, row: TenantTable | undefined): Promise<PlatformCredentials | null> => {
    if (!row) throw new AppError('not_found', `no tenant ${tenantId}`);
    const current = openCredentials(deps.secretBox, row, platform);
    const next = await refresh(current);
    if (next === null) return current;
    await writeCredentials(db, deps, tenantId, platform, next);
    return next;
  };
  if (store.dialect === 'postgres') {
    return store.db.transaction().execute(async (trx) => run(trx, await trx.selectFrom('tenant').selectAll().where('id', '=', tenantId).forUpdate().executeTakeFirst()));
  }
  return run(store.db, await repo.findTenant(store.db, { id: tenantId }));
}

/** Exact lookup by a normalised `*.myshopify.com` domain (webhook routing; no fallbacks). */
export async function findTenantByShop(store: Store, shopDomain: string): Promise<Tenant | undefined> {
  const row = await repo.findTenant(store.reader, { shopDomain });
  return row ? toTenant(row) : undefined;
}

/** Exact lookup by HubSpot portal id (webhook routing; no fallbacks). */
export async function findTenantByPortal(store: Store, portalId: string): Promise<Tenant | undefined> {
  const row = await repo.findTenant(store.reader, { portalId });
  return row ? toTenant(row) : undefined;
}

/** How the webhook routes find a tenant (tenant resolution, issue 3 §5). */
export interface TenantLookup {
  byShop(shopDomain: string): Promise<Tenant | undefined>;
  byPortal(portalId: string): Promise<Tenant | undefined>;
  /**
   * Whether a tenant other than `tenantId` knows this identity (Shopify ids are global across shops, so a signed
   * body naming another shop's customer was replayed under this shop's header: the header is not signed).
   */
  heldByOtherTenant(tenantId: string, identity: Identity): Promise<boolean>;
}

/**
 * Tenant lookups for the webhook request path, reused for `ttlMs` (config TENANT_CACHE_MS, default 5 s): one
 * query less per request. Only found tenants are cached, so a tenant linked a moment ago is routed at once and
 * a delivery is never answered `ignored` from a stale miss. An uninstall or settings change made by another
 * process reaches the routes within `ttlMs`; a delivery stored in that window is still processed under the
 * tenant's own id, never another's. `nowMs` is a monotonic clock (injected; tests pass their own).
 */
export class CachedTenantLookup implements TenantLookup {
  readonly #store: Store;
  readonly #ttlMs: number;
  readonly #nowMs: () => number;
  readonly #entries = new Map<string, { tenant: Tenant; expiresAt: number }>();

  /** Entries kept at most; the oldest is dropped first. */
  static readonly MAX_ENTRIES = 10_000;

  constructor(store: Store, options: { ttlMs: number; nowMs: () => number }) {
    this.#store = store;
    this.#ttlMs = options.ttlMs;
    this.#nowMs = options.nowMs;
  }

  byShop(shopDomain: string): Promise<Tenant | undefined> {
    return this.#cached(`shop:${shopDomain}`, () => findTenantByShop(this.#store, shopDomain));
  }

  byPortal(portalId: string): Promise<Tenant | undefined> {
    return this.#cached(`portal:${portalId}`, () => findTenantByPortal(this.#store, portalId));
  }

  readonly #clearIdentities = new Map<string, number>();

  /**
   * An answer "no other tenant" is reused for `ttlMs` (one query less per webhook of a customer seen a moment
   * ago); "another tenant has it" is never cached, nor needed again (the delivery is refused). A customer id
   * first stored by another tenant within that window is caught from the next lookup on: Shopify ids are global,
   * so a legitimate one never is.
   */
  async heldByOtherTenant(tenantId: string, identity: Identity): Promise<boolean> {
    const key = `${tenantId}\u0000${identity.kind}\u0000${identity.value}`;
    const now = this.#nowMs();
    const clearUntil = this.#clearIdentities.get(key);
    if (clearUntil !== undefined && clearUntil > now) return false;
    const held = await isIdentityHeldByOtherTenant(this.#store.reader, this.#store.dialect, tenantId, identity);
    this.#clearIdentities.delete(key);
    if (!held && this.#ttlMs > 0) {
      if (this.#clearIdentities.size >= CachedTenantLookup.MAX_IDENTITIES) this.#clearIdentities.delete(this.#clearIdentities.keys().next().value!);
      this.#clearIdentities.set(key, now + this.#ttlMs);
    }
    return held;
  }

  /** Identities remembered as held by no other tenant, at most; the oldest is dropped first. */
  static readonly MAX_IDENTITIES = 100_000;

  async #cached(key: string, load: () => Promise<Tenant | undefined>): Promise<Tenant | undefined> {
    const now = this.#nowMs();
    const entry = this.#entries.get(key);
    if (entry !== undefined && entry.expiresAt > now) return entry.tenant;
    const tenant = await load();
    this.#entries.delete(key);
    if (tenant !== undefined && this.#ttlMs > 0) {
      if (this.#entries.size >= CachedTenantLookup.MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(key, { tenant, expiresAt: now + this.#ttlMs });
    }
    return tenant;
  }
}

/** Exact lookup by tenant id (gate API keys). */
export async function findTenantById(store: Store, id: string): Promise<Tenant | undefined> {
  const row = await repo.findTenant(store.reader, { id });
  return row ? toTenant(row) : undefined;
}
