/**
 * The real process, as `npm start` runs it (bin/consent-bridge.js over dist/, built by `npm test` first):
 * starts with no environment at all on SQLite, serves health checks on a real port, shuts down on SIGTERM.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, minimalEnv, start } from '../helpers/process';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/stores';

describe('the server process', () => {
  let cwd: string;
  beforeEach(() => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-proc-'));
  });
  afterEach(() => fs.rmSync(cwd, { recursive: true, force: true }));

  test('starts with no configuration on SQLite, serves /healthz and /readyz, lists what is off, stops on SIGTERM', async () => {
    const server = await start(cwd, minimalEnv({ PORT: '0' }));
    try {
      expect(server.output()).toMatch(/database: SQLite .*data\/consent-bridge\.sqlite/);
      expect(server.output()).toMatch(/shopify: OFF \(set SHOPIFY_API_KEY, SHOPIFY_API_SECRET\)/);
      expect(server.output()).toMatch(/hubspot: OFF \(set HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET, HUBSPOT_APP_ID\)/);
      expect(server.output()).toMatch(/tokenStorage: OFF \(set ENCRYPTION_KEY\)/);
      expect(fs.existsSync(path.join(cwd, 'data', 'consent-bridge.sqlite'))).toBe(true);

      const health = await fetch(`${server.baseUrl}/healthz`);
      expect(health.status).toBe(200);
      const ready = await fetch(`${server.baseUrl}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: 'ready', checks: { database: { ok: true }, migrations: { ok: true } } });

      // Personal data in a request must not reach the logs unmasked.
      const miss = await fetch(`${server.baseUrl}/lookup/ana.weber@example.com/+4915112345678`);
      expect(miss.status).toBe(404);
      expect(await miss.json()).toMatchObject({ error: { code: 'not_found' } });
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
    const output = server.output();
    expect(output).toMatch(/"msg":"stopped"/);
    expect(output).toMatch(/a\*\*\*@\*\*\*\.com/);
    expect(output).not.toContain('ana.weber@example.com');
    expect(output).not.toContain('4915112345678');
  });

  test('an invalid configuration exits 1 with one message naming every bad variable', async () => {
    const child = spawn(process.execPath, [BIN, 'serve'], {
      cwd,
      env: minimalEnv({ PORT: 'eighty', LOG_LEVEL: 'chatty', APP_URL: 'ftp://x', HUBSPOT_APP_ID: 'abc', ENCRYPTION_KEY: '1234' }),
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^Invalid configuration \(5 problems\)/);
    for (const name of ['PORT', 'LOG_LEVEL', 'APP_URL', 'HUBSPOT_APP_ID', 'ENCRYPTION_KEY']) expect(stderr).toContain(name);
  });
});

describe.each(testDialects().filter((d) => d === 'postgres'))('the server process on %s', (dialect) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(dialect);
  });
  afterAll(() => db.drop());

  test('DATABASE_URL=postgres://… serves on PostgreSQL and migrates at start', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-proc-pg-'));
    const url = `${(db.target as { url: string }).url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
    const server = await start(cwd, minimalEnv({ PORT: '0', DATABASE_URL: url }));
    try {
      expect(server.output()).toMatch(/database: PostgreSQL/);
      expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
    } finally {
      server.child.kill('SIGINT');
    }
    expect(await server.exited).toBe(0);
    fs.rmSync(cwd, { recursive: true, force: true });
  });
});
