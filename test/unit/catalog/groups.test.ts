/**
 * categoryGroupsOf (issue 4 §3, law.md R4): configured groups by taxonomy branch, product type, tag or collection
 * handle; else the default taxonomy branch at `defaultTaxonomyDepth`; else none (unmapped = not similar).
 */
import fc from 'fast-check';
import { categoryGroupsOf, isTaxonomyCategoryId, taxonomyCategoryIdOf, type ProductFacts } from '../../../src/catalog/catalog';
import type { TenantSettings } from '../../../src/config/manifest';

type Group = TenantSettings['categoryGroups'][number];
type Settings = Pick<TenantSettings, 'categoryGroups' | 'defaultTaxonomyDepth'>;

const group = (id: string, match: Partial<Omit<Group, 'id' | 'label'>> = {}): Group => ({
  id,
  label: id,
  taxonomyBranches: [],
  productTypes: [],
  tags: [],
  collections: [],
  ...match,
});

const product = (facts: Partial<ProductFacts> = {}): ProductFacts => ({
  productId: '1',
  productType: null,
  vendor: null,
  tags: [],
  taxonomyCategory: null,
  collections: [],
  updatedAt: null,
  ...facts,
});

const category = (id: string) => ({ id, fullName: `name of ${id}` });
const settings = (categoryGroups: Group[], defaultTaxonomyDepth = 2): Settings => ({ categoryGroups, defaultTaxonomyDepth });

describe('taxonomy branches', () => {
  const shoes = settings([group('shoes', { taxonomyBranches: ['aa-8'] })]);

  it.each([
    ['aa-8', ['shoes']],
    ['aa-8-1', ['shoes']],
    ['aa-8-1-4-2', ['shoes']],
  ])('branch aa-8 contains %s', (id, groups) => {
    expect(categoryGroupsOf(product({ taxonomyCategory: category(id) }), shoes)).toEqual(groups);
  });

  it.each([
    // Not in the branch: the default group (depth 2) instead.
    ['aa-80', ['aa-80']],
    ['aa-80-1', ['aa-80']],
    ['aa-7', ['aa-7']],
    ['aa', ['aa']],
    ['ab-8-1', ['ab-8']],
  ])('branch aa-8 does not contain %s (default group instead)', (id, groups) => {
    expect(categoryGroupsOf(product({ taxonomyCategory: category(id) }), shoes)).toEqual(groups);
  });

  it('a branch is a whole level: aa-1 contains aa-1-2-3 but not aa-10', () => {
    const s = settings([group('g', { taxonomyBranches: ['aa-1'] })]);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-1') }), s)).toEqual(['g']);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-1-2-3') }), s)).toEqual(['g']);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-10') }), s)).toEqual(['aa-10']);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-10-2') }), s)).toEqual(['aa-10']);
  });

  it('a deeper branch does not contain its parent', () => {
    const s = settings([group('g', { taxonomyBranches: ['aa-1-2'] })]);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-1') }), s)).toEqual(['aa-1']);
  });

  it('a vertical (depth 1) branch contains everything under it', () => {
    const s = settings([group('apparel', { taxonomyBranches: ['aa'] })]);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-5-3') }), s)).toEqual(['apparel']);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('ap-5-3') }), s)).toEqual(['ap-5']);
  });

  it('accepts configured branches written with spaces, upper case or as a full GID', () => {
    const s = settings([group('a', { taxonomyBranches: [' AA-1 '] }), group('b', { taxonomyBranches: ['gid://shopify/TaxonomyCategory/aa-1-2'] })]);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-1-2-3') }), s)).toEqual(['a', 'b']);
  });

  it('accepts the product category as a GID too', () => {
    const s = settings([group('g', { taxonomyBranches: ['aa-1'] })]);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('gid://shopify/TaxonomyCategory/aa-1-4') }), s)).toEqual(['g']);
  });

  it('ignores an empty configured branch (it would otherwise contain everything)', () => {
    const s = settings([group('g', { taxonomyBranches: ['', '  '] })]);
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-1-4') }), s)).toEqual(['aa-1']);
  });
});

describe('product types, tags and collections', () => {
  const s = settings([
    group('footwear', { productTypes: ['Shoes'] }),
    group('coffee', { tags: ['Espresso', 'beans'] }),
    group('summer', { collections: ['summer-sale'] }),
  ]);

  it.each<[string, Partial<ProductFacts>, string[]]>([
    ['product type, exact', { productType: 'Shoes' }, ['footwear']],
    ['product type, other case and spaces', { productType: '  sHOES ' }, ['footwear']],
    ['product type, different', { productType: 'Shoe' }, []],
    ['tag, exact', { tags: ['Espresso'] }, ['coffee']],
    ['tag, other case and spaces', { tags: ['other', ' ESPRESSO'] }, ['coffee']],
    ['tag, second configured', { tags: ['beans'] }, ['coffee']],
    ['tag, substring is not a match', { tags: ['espresso-machine'] }, []],
    ['collection handle', { collections: [{ id: '9', handle: 'summer-sale' }] }, ['summer']],
    ['collection handle, other case', { collections: [{ id: '9', handle: 'Summer-Sale ' }] }, ['summer']],
    ['collection id is not a handle', { collections: [{ id: 'summer-sale', handle: 'winter' }] }, []],
    ['several groups, in configuration order', { tags: ['beans'], productType: 'shoes', collections: [{ id: '1', handle: 'summer-sale' }] }, ['footwear', 'coffee', 'summer']],
    ['nothing matches and no category: unmapped', { productType: 'Tea', tags: ['green'], vendor: 'Shoes' }, []],
  ])('%s', (_name, facts, groups) => {
    expect(categoryGroupsOf(product(facts), s)).toEqual(groups);
  });

  it('an empty product type or tag never matches an empty configured one', () => {
    const blank = settings([group('blank', { productTypes: [' '], tags: [''], collections: [''] })]);
    expect(categoryGroupsOf(product({ productType: '', tags: [' '], collections: [{ id: '1', handle: '' }] }), blank)).toEqual([]);
  });

  it('the vendor is not a grouping criterion', () => {
    expect(categoryGroupsOf(product({ vendor: 'Shoes' }), s)).toEqual([]);
  });

  it('lists a group once even when configured twice or matched twice', () => {
    const twice = settings([group('g', { tags: ['a'], productTypes: ['t'] }), group('g', { tags: ['a'] })]);
    expect(categoryGroupsOf(product({ tags: ['a'], productType: 't' }), twice)).toEqual(['g']);
  });
});

describe('default group (no configured group matches)', () => {
  it.each([
    [1, 'aa-1-2-3', 'aa'],
    [2, 'aa-1-2-3', 'aa-1'],
    [3, 'aa-1-2-3', 'aa-1-2'],
    [4, 'aa-1-2-3', 'aa-1-2-3'],
    [7, 'aa-1-2-3', 'aa-1-2-3'],
    [2, 'aa', 'aa'],
    [3, 'el-4-8-3', 'el-4-8'],
  ])('depth %i of %s → %s', (depth, id, expected) => {
    expect(categoryGroupsOf(product({ taxonomyCategory: category(id) }), settings([], depth))).toEqual([expected]);
  });

  it('is not used when a configured group matches (even by tag only)', () => {
    const s = settings([group('coffee', { tags: ['beans'] })]);
    expect(categoryGroupsOf(product({ tags: ['beans'], taxonomyCategory: category('fb-2-1') }), s)).toEqual(['coffee']);
  });

  it('no category and no configured match: [] (unmapped = not similar)', () => {
    expect(categoryGroupsOf(product(), settings([group('g', { tags: ['x'] })]))).toEqual([]);
  });

  it.each(['', 'AA-1', 'aa_1', 'a-1', 'aa-1-', 'aa--1', 'aa-x', 'gid://shopify/Product/1'])('a category id that is not a taxonomy id (%j) groups nothing', (id) => {
    expect(categoryGroupsOf(product({ taxonomyCategory: category(id) }), settings([group('g', { taxonomyBranches: ['aa'] })]))).toEqual([]);
  });

  it.each([0, -1, 1.5, Number.NaN])('a depth that is not a positive integer (%p) gives no default group', (depth) => {
    expect(categoryGroupsOf(product({ taxonomyCategory: category('aa-1-2') }), settings([], depth))).toEqual([]);
  });
});

describe('taxonomy ids', () => {
  it.each([
    ['gid://shopify/TaxonomyCategory/aa-1-2', 'aa-1-2'],
    ['aa-1-2', 'aa-1-2'],
    [' sg-4-17-2-17 ', 'sg-4-17-2-17'],
    ['gid://shopify/TaxonomyCategory/', null],
    ['gid://shopify/Product/aa-1', null],
    ['AA-1', null],
  ])('%j → %j', (input, expected) => {
    expect(taxonomyCategoryIdOf(input)).toBe(expected);
  });
});

describe('properties', () => {
  const segment = fc.integer({ min: 1, max: 40 }).map(String);
  const categoryId = fc
    .tuple(fc.constantFrom('aa', 'ap', 'el', 'fb', 'hg', 'sg'), fc.array(segment, { maxLength: 6 }))
    .map(([vertical, rest]) => [vertical, ...rest].join('-'));
  const word = fc.constantFrom('shoes', 'Coffee', 'beans', 'summer-sale', 'Tea', 'gift', 'x');
  const groupArb = fc.record({
    id: fc.constantFrom('g1', 'g2', 'g3', 'g4'),
    label: fc.constant('G'),
    taxonomyBranches: fc.array(categoryId, { maxLength: 2 }),
    productTypes: fc.array(word, { maxLength: 2 }),
    tags: fc.array(word, { maxLength: 2 }),
    collections: fc.array(word, { maxLength: 2 }),
  });
  const productArb = fc.record({
    productId: fc.constant('1'),
    productType: fc.option(word, { nil: null }),
    vendor: fc.option(word, { nil: null }),
    tags: fc.array(word, { maxLength: 3 }),
    taxonomyCategory: fc.option(categoryId.map(category), { nil: null }),
    collections: fc.array(word.map((handle) => ({ id: '5', handle })), { maxLength: 3 }),
    updatedAt: fc.constant(null),
  });
  const settingsArb = fc.record({ categoryGroups: fc.array(groupArb, { maxLength: 4 }), defaultTaxonomyDepth: fc.integer({ min: 1, max: 7 }) });

  it('returns configured group ids only, each once, or exactly the default branch, or nothing', () => {
    fc.assert(
      fc.property(productArb, settingsArb, (p, s) => {
        const groups = categoryGroupsOf(p, s);
        expect(new Set(groups).size).toBe(groups.length);
        const configured = new Set<string>(s.categoryGroups.map((g) => g.id));
        if (groups.length > 0 && groups.every((g) => configured.has(g))) return;
        if (p.taxonomyCategory === null) {
          expect(groups).toEqual([]);
          return;
        }
        const segments = p.taxonomyCategory.id.split('-');
        expect(groups).toEqual([segments.slice(0, s.defaultTaxonomyDepth).join('-')]);
      }),
    );
  });

  it('a product in a branch is in every group listing that branch or any ancestor of it', () => {
    fc.assert(
      fc.property(categoryId, fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), (id, cut, depth) => {
        const branch = id.split('-').slice(0, cut).join('-');
        const groups = categoryGroupsOf(product({ taxonomyCategory: category(id) }), settings([group('g', { taxonomyBranches: [branch] })], depth));
        expect(groups).toEqual(['g']);
      }),
    );
  });

  it('a branch never contains a category that merely starts with the same characters', () => {
    fc.assert(
      fc.property(categoryId, fc.integer({ min: 0, max: 9 }), (branch, digit) => {
        // aa-1 vs aa-1<digit>…: same characters, different level value.
        const id = `${branch}${digit}`;
        fc.pre(/-\d+$/.test(branch));
        const groups = categoryGroupsOf(product({ taxonomyCategory: category(id) }), settings([group('g', { taxonomyBranches: [branch] })], 7));
        expect(groups).not.toContain('g');
      }),
    );
  });

  it('the default group is a whole-level prefix of the category, and products in the same branch share it', () => {
    fc.assert(
      fc.property(categoryId, categoryId, fc.integer({ min: 1, max: 7 }), (a, b, depth) => {
        const s = settings([], depth);
        const [ga] = categoryGroupsOf(product({ taxonomyCategory: category(a) }), s);
        const [gb] = categoryGroupsOf(product({ taxonomyCategory: category(b) }), s);
        expect(ga !== undefined && (a === ga || a.startsWith(`${ga}-`))).toBe(true);
        expect(isTaxonomyCategoryId(ga!)).toBe(true);
        const sameBranch = a.split('-').slice(0, depth).join('-') === b.split('-').slice(0, depth).join('-');
        expect(ga === gb).toBe(sameBranch);
      }),
    );
  });

  it('does not depend on case or surrounding spaces of product text', () => {
    const shout = (value: string) => ` ${value.toUpperCase()}  `;
    fc.assert(
      fc.property(productArb, settingsArb, (p, s) => {
        const loud: ProductFacts = {
          ...p,
          productType: p.productType === null ? null : shout(p.productType),
          tags: p.tags.map(shout),
          collections: p.collections.map((c) => ({ ...c, handle: shout(c.handle) })),
        };
        expect(categoryGroupsOf(loud, s)).toEqual(categoryGroupsOf(p, s));
      }),
    );
  });

  it('more tags or collections never remove a configured group', () => {
    fc.assert(
      fc.property(productArb, settingsArb, fc.array(word, { maxLength: 3 }), (p, s, extra) => {
        const configured = new Set<string>(s.categoryGroups.map((g) => g.id));
        const before = categoryGroupsOf(p, s).filter((g) => configured.has(g));
        const after = categoryGroupsOf({ ...p, tags: [...p.tags, ...extra], collections: [...p.collections, ...extra.map((handle) => ({ id: '6', handle }))] }, s);
        for (const g of before) expect(after).toContain(g);
      }),
    );
  });

  it('is pure: same answer twice, inputs unchanged', () => {
    fc.assert(
      fc.property(productArb, settingsArb, (p, s) => {
        const snapshot = structuredClone({ p, s });
        expect(categoryGroupsOf(p, s)).toEqual(categoryGroupsOf(p, s));
        expect({ p, s }).toEqual(snapshot);
      }),
    );
  });
});
