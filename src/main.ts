/**
 * The composition root: the only module that chooses concrete pieces (database, logger, clock, ids, crypto)
 * and, as features land, wires connectors/ and webhooks/ into the core.
 */
import { v7 as uuidv7 } from 'uuid';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeConfig, type AppConfig } from './config/config';
import { createSecretBox, type SecretBox } from './crypto/secret-box';
import { createLogger } from './log/logger';
import type { Clock, IdGenerator, Logger } from './ports';
import { systemClock } from './ports';
import { GateCache } from './gate/cache';
import { gateObjectionRoutes } from './gate/objection';
import { gateRoutes } from './gate/routes';
import { InboxWriter } from './inbox/inbox';
import { InboxWorker } from './inbox/worker';
import { JobScheduler, type BackgroundJob } from './jobs/scheduler';
import { CachedProductCatalog } from './catalog/cached-catalog';
import type { ProductCatalog } from './catalog/catalog';
import { AppError } from './domain/errors';
import { OutboxDispatcher, type DispatcherOptions } from './outbox/dispatcher';
import type { Metrics, PlatformCallHook } from './metrics/metrics';
import { PrometheusMetrics, type BackfillProgressSource } from './metrics/prometheus';
import { metricsRoutes } from './metrics/routes';
import { syncHandlers } from './sync/handlers';
import { PlatformCallError, type HubspotPort, type ShopifyConsentPort } from './sync/ports';
import { DatabaseRateLimiter, MemoryRateLimiter } from './sync/rate-limit';
import { RefreshingAccessTokens } from './sync/tokens';
import { HubspotConnector } from '../connectors/hubspot/connector';
import { refreshHubspotToken } from '../connectors/hubspot/oauth';
import { customerIdRangeQuery, ShopifyConsentConnector } from '../connectors/shopify/consent';
import { refreshShopifyToken } from '../connectors/shopify/token';
import { runSoftOptInEvaluations } from './soft-opt-in/runner';
import { expiryJob } from './consent/expiry';
import { backfillJob, backfillProgress, type BackfillDeps } from './sync/backfill';
import { provisionJob } from './sync/provision';
import { reconcileJob } from './sync/reconcile';
import type { Tenant } from './tenants/tenants';
import { createShopifyAdminApi } from '../connectors/shopify/admin-api';
import { ShopifyProductCatalog } from '../connectors/shopify/catalog';
import { createServer, type Readiness } from './server/app';
import { openStore, pingStore, SQLITE_BUSY_TIMEOUT_MS, type Store } from './store/database';
import { SqliteOffload } from './store/sqlite-offload';
import { migrateToLatest, pendingMigrations } from './store/migrations';
import { CachedTenantLookup } from './tenants/tenants';
import { mapHubspotDelivery } from '../webhooks/hubspot/map';
import { hubspotActionRoutes } from '../webhooks/hubspot/actions';
import { hubspotRecordActionRoutes } from '../webhooks/hubspot/record-action';
import { hubspotWebhookRoutes } from '../webhooks/hubspot/routes';
import { mapShopifyDelivery } from '../webhooks/shopify/map';
import { shopifyWebhookRoutes } from '../webhooks/shopify/routes';
import { TimedOut, withinTime } from './jobs/time-limit';

export interface Runtime {
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly store: Store;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly secretBox: SecretBox | null;
  /** The SQLite file when the store was opened from the configuration (another connection can reach it), else null. */
  readonly sqliteFile: string | null;
  close(): Promise<void>;
}

export interface RuntimeOverrides {
  /** An already open store (tests pass one per database schema); the runtime closes it. */
  readonly store?: Store;
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly ids?: IdGenerator;
}

/**
 * Row ids: UUIDv7 (RFC 9562 §5.7) from the `uuid` library: a millisecond timestamp, a counter within the
 * millisecond and random bits, so ids made one after another sort in that order. Time-ordered keys
 * append to the end of each primary-key index instead of landing on a random page: on SQLite a commit then
 * rewrites a few pages, not one per row (the inbox insert cost 42 µs of CPU per row with random v4 ids and 27 µs
 * with ordered ones in a 48,000-row test; bench:ingest). No id is a secret (API keys are their own random bytes),
 * so the creation time they carry is fine.
 */
export const uuidIds: IdGenerator = { next: () => uuidv7() };

export function createRuntime(config: AppConfig, overrides: RuntimeOverrides = {}): Runtime {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const store =
    overrides.store ??
    openStore(config.database, { onConnectionError: (err) => logger.warn({ err }, 'a PostgreSQL connection was lost; the next query opens a new one') });
  return {
    config,
    logger,
    store,
    clock: overrides.clock ?? systemClock,
    ids: overrides.ids ?? uuidIds,
    secretBox: config.encryptionKey ? createSecretBox(config.encryptionKey) : null,
    sqliteFile: overrides.store === undefined && config.database.kind === 'sqlite' && config.database.file !== ':memory:' ? config.database.file : null,
    close: () => store.close(),
  };
}

/** Longest `/readyz` waits for the database (ms): a load balancer's probe gets a 503 rather than no answer. */
export const READINESS_TIMEOUT_MS = 2000;

export async function checkReadiness(store: Store, timeoutMs = READINESS_TIMEOUT_MS): Promise<Readiness> {
  try {
    await withinTime(pingStore(store), timeoutMs, 'the database');
  } catch (err) {
    return { ready: false, checks: { database: { ok: false, detail: err instanceof Error ? err.message : 'unreachable' }, migrations: { ok: false, detail: 'database unreachable' } } };
  }
  try {
    const pending = await withinTime(pendingMigrations(store), timeoutMs, 'the migration check');
    return {
      ready: pending.length === 0,
      checks: { database: { ok: true }, migrations: pending.length === 0 ? { ok: true } : { ok: false, detail: `pending: ${pending.join(', ')}` } },
    };
  } catch (err) {
    return { ready: false, checks: { database: { ok: true }, migrations: { ok: false, detail: err instanceof Error ? err.message : 'unknown' } } };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A platform not configured: its writes wait (retried every 15 min) instead of dying, and say what is missing. */
function notConfigured(platform: 'shopify' | 'hubspot', missing: readonly string[]): never {
  throw new PlatformCallError(platform, `${platform} is not configured: set ${missing.join(', ')}`, { retryable: true, retryAfterMs: 15 * 60_000, kind: 'auth' });
}

export interface PlatformPorts {
  readonly hubspot: HubspotPort;
  readonly shopify: ShopifyConsentPort;
  readonly catalog: ProductCatalog;
  /** The platforms this process has the settings to call (the others' ports answer "not configured"). */
  readonly configured: ReadonlyArray<'shopify' | 'hubspot'>;
}

/**
 * Connector settings that have no environment variable (sandboxes and benchmarks set them; `serve` keeps the
 * defaults). `timeoutMs`: per HubSpot request, API and OAuth (default 15 s). `batchScopes`: whether the portals granted
 * the v4 batch subscription scopes (Marketing Hub Enterprise), so unsubscribes, fresh re-subscribes and status reads
 * go 100 at a time (default: detected from each tenant's token).
 */
export interface HubspotTuning {
  readonly timeoutMs?: number;
  readonly batchScopes?: boolean;
}

/**
 * The platform connectors with their shared pieces: stored tokens refreshed before expiry, and one rate limiter
 * per process (database-backed on PostgreSQL, so every worker shares each portal's budget). Without a platform's
 * credentials or ENCRYPTION_KEY (no stored tokens) its calls fail as retryable `not configured`, so writes wait and
 * paid orders are not evaluated without knowing what was bought.
 */
export function createPlatformPorts(runtime: Runtime, options: { onCall?: PlatformCallHook; hubspot?: HubspotTuning } = {}): PlatformPorts {
  const { config, secretBox, store, clock, logger } = runtime;
  const onCall = options.onCall ? { onCall: options.onCall } : {};
  const hubspotTimeout = options.hubspot?.timeoutMs !== undefined ? { timeoutMs: options.hubspot.timeoutMs } : {};
  const shopifyMissing = [config.shopify.apiKey === null && 'SHOPIFY_API_KEY', config.shopify.apiSecret === null && 'SHOPIFY_API_SECRET', secretBox === null && 'ENCRYPTION_KEY'].filter(
    (m): m is string => m !== false,
  );
  const hubspotMissing = [config.hubspot.clientId === null && 'HUBSPOT_CLIENT_ID', config.hubspot.clientSecret === null && 'HUBSPOT_CLIENT_SECRET', secretBox === null && 'ENCRYPTION_KEY'].filter(
    (m): m is string => m !== false,
  );
  const shopifyBaseUrl = config.shopify.apiBaseUrl ?? undefined;
  const hubspotBaseUrl = config.hubspot.apiBaseUrl ?? undefined;
  const limiter =
    store.dialect === 'postgres'
      ? new DatabaseRateLimiter({ store, epochMs: () => Date.now(), nowMs: () => performance.now(), sleep })
      : new MemoryRateLimiter({ nowMs: () => performance.now(), sleep });
  const tokens =
    secretBox === null
      ? null
      : new RefreshingAccessTokens({
          store,
          secretBox,
          clock,
          logger: logger.child({ component: 'access-tokens' }),
          refreshers: {
            ...(config.shopify.apiKey !== null && config.shopify.apiSecret !== null
              ? { shopify: (refreshToken: string, tenant: Tenant) => refreshShopifyToken({ apiKey: config.shopify.apiKey!, apiSecretKey: config.shopify.apiSecret!, clock, ...(shopifyBaseUrl ? { baseUrl: shopifyBaseUrl } : {}) }, tenant.shopDomain, refreshToken) }
              : {}),
            ...(config.hubspot.clientId !== null && config.hubspot.clientSecret !== null
              ? { hubspot: (refreshToken: string) => refreshHubspotToken({ clientId: config.hubspot.clientId!, clientSecret: config.hubspot.clientSecret!, clock, ...(hubspotBaseUrl ? { baseUrl: hubspotBaseUrl } : {}), ...hubspotTimeout }, refreshToken) }
              : {}),
          },
        });

  let shopify: ShopifyConsentPort;
  let catalog: ProductCatalog;
  if (shopifyMissing.length > 0 || tokens === null) {
    shopify = { updateConsent: async () => notConfigured('shopify', shopifyMissing), customersPage: async () => notConfigured('shopify', shopifyMissing) };
    catalog = { products: () => Promise.reject(new AppError('feature_disabled', `product catalog needs ${shopifyMissing.join(', ')}`)) };
  } else {
    const api = createShopifyAdminApi({ apiKey: config.shopify.apiKey!, apiSecretKey: config.shopify.apiSecret!, appUrl: config.appUrl, logger });
    const routing = shopifyBaseUrl ? { baseUrl: shopifyBaseUrl } : {};
    shopify = new ShopifyConsentConnector({ shopify: api, tokens, logger: logger.child({ component: 'shopify-consent' }), ...routing, ...onCall });
    const tokenFor = async (tenant: Tenant): Promise<string | null> => (tenant.status === 'active' ? tokens.accessToken(tenant, 'shopify') : null);
    catalog = new CachedProductCatalog({ store, clock, inner: new ShopifyProductCatalog({ shopify: api, tokenFor, logger: logger.child({ component: 'product-catalog' }), ...routing, ...onCall }) });
  }
  const hubspot: HubspotPort =
    hubspotMissing.length > 0 || tokens === null
      ? {
          provision: async () => notConfigured('hubspot', hubspotMissing),
          upsertContactProperties: async () => notConfigured('hubspot', hubspotMissing),
          setSubscriptions: async () => notConfigured('hubspot', hubspotMissing),
          setListMembership: async () => notConfigured('hubspot', hubspotMissing),
          contactIdsByEmail: async () => notConfigured('hubspot', hubspotMissing),
          contactsModifiedSince: async () => notConfigured('hubspot', hubspotMissing),
          subscriptionStatuses: async () => notConfigured('hubspot', hubspotMissing),
        }
      : new HubspotConnector(
          { tokens, limiter, logger: logger.child({ component: 'hubspot' }), clock, ...(hubspotBaseUrl ? { baseUrl: hubspotBaseUrl } : {}), ...hubspotTimeout, ...onCall },
          { batchScopes: options.hubspot?.batchScopes ?? 'detect' },
        );
  const configured = [shopifyMissing.length === 0 && tokens !== null && ('shopify' as const), hubspotMissing.length === 0 && tokens !== null && ('hubspot' as const)].filter(
    (p): p is 'shopify' | 'hubspot' => p !== false,
  );
  return { hubspot, shopify, catalog, configured };
}

/**
 * Rows the sync's dispatcher claims per step. Large enough that a burst of changes is sent in full platform
 * batches (N changes → ceil(N / 100) HubSpot calls per operation while N fits in one claim), small enough that a
 * step finishes well within the lease (renewed between chunks anyway).
 */
export const SYNC_CLAIM_SIZE = 1000;

/** Dispatcher settings that have no environment variable (a sandbox or benchmark shortens the backoff). */
export type OutboxTuning = Partial<Pick<DispatcherOptions, 'backoffBaseMs' | 'backoffCapMs'>>;

/** The outbox dispatcher with the sync's handlers (inside `serve`, or `consent-bridge worker`). */
export function createOutboxDispatcher(runtime: Runtime, ports: PlatformPorts, options: { random?: () => number; metrics?: Metrics; tuning?: OutboxTuning } = {}): OutboxDispatcher {
  const logger = runtime.logger.child({ component: 'outbox' });
  return new OutboxDispatcher(
    {
      store: runtime.store,
      clock: runtime.clock,
      logger,
      handlers: syncHandlers({ store: runtime.store, clock: runtime.clock, logger, hubspot: ports.hubspot, shopify: ports.shopify }),
      // Writes for a platform this process cannot call wait, pending, for one that can (not retried into dead letters).
      platforms: ports.configured,
      ...(options.random ? { random: options.random } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
    },
    { maxAttempts: runtime.config.outbox.maxAttempts, batchSize: SYNC_CLAIM_SIZE, ...options.tuning },
  );
}

/** What the backfill needs (the job below and `consent-bridge backfill`): ports, and Shopify's id-range query. */
export function backfillDeps(runtime: Runtime, platforms: Pick<PlatformPorts, 'hubspot' | 'shopify'>): BackfillDeps {
  const { store, clock, ids, logger } = runtime;
  return { store, clock, ids, logger, hubspot: platforms.hubspot, shopify: platforms.shopify, rangeQuery: customerIdRangeQuery };
}

/**
 * Background jobs (src/jobs/scheduler.ts, each on its own loop): soft opt-in evaluation of paid orders (every second), expiry of soft opt-ins and
 * consents (every 15 min); with the platform ports also the HubSpot reconciliation poll (each tenant every
 * `reconciliationIntervalMinutes`) and the backfill of tenants never backfilled (both in short slices).
 */
export function backgroundJobs(runtime: Runtime, catalog: ProductCatalog, platforms?: Pick<PlatformPorts, 'hubspot' | 'shopify'>): BackgroundJob[] {
  const deps = { store: runtime.store, clock: runtime.clock, ids: runtime.ids, catalog, logger: runtime.logger.child({ component: 'soft-opt-in' }) };
  const jobs: BackgroundJob[] = [{ name: 'soft-opt-in', intervalMs: 1000, run: async () => (await runSoftOptInEvaluations(deps)).evaluated }, expiryJob(runtime.store, runtime)];
  if (platforms !== undefined) {
    const { store, clock, ids, logger } = runtime;
    jobs.push(
      provisionJob({ store, clock, logger: logger.child({ component: 'provision' }), hubspot: platforms.hubspot }),
      reconcileJob({ store, clock, ids, logger, hubspot: platforms.hubspot }),
      backfillJob(backfillDeps(runtime, platforms)),
    );
  }
  return jobs;
}

/** The background jobs on their own loops (inside `serve`, or `consent-bridge worker`). */
export function createJobScheduler(runtime: Runtime, jobs: readonly BackgroundJob[]): JobScheduler {
  return new JobScheduler(jobs, { logger: runtime.logger });
}

/**
 * The inbox worker with the platform mappers (webhooks/<platform>/map.ts). `inProcessWith`: the `serve`
 * process's inbox writer; the worker then works in 5 ms slices, lets waiting webhook requests commit first and,
 * while webhooks arrive, rests 10 ms between slices (src/inbox/worker.ts).
 */
export function createWorker(runtime: Runtime, options: { random?: () => number; inProcessWith?: InboxWriter } = {}): InboxWorker {
  const writer = options.inProcessWith;
  return new InboxWorker(
    {
      store: runtime.store,
      mappers: { shopify: (delivery) => mapShopifyDelivery(delivery), hubspot: mapHubspotDelivery },
      mapperContext: { hubspotAppId: runtime.config.hubspot.appId },
      clock: runtime.clock,
      ids: runtime.ids,
      logger: runtime.logger.child({ component: 'inbox-worker' }),
      ...(options.random ? { random: options.random } : {}),
      ...(writer ? { requestsWaiting: () => writer.busy, requestsActive: () => writer.activeWithin(100) } : {}),
    },
    { maxAttempts: runtime.config.worker.maxAttempts, ...(writer ? { sliceMs: 5, restWhileActiveMs: 10 } : {}) },
  );
}

/**
 * The app's metrics (GET /metrics): its own prom-client registry, queue depths and lags read from the runtime's
 * store at scrape time, timed by the runtime's clock. `defaultMetrics: false` leaves out the process metrics (see PrometheusMetricsOptions).
 */
export function createMetrics(runtime: Runtime, options: { defaultMetrics?: boolean; progressSource?: BackfillProgressSource } = {}): PrometheusMetrics {
  return new PrometheusMetrics({ store: runtime.store, logger: runtime.logger.child({ component: 'metrics' }), nowMs: () => runtime.clock.now().getTime(), ...options });
}

/**
 * The HTTP app with every route module of the features built so far. `metrics`: what `serve` counts and shows
 * at GET /metrics; without it the app gets its own registry without process metrics (tests build many apps).
 */
export function buildApp(runtime: Runtime, hooks: { onAccepted?: () => void; inbox?: InboxWriter; metrics?: PrometheusMetrics } = {}) {
  const metrics = hooks.metrics ?? createMetrics(runtime, { defaultMetrics: false });
  const webhookDeps = {
    config: runtime.config,
    store: runtime.store,
    clock: runtime.clock,
    ids: runtime.ids,
    logger: runtime.logger,
    tenants: new CachedTenantLookup(runtime.store, { ttlMs: runtime.config.tenantCacheMs, nowMs: () => performance.now() }),
    inbox: hooks.inbox ?? new InboxWriter(runtime.store, runtime),
    ...(hooks.onAccepted ? { onAccepted: hooks.onAccepted } : {}),
    metrics,
  };
  const gateFacts = runtime.config.gateCacheMaxSubjects > 0 ? new GateCache({ maxSubjects: runtime.config.gateCacheMaxSubjects }) : undefined;
  return createServer(
    {
      config: runtime.config,
      logger: runtime.logger,
      ids: runtime.ids,
      readiness: () => checkReadiness(runtime.store),
    },
    [
      shopifyWebhookRoutes(webhookDeps),
      hubspotWebhookRoutes(webhookDeps),
      hubspotActionRoutes(webhookDeps),
      hubspotRecordActionRoutes(webhookDeps),
      gateRoutes({ store: runtime.store, clock: runtime.clock, metrics, ...(gateFacts ? { facts: gateFacts } : {}) }),
      gateObjectionRoutes({ store: runtime.store, clock: runtime.clock, ids: runtime.ids }),
      metricsRoutes({ metrics, token: runtime.config.metricsToken }),
    ],
  );
}

export interface RunningServer {
  readonly url: string;
  readonly server: http.Server;
  /**
   * Graceful stop: refuse new connections, let in-flight requests finish (up to the timeout), stop the background
   * work and close the db. Rejects when the background work has not stopped SHUTDOWN_TIMEOUT_MS + 5 s later.
   */
  stop(reason?: string): Promise<void>;
}

/** Added to SHUTDOWN_TIMEOUT_MS for the background work's stop, since the jobs get SHUTDOWN_TIMEOUT_MS of their own. */
const BACKGROUND_STOP_GRACE_MS = 5000;

/**
 * Stop the background work (`stop`: worker, jobs, outbox …) of `serve` or `worker`, waiting at most
 * SHUTDOWN_TIMEOUT_MS + 5 s: a database that stopped answering must not hold the process forever. A timeout or a
 * failure is logged and rethrown; the caller ends the process (what was not committed stays pending and is picked
 * up on restart).
 */
export async function stopBackgroundWithin(runtime: Runtime, what: string, stop: () => Promise<void>): Promise<void> {
  try {
    await withinTime(stop(), runtime.config.shutdownTimeoutMs + BACKGROUND_STOP_GRACE_MS, `stopping ${what}`);
  } catch (err) {
    runtime.logger.error({ err }, err instanceof TimedOut ? `${what} did not stop in time` : `stopping ${what} failed`);
    throw err;
  }
}

/**
 * `hubspot` and `outbox`: settings without an environment variable, for sandboxes and benchmarks (defaults as in
 * `serve`).
 */
export async function startServer(runtime: Runtime, options: { migrate?: boolean; hubspot?: HubspotTuning; outbox?: OutboxTuning } = {}): Promise<RunningServer> {
  const { config, logger } = runtime;
  if (options.migrate !== false) {
    const result = await migrateToLatest(runtime.store);
    const applied = (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  }
  // The worker runs inside `serve` unless RUN_WORKER=false (then `consent-bridge worker` runs apart).
  // SQLite file: the request path's commits run on a thread of their own (src/store/sqlite-offload.ts).
  const offload = runtime.sqliteFile !== null && config.sqliteWriteThread && SqliteOffload.available() ? new SqliteOffload(runtime.sqliteFile, { busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS }) : null;
  const inbox = new InboxWriter(runtime.store, runtime, undefined, offload);
  const metrics = createMetrics(runtime, { progressSource: () => backfillProgress(runtime.store) });
  const ports = createPlatformPorts(runtime, { onCall: (platform, outcome) => metrics.platformCall(platform, outcome), ...(options.hubspot ? { hubspot: options.hubspot } : {}) });
  const worker = config.worker.inProcess ? createWorker(runtime, { inProcessWith: inbox }) : null;
  const jobs = config.worker.inProcess ? createJobScheduler(runtime, backgroundJobs(runtime, ports.catalog, ports)) : null;
  const outbox = config.worker.inProcess ? createOutboxDispatcher(runtime, ports, { metrics, ...(options.outbox ? { tuning: options.outbox } : {}) }) : null;
  const app = buildApp(runtime, { inbox, metrics, ...(worker ? { onAccepted: () => worker.notify() } : {}) });
  const server = http.createServer(app.callback());
  // Keep-alive sockets would hold `close()` open; idle ones are closed on shutdown, busy ones finish first.
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
  } catch (err) {
    // Port taken, address not available …: the write thread would keep the process alive, so a supervisor would
    // never see the failure and restart it.
    await offload?.close();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info({ url, features: describeConfig(config), worker: worker ? 'in-process' : 'off (RUN_WORKER=false)' }, 'consent-bridge listening');
  worker?.start();
  outbox?.start();
  jobs?.start();

  let stopping: Promise<void> | undefined;
  const stop = (reason = 'stop'): Promise<void> => {
    stopping ??= (async () => {
      logger.info({ reason }, 'shutting down: no new connections, finishing in-flight requests');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs);
        timer.unref();
      });
      if ((await Promise.race([closed, timedOut])) === 'timeout') {
        logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'in-flight requests did not finish in time; closing connections');
        server.closeAllConnections();
        await closed;
      }
      clearTimeout(timer);
      await stopBackgroundWithin(runtime, 'background work', async () => {
        // Requests are done, so nothing new reaches the inbox; the delivery in progress commits or rolls back.
        await offload?.close();
        await worker?.stop();
        await jobs?.stop(config.shutdownTimeoutMs);
        // After the worker and the jobs (they enqueue): the chunk in flight finishes and is recorded; the rest stay due.
        await outbox?.stop();
        await runtime.close();
      });
      logger.info({}, 'stopped');
    })();
    return stopping;
  };
  return { url, server, stop };
}
