/**
 * Signed webhook requests for tests (style.md §19: fixtures signed by helpers). The signers here are written
 * from the platform documentation (shopify.md §1.2, hubspot.md §2) with node:crypto, independently of the
 * verifiers under test.
 */
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { loadConfig, type AppConfig } from '../../src/config/config';
import { buildApp, createRuntime, createWorker, type Runtime } from '../../src/main';
import { silentLogger } from '../../src/log/logger';
import type { Store } from '../../src/store/database';
import type { Database } from '../../src/store/schema';
import { addTenant, type Tenant } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from './deps';

export const SHOPIFY_SECRET = 'shopify-secret-current';
export const SHOPIFY_SECRET_PREVIOUS = 'shopify-secret-previous';
export const HUBSPOT_SECRET = 'yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy';
export const HUBSPOT_SECRET_PREVIOUS = 'hubspot-secret-previous';
export const HUBSPOT_APP_ID = '54321';
export const APP_URL = 'https://bridge.example.com';
export const NOW = '2026-06-01T12:00:00.000Z';

export function fixture(name: string): string {
  return fs.readFileSync(path.join(__dirname, '..', 'fixtures', name), 'utf8').trim();
}

export function shopifyHmac(body: string | Buffer, secret = SHOPIFY_SECRET): string {
  return createHmac('sha256', secret).update(body).digest('base64');
}

let webhookCounter = 0;

export function shopifyHeaders(
  body: string | Buffer,
  overrides: { topic: string; shop?: string; webhookId?: string; secret?: string; hmac?: string | null; triggeredAt?: string },
): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'X-Shopify-Topic': overrides.topic,
    'X-Shopify-Shop-Domain': overrides.shop ?? 'acme-de.myshopify.com',
    'X-Shopify-Webhook-Id': overrides.webhookId ?? `wh-${++webhookCounter}-${Date.now()}`,
    'X-Shopify-API-Version': '2026-04',
    'X-Shopify-Event-Id': `ev-${webhookCounter}`,
    'X-Shopify-Triggered-At': overrides.triggeredAt ?? '2026-05-02T08:20:11.123Z',
  };
  if (overrides.hmac !== null) headers['X-Shopify-Hmac-Sha256'] = overrides.hmac ?? shopifyHmac(body, overrides.secret);
  return headers;
}

/** v3 as hubspot.md §2 describes it: base64 HMAC-SHA256 of METHOD + URI + body + timestamp. */
export function hubspotV3(secret: string, method: string, uri: string, body: string, timestamp: string): string {
  return createHmac('sha256', secret).update(`${method}${uri}${body}${timestamp}`, 'utf8').digest('base64');
}

export function hubspotHeaders(
  body: string,
  options: { path?: string; timestampMs?: number; secret?: string; method?: string; uri?: string } = {},
): Record<string, string> {
  const timestamp = String(options.timestampMs ?? Date.parse(NOW));
  const uri = options.uri ?? `${APP_URL}${options.path ?? '/webhooks/hubspot'}`;
  return {
    'Content-Type': 'application/json',
    'X-HubSpot-Signature-v3': hubspotV3(options.secret ?? HUBSPOT_SECRET, options.method ?? 'POST', uri, body, timestamp),
    'X-HubSpot-Request-Timestamp': timestamp,
  };
}

export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  return loadConfig({
    APP_URL,
    SHOPIFY_API_KEY: 'shopify-key',
    SHOPIFY_API_SECRET: SHOPIFY_SECRET,
    SHOPIFY_API_SECRET_PREVIOUS: SHOPIFY_SECRET_PREVIOUS,
    HUBSPOT_CLIENT_ID: 'hubspot-client',
    HUBSPOT_CLIENT_SECRET: HUBSPOT_SECRET,
    HUBSPOT_CLIENT_SECRET_PREVIOUS: HUBSPOT_SECRET_PREVIOUS,
    HUBSPOT_APP_ID,
    WEBHOOK_BODY_LIMIT_BYTES: '65536',
    // Tests change tenants between requests (uninstall, settings) and expect the next request to see it; the
    // cache itself is tested in test/unit/tenants/tenant-cache.test.ts.
    TENANT_CACHE_MS: '0',
    LOG_LEVEL: 'silent',
    ...overrides,
  });
}

export interface Harness {
  readonly runtime: Runtime;
  readonly clock: ReturnType<typeof fixedClock>;
  readonly app: ReturnType<typeof buildApp>;
  readonly worker: ReturnType<typeof createWorker>;
  readonly tenantA: Tenant;
  readonly tenantB: Tenant;
}

/** An app over `store` with two tenants: A = acme-de / portal 62515, B = other-shop / portal 99999. */
export async function createHarness(store: Store, configOverrides: Record<string, string> = {}, settingsA?: unknown): Promise<Harness> {
  const clock = fixedClock(NOW);
  const runtime = createRuntime(testConfig(configOverrides), { store, logger: silentLogger, clock, ids: countingIds('h') });
  const tenantA = await addTenant(store, { ...runtime, secretBox: null }, { shopDomain: 'acme-de.myshopify.com', hubspotPortalId: '62515', ...(settingsA ? { settings: settingsA } : {}) });
  const tenantB = await addTenant(store, { ...runtime, secretBox: null }, { shopDomain: 'other-shop.myshopify.com', hubspotPortalId: '99999' });
  return { runtime, clock, app: buildApp(runtime), worker: createWorker(runtime, { random: () => 0.5 }), tenantA, tenantB };
}

/** Rows in every table a delivery can write to: "nothing written" means all of these are unchanged. */
export async function writtenRows(db: Kysely<Database>): Promise<Record<string, number>> {
  const tables = ['inbox', 'privacy_request', 'unrouted_delivery', 'consent_event', 'ledger_delivery', 'subject', 'subject_identity', 'purchase', 'subject_profile'] as const;
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const row = await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    counts[table] = Number(row.n);
  }
  return counts;
}
