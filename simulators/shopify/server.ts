/**
 * The Shopify simulator (issue 6 §1): one HTTP server that plays every shop the app is linked to.
 *
 * | Route | What |
 * |---|---|
 * | `POST /admin/api/:version/graphql.json` | Admin GraphQL (admin-graphql.ts); the shop from `X-Shopify-Shop-Domain` (or a `*.myshopify.com` Host), auth by `X-Shopify-Access-Token` |
 * | `POST /admin/oauth/access_token` | token refresh (`grant_type=refresh_token`), form or JSON (shopify.md §4.4; connectors/shopify/token.ts) |
 * | `GET /_sim/state` | shops, customers with consent, products, orders, webhook deliveries, counters |
 * | `POST/PATCH /_sim/…` | make things happen in a store (the table in simulators/shopify/README.md); `?wait=1` answers after the webhooks went out |
 *
 * The app reaches it with SHOPIFY_API_BASE_URL=<url> (connectors/shopify/graphql.ts `endpointFetch` keeps the
 * path and names the shop in `X-Shopify-Shop-Domain`); webhooks go to `appWebhookUrl`, signed with `apiSecret`.
 * It imports nothing from the app: it behaves like the platform, not like our code.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import getRawBody from 'raw-body';
import { z } from 'zod';
import { executeGraphql } from './admin-graphql';
import { graphqlTime } from './payloads';
import {
  ShopifyStore,
  SimError,
  type CustomerInput,
  type CustomerPatch,
  type MarketingInput,
  type OrderInput,
  type ProductInput,
  type ShopOptions,
} from './store';
import { DEFAULT_THROTTLE, LeakyBucket, type ThrottleSettings, type ThrottleStatus } from './throttle';
import type { ConsentRecord, Customer, MarketingChannel, Order, Product, Shop, SimulatorClock } from './types';
import { DEFAULT_WEBHOOK_RETRY, WebhookSender, type WebhookDelivery, type WebhookRetryOptions } from './webhooks';

export type { ShopOptions, CustomerInput, CustomerPatch, MarketingInput, OrderInput, ProductInput } from './store';
export type { WebhookDelivery, DeliveryAttempt, WebhookRetryOptions } from './webhooks';
export type { ThrottleSettings, ThrottleStatus } from './throttle';
export type { SimulatorClock } from './types';

export interface ShopifySimulatorOptions {
  /** 0 = any free port. Default 0. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** The app's client id (SHOPIFY_API_KEY): checked by the token endpoint. */
  readonly apiKey: string;
  /** The app's client secret (SHOPIFY_API_SECRET): webhook HMAC key and OAuth client secret. */
  readonly apiSecret: string;
  /** Where webhooks are POSTed (e.g. `http://127.0.0.1:3000/webhooks/shopify`); settable later with `setAppUrl`. */
  readonly appWebhookUrl?: string | null;
  readonly shops?: readonly ShopOptions[];
  /** Each shop's leaky bucket. Default {maximumAvailable: 1000, restoreRate: 50}. */
  readonly throttle?: Partial<ThrottleSettings>;
  /** Default the system clock. A fixed clock never refills buckets nor expires tokens unless advanced. */
  readonly clock?: SimulatorClock;
  /** `X-Shopify-API-Version` of webhooks. Default 2026-04 (manifest.json `shopify.apiVersion`). */
  readonly apiVersion?: string;
  /** Objects one cursor-paged list yields before paging fails. Default 25,000 (shopify.dev/docs/api/usage/limits). */
  readonly paginationLimit?: number;
  /** Webhook delivery: default 4 attempts, 100 ms doubling backoff, 5 s timeout, no delay (delayMs). */
  readonly webhookRetry?: Partial<WebhookRetryOptions>;
  /** Lifetime of refreshed access tokens (s). Default 3,600 (shopify.md §0.6). */
  readonly accessTokenTtlSeconds?: number;
  /** Lifetime of refresh tokens (s). Default 7,776,000 (90 days). */
  readonly refreshTokenTtlSeconds?: number;
  /** Scopes reported by the token endpoint. */
  readonly scopes?: readonly string[];
  /** fetch for webhook deliveries. Default globalThis.fetch. */
  readonly fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

export interface ConsentView {
  readonly state: ConsentRecord['state'];
  readonly optInLevel: ConsentRecord['optInLevel'];
  readonly consentUpdatedAt: string | null;
  readonly collectedFrom?: ConsentRecord['collectedFrom'];
}

export interface CustomerView {
  readonly id: number;
  readonly gid: string;
  readonly email: string | null;
  readonly phone: string | null;
  readonly firstName: string | null;
  readonly lastName: string | null;
  readonly locale: string | null;
  readonly tags: readonly string[];
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly defaultAddress: { readonly countryCode: string | null; readonly company: string | null; readonly city: string | null } | null;
  readonly emailMarketingConsent: ConsentView;
  readonly smsMarketingConsent: ConsentView;
}

export interface ProductView {
  readonly id: number;
  readonly gid: string;
  readonly title: string;
  readonly handle: string;
  readonly productType: string;
  readonly vendor: string;
  readonly tags: readonly string[];
  readonly category: { readonly id: string; readonly fullName: string } | null;
  readonly collections: ReadonlyArray<{ readonly id: number; readonly handle: string; readonly title: string }>;
  readonly variants: ReadonlyArray<{ readonly id: number; readonly sku: string | null; readonly price: string }>;
  readonly updatedAt: string;
}

export interface OrderView {
  readonly id: number;
  readonly name: string;
  readonly customerId: number | null;
  readonly email: string | null;
  readonly financialStatus: Order['financialStatus'];
  readonly buyerAcceptsMarketing: boolean;
  readonly noteAttributes: Order['noteAttributes'];
  readonly lineItems: ReadonlyArray<{ readonly id: number; readonly productId: number | null; readonly variantId: number | null; readonly quantity: number; readonly price: string }>;
  readonly billingCountry: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface SimulatorCounters {
  /** Every HTTP request the simulator received. */
  requests: number;
  graphqlRequests: number;
  /** GraphQL requests answered THROTTLED. */
  throttled: number;
  /** Admin requests refused with 401. */
  unauthorized: number;
  tokenRefreshes: number;
  webhookAttempts: number;
  webhooksDelivered: number;
  webhookAttemptsFailed: number;
}

export interface ShopState {
  readonly domain: string;
  readonly id: number;
  readonly name: string;
  readonly installed: boolean;
  readonly doubleOptIn: boolean;
  readonly throttleStatus: ThrottleStatus;
  readonly counters: { readonly graphqlRequests: number; readonly throttled: number };
  /** Live tokens (simulator tokens, never real ones): what a sandbox hands to the app. */
  readonly accessTokens: ReadonlyArray<{ readonly token: string; readonly expiresAt: string | null }>;
  readonly refreshToken: string | null;
  readonly customers: readonly CustomerView[];
  readonly products: readonly ProductView[];
  readonly orders: readonly OrderView[];
}

export interface SimulatorState {
  readonly url: string;
  readonly appWebhookUrl: string | null;
  readonly apiVersion: string;
  readonly counters: SimulatorCounters;
  readonly shops: readonly ShopState[];
  readonly webhooks: ReadonlyArray<Omit<WebhookDelivery, 'body'> & { readonly payload: unknown }>;
}

export interface ShopifySimulator {
  /** `http://host:port`: SHOPIFY_API_BASE_URL for the app. */
  readonly url: string;
  readonly port: number;
  setAppUrl(url: string | null): void;
  /** Sign webhooks with another secret from now on (a secret rotation). */
  setApiSecret(secret: string): void;
  addShop(shop: ShopOptions): void;
  setThrottle(shop: string, settings: Partial<ThrottleSettings> & { readonly currentlyAvailable?: number }): ThrottleStatus;
  createCustomer(shop: string, input: CustomerInput): CustomerView;
  updateCustomer(shop: string, customerId: number | string, patch: CustomerPatch): CustomerView;
  /** Tick (subscribed: true) or untick the email marketing box. */
  setEmailMarketing(shop: string, customerId: number | string, input: MarketingInput): CustomerView;
  /** The customer confirms a double opt-in (PENDING → SUBSCRIBED, CONFIRMED_OPT_IN). */
  confirmEmailMarketing(shop: string, customerId: number | string, at?: string): CustomerView;
  setSmsMarketing(shop: string, customerId: number | string, input: MarketingInput): CustomerView;
  /** The customer follows an unsubscribe link. Default channel 'email'. */
  unsubscribe(shop: string, customerId: number | string, channel?: MarketingChannel | 'all', at?: string): CustomerView;
  createProduct(shop: string, input: ProductInput): ProductView;
  updateProduct(shop: string, productId: number | string, patch: Omit<ProductInput, 'sku' | 'price' | 'handle'>): ProductView;
  /** A checkout: orders/create, then (pay, default true) orders/paid. */
  createOrder(shop: string, input: OrderInput): OrderView;
  payOrder(shop: string, orderId: number | string, at?: string): OrderView;
  uninstall(shop: string): void;
  install(shop: string, tokens: { accessToken: string; refreshToken?: string | null }): void;
  customer(shop: string, customerId: number | string): CustomerView;
  /** Send a delivery again with the same ids and body. */
  redeliver(webhookId: string): WebhookDelivery | null;
  /** The delivery log (raw bodies as sent). */
  deliveries(): readonly WebhookDelivery[];
  /** Resolves when every queued webhook delivery has finished. */
  flush(): Promise<void>;
  state(): SimulatorState;
  stop(): Promise<void>;
}

const SHOP_HOST = /^[a-z0-9][a-z0-9-]*\.myshopify\.com$/;
const API_VERSION = /^(\d{4}-(01|04|07|10)|unstable)$/;
const INVALID_TOKEN = '[API] Invalid API key or access token (unrecognized login or wrong password)';
const systemClock: SimulatorClock = { now: () => new Date() };

// ---------------------------------------------------------------- views

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

function consentView(record: ConsentRecord, sms: boolean): ConsentView {
  return { state: record.state, optInLevel: record.optInLevel, consentUpdatedAt: graphqlTime(record.updatedAt), ...(sms ? { collectedFrom: record.collectedFrom } : {}) };
}

function customerView(c: Customer): CustomerView {
  return {
    id: c.id,
    gid: `gid://shopify/Customer/${c.id}`,
    email: c.email,
    phone: c.phone,
    firstName: c.firstName,
    lastName: c.lastName,
    locale: c.locale,
    tags: [...c.tags],
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
    defaultAddress: c.address === null ? null : { countryCode: c.address.countryCode, company: c.address.company, city: c.address.city },
    emailMarketingConsent: consentView(c.emailConsent, false),
    smsMarketingConsent: consentView(c.smsConsent, true),
  };
}

function productView(shop: Shop, p: Product): ProductView {
  return {
    id: p.id,
    gid: `gid://shopify/Product/${p.id}`,
    title: p.title,
    handle: p.handle,
    productType: p.productType,
    vendor: p.vendor,
    tags: [...p.tags],
    category: p.category === null ? null : { id: p.category.id, fullName: p.category.fullName },
    collections: p.collectionIds.flatMap((id) => {
      const c = shop.collections.get(id);
      return c === undefined ? [] : [{ id: c.id, handle: c.handle, title: c.title }];
    }),
    variants: p.variants.map((v) => ({ id: v.id, sku: v.sku, price: v.price })),
    updatedAt: p.updatedAt.toISOString(),
  };
}

function orderView(o: Order): OrderView {
  return {
    id: o.id,
    name: `#${o.number}`,
    customerId: o.customerId,
    email: o.email,
    financialStatus: o.financialStatus,
    buyerAcceptsMarketing: o.buyerAcceptsMarketing,
    noteAttributes: o.noteAttributes.map((a) => ({ ...a })),
    lineItems: o.lineItems.map((li) => ({ id: li.id, productId: li.productId, variantId: li.variantId, quantity: li.quantity, price: li.price })),
    billingCountry: o.billingAddress?.countryCode ?? null,
    createdAt: o.createdAt.toISOString(),
    updatedAt: o.updatedAt.toISOString(),
  };
}

// ---------------------------------------------------------------- /_sim request bodies

const at = z.string().optional();
const ids = z.union([z.number().int().nonnegative(), z.string()]);
const addressFields = {
  country: z.string().nullable().optional(),
  company: z.string().nullable().optional(),
  firstName: z.string().nullable().optional(),
  lastName: z.string().nullable().optional(),
  address1: z.string().nullable().optional(),
  city: z.string().nullable().optional(),
  zip: z.string().nullable().optional(),
  province: z.string().nullable().optional(),
};
const customerFields = {
  ...addressFields,
  email: z.string().nullable().optional(),
  phone: z.string().nullable().optional(),
  locale: z.string().nullable().optional(),
  tags: z.array(z.string()).optional(),
  at,
};
const optInLevel = z.enum(['SINGLE_OPT_IN', 'CONFIRMED_OPT_IN', 'UNKNOWN']);
const schemas = {
  shop: z.strictObject({
    domain: z.string(),
    accessToken: z.string(),
    accessTokenExpiresAt: z.string().nullable().optional(),
    refreshToken: z.string().nullable().optional(),
    name: z.string().optional(),
    email: z.string().optional(),
    utcOffsetMinutes: z.number().int().optional(),
    doubleOptIn: z.boolean().optional(),
  }),
  appUrl: z.strictObject({ url: z.string().nullable() }),
  throttle: z.strictObject({ maximumAvailable: z.number().positive().optional(), restoreRate: z.number().nonnegative().optional(), currentlyAvailable: z.number().nonnegative().optional() }),
  customer: z.strictObject({ ...customerFields, acceptsEmailMarketing: z.boolean().optional(), acceptsSmsMarketing: z.boolean().optional() }),
  customerPatch: z.strictObject(customerFields),
  marketing: z.strictObject({ subscribed: z.boolean(), optInLevel: optInLevel.optional(), collectedFrom: z.enum(['SHOPIFY', 'OTHER']).optional(), at }),
  confirm: z.strictObject({ at }),
  unsubscribe: z.strictObject({ channel: z.enum(['email', 'sms', 'all']).optional(), at }),
  product: z.strictObject({
    title: z.string().optional(),
    handle: z.string().optional(),
    productType: z.string().optional(),
    vendor: z.string().optional(),
    tags: z.union([z.array(z.string()), z.string()]).optional(),
    category: z.union([z.string(), z.strictObject({ id: z.string(), fullName: z.string().optional() })]).nullable().optional(),
    collections: z.array(z.union([z.string(), z.strictObject({ handle: z.string(), title: z.string().optional() })])).optional(),
    sku: z.string().nullable().optional(),
    price: z.union([z.string(), z.number()]).optional(),
    at,
  }),
  order: z.strictObject({
    customerId: ids.optional(),
    email: z.string().nullable().optional(),
    phone: z.string().nullable().optional(),
    firstName: z.string().nullable().optional(),
    lastName: z.string().nullable().optional(),
    locale: z.string().nullable().optional(),
    lineItems: z
      .array(
        z.strictObject({
          productId: ids.nullable().optional(),
          variantId: ids.nullable().optional(),
          title: z.string().optional(),
          quantity: z.number().int().optional(),
          price: z.union([z.string(), z.number()]).optional(),
        }),
      )
      .min(1),
    billingAddress: z.strictObject(addressFields).nullable().optional(),
    noteAttributes: z.union([z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])), z.array(z.strictObject({ name: z.string(), value: z.unknown() }))]).optional(),
    acceptsEmailMarketing: z.boolean().optional(),
    acceptsSmsMarketing: z.boolean().optional(),
    pay: z.boolean().optional(),
    currency: z.string().optional(),
    at,
  }),
  pay: z.strictObject({ at }),
  install: z.strictObject({ accessToken: z.string(), refreshToken: z.string().nullable().optional() }),
};

function parseBody<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw new SimError(400, result.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
  return result.data;
}

// ---------------------------------------------------------------- the server

async function readBody(ctx: Context): Promise<string> {
  return (await getRawBody(ctx.req, { limit: '2mb', encoding: 'utf8' })).toString();
}

function shopDomainOf(ctx: Context): string | null {
  const header = ctx.get('X-Shopify-Shop-Domain').trim().toLowerCase();
  if (header !== '') return header;
  const host = ctx.hostname.toLowerCase();
  return SHOP_HOST.test(host) ? host : null;
}

export async function startShopifySimulator(options: ShopifySimulatorOptions): Promise<ShopifySimulator> {
  const clock = options.clock ?? systemClock;
  const throttleDefaults: ThrottleSettings = { ...DEFAULT_THROTTLE, ...options.throttle };
  const apiVersion = options.apiVersion ?? '2026-04';
  const paginationLimit = options.paginationLimit ?? 25_000;
  const scopes = (options.scopes ?? ['read_customers', 'write_customers', 'read_orders', 'read_products']).join(',');
  const counters: SimulatorCounters = { requests: 0, graphqlRequests: 0, throttled: 0, unauthorized: 0, tokenRefreshes: 0, webhookAttempts: 0, webhooksDelivered: 0, webhookAttemptsFailed: 0 };
  const buckets = new Map<string, LeakyBucket>();

  const sender = new WebhookSender({
    apiSecret: options.apiSecret,
    apiVersion,
    clock,
    retry: { ...DEFAULT_WEBHOOK_RETRY, ...options.webhookRetry },
    fetch: options.fetch ?? ((url, init) => globalThis.fetch(url, init)),
    maxLog: 10_000,
    onAttempt: (ok) => {
      counters.webhookAttempts++;
      if (ok) counters.webhooksDelivered++;
      else counters.webhookAttemptsFailed++;
    },
  });
  sender.setTarget(options.appWebhookUrl ?? null);

  const store = new ShopifyStore({
    clock,
    emit: (shop, topic, payload) => sender.enqueue(shop.domain, topic, payload),
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 3600,
    refreshTokenTtlSeconds: options.refreshTokenTtlSeconds ?? 7_776_000,
  });
  const addShop = (shopOptions: ShopOptions): Shop => {
    const shop = store.addShop(shopOptions);
    buckets.set(shop.domain, new LeakyBucket(throttleDefaults, clock));
    return shop;
  };
  for (const shop of options.shops ?? []) addShop(shop);
  const bucketOf = (shop: Shop) => buckets.get(shop.domain)!;

  // The OAuth client secret is the webhook key: a rotation (setApiSecret) changes both.
  let clientSecret = options.apiSecret;

  // ------------------------------------------------------------ the programmatic API (also behind /_sim)
  const api = {
    setAppUrl: (url: string | null) => sender.setTarget(url),
    setApiSecret: (secret: string) => {
      clientSecret = secret;
      sender.setSecret(secret);
    },
    addShop: (shop: ShopOptions) => void addShop(shop),
    setThrottle: (domain: string, settings: Partial<ThrottleSettings> & { readonly currentlyAvailable?: number }) => {
      const bucket = bucketOf(store.shop(domain));
      bucket.configure(settings);
      return bucket.status();
    },
    createCustomer: (domain: string, input: CustomerInput) => customerView(store.createCustomer(store.shop(domain), input)),
    updateCustomer: (domain: string, id: number | string, patch: CustomerPatch) => {
      const shop = store.shop(domain);
      return customerView(store.updateCustomer(shop, store.customer(shop, id), patch));
    },
    setEmailMarketing: (domain: string, id: number | string, input: MarketingInput) => {
      const shop = store.shop(domain);
      return customerView(store.setMarketing(shop, store.customer(shop, id), 'email', input));
    },
    confirmEmailMarketing: (domain: string, id: number | string, when?: string) => {
      const shop = store.shop(domain);
      return customerView(store.confirmEmail(shop, store.customer(shop, id), when));
    },
    setSmsMarketing: (domain: string, id: number | string, input: MarketingInput) => {
      const shop = store.shop(domain);
      return customerView(store.setMarketing(shop, store.customer(shop, id), 'sms', input));
    },
    unsubscribe: (domain: string, id: number | string, channel: MarketingChannel | 'all' = 'email', when?: string) => {
      const shop = store.shop(domain);
      return customerView(store.unsubscribe(shop, store.customer(shop, id), channel, when));
    },
    createProduct: (domain: string, input: ProductInput) => {
      const shop = store.shop(domain);
      return productView(shop, store.createProduct(shop, input));
    },
    updateProduct: (domain: string, id: number | string, patch: Omit<ProductInput, 'sku' | 'price' | 'handle'>) => {
      const shop = store.shop(domain);
      return productView(shop, store.updateProduct(shop, store.product(shop, id), patch));
    },
    createOrder: (domain: string, input: OrderInput) => orderView(store.createOrder(store.shop(domain), input)),
    payOrder: (domain: string, id: number | string, when?: string) => {
      const shop = store.shop(domain);
      return orderView(store.payOrder(shop, store.order(shop, id), when));
    },
    uninstall: (domain: string) => store.uninstall(store.shop(domain)),
    install: (domain: string, tokens: { accessToken: string; refreshToken?: string | null }) => store.install(store.shop(domain), tokens),
    customer: (domain: string, id: number | string) => {
      const shop = store.shop(domain);
      return customerView(store.customer(shop, id));
    },
    redeliver: (webhookId: string) => sender.redeliver(webhookId),
    deliveries: () => sender.log,
    flush: () => sender.flush(),
  };

  let url = '';
  const state = (): SimulatorState => ({
    url,
    appWebhookUrl: sender.target,
    apiVersion,
    counters: { ...counters },
    shops: [...store.shops.values()].map((shop) => ({
      domain: shop.domain,
      id: shop.id,
      name: shop.name,
      installed: shop.installed,
      doubleOptIn: shop.doubleOptIn,
      throttleStatus: bucketOf(shop).status(),
      counters: { ...shop.counters },
      accessTokens: [...shop.accessTokens].map(([token, issued]) => ({ token, expiresAt: iso(issued.expiresAt) })),
      refreshToken: shop.refreshToken?.token ?? null,
      customers: [...shop.customers.values()].map(customerView),
      products: [...shop.products.values()].map((p) => productView(shop, p)),
      orders: [...shop.orders.values()].map(orderView),
    })),
    webhooks: sender.log.map(({ body, ...rest }) => ({ ...rest, attempts: [...rest.attempts], payload: JSON.parse(body) as unknown })),
  });

  // ------------------------------------------------------------ HTTP
  const app = new Koa();
  const router = new Router();

  app.use(async (ctx, next) => {
    counters.requests++;
    try {
      await next();
    } catch (err) {
      if (err instanceof SimError) {
        ctx.status = err.status;
        ctx.body = { error: err.message };
        return;
      }
      const status = (err as { status?: number; expose?: boolean }).status;
      if (typeof status === 'number' && status >= 400 && status < 500) {
        ctx.status = status;
        ctx.body = { errors: (err as Error).message };
        return;
      }
      ctx.status = 500;
      ctx.body = { errors: 'Internal error in the Shopify simulator', detail: err instanceof Error ? err.message : String(err) };
    }
  });

  router.post('/admin/api/:version/graphql.json', async (ctx) => {
    const version = ctx.params.version!;
    if (!API_VERSION.test(version)) {
      ctx.status = 404;
      ctx.body = { errors: 'Not Found' };
      return;
    }
    const domain = shopDomainOf(ctx);
    const shop = domain === null ? undefined : store.shops.get(domain);
    if (shop === undefined) {
      ctx.status = 404;
      ctx.body = { errors: 'Not Found' };
      return;
    }
    const token = ctx.get('X-Shopify-Access-Token');
    if (token === '' || !store.tokenValid(shop, token)) {
      counters.unauthorized++;
      ctx.status = 401;
      ctx.body = { errors: INVALID_TOKEN };
      return;
    }
    const raw = await readBody(ctx);
    let body: unknown;
    if (ctx.is('application/graphql')) {
      body = { query: raw };
    } else {
      try {
        body = JSON.parse(raw);
      } catch {
        ctx.status = 400;
        ctx.body = { errors: 'Invalid JSON in request body' };
        return;
      }
    }
    counters.graphqlRequests++;
    shop.counters.graphqlRequests++;
    const answer = executeGraphql(body, { store, shop, clock, paginationLimit }, bucketOf(shop));
    if (answer.throttled) {
      counters.throttled++;
      shop.counters.throttled++;
    }
    ctx.set('X-Shopify-API-Version', version);
    ctx.set('X-Request-Id', randomUUID());
    ctx.status = answer.status;
    ctx.body = answer.body;
  });

  router.post('/admin/oauth/access_token', async (ctx) => {
    const raw = await readBody(ctx);
    let params: Record<string, unknown> = Object.fromEntries(new URLSearchParams(ctx.querystring));
    try {
      if (ctx.is('application/json')) params = { ...params, ...(JSON.parse(raw) as Record<string, unknown>) };
      else if (raw !== '') params = { ...params, ...Object.fromEntries(new URLSearchParams(raw)) };
    } catch {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'The request body is not valid JSON' };
      return;
    }
    const domain = shopDomainOf(ctx);
    const shop = domain === null ? undefined : store.shops.get(domain);
    if (shop === undefined) {
      ctx.status = 404;
      ctx.body = { errors: 'Not Found' };
      return;
    }
    if (params.client_id !== options.apiKey || params.client_secret !== clientSecret) {
      ctx.status = 401;
      ctx.body = { error: 'invalid_client', error_description: 'Client authentication failed' };
      return;
    }
    if (params.grant_type !== 'refresh_token') {
      ctx.status = 400;
      ctx.body = { error: 'unsupported_grant_type', error_description: `grant_type ${JSON.stringify(params.grant_type ?? null)} is not supported by the simulator (refresh_token only)` };
      return;
    }
    if (typeof params.refresh_token !== 'string' || params.refresh_token === '') {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'This request requires an active refresh_token' };
      return;
    }
    const pair = store.refresh(shop, params.refresh_token);
    if (pair === null) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_grant', error_description: 'The provided authorization grant is invalid, expired or revoked' };
      return;
    }
    counters.tokenRefreshes++;
    ctx.body = { access_token: pair.accessToken, expires_in: pair.expiresIn, refresh_token: pair.refreshToken, refresh_token_expires_in: pair.refreshExpiresIn, scope: scopes };
  });

  // /_sim: make things happen in a store. Answers the resulting object; `?wait=1` first waits for the webhooks.
  const simRoute = (method: 'post' | 'patch', path: string, handler: (ctx: Context, body: unknown) => unknown) => {
    router[method](path, async (ctx) => {
      const raw = await readBody(ctx);
      let body: unknown = {};
      if (raw.trim() !== '') {
        try {
          body = JSON.parse(raw);
        } catch {
          throw new SimError(400, 'the body is not JSON');
        }
      }
      const result = handler(ctx, body);
      if (ctx.query.wait === '1' || ctx.query.wait === 'true') await sender.flush();
      ctx.status = method === 'post' && /\/(customers|products|orders|shops)$/.test(path) ? 201 : 200;
      ctx.body = result ?? { ok: true };
    });
  };
  const p = (ctx: Context, name: string) => ctx.params[name]!;

  router.get('/_sim/state', (ctx) => {
    ctx.body = state();
  });
  router.post('/_sim/flush', async (ctx) => {
    await sender.flush();
    ctx.body = { ok: true };
  });
  router.post('/_sim/webhooks/:id/redeliver', async (ctx) => {
    const delivery = sender.redeliver(p(ctx, 'id'));
    if (delivery === null) throw new SimError(404, `no delivery ${p(ctx, 'id')}`);
    if (ctx.query.wait === '1' || ctx.query.wait === 'true') await sender.flush();
    ctx.body = { ...delivery, body: undefined, payload: JSON.parse(delivery.body) as unknown };
  });
  simRoute('post', '/_sim/app-url', (_ctx, body) => {
    api.setAppUrl(parseBody(schemas.appUrl, body).url);
    return { appWebhookUrl: sender.target };
  });
  simRoute('post', '/_sim/shops', (_ctx, body) => {
    const shop = addShop(parseBody(schemas.shop, body));
    return { domain: shop.domain, id: shop.id };
  });
  simRoute('post', '/_sim/shops/:shop/throttle', (ctx, body) => api.setThrottle(p(ctx, 'shop'), parseBody(schemas.throttle, body)));
  simRoute('post', '/_sim/shops/:shop/customers', (ctx, body) => api.createCustomer(p(ctx, 'shop'), parseBody(schemas.customer, body)));
  simRoute('patch', '/_sim/shops/:shop/customers/:id', (ctx, body) => api.updateCustomer(p(ctx, 'shop'), p(ctx, 'id'), parseBody(schemas.customerPatch, body)));
  simRoute('post', '/_sim/shops/:shop/customers/:id/email-marketing', (ctx, body) => api.setEmailMarketing(p(ctx, 'shop'), p(ctx, 'id'), parseBody(schemas.marketing, body)));
  simRoute('post', '/_sim/shops/:shop/customers/:id/email-marketing/confirm', (ctx, body) => api.confirmEmailMarketing(p(ctx, 'shop'), p(ctx, 'id'), parseBody(schemas.confirm, body).at));
  simRoute('post', '/_sim/shops/:shop/customers/:id/sms-marketing', (ctx, body) => api.setSmsMarketing(p(ctx, 'shop'), p(ctx, 'id'), parseBody(schemas.marketing, body)));
  simRoute('post', '/_sim/shops/:shop/customers/:id/unsubscribe', (ctx, body) => {
    const input = parseBody(schemas.unsubscribe, body);
    return api.unsubscribe(p(ctx, 'shop'), p(ctx, 'id'), input.channel ?? 'email', input.at);
  });
  simRoute('post', '/_sim/shops/:shop/products', (ctx, body) => api.createProduct(p(ctx, 'shop'), parseBody(schemas.product, body)));
  simRoute('patch', '/_sim/shops/:shop/products/:id', (ctx, body) => api.updateProduct(p(ctx, 'shop'), p(ctx, 'id'), parseBody(schemas.product.omit({ sku: true, price: true, handle: true }), body)));
  simRoute('post', '/_sim/shops/:shop/orders', (ctx, body) => api.createOrder(p(ctx, 'shop'), parseBody(schemas.order, body)));
  simRoute('post', '/_sim/shops/:shop/orders/:id/pay', (ctx, body) => api.payOrder(p(ctx, 'shop'), p(ctx, 'id'), parseBody(schemas.pay, body).at));
  simRoute('post', '/_sim/shops/:shop/uninstall', (ctx) => api.uninstall(p(ctx, 'shop')));
  simRoute('post', '/_sim/shops/:shop/install', (ctx, body) => api.install(p(ctx, 'shop'), parseBody(schemas.install, body)));

  app.use(router.routes());
  app.use(router.allowedMethods());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { errors: 'Not Found' };
  });

  const server = http.createServer(app.callback());
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  url = `http://${host}:${address.port}`;

  return {
    url,
    port: address.port,
    ...api,
    state,
    async stop() {
      sender.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
