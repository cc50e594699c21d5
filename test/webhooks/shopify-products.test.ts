/**
 * Shopify products/create and products/update (issue 4 §3) end to end over supertest, on SQLite and PostgreSQL:
 * a signed delivery is accepted, and the worker records the product's REST facts in the `product` table, marked
 * stale so the next catalog lookup refetches taxonomy and collections; an older delivery never overwrites newer
 * facts; a payload that does not match its schema is dead-lettered.
 */
import request from 'supertest';
import type { Store } from '../../src/store/database';
import * as productRepo from '../../src/store/product.repository';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';
import { createHarness, fixture, shopifyHeaders, type Harness } from '../helpers/webhooks';

const CREATE = fixture('shopify/products-create.json');
const UPDATE = fixture('shopify/products-update.json');
const PRODUCT_ID = '8800900100200';

describe.each(testDialects())('Shopify product webhooks on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let h: Harness;

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    h = await createHarness(store);
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const post = (body: string, topic: string, webhookId?: string) =>
    request(h.app.callback())
      .post('/webhooks/shopify')
      .set(shopifyHeaders(body, { topic, ...(webhookId ? { webhookId } : {}) }))
      .send(body);
  const productRow = (productId = PRODUCT_ID) =>
    store.db.selectFrom('product').selectAll().where('tenant_id', '=', h.tenantA.id).where('product_id', '=', productId).executeTakeFirst();
  const outcome = (webhookId: string) => store.db.selectFrom('inbox').select(['status', 'outcome', 'last_error']).where('delivery_key', '=', webhookId).executeTakeFirstOrThrow();
  const eventCount = async () => Number((await store.db.selectFrom('consent_event').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  it('products/create: accepted, then recorded by the worker as a stale row with the REST facts', async () => {
    const events = await eventCount();
    const res = await post(CREATE, 'products/create', 'product-create-1');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'accepted' });
    expect(await productRow()).toBeUndefined(); // the request path only stores the delivery
    expect(await h.worker.drain()).toBe(1);
    expect(await productRow()).toEqual({
      tenant_id: h.tenantA.id,
      product_id: PRODUCT_ID,
      product_type: 'Shoes',
      vendor: 'Acme',
      tags: '["running","Sale"]',
      taxonomy_category_id: null,
      taxonomy_category_name: null,
      collections: null,
      source_updated_at: '2026-05-01T10:00:00.000Z',
      fetched_at: null,
      stale: 1,
      updated_at: h.clock.now().toISOString(),
    });
    expect(await outcome('product-create-1')).toMatchObject({ status: 'done', outcome: `product ${PRODUCT_ID} recorded (stale)` });
    expect(await eventCount()).toBe(events); // a product is not a consent event
  });

  it('a repeated delivery is a duplicate', async () => {
    const res = await post(CREATE, 'products/create', 'product-create-1');
    expect(res.body).toEqual({ status: 'duplicate' });
  });

  it('products/update with a newer updated_at replaces the facts; an older retry afterwards changes nothing', async () => {
    expect((await post(UPDATE, 'products/update', 'product-update-1')).body).toEqual({ status: 'accepted' });
    await h.worker.drain();
    expect(await productRow()).toMatchObject({
      product_type: 'Running Shoes',
      vendor: 'Acme Outdoor',
      tags: '["running","Sale","trail"]',
      source_updated_at: '2026-05-03T07:00:00.000Z',
      stale: 1,
    });
    // A retry of the older create (Shopify retries with the original payload, shopify.md §1.3) arrives late.
    expect((await post(CREATE, 'products/create', 'product-create-retry')).body).toEqual({ status: 'accepted' });
    await h.worker.drain();
    expect(await productRow()).toMatchObject({ product_type: 'Running Shoes', source_updated_at: '2026-05-03T07:00:00.000Z' });
    expect(await outcome('product-create-retry')).toMatchObject({ status: 'done', outcome: `product ${PRODUCT_ID}: newer facts kept` });
  });

  it('a newer update marks a row fetched through GraphQL stale, so the next lookup refetches it', async () => {
    const now = h.clock.now().toISOString();
    await productRepo.upsertFetched(store.db, {
      tenant_id: h.tenantA.id,
      product_id: '8800900100999',
      product_type: 'Shoes',
      vendor: 'Acme',
      tags: '[]',
      taxonomy_category_id: 'aa-8-1',
      taxonomy_category_name: 'Apparel & Accessories > Shoes > Athletic Shoes',
      collections: '[{"id":"41","handle":"running"}]',
      source_updated_at: '2026-05-01T10:00:00.000Z',
      fetched_at: now,
      stale: 0,
      updated_at: now,
    });
    const body = JSON.stringify({ ...JSON.parse(UPDATE), id: 8800900100999, tags: '' });
    expect((await post(body, 'products/update')).body).toEqual({ status: 'accepted' });
    await h.worker.drain();
    expect(await productRow('8800900100999')).toMatchObject({ stale: 1, product_type: 'Running Shoes', tags: '[]', taxonomy_category_id: 'aa-8-1', fetched_at: now });
  });

  it('a payload that does not match the product schema is dead-lettered at once', async () => {
    const body = JSON.stringify({ id: 8800900100300, product_type: 'Shoes', tags: 'a' }); // no updated_at
    expect((await post(body, 'products/update', 'product-bad-1')).body).toEqual({ status: 'accepted' });
    await h.worker.drain();
    const row = await outcome('product-bad-1');
    expect(row.status).toBe('dead');
    expect(row.last_error).toMatch(/products\/update payload does not match its schema.*updated_at/);
    expect(await productRow('8800900100300')).toBeUndefined();
  });
});
