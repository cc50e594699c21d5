/**
 * HubSpot provisioning when a tenant is linked (issue 5 §3): the app's property group and contact properties, the
 * MANUAL suppression list, and the portal's subscription types (for the settings that map purposes to them),
 * created or found, idempotently. A worker job runs it for every active tenant not provisioned yet (so within a
 * minute of `tenant add`), and keeps the result for `tenant show`. The sync's handlers provision on their own
 * first write too, so nothing waits for this job; a failure (HubSpot not configured, unreachable) is retried at the
 * next interval.
 */
import type { BackgroundJob } from '../jobs/scheduler';
import type { Clock, Logger } from '../ports';
import type { Store } from '../store/database';
import * as cursors from '../store/cursor.repository';
import { listTenants, type Tenant } from '../tenants/tenants';
import type { HubspotPort, HubspotProvisioning } from './ports';

export const PROVISION_CURSOR = 'provisioned:hubspot';

export interface ProvisionDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly hubspot: HubspotPort;
}

export interface StoredProvisioning extends HubspotProvisioning {
  readonly provisionedAt: string;
}

/** What provisioning found or created for the tenant, or undefined before it ran. */
export async function provisioningOf(store: Store, tenantId: string): Promise<StoredProvisioning | undefined> {
  const row = await cursors.readCursor(store.reader, tenantId, PROVISION_CURSOR);
  return row ? (JSON.parse(row.value) as StoredProvisioning) : undefined;
}

/** Provision one tenant now and keep the result (also when it was provisioned before: the portal may have changed). */
export async function provisionTenant(deps: ProvisionDeps, tenant: Tenant): Promise<StoredProvisioning> {
  const result = await deps.hubspot.provision(tenant);
  const now = deps.clock.now().toISOString();
  const stored: StoredProvisioning = { ...result, provisionedAt: now };
  const value = JSON.stringify(stored);
  const existing = await cursors.readCursor(deps.store.db, tenant.id, PROVISION_CURSOR);
  if (existing === undefined) await cursors.insertCursor(deps.store.db, { tenant_id: tenant.id, name: PROVISION_CURSOR, value, updated_at: now });
  else await cursors.swapCursor(deps.store.db, tenant.id, PROVISION_CURSOR, existing.updated_at, value, now);
  return stored;
}

/** Provision every active tenant that has not been yet; returns how many were provisioned. */
export async function provisionPending(deps: ProvisionDeps): Promise<number> {
  const done = new Set((await cursors.cursorsNamed(deps.store.reader, PROVISION_CURSOR)).map((r) => r.tenant_id));
  let provisioned = 0;
  for (const tenant of await listTenants(deps.store)) {
    if (tenant.status !== 'active' || done.has(tenant.id)) continue;
    try {
      await provisionTenant(deps, tenant);
      provisioned += 1;
    } catch (err) {
      deps.logger.warn({ tenantId: tenant.id, err }, 'HubSpot provisioning failed; retried at the next interval');
    }
  }
  return provisioned;
}

/** Worker job: every minute (the first run right at start). */
export function provisionJob(deps: ProvisionDeps): BackgroundJob {
  return { name: 'provision', intervalMs: 60_000, run: () => provisionPending(deps) };
}
