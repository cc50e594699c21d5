/**
 * The soft opt-in job: evaluates paid orders recorded by the inbox worker (purchase rows with `soi_status`
 * pending). Product facts come from the ProductCatalog port, called outside any transaction (it may call
 * Shopify); the events and the outcome are then written in one transaction, idempotent by the ledger delivery
 * key `soft-opt-in:<order id>`. A catalog failure is retried with backoff (a durable row, not a timer); after
 * `maxAttempts` the row is marked failed with the error, for `explain` and the logs.
 */
import { categoryGroupsOf, type ProductCatalog } from '../catalog/catalog';
import type { PurchaseLine } from '../domain/inbound';
import { stateKey, audienceOf, b2bRuleOf, countryOf, loadFacts } from '../gate/facts';
import { appendInTransaction } from '../ledger/ledger';
import type { Clock, IdGenerator, Logger } from '../ports';
import { profileForCountry } from '../rules/profiles';
import type { Store } from '../store/database';
import * as repo from '../store/purchase.repository';
import type { PurchaseTable } from '../store/schema';
import { findTenantById, type Tenant } from '../tenants/tenants';
import { eventsOf, evaluatePurchase, precheck, SOFT_OPT_IN_CHANNELS, type PurchaseForSoftOptIn, type PurchaseOutcome, type SubjectForSoftOptIn } from './evaluate';

export interface SoftOptInDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly catalog: ProductCatalog;
  readonly logger: Logger;
}

export interface SoftOptInRunOptions {
  /** Purchases per run. Default 50. */
  readonly limit?: number;
  /** Catalog attempts before a purchase is marked failed. Default 8 (about 2 h of backoff). */
  readonly maxAttempts?: number;
}

export interface SoftOptInRunResult {
  readonly evaluated: number;
  readonly earned: number;
  readonly objections: number;
  readonly postponed: number;
  readonly failed: number;
}

/** Backoff after a failed catalog call: 30 s doubling, capped at 1 h. */
export function retryDelayMs(attempt: number): number {
  return Math.min(30_000 * 2 ** Math.max(0, attempt), 3_600_000);
}

function purchaseOf(row: PurchaseTable): PurchaseForSoftOptIn {
  return {
    orderId: row.order_id,
    orderedAt: row.ordered_at,
    paidAt: row.paid_at,
    lines: JSON.parse(row.line_items) as PurchaseLine[],
    attributes: JSON.parse(row.attributes) as Record<string, string>,
  };
}

async function subjectOf(store: Store, tenant: Tenant, subjectId: string): Promise<{ subject: SubjectForSoftOptIn; country: string | null }> {
  const facts = (await loadFacts(store, tenant.id, [subjectId])).get(subjectId);
  const { country } = countryOf(facts, tenant.settings.shopCountry);
  const states: SubjectForSoftOptIn['states'] = Object.fromEntries(
    SOFT_OPT_IN_CHANNELS.flatMap((channel) => {
      const state = facts?.states.get(stateKey(channel, '*'));
      return state ? [[channel, state]] : [];
    }),
  );
  return {
    country,
    subject: {
      subjectId,
      country,
      audience: audienceOf(facts, b2bRuleOf(tenant.settings.b2b)),
      hasEmail: facts?.identities.some((i) => i.kind === 'email') ?? false,
      hasPhone: facts?.identities.some((i) => i.kind === 'phone') ?? false,
      states,
    },
  };
}

/** Evaluate due purchases once. */
export async function runSoftOptInEvaluations(deps: SoftOptInDeps, options: SoftOptInRunOptions = {}): Promise<SoftOptInRunResult> {
  const { store, clock, logger } = deps;
  const limit = options.limit ?? 50;
  const maxAttempts = options.maxAttempts ?? 8;
  const now = clock.now().toISOString();
  const due = await repo.duePurchases(store.db, now, limit);
  const tenants = new Map<string, Tenant | undefined>();
  const totals = { evaluated: 0, earned: 0, objections: 0, postponed: 0, failed: 0 };

  for (const row of due) {
    if (!tenants.has(row.tenant_id)) tenants.set(row.tenant_id, await findTenantById(store, row.tenant_id));
    const tenant = tenants.get(row.tenant_id);
    if (tenant === undefined || tenant.status !== 'active') {
      await repo.finishPurchase(store.db, row.tenant_id, row.order_id, 'failed', JSON.stringify({ orderId: row.order_id, evaluatedAt: now, error: 'tenant is not active' }));
      totals.failed += 1;
      continue;
    }
    const purchase = purchaseOf(row);
    const { subject, country } = await subjectOf(store, tenant, row.subject_id);
    const profile = profileForCountry(country);
    let outcome: PurchaseOutcome | null = precheck(purchase, subject, profile, tenant.settings, now);
    if (outcome === null) {
      const productIds = [...new Set(purchase.lines.map((l) => l.productId).filter((id): id is string => id !== null))];
      try {
        const products = await deps.catalog.products(tenant, productIds);
        const groups = new Set<string>();
        for (const product of products.values()) for (const group of categoryGroupsOf(product, tenant.settings)) groups.add(group);
        outcome = evaluatePurchase(purchase, subject, profile, tenant.settings, [...groups], now);
      } catch (err) {
        const attempt = (row.soi_attempts ?? 0) + 1;
        const error = err instanceof Error ? err.message : String(err);
        const record = JSON.stringify({ orderId: row.order_id, evaluatedAt: now, error, attempt });
        if (attempt >= maxAttempts) {
          await repo.finishPurchase(store.db, row.tenant_id, row.order_id, 'failed', record);
          totals.failed += 1;
          logger.error({ tenantId: row.tenant_id, orderId: row.order_id, attempt, err }, 'soft opt-in evaluation failed for good: product catalog unavailable');
        } else {
          await repo.postponePurchase(store.db, row.tenant_id, row.order_id, new Date(clock.now().getTime() + retryDelayMs(attempt - 1)).toISOString(), record);
          totals.postponed += 1;
          logger.warn({ tenantId: row.tenant_id, orderId: row.order_id, attempt, err }, 'soft opt-in evaluation postponed: product catalog unavailable');
        }
        continue;
      }
    }
    const events = eventsOf(outcome, purchase, row.subject_id, tenant.settings);
    const decided = outcome;
    await store.db.transaction().execute(async (trx) => {
      await appendInTransaction(trx, store.dialect, deps, { tenantId: row.tenant_id, deliveryKey: `soft-opt-in:${row.order_id}`, events });
      await repo.finishPurchase(trx, row.tenant_id, row.order_id, 'done', JSON.stringify(decided));
    });
    totals.evaluated += 1;
    if (outcome.objection) totals.objections += 1;
    else if (events.length > 0) totals.earned += 1;
  }
  return totals;
}
