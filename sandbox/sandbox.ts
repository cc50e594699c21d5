/**
 * `consent-bridge sandbox` (issue 6 §4): the app and both platform simulators on loopback, linked as one demo
 * tenant, so the whole product can be seen working on one machine with no Shopify store and no HubSpot portal.
 *
 * The app runs exactly as `serve` does (same composition root, worker, jobs and outbox dispatcher); only its
 * platform base URLs point at the simulators (SHOPIFY_API_BASE_URL, HUBSPOT_API_BASE_URL). SQLite in a temporary
 * directory by default, or DATABASE_URL. Secrets are random per run.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config';
import { createApiKey } from '../src/gate/api-keys';
import { silentLogger } from '../src/log/logger';
import type { Logger } from '../src/ports';
import { createRuntime, startServer, type OutboxTuning, type Runtime } from '../src/main';
import { addTenant, type Tenant } from '../src/tenants/tenants';
import { BATCH_SCOPES, DEFAULT_SCOPES, startHubspotSimulator, type FaultOptions, type HubspotSimulator } from '../simulators/hubspot/server';
import { startShopifySimulator, type ShopifySimulator } from '../simulators/shopify/server';

export const DEMO_SHOP = 'demo-shoes.myshopify.com';
export const DEMO_PORTAL = '4242';
export const DEMO_APP_ID = '777001';

/** HubSpot subscription types of the demo portal, mapped to the demo purposes. */
export const DEMO_SUBSCRIPTION_TYPES = { newsletter: '101', footwear: '202', insurance: '303' } as const;

/** The demo tenant's settings: NL shop, footwear and insurance groups, a confirmed checkout soft opt-in notice. */
export const DEMO_SETTINGS = {
  shopCountry: 'NL',
  softOptInNotice: {
    confirmed: true,
    text: 'As a customer you may receive emails about products similar to what you bought. Tick this box if you do not want them.',
    version: 'checkout-2026-01',
    since: '2026-01-01T00:00:00.000Z',
  },
  categoryGroups: [
    { id: 'footwear', label: 'Footwear', taxonomyBranches: ['aa-8'], productTypes: ['Running shoes', 'Shoes'], tags: [], collections: [] },
    { id: 'insurance', label: 'Insurance', taxonomyBranches: [], productTypes: ['Insurance'], tags: [], collections: [] },
  ],
  purposes: [
    { id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: [DEMO_SUBSCRIPTION_TYPES.newsletter], categoryGroups: [] },
    { id: 'footwear_offers', label: 'Footwear offers', hubspotSubscriptionTypeIds: [DEMO_SUBSCRIPTION_TYPES.footwear], categoryGroups: ['footwear'] },
    { id: 'insurance_offers', label: 'Insurance offers', hubspotSubscriptionTypeIds: [DEMO_SUBSCRIPTION_TYPES.insurance], categoryGroups: ['insurance'] },
  ],
  doubleOptInCountries: ['DE', 'AT'],
  objectionOrderAttribute: 'no_marketing',
  reconciliationIntervalMinutes: 1,
};

export interface SandboxOptions {
  /** Default: SQLite in a new temporary directory (removed on stop). */
  readonly databaseUrl?: string;
  /** App port; default any free port. */
  readonly port?: number;
  /** The app's log level; default `silent` (the demo prints its own timeline). */
  readonly logLevel?: string;
  /** Extra environment for the app (e.g. OUTBOX_MAX_ATTEMPTS). */
  readonly env?: Readonly<Record<string, string>>;
  /** Fault injection of the HubSpot simulator from the start (also settable later: `hubspot.setFaults`). Default none. */
  readonly hubspotFaults?: FaultOptions;
  /** The HubSpot simulator's rolling per-portal limit. Default 110 per 10 s, as HubSpot. */
  readonly hubspotRateLimit?: { readonly max?: number; readonly windowMs?: number };
  /**
   * true: the demo portal grants the v4 batch subscription scopes (Marketing Hub Enterprise) and the app's connector
   * is told so (unsubscribes, fresh re-subscribes and status reads 100 at a time); false: not granted, and told so.
   * Default: not granted, and the connector finds out as in `serve`.
   */
  readonly hubspotBatchScopes?: boolean;
  /** The app's HubSpot request timeout (ms). Default the connector's 15 s. */
  readonly hubspotTimeoutMs?: number;
  /** The app's outbox backoff (`backoffBaseMs`, `backoffCapMs`). Default the dispatcher's (5 s doubling, 1 h cap). */
  readonly outboxBackoff?: OutboxTuning;
}

export interface Sandbox {
  readonly appUrl: string;
  readonly shopifyUrl: string;
  readonly hubspotUrl: string;
  readonly shop: string;
  readonly portalId: string;
  /** A gate API key of the demo tenant. */
  readonly apiKey: string;
  readonly tenant: Tenant;
  readonly runtime: Runtime;
  readonly shopify: ShopifySimulator;
  readonly hubspot: HubspotSimulator;
  readonly database: string;
  stop(): Promise<void>;
}

/** A free loopback port: the app's URL must be known before it starts (HubSpot signs over APP_URL). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const secret = (): string => randomBytes(24).toString('hex');

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const port = options.port ?? (await freePort());
  const appUrl = `http://127.0.0.1:${port}`;
  const shopifyKey = `sandbox-${secret().slice(0, 8)}`;
  const shopifySecret = secret();
  const hubspotClientId = `sandbox-${secret().slice(0, 8)}`;
  const hubspotSecret = secret();
  const shopToken = `shpat_${secret()}`;
  const portalToken = `pat-${secret()}`;
  const portalRefresh = `refresh-${secret()}`;

  const shopify = await startShopifySimulator({ apiKey: shopifyKey, apiSecret: shopifySecret, appWebhookUrl: `${appUrl}/webhooks/shopify`, shops: [{ domain: DEMO_SHOP, accessToken: shopToken, name: 'Demo Shoes' }] });
  const hubspot = await startHubspotSimulator({
    clientId: hubspotClientId,
    clientSecret: hubspotSecret,
    appId: DEMO_APP_ID,
    appUrl,
    portals: [
      {
        portalId: DEMO_PORTAL,
        accessToken: portalToken,
        refreshToken: portalRefresh,
        ...(options.hubspotBatchScopes ? { scopes: [...DEFAULT_SCOPES, ...BATCH_SCOPES] } : {}),
        subscriptionTypes: [
          { id: DEMO_SUBSCRIPTION_TYPES.newsletter, name: 'Newsletter' },
          { id: DEMO_SUBSCRIPTION_TYPES.footwear, name: 'Footwear offers' },
          { id: DEMO_SUBSCRIPTION_TYPES.insurance, name: 'Insurance offers' },
        ],
      },
    ],
    ...(options.hubspotFaults ? { faults: options.hubspotFaults } : {}),
    ...(options.hubspotRateLimit ? { rateLimit: options.hubspotRateLimit } : {}),
  });

  let tempDir: string | null = null;
  let databaseUrl = options.databaseUrl;
  if (databaseUrl === undefined) {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'consent-bridge-sandbox-'));
    databaseUrl = `sqlite:${path.join(tempDir, 'sandbox.sqlite')}`;
  }
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    APP_URL: appUrl,
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: options.logLevel ?? 'silent',
    SHOPIFY_API_KEY: shopifyKey,
    SHOPIFY_API_SECRET: shopifySecret,
    SHOPIFY_API_BASE_URL: shopify.url,
    HUBSPOT_CLIENT_ID: hubspotClientId,
    HUBSPOT_CLIENT_SECRET: hubspotSecret,
    HUBSPOT_APP_ID: DEMO_APP_ID,
    HUBSPOT_API_BASE_URL: hubspot.url,
    ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    TENANT_CACHE_MS: '0',
    ...options.env,
  });
  const logger: Logger | undefined = (options.logLevel ?? 'silent') === 'silent' ? silentLogger : undefined;
  const runtime = createRuntime(config, logger ? { logger } : {});
  let running: Awaited<ReturnType<typeof startServer>> | null = null;
  try {
    const hubspotTuning = {
      ...(options.hubspotTimeoutMs !== undefined ? { timeoutMs: options.hubspotTimeoutMs } : {}),
      ...(options.hubspotBatchScopes !== undefined ? { batchScopes: options.hubspotBatchScopes } : {}),
    };
    running = await startServer(runtime, { hubspot: hubspotTuning, ...(options.outboxBackoff ? { outbox: options.outboxBackoff } : {}) });
    const tenant = await addTenant(runtime.store, runtime, {
      shopDomain: DEMO_SHOP,
      hubspotPortalId: DEMO_PORTAL,
      shopify: { accessToken: shopToken },
      hubspot: { accessToken: portalToken, refreshToken: portalRefresh, expiresAt: new Date(runtime.clock.now().getTime() + 30 * 60_000).toISOString() },
      settings: DEMO_SETTINGS,
    });
    const { key } = await createApiKey(runtime.store, runtime, tenant.id, 'sandbox');
    const server = running;
    return {
      appUrl,
      shopifyUrl: shopify.url,
      hubspotUrl: hubspot.url,
      shop: DEMO_SHOP,
      portalId: DEMO_PORTAL,
      apiKey: key,
      tenant,
      runtime,
      shopify,
      hubspot,
      database: tempDir ? `SQLite in ${tempDir}` : runtime.store.description,
      async stop() {
        try {
          await server.stop('sandbox stopped');
        } finally {
          await shopify.stop();
          await hubspot.close();
          if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    if (running) await running.stop('sandbox failed to start').catch(() => undefined); // logged by stop
    else await runtime.close();
    await shopify.stop();
    await hubspot.close();
    if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }
}
