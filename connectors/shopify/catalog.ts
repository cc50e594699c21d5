/**
 * ProductCatalog over the Shopify Admin GraphQL API (issue 4 §3; shopify.md §3.4, scope `read_products`).
 *
 * One `nodes(ids:)` request per batch of at most 50 products (shopify.dev …/queries/nodes: `[Node]!`, an id that
 * matches nothing comes back as null). Each product brings its standard-taxonomy `category` (TaxonomyCategory,
 * since 2024-04: shopify.dev changelog "Taxonomy API"), `productType`, `vendor`, `tags`, `updatedAt` and its
 * collections.
 *
 * Query cost (shopify.dev …/graphql-admin/rate-limits): an object costs 1, a connection 2 + `first` × its node's
 * cost, and a single query may not request more than 1,000 points. 50 products × (product 1 + category 1 +
 * collections 2 + 10 + pageInfo 1) ≈ 750, so the first page of collections is 10, not 50 (50 would request about
 * 2,700 and be refused before it runs); a product in more collections gets its remaining pages by a follow-up query.
 *
 * Throttling (shopify.md §3.5): bounded retries with the shared classifier and backoff of graphql.ts.
 */
import type { Shopify } from '@shopify/shopify-api';
import { z } from 'zod';
import { taxonomyCategoryIdOf, type ProductCatalog, type ProductFacts } from '../../src/catalog/catalog';
import { AppError } from '../../src/domain/errors';
import { toIsoTimestamp } from '../../src/domain/time';
import { callOutcomeOf, type PlatformCallHook } from '../../src/metrics/metrics';
import type { Logger } from '../../src/ports';
import type { Tenant } from '../../src/tenants/tenants';
import {
  classifyShopifyError,
  DEFAULT_THROTTLE_RETRY,
  endpointFetch,
  graphqlClient,
  numericGid,
  record,
  retryDelayMs,
  shopifyCallError,
  type FetchFn,
  type GraphqlClient,
  type ThrottleRetryOptions,
} from './graphql';

// Moved to graphql.ts (shared with the consent connector); re-exported for existing importers.
export { classifyShopifyError, DEFAULT_THROTTLE_RETRY, retryDelayMs, type ShopifyFailure, type ThrottleRetryOptions } from './graphql';

/** Products per `nodes(ids:)` request. */
export const PRODUCT_BATCH_SIZE = 50;
/** Collections read with the product (see the query cost above). */
export const COLLECTIONS_FIRST = 10;
/** Collections per follow-up page (cost 2 + 100 + 2). */
export const COLLECTIONS_PAGE_SIZE = 100;
/** Follow-up pages per product before giving up (10,000 collections). */
export const MAX_COLLECTION_PAGES = 100;

const PRODUCTS_QUERY = `#graphql
query ConsentBridgeProducts($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename
    ... on Product {
      id
      productType
      vendor
      tags
      updatedAt
      category { id fullName }
      collections(first: ${COLLECTIONS_FIRST}) { pageInfo { hasNextPage endCursor } nodes { id handle } }
    }
  }
}`;

const COLLECTIONS_QUERY = `#graphql
query ConsentBridgeProductCollections($id: ID!, $after: String) {
  product(id: $id) {
    collections(first: ${COLLECTIONS_PAGE_SIZE}, after: $after) { pageInfo { hasNextPage endCursor } nodes { id handle } }
  }
}`;

const PRODUCT_ID = /^\d{1,20}$/;

function productGid(id: string): string {
  return `gid://shopify/Product/${id}`;
}

const collectionConnection = z.object({
  pageInfo: z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullable() }),
  nodes: z.array(z.object({ id: numericGid('Collection'), handle: z.string() })),
});

const productNode = z.object({
  id: numericGid('Product'),
  productType: z.string().nullable(),
  vendor: z.string().nullable(),
  tags: z.array(z.string()),
  updatedAt: z.string().nullable(),
  category: z.object({ id: z.string(), fullName: z.string() }).nullable(),
  collections: collectionConnection,
});

const productsData = z.object({ nodes: z.array(z.unknown()) });
const collectionsData = z.object({ product: z.object({ collections: collectionConnection }).nullable() });

export interface ShopifyProductCatalogDeps {
  /** The shared library instance (connectors/shopify/admin-api.ts). */
  readonly shopify: Pick<Shopify, 'clients'>;
  /** The tenant's offline Admin API access token; null when none is stored (or the app was uninstalled). */
  readonly tokenFor: (tenant: Tenant) => Promise<string | null>;
  readonly logger: Logger;
  /** Waits between attempts. Default `setTimeout`. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** SHOPIFY_API_BASE_URL: route calls to a simulator (graphql.ts `ShopifyEndpoint`). */
  readonly baseUrl?: string;
  /** fetch for this catalog's calls (graphql.ts `ShopifyEndpoint`). */
  readonly fetch?: FetchFn;
  /** Called once per request sent, with its outcome (metrics). */
  readonly onCall?: PlatformCallHook;
}

interface Lookup {
  readonly tenant: Tenant;
  readonly client: GraphqlClient;
}

export class ShopifyProductCatalog implements ProductCatalog {
  readonly #deps: ShopifyProductCatalogDeps;
  readonly #retry: ThrottleRetryOptions;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #fetch: FetchFn | null;

  constructor(deps: ShopifyProductCatalogDeps, options: { retry?: Partial<ThrottleRetryOptions> } = {}) {
    this.#deps = deps;
    this.#fetch = endpointFetch({ baseUrl: deps.baseUrl, fetch: deps.fetch });
    this.#retry = { ...DEFAULT_THROTTLE_RETRY, ...options.retry };
    this.#sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = deps.random ?? Math.random;
  }

  async products(tenant: Tenant, productIds: readonly string[]): Promise<Map<string, ProductFacts>> {
    // A product id is numeric; anything else names no product and is absent from the answer.
    const ids = [...new Set(productIds)].filter((id) => PRODUCT_ID.test(id));
    const found = new Map<string, ProductFacts>();
    if (ids.length === 0) return found;
    const token = await this.#deps.tokenFor(tenant);
    if (token === null || token === '') {
      throw new AppError(
        'feature_disabled',
        `no Shopify access token is stored for tenant ${tenant.id} (${tenant.shopDomain}): product lookups need one (consent-bridge tenant add --shopify-token …)`,
      );
    }
    const lookup: Lookup = { tenant, client: graphqlClient(this.#deps.shopify, tenant.shopDomain, token, this.#fetch) };
    // Batches run one after another: they share the shop's leaky bucket.
    for (let i = 0; i < ids.length; i += PRODUCT_BATCH_SIZE) {
      for (const facts of await this.#batch(lookup, ids.slice(i, i + PRODUCT_BATCH_SIZE))) found.set(facts.productId, facts);
    }
    return found;
  }

  async #batch(lookup: Lookup, ids: readonly string[]): Promise<ProductFacts[]> {
    const data = this.#parse(lookup, productsData, await this.#request(lookup, PRODUCTS_QUERY, { ids: ids.map(productGid) }));
    const requested = new Set(ids);
    const out: ProductFacts[] = [];
    for (const node of data.nodes) {
      // null: no product with this id (deleted, or never existed); another type cannot match a Product GID.
      if (node === null || record(node)?.__typename !== 'Product') continue;
      const product = this.#parse(lookup, productNode, node);
      if (!requested.has(product.id)) this.#malformed(lookup, [`product ${product.id} was not requested`]);
      const collections = product.collections.nodes.map((c) => ({ id: c.id, handle: c.handle }));
      if (product.collections.pageInfo.hasNextPage) {
        const rest = await this.#remainingCollections(lookup, product.id, product.collections.pageInfo.endCursor);
        if (rest === null) continue; // deleted between the two reads
        collections.push(...rest);
      }
      out.push(this.#facts(lookup, product, collections));
    }
    return out;
  }

  async #remainingCollections(lookup: Lookup, productId: string, cursor: string | null): Promise<Array<{ id: string; handle: string }> | null> {
    const out: Array<{ id: string; handle: string }> = [];
    let after = cursor;
    for (let page = 0; page < MAX_COLLECTION_PAGES; page++) {
      if (after === null) this.#malformed(lookup, ['collections.pageInfo: hasNextPage without endCursor']);
      const data = this.#parse(lookup, collectionsData, await this.#request(lookup, COLLECTIONS_QUERY, { id: productGid(productId), after }));
      if (data.product === null) return null;
      out.push(...data.product.collections.nodes.map((c) => ({ id: c.id, handle: c.handle })));
      if (!data.product.collections.pageInfo.hasNextPage) return out;
      after = data.product.collections.pageInfo.endCursor;
    }
    // Stopping early would drop collections, and with them group matches: refuse instead of guessing.
    throw new AppError('internal', `product ${productId} of ${lookup.tenant.shopDomain} is in more than ${MAX_COLLECTION_PAGES * COLLECTIONS_PAGE_SIZE} collections`);
  }

  #facts(lookup: Lookup, product: z.infer<typeof productNode>, collections: Array<{ id: string; handle: string }>): ProductFacts {
    let taxonomyCategory: ProductFacts['taxonomyCategory'] = null;
    if (product.category !== null) {
      const id = taxonomyCategoryIdOf(product.category.id);
      if (id === null) this.#malformed(lookup, [`product ${product.id}: category id is not a TaxonomyCategory id`]);
      taxonomyCategory = { id, fullName: product.category.fullName };
    }
    let updatedAt: string | null = null;
    if (product.updatedAt !== null) {
      updatedAt = toIsoTimestamp(product.updatedAt);
      if (updatedAt === null) this.#malformed(lookup, [`product ${product.id}: updatedAt is not a timestamp`]);
    }
    const text = (value: string | null) => (value === null || value.trim() === '' ? null : value);
    return { productId: product.id, productType: text(product.productType), vendor: text(product.vendor), tags: [...product.tags], taxonomyCategory, collections, updatedAt };
  }

  /** One GraphQL request with bounded retries of throttling; every other failure becomes an AppError. */
  async #request(lookup: Lookup, query: string, variables: Record<string, unknown>): Promise<unknown> {
    const { tenant } = lookup;
    for (let attempt = 1; ; attempt++) {
      try {
        // retries: 0: see the module comment (the library's retry waits Retry-After seconds as milliseconds).
        const response = await lookup.client.request(query, { variables, retries: 0 });
        this.#deps.onCall?.('shopify', { kind: 'ok', status: 200 });
        return response.data;
      } catch (err) {
        if (this.#deps.onCall) this.#deps.onCall('shopify', callOutcomeOf(shopifyCallError(err, 'product lookup')));
        const failure = classifyShopifyError(err);
        const delay = retryDelayMs(attempt, failure, this.#random(), this.#retry);
        if (delay === null) {
          const message = failure.retryable
            ? `Shopify kept answering "${failure.reason}" to product lookups for ${tenant.shopDomain} (${attempt} attempts)`
            : `Shopify product lookup for ${tenant.shopDomain} failed: ${failure.reason}`;
          throw new AppError('internal', message, { cause: err });
        }
        this.#deps.logger.warn({ tenantId: tenant.id, attempt, waitMs: delay, reason: failure.reason }, 'Shopify product lookup throttled; retrying');
        await this.#sleep(delay);
      }
    }
  }

  #parse<T extends z.ZodType>(lookup: Lookup, schema: T, value: unknown): z.infer<T> {
    const result = schema.safeParse(value);
    if (!result.success) this.#malformed(lookup, result.error.issues.slice(0, 10).map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`));
    return result.data;
  }

  #malformed(lookup: Lookup, details: string[]): never {
    throw new AppError('internal', `Shopify product lookup for ${lookup.tenant.shopDomain} returned an unexpected response`, { details });
  }
}
