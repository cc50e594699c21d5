/**
 * The composition root: the only module that chooses concrete pieces (database, logger, clock, ids, crypto)
 * and, as features land, wires connectors/ and webhooks/ into the core.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeConfig, type AppConfig } from './config/config';
import { createSecretBox, type SecretBox } from './crypto/secret-box';
import { createLogger } from './log/logger';
import type { Clock, IdGenerator, Logger } from './ports';
import { systemClock } from './ports';
import { gateRoutes } from './gate/routes';
import { InboxWriter } from './inbox/inbox';
import { InboxWorker } from './inbox/worker';
import { createServer, type Readiness } from './server/app';
import { openStore, pingStore, type Store } from './store/database';
import { migrateToLatest, pendingMigrations } from './store/migrations';
import { CachedTenantLookup } from './tenants/tenants';
import { mapHubspotDelivery } from '../webhooks/hubspot/map';
import { hubspotWebhookRoutes } from '../webhooks/hubspot/routes';
import { mapShopifyDelivery } from '../webhooks/shopify/map';
import { shopifyWebhookRoutes } from '../webhooks/shopify/routes';

export interface Runtime {
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly store: Store;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly secretBox: SecretBox | null;
  close(): Promise<void>;
}

export interface RuntimeOverrides {
  /** An already open store (tests pass one per database schema); the runtime closes it. */
  readonly store?: Store;
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly ids?: IdGenerator;
}

export const uuidIds: IdGenerator = { next: () => randomUUID() };

export function createRuntime(config: AppConfig, overrides: RuntimeOverrides = {}): Runtime {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const store = overrides.store ?? openStore(config.database);
  return {
    config,
    logger,
    store,
    clock: overrides.clock ?? systemClock,
    ids: overrides.ids ?? uuidIds,
    secretBox: config.encryptionKey ? createSecretBox(config.encryptionKey) : null,
    close: () => store.close(),
  };
}

export async function checkReadiness(store: Store): Promise<Readiness> {
  try {
    await pingStore(store);
  } catch (err) {
    return { ready: false, checks: { database: { ok: false, detail: err instanceof Error ? err.message : 'unreachable' }, migrations: { ok: false, detail: 'database unreachable' } } };
  }
  try {
    const pending = await pendingMigrations(store);
    return {
      ready: pending.length === 0,
      checks: { database: { ok: true }, migrations: pending.length === 0 ? { ok: true } : { ok: false, detail: `pending: ${pending.join(', ')}` } },
    };
  } catch (err) {
    return { ready: false, checks: { database: { ok: true }, migrations: { ok: false, detail: err instanceof Error ? err.message : 'unknown' } } };
  }
}

/**
 * The inbox worker with the platform mappers (webhooks/<platform>/map.ts). `inProcessWith`: the `serve`
 * process's inbox writer; the worker then works in 10 ms slices and lets waiting webhook requests go first.
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
      ...(writer ? { requestsWaiting: () => writer.busy } : {}),
    },
    { maxAttempts: runtime.config.worker.maxAttempts, ...(writer ? { sliceMs: 10 } : {}) },
  );
}

/** The HTTP app with every route module of the features built so far. */
export function buildApp(runtime: Runtime, hooks: { onAccepted?: () => void; inbox?: InboxWriter } = {}) {
  const webhookDeps = {
    config: runtime.config,
    store: runtime.store,
    clock: runtime.clock,
    ids: runtime.ids,
    logger: runtime.logger,
    tenants: new CachedTenantLookup(runtime.store, { ttlMs: runtime.config.tenantCacheMs, nowMs: () => performance.now() }),
    inbox: hooks.inbox ?? new InboxWriter(runtime.store, runtime),
    ...(hooks.onAccepted ? { onAccepted: hooks.onAccepted } : {}),
  };
  return createServer(
    {
      config: runtime.config,
      logger: runtime.logger,
      ids: runtime.ids,
      readiness: () => checkReadiness(runtime.store),
    },
    [shopifyWebhookRoutes(webhookDeps), hubspotWebhookRoutes(webhookDeps), gateRoutes({ store: runtime.store, clock: runtime.clock })],
  );
}

export interface RunningServer {
  readonly url: string;
  readonly server: http.Server;
  /** Graceful stop: refuse new connections, let in-flight requests finish (up to the timeout), close the db. */
  stop(reason?: string): Promise<void>;
}

export async function startServer(runtime: Runtime, options: { migrate?: boolean } = {}): Promise<RunningServer> {
  const { config, logger } = runtime;
  if (options.migrate !== false) {
    const result = await migrateToLatest(runtime.store);
    const applied = (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  }
  // The worker runs inside `serve` unless RUN_WORKER=false (then `consent-bridge worker` runs apart).
  const inbox = new InboxWriter(runtime.store, runtime);
  const worker = config.worker.inProcess ? createWorker(runtime, { inProcessWith: inbox }) : null;
  const app = buildApp(runtime, { inbox, ...(worker ? { onAccepted: () => worker.notify() } : {}) });
  const server = http.createServer(app.callback());
  // Keep-alive sockets would hold `close()` open; idle ones are closed on shutdown, busy ones finish first.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info({ url, features: describeConfig(config), worker: worker ? 'in-process' : 'off (RUN_WORKER=false)' }, 'consent-bridge listening');
  worker?.start();

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
      // Requests are done, so nothing new reaches the inbox; the delivery in progress commits or rolls back.
      await worker?.stop();
      await runtime.close();
      logger.info({}, 'stopped');
    })();
    return stopping;
  };
  return { url, server, stop };
}
