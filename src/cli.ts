/**
 * `consent-bridge` command line (package bin, also `npm run cli -- …`).
 *
 * Exit codes: 0 success; 1 the operation failed (invalid configuration, ledger verification failed, database
 * unreachable, tenant not found or already linked); 2 bad arguments or invalid input (usage errors, a settings
 * file that fails the schema).
 */
import fs from 'node:fs';
import { z } from 'zod';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, describeConfig, loadConfig, type AppConfig } from './config/config';
import { readEnvironment } from './config/env';
import { expireDue } from './consent/expiry';
import { AppError } from './domain/errors';
import { createApiKey, listApiKeys, revokeApiKey } from './gate/api-keys';
import { formatExplanation, loadEvidence, loadOrderOutcomes } from './gate/explain';
import { checkRecipients, parseGateRequest } from './gate/gate';
import { identityOf } from './gate/recipient';
import { rebuildProjection, verifyLedger } from './ledger/ledger';
import type { Decision } from './rules/decide';
import { createLogger, silentLogger } from './log/logger';
import { inboxStats, listDeadDeliveries, pruneProcessedDeliveries, retryDeadDeliveries } from './inbox/inbox';
import { listDeadOutbox, outboxStats, retryDeadOutbox } from './outbox/outbox';
import {
  createRuntime,
  backfillDeps,
  backgroundJobs,
  createJobScheduler,
  createOutboxDispatcher,
  createPlatformPorts,
  createWorker,
  startServer,
  stopBackgroundWithin,
  type Runtime,
} from './main';
import { backfillProgress, runBackfill, type BackfillProgress, type BackfillResult } from './sync/backfill';
import { provisioningOf } from './sync/provision';
import { migrateToLatest } from './store/migrations';
import { tenantIdsWithEvents } from './store/ledger.repository';
import { addTenant, listTenants, requireTenant, setTenantSettings, type PlatformCredentials, type Tenant } from './tenants/tenants';

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Install SIGTERM/SIGINT handlers for `serve` (the real process); tests stop the server themselves. */
  readonly handleSignals: boolean;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

function exitCodeFor(err: AppError): number {
  return err.code === 'validation_failed' || err.code === 'bad_request' ? EXIT_USAGE : EXIT_FAILURE;
}

function tenantSummary(t: Tenant): Record<string, unknown> {
  return {
    id: t.id,
    shopDomain: t.shopDomain,
    hubspotPortalId: t.hubspotPortalId,
    status: t.status,
    // Tokens are never printed; only whether encrypted credentials are stored.
    shopifyCredentials: t.hasShopifyCredentials ? 'stored (encrypted)' : 'none',
    hubspotCredentials: t.hasHubspotCredentials ? 'stored (encrypted)' : 'none',
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  };
}

function credentials(accessToken: string | undefined, refreshToken: string | undefined, expiresAt: string | undefined): PlatformCredentials | undefined {
  if (accessToken === undefined) return undefined;
  return { accessToken, ...(refreshToken ? { refreshToken } : {}), ...(expiresAt ? { expiresAt } : {}) };
}

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new AppError('bad_request', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AppError('bad_request', `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

const credentialsSchema = z.strictObject({ accessToken: z.string().min(1), refreshToken: z.string().min(1).optional(), expiresAt: z.iso.datetime({ offset: true }).optional() });
const credentialsFileSchema = z.strictObject({ shopify: credentialsSchema.optional(), hubspot: credentialsSchema.optional() });

/**
 * `--credentials-file`: tokens read from a JSON file (`{"shopify": {"accessToken", "refreshToken"?, "expiresAt"?},
 * "hubspot": {…}}`) instead of the command line, where the process list and the shell history would show them.
 */
function readCredentialsFile(path: string): { shopify?: PlatformCredentials; hubspot?: PlatformCredentials } {
  const parsed = credentialsFileSchema.safeParse(readJsonFile(path));
  if (!parsed.success) {
    throw new AppError('bad_request', `${path}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')}`);
  }
  const strip = (c: z.infer<typeof credentialsSchema> | undefined): PlatformCredentials | undefined => (c === undefined ? undefined : credentials(c.accessToken, c.refreshToken, c.expiresAt));
  const shopify = strip(parsed.data.shopify);
  const hubspot = strip(parsed.data.hubspot);
  return { ...(shopify ? { shopify } : {}), ...(hubspot ? { hubspot } : {}) };
}

/** `--limit`: a whole number from 1 to 10,000 (exit 2 otherwise). */
function parseLimit(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new AppError('bad_request', '--limit must be a whole number from 1 to 10000');
  return limit;
}

/** `--tenant REF` as a filter: `{ tenantId }`, or no filter without the option (an unknown REF exits 1). */
async function tenantFilter(runtime: Runtime, ref: string | undefined): Promise<{ tenantId?: string }> {
  return ref ? { tenantId: (await requireTenant(runtime.store, ref)).id } : {};
}

async function backfillProgressOf(runtime: Runtime, tenantId: string): Promise<BackfillProgress | undefined> {
  return (await backfillProgress(runtime.store)).find((p) => p.tenant === tenantId);
}

/** One tenant (by id, shop domain or portal id), or every tenant that has a ledger. */
async function tenantIdsFor(runtime: Runtime, ref: string | undefined): Promise<string[]> {
  return ref ? [(await requireTenant(runtime.store, ref)).id] : tenantIdsWithEvents(runtime.store.db);
}

export async function runCli(argv: readonly string[], io: Partial<CliIo> = {}): Promise<number> {
  const cwd = io.cwd ?? process.cwd();
  const out = io.stdout ?? ((text: string) => process.stdout.write(text));
  const err = io.stderr ?? ((text: string) => process.stderr.write(text));
  let env: Record<string, string | undefined>;
  try {
    env = io.env ?? readEnvironment(io.cwd);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    err(`${error.message}\n`);
    return EXIT_FAILURE;
  }
  const println = (line = ''): void => out(`${line}\n`);
  let exitCode = EXIT_OK;

  const config = (): AppConfig => loadConfig(env, cwd);
  /** Open the store for one command and always close it. */
  const withRuntime = async <T>(fn: (runtime: Runtime) => Promise<T>, options: { migrate?: boolean } = { migrate: true }): Promise<T> => {
    const runtime = createRuntime(config(), { logger: silentLogger });
    try {
      if (options.migrate) await migrateToLatest(runtime.store);
      return await fn(runtime);
    } finally {
      await runtime.close();
    }
  };

  const program = new Command('consent-bridge')
    .description('Marketing-consent sync between Shopify and HubSpot, with soft opt-in and a send gate.')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err })
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('serve')
    .description('run the HTTP server (migrations are applied first)')
    .action(async () => {
      const cfg = config();
      const runtime = createRuntime(cfg, { logger: createLogger({ level: cfg.logLevel }) });
      const running = await startServer(runtime).catch(async (err: unknown) => {
        await runtime.close();
        throw err;
      });
      // One write, so the banner is never interleaved with log lines.
      out([`consent-bridge listening on ${running.url}`, ...describeConfig(cfg).map((line) => `  ${line}`), ''].join('\n'));
      await new Promise<void>((resolve) => {
        if (io.handleSignals !== false) {
          const onSignal = (signal: NodeJS.Signals): void => {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
            void running.stop(signal).then(resolve, () => {
              // Logged by stop: something (a database that stopped answering) may still hold the event loop.
              setImmediate(() => process.exit(EXIT_FAILURE));
              resolve();
            });
          };
          process.on('SIGTERM', onSignal);
          process.on('SIGINT', onSignal);
        }
        running.server.once('close', () => resolve());
      });
    });

  program
    .command('worker')
    .description('run the inbox worker, its jobs and the outbox dispatcher alone (serve runs them too unless RUN_WORKER=false); several may run on PostgreSQL')
    .option('--once', 'process every due delivery, run the jobs once, dispatch every due outbox write, then exit')
    .action(async (opts: { once?: boolean }) => {
      const cfg = config();
      const runtime = createRuntime(cfg, { logger: createLogger({ level: cfg.logLevel }) });
      try {
        await migrateToLatest(runtime.store);
        const ports = createPlatformPorts(runtime);
        const jobs = createJobScheduler(runtime, backgroundJobs(runtime, ports.catalog, ports));
        const worker = createWorker(runtime);
        const outbox = createOutboxDispatcher(runtime, ports);
        if (opts.once) {
          const handled = await worker.drain();
          await jobs.runAll();
          const written = await outbox.drain();
          println(`processed ${handled} deliver${handled === 1 ? 'y' : 'ies'}; dispatched ${written} outbox write${written === 1 ? '' : 's'}`);
          return;
        }
        out(`consent-bridge worker running on ${runtime.store.description}\n`);
        worker.start();
        outbox.start();
        jobs.start();
        await new Promise<void>((resolve) => {
          if (io.handleSignals === false) return resolve();
          const onSignal = (): void => {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
            resolve();
          };
          process.on('SIGTERM', onSignal);
          process.on('SIGINT', onSignal);
        });
        await stopBackgroundWithin(runtime, 'the worker', async () => {
          await worker.stop();
          await jobs.stop(cfg.shutdownTimeoutMs);
          await outbox.stop();
        }).catch(() => setImmediate(() => process.exit(EXIT_FAILURE))); // logged; something may still hold the event loop
      } finally {
        await runtime.close();
      }
    });

  program
    .command('migrate')
    .description('apply pending database migrations')
    .action(async () => {
      await withRuntime(async (runtime) => {
        const result = await migrateToLatest(runtime.store);
        const applied = (result.results ?? []).map((r) => r.migrationName);
        println(applied.length === 0 ? `${runtime.store.description}: up to date` : `${runtime.store.description}: applied ${applied.join(', ')}`);
      }, { migrate: false });
    });

  const ledger = program.command('ledger').description('inspect the consent ledger');
  ledger
    .command('verify')
    .description('check every tenant chain (or one) for edited, deleted, inserted or reordered events')
    .option('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .action(async (opts: { tenant?: string }) => {
      await withRuntime(async (runtime) => {
        const tenantIds = await tenantIdsFor(runtime, opts.tenant);
        const started = Date.now();
        let events = 0;
        for (const tenantId of tenantIds) {
          const result = await verifyLedger(runtime.store.db, tenantId);
          events += result.events;
          if (result.ok) {
            println(`ok   tenant ${tenantId}: ${result.events} events, head ${result.headHash}`);
          } else {
            const p = result.firstProblem!;
            println(`FAIL tenant ${tenantId}: first bad event at seq ${p.seq}${p.eventId ? ` (event ${p.eventId})` : ''}: ${p.problem}`);
            exitCode = EXIT_FAILURE;
          }
        }
        println(`verified ${events} events in ${tenantIds.length} tenant chain(s) in ${Date.now() - started} ms`);
      });
    });
  ledger
    .command('rebuild')
    .description('recompute the current-state projection from the events')
    .option('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .action(async (opts: { tenant?: string }) => {
      await withRuntime(async (runtime) => {
        const tenantIds = await tenantIdsFor(runtime, opts.tenant);
        for (const tenantId of tenantIds) {
          const result = await rebuildProjection(runtime.store, runtime.clock, tenantId);
          println(`tenant ${tenantId}: ${result.rows} projection rows rebuilt, ${result.differences} differed from the incremental projection`);
        }
      });
    });

  program
    .command('expire')
    .description('append the soft opt-in and consent expiries that are due as ledger events (idempotent)')
    .option('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id (default: every active tenant)')
    .addOption(new Option('--json', 'print JSON'))
    .action(async (opts: { tenant?: string; json?: boolean }) => {
      await withRuntime(async (runtime) => {
        const result = await expireDue(runtime.store, runtime, await tenantFilter(runtime, opts.tenant));
        if (opts.json) return println(JSON.stringify(result, null, 2));
        println(
          `expired ${result.softOptInExpired} soft opt-in window(s) and ${result.consentExpired} consent(s) in ${result.tenants} tenant(s); ${result.scanned} projection row(s) scanned`,
        );
      });
    });

  program
    .command('backfill')
    .description(
      "record every Shopify customer's identities and email/SMS consent, then their HubSpot subscription statuses, in the ledger (resumes where it stopped; the worker runs it once by itself for a new tenant)",
    )
    .requiredOption('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .option('--restart', 'start again from the first customer (what is already recorded appends nothing)')
    .action(async (opts: { tenant: string; restart?: boolean }) => {
      await withRuntime(async (runtime) => {
        const found = await requireTenant(runtime.store, opts.tenant);
        if (found.status !== 'active') throw new AppError('conflict', `tenant ${found.shopDomain} is uninstalled: nothing to backfill`);
        const count = (n: number): string => n.toLocaleString('en-US');
        const line = (p: BackfillProgress): string => `${count(p.customers)} customers, ${count(p.hubspotStatuses)} HubSpot statuses`;
        const ports = createPlatformPorts(runtime);
        // On a terminal one line updates in place (with the rate); otherwise (logs, tests) a line per step.
        const live = io.stderr === undefined && process.stderr.isTTY === true;
        const started = performance.now();
        const progress = (p: BackfillProgress): void => {
          const rate = p.customers / Math.max(0.001, (performance.now() - started) / 1000);
          if (live) err(`\rbackfill: ${line(p)} (${count(Math.round(rate))} customers/s)   `);
          else err(`backfill: ${line(p)}\n`);
        };
        let result: BackfillResult;
        try {
          result = await runBackfill(backfillDeps(runtime, ports), found, {
            takeOver: true,
            ...(opts.restart ? { restart: true } : {}),
            onProgress: progress,
          });
        } catch (error) {
          const saved = await backfillProgressOf(runtime, found.id);
          throw new AppError('internal', `backfill of ${found.shopDomain} stopped${saved ? ` after ${line(saved)}` : ''}: ${error instanceof Error ? error.message : String(error)}; run it again to resume`);
        }
        if (live) err('\n');
        switch (result.outcome) {
          case 'finished':
            return println(`backfill of ${found.shopDomain} finished: ${line(result.progress!)} in ${count(result.progress!.pages)} page(s)`);
          case 'already_finished':
            return println(`backfill of ${found.shopDomain} already finished at ${result.progress!.finishedAt} (${line(result.progress!)}); --restart runs it again`);
          default:
            throw new AppError('conflict', `another process is running the backfill of ${found.shopDomain}${result.progress ? ` (last progress ${result.progress.updatedAt})` : ''}; try again later`);
        }
      });
    });

  const inbox = program.command('inbox').description('webhook deliveries waiting, processed and dead-lettered');
  inbox
    .command('stats')
    .description('deliveries per tenant and status, privacy requests, and deliveries counted for unknown tenants')
    .addOption(new Option('--json', 'print JSON'))
    .action(async (opts: { json?: boolean }) => {
      await withRuntime(async (runtime) => {
        const stats = await inboxStats(runtime.store);
        if (opts.json) return println(JSON.stringify(stats, null, 2));
        if (stats.byTenant.length === 0) println('inbox: empty');
        for (const row of stats.byTenant) println(`tenant ${row.tenantId}  ${row.status.padEnd(8)} ${String(row.count).padStart(8)}  oldest ${row.oldestReceivedAt ?? '-'}`);
        for (const row of stats.privacyRequests) println(`privacy request  ${row.topic}  ${row.status}  ${row.count}`);
        for (const row of stats.unrouted) println(`not stored  ${row.platform} ${row.account}  ${row.topic}  ${row.reason}  ×${row.count}  last ${row.lastSeenAt}`);
      });
    });
  inbox
    .command('dlq')
    .description('list dead-lettered deliveries with their last error')
    .option('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .option('--limit <n>', 'at most this many', '100')
    .addOption(new Option('--json', 'print JSON'))
    .action(async (opts: { tenant?: string; limit: string; json?: boolean }) => {
      const limit = parseLimit(opts.limit);
      await withRuntime(async (runtime) => {
        const dead = await listDeadDeliveries(runtime.store, { ...(await tenantFilter(runtime, opts.tenant)), limit });
        if (opts.json) return println(JSON.stringify(dead, null, 2));
        if (dead.length === 0) return println('no dead-lettered deliveries');
        for (const d of dead) println(`${d.id}  ${d.platform} ${d.topic}  attempts ${d.attempts}  received ${d.receivedAt}\n    ${d.lastError ?? ''}`);
      });
    });
  inbox
    .command('retry [ids...]')
    .description('re-queue dead-lettered deliveries: the given ids, or all of them (of one tenant with --tenant)')
    .option('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .option('--all', 'every dead-lettered delivery (required when no ids are given)')
    .action(async (ids: string[], opts: { tenant?: string; all?: boolean }) => {
      if (ids.length === 0 && !opts.all) throw new AppError('bad_request', 'give delivery ids, or --all');
      if (ids.length > 0 && opts.all) throw new AppError('bad_request', 'give delivery ids or --all, not both');
      await withRuntime(async (runtime) => {
        const requeued = await retryDeadDeliveries(runtime.store, runtime, { ...(await tenantFilter(runtime, opts.tenant)), ...(ids.length > 0 ? { ids } : {}) });
        println(`re-queued ${requeued} deliver${requeued === 1 ? 'y' : 'ies'}`);
      });
    });
  inbox
    .command('prune')
    .description("delete processed deliveries older than each tenant's inboxRetentionDays (the worker does this hourly)")
    .action(async () => {
      await withRuntime(async (runtime) => {
        const removed = await pruneProcessedDeliveries(runtime.store, runtime.clock);
        println(`pruned ${removed} processed deliver${removed === 1 ? 'y' : 'ies'}`);
      });
    });

  const outbox = program.command('outbox').description('writes owed to HubSpot and Shopify: waiting, delivered and dead-lettered');
  outbox
    .command('stats')
    .description('outbox rows per tenant, platform, operation and status, with the oldest and the next attempt')
    .addOption(new Option('--json', 'print JSON'))
    .action(async (opts: { json?: boolean }) => {
      await withRuntime(async (runtime) => {
        const stats = await outboxStats(runtime.store);
        if (opts.json) return println(JSON.stringify(stats, null, 2));
        if (stats.byTenant.length === 0) return println('outbox: empty');
        for (const row of stats.byTenant) {
          const next = row.status === 'pending' ? `  next ${row.nextRunAt ?? '-'}${row.claimed > 0 ? `  claimed ${row.claimed}` : ''}` : '';
          println(`tenant ${row.tenantId}  ${`${row.platform}/${row.operation}`.padEnd(28)} ${row.status.padEnd(8)} ${String(row.count).padStart(8)}  oldest ${row.oldestCreatedAt ?? '-'}${next}`);
        }
      });
    });
  outbox
    .command('dlq')
    .description('list dead-lettered outbox writes with their last error')
    .option('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .option('--limit <n>', 'at most this many', '100')
    .addOption(new Option('--json', 'print JSON'))
    .action(async (opts: { tenant?: string; limit: string; json?: boolean }) => {
      const limit = parseLimit(opts.limit);
      await withRuntime(async (runtime) => {
        const dead = await listDeadOutbox(runtime.store, { ...(await tenantFilter(runtime, opts.tenant)), limit });
        if (opts.json) return println(JSON.stringify(dead, null, 2));
        if (dead.length === 0) return println('no dead-lettered outbox writes');
        for (const d of dead) println(`${d.id}  ${d.platform}/${d.operation}  key ${d.idempotencyKey}  attempts ${d.attempts}  dead since ${d.updatedAt}\n    ${d.lastError ?? ''}`);
      });
    });
  outbox
    .command('retry [ids...]')
    .description('re-queue dead-lettered outbox writes with fresh attempts: the given ids, or all of them (of one tenant with --tenant)')
    .option('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .option('--all', 'every dead-lettered write (required when no ids are given)')
    .action(async (ids: string[], opts: { tenant?: string; all?: boolean }) => {
      if (ids.length === 0 && !opts.all) throw new AppError('bad_request', 'give outbox ids, or --all');
      if (ids.length > 0 && opts.all) throw new AppError('bad_request', 'give outbox ids or --all, not both');
      await withRuntime(async (runtime) => {
        const requeued = await retryDeadOutbox(runtime.store, ids.length > 0 ? ids : 'all', { ...(await tenantFilter(runtime, opts.tenant)), clock: runtime.clock });
        println(`re-queued ${requeued} outbox write${requeued === 1 ? '' : 's'}`);
      });
    });

  const tenant = program.command('tenant').description('link shops to HubSpot portals and manage their settings');
  tenant
    .command('add')
    .description('link a Shopify shop to a HubSpot portal (tokens are stored encrypted with ENCRYPTION_KEY)')
    .requiredOption('--shop <domain>', 'the shop, e.g. acme.myshopify.com')
    .requiredOption('--portal <id>', 'the HubSpot portal (hub) id')
    .option('--shopify-token <token>', 'Shopify Admin API access token')
    .option('--shopify-refresh-token <token>', 'Shopify refresh token (expiring offline tokens)')
    .option('--shopify-token-expires <iso>', 'when the Shopify access token expires')
    .option('--hubspot-token <token>', 'HubSpot OAuth access token')
    .option('--hubspot-refresh-token <token>', 'HubSpot OAuth refresh token')
    .option('--hubspot-token-expires <iso>', 'when the HubSpot access token expires')
    .option('--credentials-file <path>', 'tokens as JSON {"shopify": {"accessToken", "refreshToken"?, "expiresAt"?}, "hubspot": {…}}, kept off the command line')
    .option('--settings-file <path>', 'JSON settings (schema: manifest.json "settings")')
    .action(async (opts: Record<string, string | undefined>) => {
      const settings = opts.settingsFile ? readJsonFile(opts.settingsFile) : undefined;
      const tokenOptions = ['shopifyToken', 'shopifyRefreshToken', 'shopifyTokenExpires', 'hubspotToken', 'hubspotRefreshToken', 'hubspotTokenExpires'].filter((k) => opts[k] !== undefined);
      if (opts.credentialsFile && tokenOptions.length > 0) throw new AppError('bad_request', 'give tokens either in --credentials-file or as options, not both');
      // A refresh token or expiry without its access token would be dropped without a word.
      const orphans = (['shopify', 'hubspot'] as const).filter((p) => opts[`${p}Token`] === undefined && (opts[`${p}RefreshToken`] !== undefined || opts[`${p}TokenExpires`] !== undefined));
      if (orphans.length > 0) throw new AppError('bad_request', orphans.map((p) => `--${p}-refresh-token and --${p}-token-expires need --${p}-token`).join('; '));
      const fromFile = opts.credentialsFile ? readCredentialsFile(opts.credentialsFile) : {};
      await withRuntime(async (runtime) => {
        const created = await addTenant(runtime.store, runtime, {
          shopDomain: opts.shop!,
          hubspotPortalId: opts.portal!,
          ...fromFile,
          ...(opts.shopifyToken ? { shopify: credentials(opts.shopifyToken, opts.shopifyRefreshToken, opts.shopifyTokenExpires)! } : {}),
          ...(opts.hubspotToken ? { hubspot: credentials(opts.hubspotToken, opts.hubspotRefreshToken, opts.hubspotTokenExpires)! } : {}),
          ...(settings !== undefined ? { settings } : {}),
        });
        println(JSON.stringify(tenantSummary(created), null, 2));
      });
    });
  tenant
    .command('list')
    .description('list linked tenants')
    .addOption(new Option('--json', 'print JSON'))
    .action(async (opts: { json?: boolean }) => {
      await withRuntime(async (runtime) => {
        const tenants = await listTenants(runtime.store);
        if (opts.json) return println(JSON.stringify(tenants.map(tenantSummary), null, 2));
        if (tenants.length === 0) return println('no tenants (add one with `consent-bridge tenant add --shop … --portal …`)');
        for (const t of tenants) println(`${t.id}  ${t.shopDomain}  portal ${t.hubspotPortalId}  ${t.status}`);
      });
    });
  tenant
    .command('show <ref>')
    .description('show one tenant (id, shop domain or portal id)')
    .action(async (ref: string) => {
      await withRuntime(async (runtime) => {
        const found = await requireTenant(runtime.store, ref);
        // What HubSpot provisioning found: the subscription type ids the `purposes` setting maps to.
        const hubspot = (await provisioningOf(runtime.store, found.id)) ?? null;
        println(JSON.stringify({ ...tenantSummary(found), settings: found.settings, hubspotProvisioning: hubspot }, null, 2));
      });
    });
  const settings = tenant.command('settings').description("read or replace a tenant's settings");
  settings
    .command('get <ref>')
    .description('print the settings as JSON')
    .action(async (ref: string) => {
      await withRuntime(async (runtime) => println(JSON.stringify((await requireTenant(runtime.store, ref)).settings, null, 2)));
    });
  settings
    .command('set <ref>')
    .description('replace the settings with a JSON file validated against manifest.json; a bad file changes nothing')
    .requiredOption('--file <path>', 'JSON settings file')
    .action(async (ref: string, opts: { file: string }) => {
      const input = readJsonFile(opts.file);
      await withRuntime(async (runtime) => {
        const updated = await setTenantSettings(runtime.store, runtime, ref, input);
        println(`settings of ${updated.shopDomain} updated`);
      });
    });

  const apiKey = tenant.command('api-key').description('API keys for the send gate (POST /api/v1/gate/check)');
  apiKey
    .command('create <ref>')
    .description('create a key for a tenant; it is printed once and stored only as a hash')
    .option('--label <text>', 'what the key is for', 'gate')
    .action(async (ref: string, opts: { label: string }) => {
      await withRuntime(async (runtime) => {
        const { key, info } = await createApiKey(runtime.store, runtime, ref, opts.label);
        println(key);
        err(`API key ${info.id} (${info.prefix}…) created for tenant ${info.tenantId}; it is not shown again.\n`);
      });
    });
  apiKey
    .command('list <ref>')
    .description("list a tenant's keys (prefix, label, created, revoked)")
    .action(async (ref: string) => {
      await withRuntime(async (runtime) => {
        for (const k of await listApiKeys(runtime.store, ref)) println(`${k.id}  ${k.prefix}…  ${k.label}  created ${k.createdAt}${k.revokedAt ? `  revoked ${k.revokedAt}` : ''}`);
      });
    });
  apiKey
    .command('revoke <ref> <id>')
    .description('revoke a key at once')
    .action(async (ref: string, id: string) => {
      await withRuntime(async (runtime) => {
        await revokeApiKey(runtime.store, runtime, ref, id);
        println(`API key ${id} revoked`);
      });
    });

  program
    .command('explain')
    .description('explain the send decision for one contact: the law.md row, each check, the evidence events')
    .requiredOption('--tenant <ref>', 'tenant id, shop domain or HubSpot portal id')
    .option('--email <email>')
    .option('--phone <phone>')
    .option('--shopify-customer <id>')
    .option('--hubspot-contact <id>')
    .requiredOption('--channel <channel>', 'email, sms, whatsapp, phone or postal')
    .option('--purpose <id>', 'purpose id from the settings', '*')
    .option('--category <group...>', 'category groups the campaign promotes')
    .option('--at <iso-time>', 'decision time (default now)')
    .option('--professional', 'the message relates to the recipient\'s profession (B2B opt-out rows)')
    .option('--register <name...>', 'registers the recipient was screened against (e.g. AT_ECG)')
    .option('--json', 'print the decision and evidence as JSON')
    .action(
      async (opts: {
        tenant: string;
        email?: string;
        phone?: string;
        shopifyCustomer?: string;
        hubspotContact?: string;
        channel: string;
        purpose: string;
        category?: string[];
        at?: string;
        professional?: boolean;
        register?: string[];
        json?: boolean;
      }) => {
        const recipient = {
          ...(opts.email !== undefined ? { email: opts.email } : {}),
          ...(opts.phone !== undefined ? { phone: opts.phone } : {}),
          ...(opts.shopifyCustomer !== undefined ? { shopifyCustomerId: opts.shopifyCustomer } : {}),
          ...(opts.hubspotContact !== undefined ? { hubspotContactId: opts.hubspotContact } : {}),
        };
        const request = parseGateRequest({
          channel: opts.channel,
          purpose: opts.purpose,
          categories: opts.category ?? [],
          ...(opts.at ? { at: opts.at } : {}),
          professionalContext: opts.professional === true,
          registersCleared: opts.register ?? [],
          recipients: [recipient],
        });
        await withRuntime(async (runtime) => {
          const found = await requireTenant(runtime.store, opts.tenant);
          const response = await checkRecipients(runtime.store, found, request, runtime.clock.now(), { explain: true });
          const decision = response.results[0] as Decision;
          const events = await loadEvidence(runtime.store, found.id, decision.evidence);
          const orders = await loadOrderOutcomes(runtime.store, found.id, identityOf(request.recipients[0]!), request.channel);
          if (opts.json) return println(JSON.stringify({ decision, evidence: events, orders }, null, 2));
          println(formatExplanation(request, decision, events, response.decidedAt, orders));
        });
      },
    );

  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (error: unknown) {
    if (error instanceof CommanderError) {
      // Help asked for (`--help`, `help [command]`) and `--version` are fine; help shown because no (sub)command was
      // given carries commander's exit code 1 and is a usage error.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT_OK;
      return error.code === 'commander.help' && error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (error instanceof ConfigError) {
      err(`${error.message}\n`);
      return EXIT_FAILURE;
    }
    if (error instanceof AppError) {
      err(`error: ${error.message}\n${error.details.map((d) => `  - ${d}\n`).join('')}`);
      return exitCodeFor(error);
    }
    err(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_FAILURE;
  }
}

if (require.main === module) {
  runCli(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}
