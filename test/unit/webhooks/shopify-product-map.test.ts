/**
 * Shopify products/create and products/update → the `product` effect (README "Mapping"): REST shape, tags as one
 * comma-separated string, empty text as none, updated_at normalised; malformed payloads are permanent failures.
 */
import { PermanentDeliveryError, type InboundDelivery } from '../../../src/domain/inbound';
import { isNormalTopic } from '../../../webhooks/shopify/topics';
import { mapShopifyDelivery, splitProductTags } from '../../../webhooks/shopify/map';

const delivery = (topic: string, payload: unknown): InboundDelivery => ({
  platform: 'shopify',
  topic,
  deliveryKey: 'wh-p',
  payload,
  meta: {},
  receivedAt: '2026-06-01T12:00:00.000Z',
});

const product = (extra: Record<string, unknown> = {}) => ({
  id: 8800900100200,
  title: 'Trail Runner',
  vendor: 'Acme',
  product_type: 'Shoes',
  tags: 'running, Sale',
  updated_at: '2026-05-01T12:00:00+02:00',
  ...extra,
});

describe('products/create, products/update', () => {
  it.each(['products/create', 'products/update'])('%s is a handled topic and maps to one product effect', (topic) => {
    expect(isNormalTopic(topic)).toBe(true);
    expect(mapShopifyDelivery(delivery(topic, product()))).toEqual([
      {
        kind: 'product',
        product: { productId: '8800900100200', productType: 'Shoes', vendor: 'Acme', tags: ['running', 'Sale'], updatedAt: '2026-05-01T10:00:00.000Z' },
      },
    ]);
  });

  it('takes a string id, empty or missing text as none, and an array of tags', () => {
    const [effect] = mapShopifyDelivery(delivery('products/update', product({ id: '8800900100201', vendor: '', product_type: null, tags: [' a ', 'b', 'a'] })));
    expect(effect).toEqual({
      kind: 'product',
      product: { productId: '8800900100201', productType: null, vendor: null, tags: ['a', 'b'], updatedAt: '2026-05-01T10:00:00.000Z' },
    });
    const [bare] = mapShopifyDelivery(delivery('products/update', { id: 5, updated_at: '2026-05-01T10:00:00Z' }));
    expect(bare).toEqual({ kind: 'product', product: { productId: '5', productType: null, vendor: null, tags: [], updatedAt: '2026-05-01T10:00:00.000Z' } });
  });

  it('accepts and ignores a category object (its presence and shape in REST payloads are UNVERIFIED)', () => {
    const withCategory = product({ category: { admin_graphql_api_id: 'gid://shopify/TaxonomyCategory/aa-8-1', name: 'Athletic Shoes' } });
    expect(mapShopifyDelivery(delivery('products/update', withCategory))).toEqual(mapShopifyDelivery(delivery('products/update', product())));
  });

  it.each<[string, Record<string, unknown>]>([
    ['no updated_at', { updated_at: undefined }],
    ['updated_at not a time', { updated_at: 'yesterday' }],
    ['no id', { id: undefined }],
    ['a negative id', { id: -1 }],
    ['tags of the wrong type', { tags: 5 }],
  ])('%s → PermanentDeliveryError', (_name, extra) => {
    expect(() => mapShopifyDelivery(delivery('products/update', product(extra)))).toThrow(PermanentDeliveryError);
  });
});

describe('splitProductTags', () => {
  it.each<[string | string[] | null | undefined, string[]]>([
    ['running, Sale', ['running', 'Sale']],
    ['a,b , ,c,', ['a', 'b', 'c']],
    ['', []],
    ['  ', []],
    [null, []],
    [undefined, []],
    [['x', ' x ', 'y'], ['x', 'y']],
    // Case is kept (grouping compares case-insensitively); the same tag twice is kept once.
    ['Sale, sale, Sale', ['Sale', 'sale']],
  ])('%j → %j', (input, expected) => {
    expect(splitProductTags(input)).toEqual(expected);
  });
});
