/**
 * Per-tenant API keys for the gate (issue 4 §8). A key is `cbk_` + 32 random bytes (base64url), shown once at
 * creation; only its SHA-256 is stored. A 256-bit random key needs no slow hash: nothing can be guessed from the
 * digest, and lookup by digest leaks nothing about other keys.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AppError } from '../domain/errors';
import type { Clock, IdGenerator } from '../ports';
import type { Store } from '../store/database';
import * as repo from '../store/gate.repository';
import { findTenantById, requireTenant, type Tenant } from '../tenants/tenants';

const KEY_PREFIX = 'cbk_';
/** `cbk_` + 43 base64url characters. */
const KEY_SHAPE = /^cbk_[A-Za-z0-9_-]{43}$/;

export interface ApiKeyInfo {
  readonly id: string;
  readonly tenantId: string;
  readonly prefix: string;
  readonly label: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

function digest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Create a key for a tenant (id, shop domain or portal id). Returns the key itself: it is never shown again. */
export async function createApiKey(store: Store, deps: { clock: Clock; ids: IdGenerator }, tenantRef: string, label: string): Promise<{ key: string; info: ApiKeyInfo }> {
  const tenant = await requireTenant(store, tenantRef);
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const row = { id: deps.ids.next(), tenant_id: tenant.id, prefix: key.slice(0, 10), hash: digest(key), label: label.slice(0, 200), created_at: deps.clock.now().toISOString(), revoked_at: null };
  await repo.insertApiKey(store.db, row);
  return { key, info: { id: row.id, tenantId: row.tenant_id, prefix: row.prefix, label: row.label, createdAt: row.created_at, revokedAt: null } };
}

export async function listApiKeys(store: Store, tenantRef: string): Promise<ApiKeyInfo[]> {
  const tenant = await requireTenant(store, tenantRef);
  return (await repo.listApiKeys(store.db, tenant.id)).map((r) => ({ id: r.id, tenantId: r.tenant_id, prefix: r.prefix, label: r.label, createdAt: r.created_at, revokedAt: r.revoked_at }));
}

export async function revokeApiKey(store: Store, deps: { clock: Clock }, tenantRef: string, keyId: string): Promise<void> {
  const tenant = await requireTenant(store, tenantRef);
  if (!(await repo.revokeApiKey(store.db, tenant.id, keyId, deps.clock.now().toISOString()))) {
    throw new AppError('not_found', `no active API key ${keyId} for ${tenant.shopDomain}`);
  }
}

/**
 * The tenant of a `Authorization: Bearer …` header, or an `unauthorized` error. The tenant must be active: an
 * uninstalled shop's keys stop working with it.
 */
export async function authenticateApiKey(store: Store, authorization: string): Promise<Tenant> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
  if (!match) throw new AppError('unauthorized', 'send the API key as "Authorization: Bearer <key>" (create one with `consent-bridge tenant api-key create`)');
  const key = match[1]!;
  if (!KEY_SHAPE.test(key)) throw new AppError('unauthorized', 'API key is not valid');
  const row = await repo.findActiveApiKey(store.reader, digest(key));
  const tenant = row ? await findTenantById(store, row.tenant_id) : undefined;
  if (!row || !tenant || tenant.status !== 'active') throw new AppError('unauthorized', 'API key is not valid');
  return tenant;
}
