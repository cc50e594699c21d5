/**
 * A ProductCatalog backed by the `product` table (issue 4 §3): cached facts that are fresh are answered from the
 * database; the rest (never seen, marked stale by a products/* webhook, or older than `maxAgeMs`) are fetched
 * through the inner catalog (the Shopify Admin API) and stored, so a shop's products cost one API read each
 * until they change.
 *
 * Call it outside any store transaction: it makes HTTP calls through the inner catalog, and on SQLite a write on
 * `store.db` waits for a transaction open on that same connection (the worker's), which would never end.
 */
import { toIsoTimestamp } from '../domain/time';
import type { Clock } from '../ports';
import type { Store } from '../store/database';
import * as repo from '../store/product.repository';
import type { ProductTable } from '../store/schema';
import type { Tenant } from '../tenants/tenants';
import type { ProductCatalog, ProductFacts } from './catalog';

export interface CachedProductCatalogDeps {
  readonly store: Store;
  /** Where facts not in the cache come from (connectors/shopify/catalog.ts in production). */
  readonly inner: ProductCatalog;
  readonly clock: Clock;
}

export interface CachedProductCatalogOptions {
  /**
   * Facts fetched longer ago than this are fetched again (ms). Default 24 h: adding a product to a collection
   * (or a smart collection's rule matching it) is not known to change the product's `updated_at` or to send a
   * products/update webhook (UNVERIFIED), and collections are part of the grouping.
   */
  readonly maxAgeMs?: number;
}

export const DEFAULT_PRODUCT_MAX_AGE_MS = 24 * 60 * 60 * 1000;

function parseJsonArray(text: string | null): unknown[] | null {
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** A complete row as facts; null when the row cannot answer (incomplete or unreadable: it is refetched). */
function rowToFacts(row: ProductTable): ProductFacts | null {
  const tags = parseJsonArray(row.tags);
  const collections = parseJsonArray(row.collections);
  if (tags === null || collections === null) return null;
  if (!tags.every((t): t is string => typeof t === 'string')) return null;
  const validCollections = collections.every(
    (c): c is { id: string; handle: string } =>
      typeof c === 'object' && c !== null && typeof (c as { id?: unknown }).id === 'string' && typeof (c as { handle?: unknown }).handle === 'string',
  );
  if (!validCollections) return null;
  return {
    productId: row.product_id,
    productType: row.product_type,
    vendor: row.vendor,
    tags,
    taxonomyCategory: row.taxonomy_category_id === null ? null : { id: row.taxonomy_category_id, fullName: row.taxonomy_category_name ?? '' },
    collections: collections.map((c) => ({ id: c.id, handle: c.handle })),
    updatedAt: row.source_updated_at,
  };
}

function factsToRow(tenantId: string, facts: ProductFacts, now: string): ProductTable {
  return {
    tenant_id: tenantId,
    product_id: facts.productId,
    product_type: facts.productType,
    vendor: facts.vendor,
    tags: JSON.stringify(facts.tags),
    taxonomy_category_id: facts.taxonomyCategory?.id ?? null,
    taxonomy_category_name: facts.taxonomyCategory?.fullName ?? null,
    collections: JSON.stringify(facts.collections.map((c) => ({ id: c.id, handle: c.handle }))),
    source_updated_at: facts.updatedAt === null ? null : toIsoTimestamp(facts.updatedAt),
    fetched_at: now,
    stale: 0,
    updated_at: now,
  };
}

export class CachedProductCatalog implements ProductCatalog {
  readonly #deps: CachedProductCatalogDeps;
  readonly #maxAgeMs: number;

  constructor(deps: CachedProductCatalogDeps, options: CachedProductCatalogOptions = {}) {
    this.#deps = deps;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_PRODUCT_MAX_AGE_MS;
  }

  async products(tenant: Tenant, productIds: readonly string[]): Promise<Map<string, ProductFacts>> {
    const { store, inner, clock } = this.#deps;
    const wanted = [...new Set(productIds)];
    const found = new Map<string, ProductFacts>();
    if (wanted.length === 0) return found;

    const now = clock.now();
    // The reader: on SQLite a separate WAL connection, so the lookup never queues behind the worker's writes.
    for (const row of await repo.findProducts(store.reader, tenant.id, wanted)) {
      if (row.stale !== 0 || row.fetched_at === null) continue;
      const fetchedAt = Date.parse(row.fetched_at);
      if (!Number.isFinite(fetchedAt) || now.getTime() - fetchedAt >= this.#maxAgeMs) continue;
      const facts = rowToFacts(row);
      if (facts !== null) found.set(row.product_id, facts);
    }

    const missing = wanted.filter((id) => !found.has(id));
    if (missing.length === 0) return found;
    const fetched = await inner.products(tenant, missing);
    const nowIso = now.toISOString();
    const rows: ProductTable[] = [];
    for (const id of missing) {
      const facts = fetched.get(id);
      if (facts === undefined) continue; // not found: absent, and not cached (it may be created later)
      found.set(id, facts);
      rows.push(factsToRow(tenant.id, facts, nowIso));
    }
    if (rows.length > 0) {
      // One transaction: one commit for the batch.
      await store.db.transaction().execute(async (trx) => {
        for (const row of rows) await repo.upsertFetched(trx, row);
      });
    }
    return found;
  }
}
