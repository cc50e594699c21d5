/**
 * `consent-bridge backfill` in-process (runCli with its own env and output) on SQLite and PostgreSQL, with the real
 * connectors pointed (SHOPIFY_API_BASE_URL, HUBSPOT_API_BASE_URL) at a small local server that answers the
 * Shopify `customers` query by id range and HubSpot's batch read and v4 statuses the way the platforms do.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/stores';

const KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

function databaseUrl(db: TestDatabase): string {
  if (db.target.kind === 'sqlite') return `sqlite:${db.target.file}`;
  return `${db.target.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
}

interface Customer {
  id: number;
  email: string;
  state: string;
  at: string | null;
}

/** The platforms, as far as the backfill reads them. */
function platformServer(customers: Customer[], hubspot: Map<string, Array<{ id: string; status: string; timestamp: string }>>, contacts: Map<string, string>) {
  const seen: string[] = [];
  let shopifyStatus = 200;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://local');
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.method === 'POST' && /^\/shopify\/admin\/api\/[\w-]+\/graphql\.json$/.test(url.pathname)) {
        const { variables } = JSON.parse(body) as { variables: { after: string | null; query: string | null } };
        seen.push(`shopify customers ${variables.query ?? '(all)'}`);
        if (shopifyStatus !== 200) return json(shopifyStatus, { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' });
        const after = variables.query === null ? -1 : Number(/^id:>(\d+)$/.exec(variables.query)![1]);
        const rest = customers.filter((c) => c.id > after).sort((a, b) => a.id - b.id);
        const page = rest.slice(0, 2); // a small page size, so two pages
        return json(200, {
          data: {
            customers: {
              pageInfo: { hasNextPage: rest.length > 2, endCursor: rest.length > 2 ? 'opaque' : null },
              nodes: page.map((c) => ({
                id: `gid://shopify/Customer/${c.id}`,
                updatedAt: '2026-04-01T00:00:00Z',
                defaultEmailAddress: { emailAddress: c.email, marketingState: c.state, marketingOptInLevel: 'SINGLE_OPT_IN', marketingUpdatedAt: c.at },
                defaultPhoneNumber: null,
                defaultAddress: { countryCodeV2: 'NL' },
              })),
            },
          },
          extensions: { cost: { requestedQueryCost: 802, actualQueryCost: 10, throttleStatus: { maximumAvailable: 2000, currentlyAvailable: 1990, restoreRate: 100 } } },
        });
      }
      if (req.method === 'POST' && url.pathname === '/hubspot/crm/v3/objects/contacts/batch/read') {
        const inputs = (JSON.parse(body) as { inputs: Array<{ id: string }> }).inputs.map((i) => i.id);
        seen.push(`hubspot batch read ${inputs.length}`);
        return json(200, { status: 'COMPLETE', results: inputs.filter((e) => contacts.has(e)).map((e) => ({ id: contacts.get(e), properties: { email: e } })) });
      }
      const statuses = /^\/hubspot\/communication-preferences\/v4\/statuses\/([^/]+)(\/unsubscribe-all)?$/.exec(url.pathname);
      if (req.method === 'GET' && statuses) {
        const email = decodeURIComponent(statuses[1]!);
        if (statuses[2]) return json(200, { status: 'COMPLETE', results: [] });
        seen.push(`hubspot statuses ${email}`);
        const found = hubspot.get(email);
        if (!found) return json(404, { status: 'error', category: 'OBJECT_NOT_FOUND', message: 'not found' });
        return json(200, {
          status: 'COMPLETE',
          results: found.map((s) => ({ subscriberIdString: email, subscriptionId: Number(s.id), status: s.status, legalBasis: null, timestamp: s.timestamp, channel: 'EMAIL' })),
        });
      }
      json(404, { error: `no route ${req.method} ${url.pathname}` });
    });
  });
  return {
    server,
    seen,
    failShopify(status: number) {
      shopifyStatus = status;
    },
  };
}

describe.each(testDialects())('consent-bridge backfill on %s', (dialect) => {
  let db: TestDatabase;
  let dir: string;
  let env: Record<string, string>;
  let platforms: ReturnType<typeof platformServer>;

  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runCli(['node', 'consent-bridge', ...args], { env, cwd: dir, stdout: (t) => (out += t), stderr: (t) => (err += t), handleSignals: false });
    return { code, out, err };
  }

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-backfill-'));
    platforms = platformServer(
      [
        { id: 1001, email: 'ana@example.com', state: 'SUBSCRIBED', at: '2026-03-01T10:00:00Z' },
        { id: 1002, email: 'bo@example.com', state: 'UNSUBSCRIBED', at: '2026-03-02T10:00:00Z' },
        { id: 1003, email: 'cy@example.com', state: 'NOT_SUBSCRIBED', at: null },
      ],
      new Map([
        ['ana@example.com', [{ id: '101', status: 'SUBSCRIBED', timestamp: '2026-03-01T10:00:00Z' }]],
        ['cy@example.com', [{ id: '101', status: 'SUBSCRIBED', timestamp: '2026-04-01T00:00:00Z' }]],
      ]),
      new Map([['cy@example.com', '5003']]),
    );
    await new Promise<void>((resolve) => platforms.server.listen(0, '127.0.0.1', () => resolve()));
    const base = `http://127.0.0.1:${(platforms.server.address() as AddressInfo).port}`;
    env = {
      DATABASE_URL: databaseUrl(db),
      ENCRYPTION_KEY: KEY,
      LOG_LEVEL: 'silent',
      SHOPIFY_API_KEY: 'cli-key',
      SHOPIFY_API_SECRET: 'cli-secret',
      HUBSPOT_CLIENT_ID: 'cli-client',
      HUBSPOT_CLIENT_SECRET: 'cli-client-secret',
      SHOPIFY_API_BASE_URL: `${base}/shopify`,
      HUBSPOT_API_BASE_URL: `${base}/hubspot`,
    };
    const settings = path.join(dir, 'settings.json');
    fs.writeFileSync(settings, JSON.stringify({ shopCountry: 'NL', purposes: [{ id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: ['101'], categoryGroups: [] }] }));
    const added = await cli('tenant', 'add', '--shop', 'cli-shop.myshopify.com', '--portal', '5151', '--shopify-token', 'shpat_cli', '--hubspot-token', 'hs-cli-token', '--settings-file', settings);
    expect(added).toMatchObject({ code: 0, err: '' });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => platforms.server.close(() => resolve()));
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('prints progress to stderr, records every customer and their HubSpot statuses, and exits 0; then resumes nothing and restarts on request', async () => {
    const first = await cli('backfill', '--tenant', 'cli-shop.myshopify.com');
    expect(first).toMatchObject({ code: 0 });
    expect(first.err).toBe('backfill: 2 customers, 1 HubSpot statuses\nbackfill: 3 customers, 2 HubSpot statuses\n');
    expect(first.out).toBe('backfill of cli-shop.myshopify.com finished: 3 customers, 2 HubSpot statuses in 2 page(s)\n');
    expect(platforms.seen.filter((s) => s.startsWith('shopify'))).toEqual(['shopify customers (all)', 'shopify customers id:>1002']);
    expect(platforms.seen).toContain('hubspot statuses bo@example.com');
    // ana: Shopify grant (HubSpot agrees); bo: withdrawal; cy: HubSpot newsletter grant.
    expect(await cli('ledger', 'verify')).toMatchObject({ code: 0, out: expect.stringMatching(/ok\s+tenant .*: 3 events/) });
    expect(await cli('explain', '--tenant', '5151', '--hubspot-contact', '5003', '--channel', 'email', '--purpose', 'newsletter', '--json')).toMatchObject({
      code: 0,
      out: expect.stringMatching(/"allowed": true/),
    });

    const again = await cli('backfill', '--tenant', '5151');
    expect(again).toMatchObject({ code: 0, err: '' });
    expect(again.out).toMatch(/^backfill of cli-shop\.myshopify\.com already finished at .* \(3 customers, 2 HubSpot statuses\); --restart runs it again\n$/);

    const restarted = await cli('backfill', '--tenant', 'cli-shop.myshopify.com', '--restart');
    expect(restarted).toMatchObject({ code: 0, out: expect.stringMatching(/finished: 3 customers/) });
    expect(await cli('ledger', 'verify')).toMatchObject({ code: 0, out: expect.stringMatching(/: 3 events/) });
  });

  test('a platform failure exits 1 saying it resumes; an unknown tenant exits 1; --help exits 0', async () => {
    platforms.failShopify(401);
    const failed = await cli('backfill', '--tenant', 'cli-shop.myshopify.com', '--restart');
    platforms.failShopify(200);
    expect(failed.code).toBe(1);
    expect(failed.err).toMatch(/^error: backfill of cli-shop\.myshopify\.com stopped after 0 customers, 0 HubSpot statuses: .*run it again to resume\n$/);
    const resumed = await cli('backfill', '--tenant', 'cli-shop.myshopify.com');
    expect(resumed).toMatchObject({ code: 0, out: expect.stringMatching(/finished: 3 customers/) });
    expect(await cli('backfill', '--tenant', 'nobody.myshopify.com')).toMatchObject({ code: 1, err: expect.stringMatching(/no tenant/) });
    expect(await cli('backfill', '--help')).toMatchObject({ code: 0, out: expect.stringMatching(/Usage: consent-bridge backfill \[options\]/) });
    expect(await cli('backfill')).toMatchObject({ code: 2 });
  });
});
