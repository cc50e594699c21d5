/**
 * Product similarity (issue 4 §3; law.md R4, SOI (c)): soft opt-in only covers the sender's own *similar*
 * products, and "similar" is the merchant's category groups, else Shopify's standard product taxonomy branch at
 * `defaultTaxonomyDepth` (design.md "Rules and gate"). Unmapped = not similar: a product with no category and no
 * matching group belongs to no group, so it never extends a soft opt-in.
 *
 * This module is the core's side: the facts it needs about a product, the port that supplies them
 * (`ProductCatalog`, implemented by connectors/shopify/catalog.ts and cached by ./cached-catalog.ts), and the pure
 * grouping. No I/O here.
 */
import type { TenantSettings } from '../config/manifest';
import type { Tenant } from '../tenants/tenants';

/** What the similarity rules read about one product (shopify.md §3.4, Product object). */
export interface ProductFacts {
  /** Numeric Shopify product id as a string (`8800900100200`, not the GID). */
  productId: string;
  /** Merchant-defined free text; null when empty. */
  productType: string | null;
  vendor: string | null;
  tags: string[];
  /**
   * Standard product taxonomy category (`Product.category`, a TaxonomyCategory; Admin GraphQL since 2024-04):
   * `id` is the part after `gid://shopify/TaxonomyCategory/`, e.g. `aa-1-2`. Null when the merchant set none.
   */
  taxonomyCategory: { id: string; fullName: string } | null;
  /** Collections the product is in: numeric collection id as a string, and handle. */
  collections: Array<{ id: string; handle: string }>;
  /** The product's own last update time (ISO-8601 UTC), the order of facts from different sources. */
  updatedAt: string | null;
}

/** The port: facts of products of a tenant's shop. */
export interface ProductCatalog {
  /** facts of the products found; a product that does not exist is absent from the map */
  products(tenant: Tenant, productIds: readonly string[]): Promise<Map<string, ProductFacts>>;
}

/**
 * A standard-taxonomy category id: a two-letter vertical then numeric levels (`aa`, `aa-1`, `aa-1-2-3`), as in
 * `gid://shopify/TaxonomyCategory/aa-1-2` (shopify.dev TaxonomyCategory; Shopify/product-taxonomy ids).
 */
const TAXONOMY_CATEGORY_ID = /^[a-z]{2}(?:-\d+)*$/;
const TAXONOMY_GID_PREFIX = 'gid://shopify/TaxonomyCategory/';

export function isTaxonomyCategoryId(value: string): boolean {
  return TAXONOMY_CATEGORY_ID.test(value);
}

/** `gid://shopify/TaxonomyCategory/aa-1-2` or `aa-1-2` → `aa-1-2`; null for anything else. */
export function taxonomyCategoryIdOf(value: string): string | null {
  const trimmed = value.trim();
  const id = trimmed.startsWith(TAXONOMY_GID_PREFIX) ? trimmed.slice(TAXONOMY_GID_PREFIX.length) : trimmed;
  return isTaxonomyCategoryId(id) ? id : null;
}

/** Product types, tags and collection handles compare case-insensitively and trimmed (merchant-typed text). */
function norm(value: string): string {
  return value.trim().toLowerCase();
}

/** A configured branch as the merchant may write it: `aa-1`, ` AA-1 `, or the full GID. */
function normBranch(value: string): string {
  const trimmed = norm(value);
  return trimmed.startsWith(TAXONOMY_GID_PREFIX.toLowerCase()) ? trimmed.slice(TAXONOMY_GID_PREFIX.length) : trimmed;
}

/** `branch` contains `categoryId`: equal, or a prefix ending at a level boundary (`aa-1` ⊇ `aa-1-2`, ⊉ `aa-10`). */
function inBranch(categoryId: string, branch: string): boolean {
  return branch !== '' && (categoryId === branch || categoryId.startsWith(`${branch}-`));
}

/** The category's branch cut at `depth` levels (`aa` is depth 1, `aa-1` depth 2); a shallower category is itself. */
function branchAtDepth(categoryId: string, depth: number): string {
  return categoryId.split('-').slice(0, depth).join('-');
}

/**
 * The category groups a product belongs to, for soft opt-in similarity.
 *
 * 1. Every configured group (settings `categoryGroups`, in their order, each id once) that lists a taxonomy
 *    branch containing the product's category, its product type, one of its tags, or the handle of one of its
 *    collections. Text compares trimmed and case-insensitively.
 * 2. If none matches: the default group, the product's taxonomy branch at `defaultTaxonomyDepth` levels, as that
 *    id (`aa-1` for `aa-1-2-3` at depth 2), so products in the same branch are similar.
 * 3. Otherwise `[]`: unmapped is not similar (law.md R4). So is a category id that is not a taxonomy id, and a
 *    depth that is not a positive integer (the settings schema allows 1–7): missing data never widens similarity.
 *
 * A configured group whose id looks like a taxonomy branch (`aa-1`) shares that id with the default group.
 */
export function categoryGroupsOf(product: ProductFacts, settings: Pick<TenantSettings, 'categoryGroups' | 'defaultTaxonomyDepth'>): string[] {
  const categoryId = product.taxonomyCategory === null ? null : taxonomyCategoryIdOf(product.taxonomyCategory.id);
  const productType = product.productType === null ? '' : norm(product.productType);
  const tags = new Set(product.tags.map(norm).filter((t) => t !== ''));
  const handles = new Set(product.collections.map((c) => norm(c.handle)).filter((h) => h !== ''));

  const matched: string[] = [];
  for (const group of settings.categoryGroups) {
    if (matched.includes(group.id)) continue;
    const hit =
      (categoryId !== null && (group.taxonomyBranches ?? []).some((b) => inBranch(categoryId, normBranch(b)))) ||
      (productType !== '' && (group.productTypes ?? []).some((t) => norm(t) === productType)) ||
      (group.tags ?? []).some((t) => tags.has(norm(t))) ||
      (group.collections ?? []).some((c) => handles.has(norm(c)));
    if (hit) matched.push(group.id);
  }
  if (matched.length > 0) return matched;

  const depth = settings.defaultTaxonomyDepth;
  if (categoryId === null || !Number.isInteger(depth) || depth < 1) return [];
  return [branchAtDepth(categoryId, depth)];
}
