/**
 * The simulated Admin GraphQL API: the slice of Shopify's schema the app reads and writes (shopify.md §3), run
 * by a small executor over graphql-parse.ts documents, with Shopify's cost rules and leaky bucket (§3.5).
 *
 * Schema slice (2026-04 names): `customers`, `customer`, `products`, `product`, `nodes`, `node`, `shop`;
 * `customerEmailMarketingConsentUpdate`, `customerSmsMarketingConsentUpdate`. Unknown fields and arguments are
 * validation errors, as on Shopify, so a query the simulator cannot answer fails loudly instead of answering null.
 *
 * Cost (shopify.dev/docs/api/usage/limits, "Calculating query costs"): scalars and enums 0, an object 1, a
 * connection 2 + `first` × the cost of one node, a list argument such as `nodes(ids:)` counts each id, a mutation
 * 10. `pageInfo` and edges are part of the connection's price. The requested cost is computed before execution
 * and taken from the bucket; the actual cost (with the numbers of objects really returned) is computed during
 * execution, and the difference refunded. A single query may not request more than 1,000 points
 * (MAX_COST_EXCEEDED); a request the bucket cannot pay is THROTTLED (HTTP 200, no data).
 */
import type { ShopifyStore } from './store';
import { parseDocument, GraphqlSyntaxError, type FieldNode, type FragmentDefinition, type SelectionNode, type TypeRef, type ValueNode } from './graphql-parse';
import { graphqlTime, countryName } from './payloads';
import { parseSearchQuery, SearchSyntaxError, type SearchFields } from './search';
import type { LeakyBucket } from './throttle';
import { EMAIL_STATES, OPT_IN_LEVELS, SMS_STATES, type Collection, type ConsentRecord, type Customer, type MarketingChannel, type Product, type Shop, type SimulatorClock } from './types';

/** Largest requested cost of one query (shopify.md §3.5). */
export const MAX_QUERY_COST = 1000;
/** Largest page and largest input array (shopify.dev/docs/api/usage/limits#input-limits). */
export const MAX_PAGE_SIZE = 250;
export const MAX_INPUT_ARRAY = 250;
const MUTATION_COST = 10;
const RATE_LIMITS_DOC = 'https://shopify.dev/api/usage/rate-limits';

export interface GraphqlError {
  readonly message: string;
  readonly locations?: ReadonlyArray<{ line: number; column: number }>;
  readonly path?: ReadonlyArray<string | number>;
  readonly extensions?: Record<string, unknown>;
}

/** Ends the whole request: `{errors}` without data (validation, variable coercion, invalid ids). */
class RequestError extends Error {
  constructor(readonly errors: GraphqlError[]) {
    super(errors[0]?.message ?? 'request error');
  }
}

/** A field's own error: the field becomes null (and nulls its parent when it is non-null). */
class FieldError extends Error {
  constructor(
    message: string,
    readonly extensions?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Invalid input to a mutation, reported like GraphQL variable coercion. */
class InputError extends Error {
  constructor(
    readonly inputPath: string[],
    readonly explanation: string,
  ) {
    super(explanation);
  }
}

/** A non-null field resolved to null: propagate to the nearest nullable parent. */
class NullBubble extends Error {}

export interface GraphqlContext {
  readonly store: ShopifyStore;
  readonly shop: Shop;
  readonly clock: SimulatorClock;
  /** Cursor paging stops after this many objects of one list (shopify.dev/docs/api/usage/limits: 25,000). */
  readonly paginationLimit: number;
}

interface ExecContext extends GraphqlContext {
  readonly variables: Record<string, unknown>;
  readonly fragments: ReadonlyMap<string, FragmentDefinition>;
  readonly errors: GraphqlError[];
  /** Declared variable types, for coercion messages. */
  readonly declared: ReadonlyMap<string, string>;
  actualCost: number;
  /** Inside a mutation's payload: its flat cost covers everything. */
  costFree: boolean;
}

// ---------------------------------------------------------------- schema

type Args = Record<string, unknown>;

interface FieldDef {
  /** Return type name: a scalar, an object type or an interface (for connections: the node type). */
  readonly type: string;
  readonly list?: boolean;
  readonly connection?: boolean;
  readonly nullable?: boolean;
  readonly args?: readonly string[];
  readonly resolve: (parent: any, args: Args, ctx: ExecContext) => unknown;
}

interface ObjectType {
  readonly kind: 'object';
  readonly fields: Record<string, FieldDef>;
  readonly interfaces?: readonly string[];
  /** Connection wrappers, edges and PageInfo: their cost is the connection's. */
  readonly free?: boolean;
}

interface InterfaceType {
  readonly kind: 'interface';
  readonly possibleTypes: readonly string[];
}

/** An interface-typed value carries its concrete type. */
interface Typed {
  readonly __typename: string;
  readonly value: unknown;
}

const SCALARS = new Set(['ID', 'String', 'Boolean', 'Int', 'Float', 'DateTime', 'URL', 'UnsignedInt64', 'Enum']);

interface Page<T> {
  readonly edges: ReadonlyArray<{ readonly cursor: string; readonly node: T }>;
  readonly pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

const scalar = (resolve: FieldDef['resolve'], type = 'String', nullable = true): FieldDef => ({ type, resolve, nullable });
const prop = (name: string, type = 'String', nullable = true): FieldDef => scalar((p) => p[name] ?? null, type, nullable);
const gid = (kind: string) => scalar((p: { id: number }) => `gid://shopify/${kind}/${p.id}`, 'ID', false);
const CONNECTION_ARGS = ['first', 'after', 'last', 'before', 'reverse', 'sortKey', 'query'] as const;

function consentState(record: ConsentRecord, email: boolean): string {
  // CustomerEmailAddressMarketingState has no REDACTED (shopify.md §2.1).
  return email && record.state === 'REDACTED' ? 'NOT_SUBSCRIBED' : record.state;
}

const TYPES: Record<string, ObjectType | InterfaceType> = {
  Node: { kind: 'interface', possibleTypes: ['Customer', 'Product', 'Collection'] },
  QueryRoot: {
    kind: 'object',
    fields: {
      customers: { type: 'Customer', connection: true, args: CONNECTION_ARGS, resolve: (_p, args, ctx) => customersPage(ctx, args) },
      customer: { type: 'Customer', nullable: true, args: ['id'], resolve: (_p, args, ctx) => lookup(ctx, args.id, 'Customer')?.value ?? null },
      products: { type: 'Product', connection: true, args: CONNECTION_ARGS, resolve: (_p, args, ctx) => productsPage(ctx, args) },
      product: { type: 'Product', nullable: true, args: ['id'], resolve: (_p, args, ctx) => lookup(ctx, args.id, 'Product')?.value ?? null },
      nodes: { type: 'Node', list: true, args: ['ids'], resolve: (_p, args, ctx) => nodeIds(args.ids).map((id) => lookup(ctx, id, null)) },
      node: { type: 'Node', nullable: true, args: ['id'], resolve: (_p, args, ctx) => lookup(ctx, args.id, null) },
      shop: { type: 'Shop', resolve: (_p, _a, ctx) => ctx.shop },
    },
  },
  Mutation: {
    kind: 'object',
    fields: {
      customerEmailMarketingConsentUpdate: {
        type: 'CustomerEmailMarketingConsentUpdatePayload',
        nullable: true,
        args: ['input'],
        resolve: (_p, args, ctx) => consentMutation(ctx, 'email', args.input),
      },
      customerSmsMarketingConsentUpdate: {
        type: 'CustomerSmsMarketingConsentUpdatePayload',
        nullable: true,
        args: ['input'],
        resolve: (_p, args, ctx) => consentMutation(ctx, 'sms', args.input),
      },
    },
  },
  CustomerEmailMarketingConsentUpdatePayload: {
    kind: 'object',
    fields: { customer: { type: 'Customer', nullable: true, resolve: (p) => p.customer }, userErrors: { type: 'UserError', list: true, resolve: (p) => p.userErrors } },
  },
  CustomerSmsMarketingConsentUpdatePayload: {
    kind: 'object',
    fields: { customer: { type: 'Customer', nullable: true, resolve: (p) => p.customer }, userErrors: { type: 'UserError', list: true, resolve: (p) => p.userErrors } },
  },
  UserError: {
    kind: 'object',
    fields: { field: { type: 'String', list: true, nullable: true, resolve: (p) => p.field }, message: prop('message', 'String', false), code: prop('code', 'Enum') },
  },
  Customer: {
    kind: 'object',
    interfaces: ['Node'],
    fields: {
      id: gid('Customer'),
      legacyResourceId: scalar((c: Customer) => String(c.id), 'UnsignedInt64', false),
      email: prop('email'),
      phone: prop('phone'),
      firstName: prop('firstName'),
      lastName: prop('lastName'),
      displayName: scalar((c: Customer) => [c.firstName, c.lastName].filter(Boolean).join(' ') || c.email || c.phone || '', 'String', false),
      locale: scalar((c: Customer) => c.locale ?? 'en', 'String', false),
      state: scalar((c: Customer) => c.state.toUpperCase(), 'Enum', false),
      tags: { type: 'String', list: true, resolve: (c: Customer) => c.tags },
      verifiedEmail: prop('verifiedEmail', 'Boolean', false),
      createdAt: scalar((c: Customer) => graphqlTime(c.createdAt), 'DateTime', false),
      updatedAt: scalar((c: Customer) => graphqlTime(c.updatedAt), 'DateTime', false),
      numberOfOrders: scalar((c: Customer, _a, ctx) => String([...ctx.shop.orders.values()].filter((o) => o.customerId === c.id).length), 'UnsignedInt64', false),
      defaultEmailAddress: { type: 'CustomerEmailAddress', nullable: true, resolve: (c: Customer) => (c.email === null ? null : c) },
      defaultPhoneNumber: { type: 'CustomerPhoneNumber', nullable: true, resolve: (c: Customer) => (c.phone === null ? null : c) },
      defaultAddress: { type: 'MailingAddress', nullable: true, resolve: (c: Customer) => c.address },
      emailMarketingConsent: { type: 'CustomerEmailMarketingConsentState', nullable: true, resolve: (c: Customer) => (c.email === null ? null : c.emailConsent) },
      smsMarketingConsent: { type: 'CustomerSmsMarketingConsentState', nullable: true, resolve: (c: Customer) => (c.phone === null ? null : c.smsConsent) },
    },
  },
  CustomerEmailAddress: {
    kind: 'object',
    fields: {
      emailAddress: prop('email'),
      marketingState: scalar((c: Customer) => consentState(c.emailConsent, true), 'Enum', false),
      marketingOptInLevel: scalar((c: Customer) => c.emailConsent.optInLevel, 'Enum'),
      marketingUpdatedAt: scalar((c: Customer) => graphqlTime(c.emailConsent.updatedAt), 'DateTime'),
    },
  },
  CustomerPhoneNumber: {
    kind: 'object',
    fields: {
      phoneNumber: prop('phone', 'String', false),
      marketingState: scalar((c: Customer) => consentState(c.smsConsent, false), 'Enum', false),
      marketingOptInLevel: scalar((c: Customer) => c.smsConsent.optInLevel, 'Enum'),
      marketingUpdatedAt: scalar((c: Customer) => graphqlTime(c.smsConsent.updatedAt), 'DateTime'),
      marketingCollectedFrom: scalar((c: Customer) => c.smsConsent.collectedFrom, 'Enum'),
    },
  },
  CustomerEmailMarketingConsentState: {
    kind: 'object',
    fields: {
      marketingState: scalar((r: ConsentRecord) => r.state, 'Enum', false),
      marketingOptInLevel: scalar((r: ConsentRecord) => r.optInLevel, 'Enum'),
      consentUpdatedAt: scalar((r: ConsentRecord) => graphqlTime(r.updatedAt), 'DateTime'),
    },
  },
  CustomerSmsMarketingConsentState: {
    kind: 'object',
    fields: {
      marketingState: scalar((r: ConsentRecord) => r.state, 'Enum', false),
      marketingOptInLevel: scalar((r: ConsentRecord) => r.optInLevel, 'Enum'),
      consentUpdatedAt: scalar((r: ConsentRecord) => graphqlTime(r.updatedAt), 'DateTime'),
      consentCollectedFrom: scalar((r: ConsentRecord) => r.collectedFrom, 'Enum'),
    },
  },
  MailingAddress: {
    kind: 'object',
    fields: {
      id: scalar((a: { id: number }) => `gid://shopify/MailingAddress/${a.id}?model_name=CustomerAddress`, 'ID', false),
      firstName: prop('firstName'),
      lastName: prop('lastName'),
      company: prop('company'),
      address1: prop('address1'),
      city: prop('city'),
      province: prop('province'),
      zip: prop('zip'),
      countryCodeV2: prop('countryCode', 'Enum'),
      country: scalar((a: { countryCode: string | null }) => countryName(a.countryCode)),
    },
  },
  Product: {
    kind: 'object',
    interfaces: ['Node'],
    fields: {
      id: gid('Product'),
      legacyResourceId: scalar((p: Product) => String(p.id), 'UnsignedInt64', false),
      title: prop('title', 'String', false),
      handle: prop('handle', 'String', false),
      productType: prop('productType', 'String', false),
      vendor: prop('vendor', 'String', false),
      tags: { type: 'String', list: true, resolve: (p: Product) => p.tags },
      status: scalar(() => 'ACTIVE', 'Enum', false),
      createdAt: scalar((p: Product) => graphqlTime(p.createdAt), 'DateTime', false),
      updatedAt: scalar((p: Product) => graphqlTime(p.updatedAt), 'DateTime', false),
      category: { type: 'TaxonomyCategory', nullable: true, resolve: (p: Product) => p.category },
      collections: {
        type: 'Collection',
        connection: true,
        args: CONNECTION_ARGS,
        resolve: (p: Product, args, ctx) =>
          paginate(
            p.collectionIds.map((id) => ctx.shop.collections.get(id)).filter((c): c is Collection => c !== undefined),
            args,
            ctx,
            { sortKeys: { ID: (c) => c.id, TITLE: (c) => c.title.toLowerCase() }, defaultSortKey: 'ID', search: collectionSearch },
          ),
      },
    },
  },
  TaxonomyCategory: {
    kind: 'object',
    fields: {
      id: scalar((c: { id: string }) => `gid://shopify/TaxonomyCategory/${c.id}`, 'ID', false),
      fullName: prop('fullName', 'String', false),
      name: prop('name', 'String', false),
    },
  },
  Collection: {
    kind: 'object',
    interfaces: ['Node'],
    fields: {
      id: gid('Collection'),
      legacyResourceId: scalar((c: Collection) => String(c.id), 'UnsignedInt64', false),
      handle: prop('handle', 'String', false),
      title: prop('title', 'String', false),
    },
  },
  Shop: {
    kind: 'object',
    fields: {
      id: gid('Shop'),
      name: prop('name', 'String', false),
      email: prop('email', 'String', false),
      myshopifyDomain: prop('domain', 'String', false),
    },
  },
  PageInfo: {
    kind: 'object',
    free: true,
    fields: { hasNextPage: prop('hasNextPage', 'Boolean', false), hasPreviousPage: prop('hasPreviousPage', 'Boolean', false), startCursor: prop('startCursor'), endCursor: prop('endCursor') },
  },
};

// Connection and edge types of every connection's node type.
for (const node of ['Customer', 'Product', 'Collection']) {
  TYPES[`${node}Connection`] = {
    kind: 'object',
    free: true,
    fields: {
      edges: { type: `${node}Edge`, list: true, resolve: (p: Page<unknown>) => p.edges },
      nodes: { type: node, list: true, resolve: (p: Page<unknown>) => p.edges.map((e) => e.node) },
      pageInfo: { type: 'PageInfo', resolve: (p: Page<unknown>) => p.pageInfo },
    },
  };
  TYPES[`${node}Edge`] = { kind: 'object', free: true, fields: { cursor: prop('cursor', 'String', false), node: { type: node, resolve: (e) => e.node } } };
}

function objectType(name: string): ObjectType {
  const type = TYPES[name];
  if (type === undefined || type.kind !== 'object') throw new Error(`no object type ${name}`);
  return type;
}

// ---------------------------------------------------------------- ids, lookups

const GID = /^gid:\/\/shopify\/([A-Za-z]+)\/(\d{1,20})$/;

function invalidId(value: unknown): RequestError {
  return new RequestError([{ message: `Invalid global id '${typeof value === 'string' ? value : JSON.stringify(value)}'`, extensions: { code: 'argumentLiteralsIncompatible', typeName: 'CoercionError' } }]);
}

function nodeIds(value: unknown): unknown[] {
  const ids = Array.isArray(value) ? value : [value];
  if (ids.length > MAX_INPUT_ARRAY) {
    throw new RequestError([{ message: `The input array size of ${ids.length} is greater than the maximum allowed of ${MAX_INPUT_ARRAY}.`, extensions: { code: 'MAX_INPUT_SIZE_EXCEEDED' } }]);
  }
  return ids;
}

/** The node a GID names in this shop (null when none, or when it is of another type than `only`). */
function lookup(ctx: ExecContext, id: unknown, only: string | null): Typed | null {
  const match = typeof id === 'string' ? GID.exec(id) : null;
  if (match === null) throw invalidId(id);
  const [, type, digits] = match;
  if (only !== null && type !== only) return null;
  const n = Number(digits);
  const value = type === 'Customer' ? ctx.shop.customers.get(n) : type === 'Product' ? ctx.shop.products.get(n) : type === 'Collection' ? ctx.shop.collections.get(n) : undefined;
  return value === undefined ? null : { __typename: type!, value };
}

// ---------------------------------------------------------------- paging and search

interface PageOptions<T> {
  readonly sortKeys: Record<string, (item: T) => number | string>;
  readonly defaultSortKey: string;
  readonly search: (item: T) => SearchFields;
}

function encodeCursor(id: number, value: number | string): string {
  return Buffer.from(JSON.stringify({ last_id: id, last_value: value })).toString('base64');
}

function decodeCursor(cursor: unknown): { id: number; value: number | string } {
  try {
    if (typeof cursor !== 'string') throw new Error('not a string');
    const parsed = JSON.parse(Buffer.from(cursor, 'base64').toString('utf8')) as { last_id?: unknown; last_value?: unknown };
    if (typeof parsed.last_id !== 'number' || (typeof parsed.last_value !== 'number' && typeof parsed.last_value !== 'string')) throw new Error('shape');
    return { id: parsed.last_id, value: parsed.last_value };
  } catch {
    throw new FieldError('Invalid cursor for current pagination sort.', { code: 'BAD_REQUEST' });
  }
}

function paginate<T extends { id: number }>(all: readonly T[], args: Args, ctx: ExecContext, options: PageOptions<T>): Page<T> {
  if (args.last !== undefined && args.last !== null) throw new FieldError('The simulator pages forward only (first/after); last/before are not supported', { code: 'BAD_REQUEST' });
  const first = args.first;
  if (first === undefined || first === null) throw new FieldError('you must provide one of first or last', { code: 'BAD_REQUEST' });
  if (typeof first !== 'number' || !Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
    throw new FieldError(`The first argument must be an integer between 0 and ${MAX_PAGE_SIZE} (got ${JSON.stringify(first)})`, { code: 'BAD_REQUEST' });
  }
  const sortKey = (args.sortKey as string | undefined) ?? options.defaultSortKey;
  const key = options.sortKeys[sortKey];
  if (key === undefined) throw new FieldError(`sortKey ${sortKey} is not supported here (${Object.keys(options.sortKeys).join(', ')})`, { code: 'BAD_REQUEST' });
  let predicate;
  try {
    predicate = parseSearchQuery(args.query as string | null | undefined);
  } catch (err) {
    if (err instanceof SearchSyntaxError) throw new FieldError(`Invalid search query: ${err.message}`, { code: 'BAD_REQUEST' });
    throw err;
  }
  const direction = args.reverse === true ? -1 : 1;
  const cmp = (a: [number | string, number], b: [number | string, number]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]) * direction;
  const sorted = all
    .filter((item) => predicate(options.search(item)))
    .map((item) => ({ item, sort: [key(item), item.id] as [number | string, number] }))
    .sort((a, b) => cmp(a.sort, b.sort));
  let start = 0;
  if (args.after !== undefined && args.after !== null) {
    const cursor = decodeCursor(args.after);
    const after: [number | string, number] = [cursor.value, cursor.id];
    start = sorted.findIndex((entry) => cmp(entry.sort, after) > 0);
    if (start < 0) start = sorted.length;
  }
  if (start >= ctx.paginationLimit) {
    // UNVERIFIED for the Admin API (documented for the Storefront API: "return an error when paginating past the
    // 25,000th item"); shopify.dev/docs/api/usage/limits: "Shopify limits pagination of arrays of objects to 25,000".
    throw new FieldError(`Pagination is limited to ${ctx.paginationLimit} objects; narrow the query (e.g. id:>…) to read further`, { code: 'BAD_REQUEST' });
  }
  const end = Math.min(start + first, sorted.length, ctx.paginationLimit);
  const slice = sorted.slice(start, end);
  const edges = slice.map((entry) => ({ cursor: encodeCursor(entry.item.id, entry.sort[0]), node: entry.item }));
  return {
    edges,
    pageInfo: {
      hasNextPage: end < sorted.length,
      hasPreviousPage: start > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges[edges.length - 1]?.cursor ?? null,
    },
  };
}

const texts = (...values: Array<string | null | undefined>) => ({ kind: 'text' as const, values: values.filter((v): v is string => typeof v === 'string' && v !== '') });

function customerSearch(c: Customer): SearchFields {
  return (field) => {
    switch (field) {
      case '':
        return texts(c.email, c.phone, c.firstName, c.lastName);
      case 'id':
        return { kind: 'number', value: c.id };
      case 'email':
        return texts(c.email);
      case 'phone':
        return texts(c.phone);
      case 'first_name':
        return texts(c.firstName);
      case 'last_name':
        return texts(c.lastName);
      case 'country':
        return texts(c.address?.countryCode, countryName(c.address?.countryCode ?? null));
      case 'state':
        return texts(c.state);
      case 'tag':
        return texts(...c.tags);
      case 'created_at':
        return { kind: 'date', value: c.createdAt };
      case 'updated_at':
        return { kind: 'date', value: c.updatedAt };
      default:
        return undefined;
    }
  };
}

function productSearch(p: Product): SearchFields {
  return (field) => {
    switch (field) {
      case '':
      case 'title':
        return texts(p.title);
      case 'id':
        return { kind: 'number', value: p.id };
      case 'handle':
        return texts(p.handle);
      case 'product_type':
        return texts(p.productType);
      case 'vendor':
        return texts(p.vendor);
      case 'tag':
        return texts(...p.tags);
      case 'created_at':
        return { kind: 'date', value: p.createdAt };
      case 'updated_at':
        return { kind: 'date', value: p.updatedAt };
      default:
        return undefined;
    }
  };
}

function collectionSearch(c: Collection): SearchFields {
  return (field) => (field === '' || field === 'title' ? texts(c.title) : field === 'handle' ? texts(c.handle) : field === 'id' ? { kind: 'number', value: c.id } : undefined);
}

function customersPage(ctx: ExecContext, args: Args): Page<Customer> {
  return paginate([...ctx.shop.customers.values()], args, ctx, {
    sortKeys: { ID: (c) => c.id, CREATED_AT: (c) => c.createdAt.getTime(), UPDATED_AT: (c) => c.updatedAt.getTime() },
    defaultSortKey: 'ID',
    search: customerSearch,
  });
}

function productsPage(ctx: ExecContext, args: Args): Page<Product> {
  return paginate([...ctx.shop.products.values()], args, ctx, {
    sortKeys: { ID: (p) => p.id, TITLE: (p) => p.title.toLowerCase(), UPDATED_AT: (p) => p.updatedAt.getTime(), CREATED_AT: (p) => p.createdAt.getTime() },
    defaultSortKey: 'ID',
    search: productSearch,
  });
}

// ---------------------------------------------------------------- consent mutations

type UserError = { field: string[] | null; message: string; code: string };

/** States the consent mutations accept (shopify.md §3.1; shopify.dev CustomerEmailMarketingConsentInput). */
const WRITABLE = new Set(['SUBSCRIBED', 'UNSUBSCRIBED', 'PENDING']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], path: string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new InputError([...path, key], 'Field is not defined on the input type');
  }
}

/** `DateTime` input: ISO 8601 with a zone (Shopify refuses a time without one). */
function dateTimeInput(value: unknown, path: string[]): Date | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new InputError(path, `Could not coerce value ${JSON.stringify(value)} to DateTime`);
  }
  return new Date(value);
}

function consentMutation(ctx: ExecContext, channel: MarketingChannel, input: unknown): { customer: Customer | null; userErrors: UserError[] } {
  const consentKey = channel === 'email' ? 'emailMarketingConsent' : 'smsMarketingConsent';
  const states: readonly string[] = channel === 'email' ? EMAIL_STATES : SMS_STATES;
  // Variable coercion: the input's shape and enum values.
  if (!isRecord(input)) throw new InputError([], 'Expected value to not be null');
  checkKeys(input, ['customerId', consentKey], []);
  if (typeof input.customerId !== 'string') throw new InputError(['customerId'], 'Expected value to not be null');
  const consent = input[consentKey];
  if (!isRecord(consent)) throw new InputError([consentKey], 'Expected value to not be null');
  checkKeys(consent, ['marketingState', 'marketingOptInLevel', 'consentUpdatedAt', 'sourceLocationId'], [consentKey]);
  const state = consent.marketingState;
  if (typeof state !== 'string' || !states.includes(state)) {
    throw new InputError([consentKey, 'marketingState'], `Expected ${JSON.stringify(state)} to be one of: ${states.join(', ')}`);
  }
  const level = consent.marketingOptInLevel;
  if (level !== undefined && level !== null && (typeof level !== 'string' || !(OPT_IN_LEVELS as readonly string[]).includes(level))) {
    throw new InputError([consentKey, 'marketingOptInLevel'], `Expected ${JSON.stringify(level)} to be one of: ${OPT_IN_LEVELS.join(', ')}`);
  }
  const at = dateTimeInput(consent.consentUpdatedAt, [consentKey, 'consentUpdatedAt']);
  const match = GID.exec(input.customerId);
  if (match === null || match[1] !== 'Customer') throw invalidId(input.customerId);

  // Business rules: userErrors with HTTP 200 (shopify.md §3.1).
  const refuse = (field: string[], message: string, code: string) => ({ customer: null, userErrors: [{ field: ['input', ...field], message, code }] });
  if (!WRITABLE.has(state)) {
    return refuse([consentKey, 'marketingState'], `Marketing state ${state} cannot be set: use SUBSCRIBED, UNSUBSCRIBED or PENDING`, 'INCLUSION');
  }
  const customer = ctx.shop.customers.get(Number(match[2]));
  if (customer === undefined) return refuse(['customerId'], 'Customer not found', 'INVALID');
  if (channel === 'email' && customer.email === null) return refuse(['customerId'], 'Customer must have an email address to update email marketing consent', 'INVALID');
  if (channel === 'sms' && customer.phone === null) return refuse(['customerId'], 'Customer must have a phone number to update SMS marketing consent', 'INVALID');
  ctx.store.changeConsent(ctx.shop, customer, channel, {
    state: state as ConsentRecord['state'],
    ...(level !== undefined ? { optInLevel: (level ?? null) as ConsentRecord['optInLevel'] } : {}),
    at: at ?? ctx.clock.now(),
    ...(channel === 'sms' ? { collectedFrom: 'OTHER' as const } : {}),
  });
  // The customer as it is now: a write older than the stored record leaves (and shows) the newer one.
  return { customer, userErrors: [] };
}

// ---------------------------------------------------------------- analysis: validation and requested cost

function namedType(type: TypeRef): string {
  return type.kind === 'Named' ? type.name : namedType(type.of);
}

function printType(type: TypeRef): string {
  return type.kind === 'Named' ? type.name : type.kind === 'List' ? `[${printType(type.of)}]` : `${printType(type.of)}!`;
}

function valueOf(node: ValueNode, variables: Record<string, unknown>): unknown {
  switch (node.kind) {
    case 'Variable':
      return variables[node.name];
    case 'Scalar':
    case 'Enum':
      return node.value;
    case 'List':
      return node.values.map((v) => valueOf(v, variables));
    case 'Object':
      return Object.fromEntries(node.fields.map(([k, v]) => [k, valueOf(v, variables)]));
  }
}

function argsOf(field: FieldNode, variables: Record<string, unknown>): Args {
  const args: Args = {};
  for (const [name, node] of field.args) {
    const value = valueOf(node, variables);
    if (value !== undefined) args[name] = value;
  }
  return args;
}

function included(directives: FieldNode['directives'], variables: Record<string, unknown>): boolean {
  for (const d of directives) {
    const arg = d.args.find(([name]) => name === 'if');
    const value = arg === undefined ? undefined : valueOf(arg[1], variables);
    if (d.name === 'skip' && value === true) return false;
    if (d.name === 'include' && value === false) return false;
  }
  return true;
}

function appliesTo(typeCondition: string | null, typeName: string): boolean {
  if (typeCondition === null || typeCondition === typeName) return true;
  const type = TYPES[typeName];
  return type?.kind === 'object' && (type.interfaces ?? []).includes(typeCondition);
}

/** The fields of a selection set on a concrete type, by response key (spec "CollectFields"). */
function collectFields(
  selections: readonly SelectionNode[],
  typeName: string,
  fragments: ReadonlyMap<string, FragmentDefinition>,
  variables: Record<string, unknown>,
  errors: GraphqlError[] | null,
  out = new Map<string, FieldNode[]>(),
  seen = new Set<string>(),
): Map<string, FieldNode[]> {
  for (const selection of selections) {
    if (!included(selection.directives, variables)) continue;
    if (selection.kind === 'Field') {
      const key = selection.alias ?? selection.name;
      out.set(key, [...(out.get(key) ?? []), selection]);
    } else if (selection.kind === 'InlineFragment') {
      if (selection.typeCondition !== null && TYPES[selection.typeCondition] === undefined) {
        errors?.push({ message: `No such type ${selection.typeCondition}, so it can't be a fragment condition`, extensions: { code: 'undefinedType', typeName: selection.typeCondition } });
        continue;
      }
      if (appliesTo(selection.typeCondition, typeName)) collectFields(selection.selections, typeName, fragments, variables, errors, out, seen);
    } else {
      const fragment = fragments.get(selection.name);
      if (fragment === undefined) {
        errors?.push({ message: `Fragment ${selection.name} was used, but not defined`, extensions: { code: 'useAndDefineFragment', fragmentName: selection.name } });
        continue;
      }
      if (seen.has(selection.name)) continue;
      seen.add(selection.name);
      if (appliesTo(fragment.typeCondition, typeName)) collectFields(fragment.selections, typeName, fragments, variables, errors, out, seen);
    }
  }
  return out;
}

interface Analysis {
  readonly fragments: ReadonlyMap<string, FragmentDefinition>;
  readonly variables: Record<string, unknown>;
  readonly errors: GraphqlError[];
}

/** Cost of one object of `typeName` (interfaces: the most expensive possible type) with this selection. */
function objectCost(selections: readonly SelectionNode[], typeName: string, a: Analysis, listSize: number): number {
  const type = TYPES[typeName]!;
  if (type.kind === 'interface') return Math.max(0, ...type.possibleTypes.map((t) => objectCost(selections, t, a, listSize)));
  return (type.free ? 0 : 1) + selectionCost(selections, typeName, a, listSize);
}

/** Validate a selection set on a concrete type and return the cost of its children. */
function selectionCost(selections: readonly SelectionNode[], typeName: string, a: Analysis, listSize: number): number {
  const type = objectType(typeName);
  let cost = 0;
  for (const [, nodes] of collectFields(selections, typeName, a.fragments, a.variables, a.errors)) {
    const field = nodes[0]!;
    if (field.name === '__typename') continue;
    const def = type.fields[field.name];
    const location = [{ line: field.line, column: field.column }];
    if (def === undefined) {
      a.errors.push({ message: `Field '${field.name}' doesn't exist on type '${typeName}'`, locations: location, extensions: { code: 'undefinedField', typeName, fieldName: field.name } });
      continue;
    }
    for (const [arg] of field.args) {
      if (!(def.args ?? []).includes(arg)) {
        a.errors.push({ message: `Field '${field.name}' doesn't accept argument '${arg}'`, locations: location, extensions: { code: 'argumentNotAccepted', name: field.name, typeName: 'Field', argumentName: arg } });
      }
    }
    const subSelections = nodes.flatMap((n) => n.selections ?? []);
    const hasSelections = nodes.some((n) => n.selections !== null);
    if (SCALARS.has(def.type)) {
      if (hasSelections) a.errors.push({ message: `Selections can't be made on scalars (field '${field.name}' returns ${def.type} but has selections)`, locations: location, extensions: { code: 'selectionMismatch' } });
      continue;
    }
    if (!hasSelections) {
      a.errors.push({ message: `Field must have selections (field '${field.name}' returns ${def.type} but has no selections. Did you mean '${field.name} { ... }'?)`, locations: location, extensions: { code: 'selectionMismatch' } });
      continue;
    }
    const args = argsOf(field, a.variables);
    if (def.connection) {
      const first = typeof args.first === 'number' && args.first > 0 ? args.first : 0;
      cost += 2 + selectionCost(subSelections, `${def.type}Connection`, a, first);
    } else if (def.list) {
      // Inside a connection, `nodes`/`edges` hold `first` objects; `nodes(ids:)` one per id.
      const size = field.name === 'nodes' && typeName === 'QueryRoot' ? (Array.isArray(args.ids) ? args.ids.length : 1) : listSize;
      cost += size * objectCost(subSelections, def.type, a, listSize);
    } else {
      cost += objectCost(subSelections, def.type, a, listSize);
    }
  }
  return cost;
}

// ---------------------------------------------------------------- execution

function nonNull(def: FieldDef): boolean {
  return def.nullable !== true;
}

function executeSelections(selections: readonly SelectionNode[], typeName: string, parent: unknown, ctx: ExecContext, path: Array<string | number>): Record<string, unknown> {
  const type = objectType(typeName);
  const out: Record<string, unknown> = {};
  for (const [key, nodes] of collectFields(selections, typeName, ctx.fragments, ctx.variables, null)) {
    const field = nodes[0]!;
    if (field.name === '__typename') {
      out[key] = typeName;
      continue;
    }
    const def = type.fields[field.name]!;
    const fieldPath = [...path, key];
    try {
      out[key] = resolveField(def, field, nodes, parent, ctx, fieldPath, typeName);
    } catch (err) {
      if (err instanceof FieldError) {
        ctx.errors.push({ message: err.message, locations: [{ line: field.line, column: field.column }], path: fieldPath, ...(err.extensions ? { extensions: err.extensions } : {}) });
        if (nonNull(def)) throw new NullBubble();
        out[key] = null;
      } else if (err instanceof NullBubble) {
        if (nonNull(def)) throw err;
        out[key] = null;
      } else if (err instanceof InputError) {
        throw inputRequestError(err, field, ctx);
      } else {
        throw err;
      }
    }
  }
  return out;
}

function inputRequestError(err: InputError, field: FieldNode, ctx: ExecContext): RequestError {
  const input = field.args.find(([name]) => name === 'input')?.[1];
  const where = err.inputPath.length > 0 ? ` for ${err.inputPath.join('.')}` : '';
  if (input?.kind === 'Variable') {
    const declared = ctx.declared.get(input.name) ?? 'input';
    return new RequestError([
      {
        message: `Variable $${input.name} of type ${declared} was provided invalid value${where} (${err.explanation})`,
        locations: [{ line: field.line, column: field.column }],
        extensions: { value: ctx.variables[input.name], problems: [{ path: err.inputPath, explanation: err.explanation }] },
      },
    ]);
  }
  return new RequestError([
    {
      message: `Argument 'input' on Field '${field.name}' has an invalid value${where} (${err.explanation})`,
      locations: [{ line: field.line, column: field.column }],
      extensions: { code: 'argumentLiteralsIncompatible', typeName: 'Field', argumentName: 'input' },
    },
  ]);
}

function resolveField(def: FieldDef, field: FieldNode, nodes: FieldNode[], parent: unknown, ctx: ExecContext, path: Array<string | number>, parentType: string): unknown {
  const value = def.resolve(parent, argsOf(field, ctx.variables), ctx);
  const sub = nodes.flatMap((n) => n.selections ?? []);
  if (parentType === 'Mutation') {
    ctx.actualCost += MUTATION_COST;
    ctx.costFree = true;
  }
  try {
    if (SCALARS.has(def.type)) {
      if (value === null || value === undefined) {
        if (nonNull(def)) throw new FieldError(`Cannot return null for non-nullable field ${parentType}.${field.name}`);
        return null;
      }
      return value;
    }
    if (def.connection) {
      if (!ctx.costFree) ctx.actualCost += 2;
      return executeSelections(sub, `${def.type}Connection`, value, ctx, path);
    }
    if (def.list) {
      if (value === null || value === undefined) return null;
      return (value as unknown[]).map((item, i) => completeObject(def.type, item, sub, ctx, [...path, i]));
    }
    if (value === null || value === undefined) {
      if (nonNull(def)) throw new FieldError(`Cannot return null for non-nullable field ${parentType}.${field.name}`);
      return null;
    }
    return completeObject(def.type, value, sub, ctx, path);
  } finally {
    if (parentType === 'Mutation') ctx.costFree = false;
  }
}

function completeObject(typeName: string, value: unknown, selections: readonly SelectionNode[], ctx: ExecContext, path: Array<string | number>): unknown {
  if (value === null || value === undefined) return null;
  const type = TYPES[typeName]!;
  let concrete = typeName;
  let inner: unknown = value;
  if (type.kind === 'interface') {
    concrete = (value as Typed).__typename;
    inner = (value as Typed).value;
  }
  if (!ctx.costFree && !objectType(concrete).free) ctx.actualCost += 1;
  return executeSelections(selections, concrete, inner, ctx, path);
}

// ---------------------------------------------------------------- the request

export interface GraphqlAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly throttled: boolean;
}

function throttleExtensions(requested: number, actual: number | null, bucket: LeakyBucket) {
  return { cost: { requestedQueryCost: requested, actualQueryCost: actual, throttleStatus: bucket.status() } };
}

/** Answer one POST /admin/api/:version/graphql.json body for an authenticated shop. */
export function executeGraphql(body: unknown, ctx: GraphqlContext, bucket: LeakyBucket): GraphqlAnswer {
  const answer = (payload: Record<string, unknown>, throttled = false): GraphqlAnswer => ({ status: 200, body: payload, throttled });
  if (!isRecord(body) || typeof body.query !== 'string' || body.query.trim() === '') return answer({ errors: [{ message: 'No query string was present' }] });
  const variables = body.variables === undefined || body.variables === null ? {} : body.variables;
  if (!isRecord(variables)) return answer({ errors: [{ message: 'Variables must be a JSON object' }] });

  let document;
  try {
    document = parseDocument(body.query);
  } catch (err) {
    if (err instanceof GraphqlSyntaxError) return answer({ errors: [{ message: err.message, locations: [{ line: err.line, column: err.column }] }] });
    throw err;
  }
  const operationName = typeof body.operationName === 'string' ? body.operationName : null;
  const operation = operationName === null ? (document.operations.length === 1 ? document.operations[0] : undefined) : document.operations.find((o) => o.name === operationName);
  if (operation === undefined) {
    return answer({ errors: [{ message: operationName === null ? 'An operation name is required' : `No operation named "${operationName}"` }] });
  }
  if (operation.operation === 'subscription') return answer({ errors: [{ message: 'Subscriptions are not supported' }] });

  // Variable coercion (presence and defaults; values are checked where they are used).
  const coerced: Record<string, unknown> = {};
  const declared = new Map<string, string>();
  const variableErrors: GraphqlError[] = [];
  for (const definition of operation.variables) {
    declared.set(definition.name, printType(definition.type));
    let value = variables[definition.name];
    if (value === undefined && definition.defaultValue !== null) value = valueOf(definition.defaultValue, {});
    if ((value === undefined || value === null) && definition.type.kind === 'NonNull') {
      variableErrors.push({ message: `Variable $${definition.name} of type ${printType(definition.type)} was provided invalid value`, extensions: { value: value ?? null, problems: [{ path: [], explanation: 'Expected value to not be null' }] } });
    }
    if (TYPES[namedType(definition.type)] !== undefined) {
      variableErrors.push({ message: `${namedType(definition.type)} isn't a valid input type (on $${definition.name})`, extensions: { code: 'variableRequiresValidType' } });
    }
    if (value !== undefined) coerced[definition.name] = value;
  }
  if (variableErrors.length > 0) return answer({ errors: variableErrors });

  const rootType = operation.operation === 'mutation' ? 'Mutation' : 'QueryRoot';
  const analysis: Analysis = { fragments: document.fragments, variables: coerced, errors: [] };
  let requested = selectionCost(operation.selections, rootType, analysis, 0);
  if (analysis.errors.length > 0) {
    // An interface selection is checked once per possible type: report each problem once.
    const unique = new Map(analysis.errors.map((e) => [JSON.stringify([e.message, e.locations]), e]));
    return answer({ errors: [...unique.values()] });
  }
  if (rootType === 'Mutation') {
    requested = MUTATION_COST * collectFields(operation.selections, rootType, document.fragments, coerced, null).size;
  }

  if (requested > MAX_QUERY_COST) {
    return answer({
      errors: [
        {
          message: `Query cost is ${requested}, which exceeds the single query max cost limit (${MAX_QUERY_COST}).\n\nSee ${RATE_LIMITS_DOC} for more information on how the\ncost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk operations should be used instead.\nSee https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n`,
          extensions: { code: 'MAX_COST_EXCEEDED', cost: requested, maxCost: MAX_QUERY_COST, documentation: RATE_LIMITS_DOC },
        },
      ],
      extensions: throttleExtensions(requested, null, bucket),
    });
  }
  if (!bucket.take(requested)) {
    return answer({ errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED', documentation: RATE_LIMITS_DOC } }], extensions: throttleExtensions(requested, null, bucket) }, true);
  }

  const exec: ExecContext = { ...ctx, variables: coerced, fragments: document.fragments, errors: [], actualCost: 0, costFree: false, declared };
  let data: Record<string, unknown> | null;
  try {
    data = executeSelections(operation.selections, rootType, null, exec, []);
  } catch (err) {
    if (err instanceof RequestError) {
      bucket.refund(requested);
      return answer({ errors: err.errors, extensions: throttleExtensions(requested, 0, bucket) });
    }
    if (!(err instanceof NullBubble)) throw err;
    data = null;
  }
  const actual = Math.min(requested, exec.actualCost);
  bucket.refund(requested - actual);
  return answer({ ...(exec.errors.length > 0 ? { errors: exec.errors } : {}), data, extensions: throttleExtensions(requested, actual, bucket) });
}
