/**
 * ProductCatalog contract (issue 4 §3; style.md §18–19): one suite for every implementation, with the Shopify
 * Admin GraphQL API faked at the HTTP boundary by nock (≥ 14 intercepts native fetch, shopify.md §4.7):
 *
 * - `ShopifyProductCatalog` (connectors/shopify/catalog.ts) alone;
 * - `CachedProductCatalog` (src/catalog/cached-catalog.ts) over it, on SQLite and PostgreSQL, with an empty cache
 *   (a fresh tenant per test), so every answer comes through the API as well.
 *
 * Then what only the cache does: answers from the database, refetches stale and old rows, keeps newer facts.
 */
// nock first: it patches globalThis.fetch on import, and the Shopify node adapter captures that fetch when loaded.
import nock from 'nock';
import { CachedProductCatalog } from '../../src/catalog/cached-catalog';
import type { ProductCatalog, ProductFacts } from '../../src/catalog/catalog';
import { defaultSettings } from '../../src/config/manifest';
import { AppError } from '../../src/domain/errors';
import { silentLogger } from '../../src/log/logger';
import type { Store } from '../../src/store/database';
import * as productRepo from '../../src/store/product.repository';
import { addTenant, type Tenant } from '../../src/tenants/tenants';
import { createShopifyAdminApi, SHOPIFY_API_VERSION } from '../../connectors/shopify/admin-api';
import { PRODUCT_BATCH_SIZE, ShopifyProductCatalog } from '../../connectors/shopify/catalog';
import { countingIds, fixedClock } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

const GRAPHQL_PATH = `/admin/api/${SHOPIFY_API_VERSION}/graphql.json`;
const TOKEN = 'shpat_contract_test_token';
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const COST = { requestedQueryCost: 752, actualQueryCost: 20, throttleStatus: { maximumAvailable: 2000, currentlyAvailable: 1980, restoreRate: 100 } };

const shopify = createShopifyAdminApi({ apiKey: 'contract-key', apiSecretKey: 'contract-secret', appUrl: 'https://bridge.example.com', logger: silentLogger });

interface GraphqlBody {
  query: string;
  variables: Record<string, unknown>;
}

/** A Product node as the Admin API returns it (shopify.md §3.4, shopify.dev Product / TaxonomyCategory). */
function productNode(id: string, over: Record<string, unknown> = {}) {
  return {
    __typename: 'Product',
    id: `gid://shopify/Product/${id}`,
    productType: 'Shoes',
    vendor: 'Acme',
    tags: ['running', 'Sale'],
    updatedAt: '2026-05-01T12:00:00+02:00',
    category: { id: 'gid://shopify/TaxonomyCategory/aa-8-1', fullName: 'Apparel & Accessories > Shoes > Athletic Shoes' },
    collections: { pageInfo: { hasNextPage: false, endCursor: null }, nodes: [{ id: 'gid://shopify/Collection/41', handle: 'running' }] },
    ...over,
  };
}

/** The facts `productNode(id)` stands for. */
function expectedFacts(id: string, over: Partial<ProductFacts> = {}): ProductFacts {
  return {
    productId: id,
    productType: 'Shoes',
    vendor: 'Acme',
    tags: ['running', 'Sale'],
    taxonomyCategory: { id: 'aa-8-1', fullName: 'Apparel & Accessories > Shoes > Athletic Shoes' },
    collections: [{ id: '41', handle: 'running' }],
    updatedAt: '2026-05-01T10:00:00.000Z',
    ...over,
  };
}

const requestedIds = (body: GraphqlBody): string[] => (body.variables.ids as string[]).map((gid) => gid.slice(gid.lastIndexOf('/') + 1));

/** Answers a products query: a node for each id in `known`, null for the others (what `nodes(ids:)` does). */
function nodesReply(known: ReadonlySet<string> | 'all', seen?: string[][]) {
  return (_uri: string, body: GraphqlBody) => {
    const ids = requestedIds(body);
    seen?.push(ids);
    return { data: { nodes: ids.map((id) => (known === 'all' || known.has(id) ? productNode(id) : null)) }, extensions: { cost: COST } };
  };
}

interface Subject {
  readonly catalog: ProductCatalog;
  readonly tenant: Tenant;
  /** Waits the catalog asked for between attempts (the injected sleep records them). */
  readonly sleeps: number[];
  /** nock scope for the tenant's shop. */
  api(): nock.Scope;
}

interface Implementation {
  readonly name: string;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  /** A catalog over a fresh tenant (empty cache) whose token is `token`. */
  make(token: string | null): Promise<Subject>;
}

let shopCounter = 0;
const nextShop = () => `contract-shop-${++shopCounter}.myshopify.com`;

function shopifyCatalog(token: string | null, sleeps: number[]): ShopifyProductCatalog {
  return new ShopifyProductCatalog({
    shopify,
    tokenFor: async () => token,
    logger: silentLogger,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
  });
}

function inMemoryTenant(shopDomain: string): Tenant {
  return {
    id: `tenant-${shopDomain}`,
    shopDomain,
    hubspotPortalId: '1',
    status: 'active',
    settings: defaultSettings(),
    hasShopifyCredentials: true,
    hasHubspotCredentials: false,
    createdAt: '2026-06-01T12:00:00.000Z',
    updatedAt: '2026-06-01T12:00:00.000Z',
  };
}

const NOW = '2026-06-01T12:00:00.000Z';

function cachedImplementation(dialect: 'sqlite' | 'postgres'): Implementation & { setup(): Promise<void>; teardown(): Promise<void>; store(): Store } {
  let db: TestDatabase;
  let store: Store;
  let portal = 1000;
  return {
    name: `CachedProductCatalog over ShopifyProductCatalog on ${dialect}`,
    store: () => store,
    async setup() {
      ({ db, store } = await migratedStore(dialect));
    },
    async teardown() {
      await store.close();
      await db.drop();
    },
    async make(token) {
      const sleeps: number[] = [];
      const clock = fixedClock(NOW);
      const tenant = await addTenant(store, { clock, ids: countingIds(`t${++portal}`), secretBox: null }, { shopDomain: nextShop(), hubspotPortalId: String(portal) });
      const catalog = new CachedProductCatalog({ store, inner: shopifyCatalog(token, sleeps), clock });
      return { catalog, tenant, sleeps, api: () => nock(`https://${tenant.shopDomain}`) };
    },
  };
}

const implementations: Implementation[] = [
  {
    name: 'ShopifyProductCatalog',
    async make(token) {
      const sleeps: number[] = [];
      const tenant = inMemoryTenant(nextShop());
      return { catalog: shopifyCatalog(token, sleeps), tenant, sleeps, api: () => nock(`https://${tenant.shopDomain}`) };
    },
  },
  ...testDialects().map(cachedImplementation),
];

beforeAll(() => {
  nock.disableNetConnect();
});
afterEach(() => {
  nock.cleanAll();
});
afterAll(() => {
  nock.enableNetConnect();
});

describe.each(implementations)('$name', (impl) => {
  beforeAll(async () => {
    await impl.setup?.();
  });
  afterAll(async () => {
    await impl.teardown?.();
  });

  it('returns the facts of products found, with the token, API version and product GIDs on the request', async () => {
    const s = await impl.make(TOKEN);
    let seen: { token: string | undefined; body: GraphqlBody } | undefined;
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(
        200,
        function (this: nock.ReplyFnContext, _uri, body) {
          seen = { token: this.req.headers['x-shopify-access-token'] as string | undefined, body: body as GraphqlBody };
          return {
            data: {
              nodes: [
                productNode('8800900100200'),
                productNode('8800900100201', {
                  productType: '',
                  vendor: '  ',
                  tags: [],
                  category: null,
                  collections: { pageInfo: { hasNextPage: false, endCursor: null }, nodes: [] },
                }),
              ],
            },
            extensions: { cost: COST },
          };
        },
        JSON_HEADERS,
      );
    const found = await s.catalog.products(s.tenant, ['8800900100200', '8800900100201']);
    expect(scope.isDone()).toBe(true);
    expect(seen?.token).toBe(TOKEN);
    expect(seen?.body.variables).toEqual({ ids: ['gid://shopify/Product/8800900100200', 'gid://shopify/Product/8800900100201'] });
    expect(seen?.body.query).toMatch(/nodes\(ids: \$ids\)/);
    expect(seen?.body.query).toMatch(/category \{ id fullName \}/);
    expect([...found.keys()].sort()).toEqual(['8800900100200', '8800900100201']);
    expect(found.get('8800900100200')).toEqual(expectedFacts('8800900100200'));
    // Empty text is "none"; no category is null (unmapped), not an error.
    expect(found.get('8800900100201')).toEqual(expectedFacts('8800900100201', { productType: null, vendor: null, tags: [], taxonomyCategory: null, collections: [] }));
  });

  it('leaves products that do not exist out of the map', async () => {
    const s = await impl.make(TOKEN);
    const scope = s.api().post(GRAPHQL_PATH).reply(200, nodesReply(new Set(['101'])), JSON_HEADERS);
    const found = await s.catalog.products(s.tenant, ['101', '102']);
    expect(scope.isDone()).toBe(true);
    expect([...found.keys()]).toEqual(['101']);
  });

  it(`asks for at most ${PRODUCT_BATCH_SIZE} products per request, each once`, async () => {
    const s = await impl.make(TOKEN);
    const ids = Array.from({ length: 120 }, (_, i) => String(5000 + i));
    const seen: string[][] = [];
    const scope = s.api().post(GRAPHQL_PATH).times(3).reply(200, nodesReply('all', seen), JSON_HEADERS);
    const found = await s.catalog.products(s.tenant, [...ids, ...ids.slice(0, 10)]);
    expect(scope.isDone()).toBe(true);
    expect(seen.map((batch) => batch.length)).toEqual([50, 50, 20]);
    expect(seen.flat().sort()).toEqual([...ids].sort());
    expect(found.size).toBe(120);
  });

  it('makes no request for no ids, or for ids that are not product ids', async () => {
    const s = await impl.make(TOKEN);
    expect((await s.catalog.products(s.tenant, [])).size).toBe(0);
    expect((await s.catalog.products(s.tenant, ['abc', 'gid://shopify/Product/1', '', '-5'])).size).toBe(0);
    expect(nock.pendingMocks()).toEqual([]);
  });

  it('waits out THROTTLED (HTTP 200) and 429, then succeeds', async () => {
    const s = await impl.make(TOKEN);
    const throttled = {
      errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED', documentation: 'https://shopify.dev/api/usage/rate-limits' } }],
      extensions: { cost: { requestedQueryCost: 752, actualQueryCost: null, throttleStatus: { maximumAvailable: 1000, currentlyAvailable: 100, restoreRate: 50 } } },
    };
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, throttled, JSON_HEADERS)
      .post(GRAPHQL_PATH)
      .reply(429, { errors: 'Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service.' }, { ...JSON_HEADERS, 'Retry-After': '2.0' })
      .post(GRAPHQL_PATH)
      .reply(200, nodesReply('all'), JSON_HEADERS);
    const found = await s.catalog.products(s.tenant, ['77']);
    expect(scope.isDone()).toBe(true);
    expect(found.get('77')).toEqual(expectedFacts('77'));
    // (752 − 100) / 50 points per second = 13.04 s; Retry-After is in seconds.
    expect(s.sleeps).toEqual([13_040, 2_000]);
  });

  it('gives up after a bounded number of throttled attempts with an error, not a crash', async () => {
    const s = await impl.make(TOKEN);
    const scope = s.api().post(GRAPHQL_PATH).times(5).reply(429, { errors: 'Throttled' }, JSON_HEADERS);
    const error = await s.catalog.products(s.tenant, ['77']).catch((e: unknown) => e);
    expect(scope.isDone()).toBe(true);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).message).toMatch(/throttled.*5 attempts/);
    // No Retry-After: 1 s, 2 s, 4 s, 8 s, each × 0.75 (jitter 0.5).
    expect(s.sleeps).toEqual([750, 1500, 3000, 6000]);
  });

  it('retries a 503 with backoff', async () => {
    const s = await impl.make(TOKEN);
    const scope = s.api().post(GRAPHQL_PATH).reply(503, 'unavailable').post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    expect((await s.catalog.products(s.tenant, ['78'])).get('78')).toEqual(expectedFacts('78'));
    expect(scope.isDone()).toBe(true);
    expect(s.sleeps).toEqual([750]);
  });

  it('does not retry other GraphQL errors (ACCESS_DENIED) or HTTP 401', async () => {
    const s = await impl.make(TOKEN);
    s.api()
      .post(GRAPHQL_PATH)
      .reply(200, { errors: [{ message: 'Access denied for nodes field.', extensions: { code: 'ACCESS_DENIED' } }] }, JSON_HEADERS);
    await expect(s.catalog.products(s.tenant, ['79'])).rejects.toThrow(/GraphQL error ACCESS_DENIED/);
    s.api().post(GRAPHQL_PATH).reply(401, { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' }, JSON_HEADERS);
    await expect(s.catalog.products(s.tenant, ['79'])).rejects.toThrow(/HTTP 401/);
    expect(s.sleeps).toEqual([]);
    expect(nock.pendingMocks()).toEqual([]);
  });

  it.each<[string, number, unknown, Record<string, string>]>([
    ['nodes is not a list', 200, { data: { nodes: { id: 1 } } }, JSON_HEADERS],
    ['no data and no errors', 200, { extensions: { cost: COST } }, JSON_HEADERS],
    ['a product without tags', 200, { data: { nodes: [{ ...productNode('80'), tags: undefined }] } }, JSON_HEADERS],
    ['a product id that is not a Product GID', 200, { data: { nodes: [{ ...productNode('80'), id: '80' }] } }, JSON_HEADERS],
    ['a product that was not asked for', 200, { data: { nodes: [productNode('81')] } }, JSON_HEADERS],
    ['a category id that is not a taxonomy id', 200, { data: { nodes: [productNode('80', { category: { id: 'gid://shopify/TaxonomyCategory/???', fullName: 'x' } })] } }, JSON_HEADERS],
    ['an updatedAt that is not a time', 200, { data: { nodes: [productNode('80', { updatedAt: 'yesterday' })] } }, JSON_HEADERS],
    ['a collection without a handle', 200, { data: { nodes: [productNode('80', { collections: { pageInfo: { hasNextPage: false, endCursor: null }, nodes: [{ id: 'gid://shopify/Collection/1' }] } })] } }, JSON_HEADERS],
    ['HTML instead of JSON', 200, '<html>maintenance</html>', { 'Content-Type': 'text/html' }],
    ['truncated JSON', 200, '{"data": {"nodes": [', JSON_HEADERS],
  ])('a malformed response (%s) is an AppError, not a crash', async (_name, status, body, headers) => {
    const s = await impl.make(TOKEN);
    const scope = s.api().post(GRAPHQL_PATH).reply(status, typeof body === 'string' ? body : JSON.stringify(body), headers);
    const error = await s.catalog.products(s.tenant, ['80']).catch((e: unknown) => e);
    expect(scope.isDone()).toBe(true);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('internal');
    expect(s.sleeps).toEqual([]);
  });

  it('reads the remaining collections of a product in more than the first page', async () => {
    const s = await impl.make(TOKEN);
    const firstPage = { pageInfo: { hasNextPage: true, endCursor: 'c1' }, nodes: [{ id: 'gid://shopify/Collection/1', handle: 'one' }] };
    const bodies: GraphqlBody[] = [];
    const scope = s
      .api()
      .post(GRAPHQL_PATH)
      .reply(200, { data: { nodes: [productNode('90', { collections: firstPage })] } }, JSON_HEADERS)
      .post(GRAPHQL_PATH, (body: GraphqlBody) => bodies.push(body) > 0)
      .reply(200, { data: { product: { collections: { pageInfo: { hasNextPage: true, endCursor: 'c2' }, nodes: [{ id: 'gid://shopify/Collection/2', handle: 'two' }] } } } }, JSON_HEADERS)
      .post(GRAPHQL_PATH, (body: GraphqlBody) => bodies.push(body) > 0)
      .reply(200, { data: { product: { collections: { pageInfo: { hasNextPage: false, endCursor: null }, nodes: [{ id: 'gid://shopify/Collection/3', handle: 'three' }] } } } }, JSON_HEADERS);
    const found = await s.catalog.products(s.tenant, ['90']);
    expect(scope.isDone()).toBe(true);
    expect(bodies.map((b) => b.variables)).toEqual([
      { id: 'gid://shopify/Product/90', after: 'c1' },
      { id: 'gid://shopify/Product/90', after: 'c2' },
    ]);
    expect(found.get('90')?.collections).toEqual([
      { id: '1', handle: 'one' },
      { id: '2', handle: 'two' },
      { id: '3', handle: 'three' },
    ]);
  });

  it('refuses with a clear AppError when the tenant has no Shopify token, without calling Shopify', async () => {
    const s = await impl.make(null);
    const error = await s.catalog.products(s.tenant, ['91']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('feature_disabled');
    expect((error as AppError).message).toMatch(/no Shopify access token/);
    expect((error as AppError).message).toContain(s.tenant.shopDomain);
  });
});

describe.each(testDialects())('CachedProductCatalog on %s', (dialect) => {
  const impl = cachedImplementation(dialect);
  let store: Store;
  beforeAll(async () => {
    await impl.setup();
    store = impl.store();
  });
  afterAll(async () => {
    await impl.teardown();
  });

  const row = (tenant: Tenant, productId: string) =>
    store.db.selectFrom('product').selectAll().where('tenant_id', '=', tenant.id).where('product_id', '=', productId).executeTakeFirstOrThrow();

  it('stores what it fetched and answers the next lookup from the database', async () => {
    const s = await impl.make(TOKEN);
    const scope = s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    const first = await s.catalog.products(s.tenant, ['201', '202']);
    expect(scope.isDone()).toBe(true);
    expect(await row(s.tenant, '201')).toMatchObject({
      product_type: 'Shoes',
      vendor: 'Acme',
      tags: '["running","Sale"]',
      taxonomy_category_id: 'aa-8-1',
      collections: '[{"id":"41","handle":"running"}]',
      source_updated_at: '2026-05-01T10:00:00.000Z',
      fetched_at: NOW,
      stale: 0,
    });
    // No interceptor is left: a request now would fail (net connect is disabled).
    const second = await s.catalog.products(s.tenant, ['202', '201']);
    expect(second).toEqual(first);
  });

  it('asks Shopify only for the products it does not have', async () => {
    const s = await impl.make(TOKEN);
    s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    await s.catalog.products(s.tenant, ['211']);
    const seen: string[][] = [];
    const scope = s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all', seen), JSON_HEADERS);
    const found = await s.catalog.products(s.tenant, ['211', '212', '213']);
    expect(scope.isDone()).toBe(true);
    expect(seen).toEqual([['212', '213']]);
    expect(found.size).toBe(3);
  });

  it('does not cache a product that was not found: the next lookup asks again', async () => {
    const s = await impl.make(TOKEN);
    const scope = s.api().post(GRAPHQL_PATH).times(2).reply(200, nodesReply(new Set()), JSON_HEADERS);
    expect((await s.catalog.products(s.tenant, ['221'])).size).toBe(0);
    expect((await s.catalog.products(s.tenant, ['221'])).size).toBe(0);
    expect(scope.isDone()).toBe(true);
    expect(await store.db.selectFrom('product').select('product_id').where('tenant_id', '=', s.tenant.id).execute()).toEqual([]);
  });

  it('refetches a row a webhook marked stale, and the row becomes fresh', async () => {
    const s = await impl.make(TOKEN);
    await productRepo.upsertFromWebhook(store.db, {
      tenant_id: s.tenant.id,
      product_id: '231',
      product_type: 'Boots',
      vendor: 'Acme',
      tags: '["winter"]',
      source_updated_at: '2026-04-01T00:00:00.000Z',
      updated_at: NOW,
    });
    const scope = s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    expect((await s.catalog.products(s.tenant, ['231'])).get('231')).toEqual(expectedFacts('231'));
    expect(scope.isDone()).toBe(true);
    expect(await row(s.tenant, '231')).toMatchObject({ product_type: 'Shoes', taxonomy_category_id: 'aa-8-1', stale: 0, fetched_at: NOW });
  });

  it('keeps newer webhook facts when a lookup returns older ones, and stays stale', async () => {
    const s = await impl.make(TOKEN);
    // The webhook says the product changed at 2026-05-02; the API (a lagging read) still answers 2026-05-01.
    await productRepo.upsertFromWebhook(store.db, {
      tenant_id: s.tenant.id,
      product_id: '241',
      product_type: 'Boots',
      vendor: 'Acme',
      tags: '[]',
      source_updated_at: '2026-05-02T00:00:00.000Z',
      updated_at: NOW,
    });
    s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    // This lookup answers what Shopify said …
    expect((await s.catalog.products(s.tenant, ['241'])).get('241')?.productType).toBe('Shoes');
    // … but the row keeps the newer facts and is refetched next time.
    expect(await row(s.tenant, '241')).toMatchObject({ product_type: 'Boots', source_updated_at: '2026-05-02T00:00:00.000Z', stale: 1, fetched_at: null });
    const scope = s.api().post(GRAPHQL_PATH).reply(200, { data: { nodes: [productNode('241', { updatedAt: '2026-05-02T00:00:00Z', productType: 'Boots' })] } }, JSON_HEADERS);
    expect((await s.catalog.products(s.tenant, ['241'])).get('241')?.productType).toBe('Boots');
    expect(scope.isDone()).toBe(true);
    expect(await row(s.tenant, '241')).toMatchObject({ product_type: 'Boots', stale: 0 });
  });

  it('refetches facts older than maxAgeMs', async () => {
    const s = await impl.make(TOKEN);
    const clock = fixedClock(NOW);
    const catalog = new CachedProductCatalog({ store, inner: shopifyCatalog(TOKEN, []), clock }, { maxAgeMs: 60_000 });
    const scope = s.api().post(GRAPHQL_PATH).times(2).reply(200, nodesReply('all'), JSON_HEADERS);
    await catalog.products(s.tenant, ['251']);
    clock.advance(59_999);
    await catalog.products(s.tenant, ['251']); // fresh: from the database
    expect(scope.pendingMocks()).toHaveLength(1);
    clock.advance(1);
    await catalog.products(s.tenant, ['251']);
    expect(scope.isDone()).toBe(true);
    expect(await row(s.tenant, '251')).toMatchObject({ fetched_at: '2026-06-01T12:01:00.000Z', stale: 0 });
  });

  it('refetches a row it cannot read instead of failing', async () => {
    const s = await impl.make(TOKEN);
    s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    await s.catalog.products(s.tenant, ['261']);
    await store.db.updateTable('product').set({ tags: '{not json' }).where('tenant_id', '=', s.tenant.id).execute();
    const scope = s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    expect((await s.catalog.products(s.tenant, ['261'])).get('261')).toEqual(expectedFacts('261'));
    expect(scope.isDone()).toBe(true);
  });

  it('keeps tenants apart', async () => {
    const a = await impl.make(TOKEN);
    const b = await impl.make(TOKEN);
    a.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
    await a.catalog.products(a.tenant, ['271']);
    const scope = b.api().post(GRAPHQL_PATH).reply(200, nodesReply(new Set()), JSON_HEADERS);
    expect((await b.catalog.products(b.tenant, ['271'])).size).toBe(0);
    expect(scope.isDone()).toBe(true);
  });

  describe('product.repository: newest facts win', () => {
    const webhookRow = (tenantId: string, productId: string, at: string, productType: string) => ({
      tenant_id: tenantId,
      product_id: productId,
      product_type: productType,
      vendor: null,
      tags: '[]',
      source_updated_at: at,
      updated_at: NOW,
    });

    it('a webhook never overwrites newer facts; an equal time is the same version', async () => {
      const s = await impl.make(TOKEN);
      expect(await productRepo.upsertFromWebhook(store.db, webhookRow(s.tenant.id, '281', '2026-05-02T00:00:00.000Z', 'new'))).toBe(true);
      expect(await productRepo.upsertFromWebhook(store.db, webhookRow(s.tenant.id, '281', '2026-05-01T00:00:00.000Z', 'old'))).toBe(false);
      expect(await productRepo.upsertFromWebhook(store.db, webhookRow(s.tenant.id, '281', '2026-05-02T00:00:00.000Z', 'same'))).toBe(false);
      expect(await row(s.tenant, '281')).toMatchObject({ product_type: 'new', stale: 1 });
      expect(await productRepo.upsertFromWebhook(store.db, webhookRow(s.tenant.id, '281', '2026-05-03T00:00:00.000Z', 'newer'))).toBe(true);
      expect(await row(s.tenant, '281')).toMatchObject({ product_type: 'newer', stale: 1 });
    });

    it('a newer webhook marks a fetched row stale and keeps its taxonomy and collections until the refetch', async () => {
      const s = await impl.make(TOKEN);
      s.api().post(GRAPHQL_PATH).reply(200, nodesReply('all'), JSON_HEADERS);
      await s.catalog.products(s.tenant, ['291']);
      expect(await productRepo.upsertFromWebhook(store.db, webhookRow(s.tenant.id, '291', '2026-05-01T10:00:00.000Z', 'same version'))).toBe(false);
      expect(await row(s.tenant, '291')).toMatchObject({ stale: 0, product_type: 'Shoes' });
      expect(await productRepo.upsertFromWebhook(store.db, webhookRow(s.tenant.id, '291', '2026-05-01T10:00:00.001Z', 'Boots'))).toBe(true);
      expect(await row(s.tenant, '291')).toMatchObject({ stale: 1, product_type: 'Boots', taxonomy_category_id: 'aa-8-1', fetched_at: NOW });
    });
  });
});
