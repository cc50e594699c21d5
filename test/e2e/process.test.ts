/**
 * The real process, as `npm start` runs it (bin/consent-bridge.js over dist/, built by `npm test` first):
 * starts with no environment at all on SQLite, serves health checks on a real port, shuts down on SIGTERM.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
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

  test('a port already in use exits 1 with the reason, instead of hanging on (SQLite write thread included)', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const child = spawn(process.execPath, [BIN, 'serve'], { cwd, env: minimalEnv({ PORT: String(port), HOST: '127.0.0.1' }) });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => (child.kill('SIGKILL'), resolve(-1)), 10_000);
        child.on('exit', (exitCode) => (clearTimeout(timer), resolve(exitCode)));
      });
      expect(code).toBe(1);
      expect(output).toMatch(/EADDRINUSE/);
    } finally {
      taken.close();
    }
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

  test('a database that stops answering: /readyz says 503 in time, and a shutdown ends in bounded time', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-proc-pg-'));
    const { proxy, url } = await behindSilenceableProxy(db);
    const server = await start(cwd, minimalEnv({ PORT: '0', DATABASE_URL: url, SHUTDOWN_TIMEOUT_MS: '500' }));
    try {
      expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
      proxy.silence(); // connections stay open, nothing comes back (a hung server, a cut network)
      const started = Date.now();
      const ready = await fetch(`${server.baseUrl}/readyz`);
      expect(ready.status).toBe(503);
      expect(JSON.stringify(await ready.json())).toMatch(/did not answer within 2000 ms/);
      expect(Date.now() - started).toBeLessThan(4000);
      // The stop now hangs for certain: the timed-out readiness ping still holds a pool connection (so closing the
      // pool waits), and the in-process worker's next poll (every 500 ms) hangs on the silent connection too.
      await new Promise((resolve) => setTimeout(resolve, 700));
      const stopping = Date.now();
      server.child.kill('SIGTERM');
      expect(await exitWithin(server.exited, server.child, 15_000)).toBe(1);
      expect(Date.now() - stopping).toBeLessThan(12_000); // 0.5 s for requests, then 0.5 s + 5 s for the background work
      expect(server.output()).toMatch(/background work did not stop in time/);
    } finally {
      server.child.kill('SIGKILL');
      proxy.close();
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  }, 30_000);

  test('`worker` on a database that stops answering also ends in bounded time after SIGTERM', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-proc-pg-'));
    const { proxy, url } = await behindSilenceableProxy(db);
    const child = spawn(process.execPath, [BIN, 'worker'], { cwd, env: minimalEnv({ DATABASE_URL: url, SHUTDOWN_TIMEOUT_MS: '500' }) });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      for (let i = 0; i < 150 && !/worker running/.test(output); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(output).toMatch(/worker running/);
      proxy.silence();
      // The worker polls every 500 ms when idle: its next poll now hangs on the silent connection, so the stop does.
      await new Promise((resolve) => setTimeout(resolve, 1200));
      const stopping = Date.now();
      child.kill('SIGTERM');
      expect(await exitWithin(exited, child, 15_000)).toBe(1);
      expect(Date.now() - stopping).toBeLessThan(11_000); // 0.5 s + 5 s
      expect(output).toMatch(/the worker did not stop in time/);
    } finally {
      child.kill('SIGKILL');
      proxy.close();
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  }, 30_000);
});

/** The exit code, or 'hung' (after a SIGKILL) if the process has not exited within `ms`: a failing test must not hang the run. */
async function exitWithin(exited: Promise<number | null>, child: { kill(signal: NodeJS.Signals): boolean }, ms: number): Promise<number | null | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('hung');
    }, ms);
  });
  try {
    return await Promise.race([exited, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** The suite's PostgreSQL schema reached through a `silenceableProxy`, as a DATABASE_URL. */
async function behindSilenceableProxy(db: TestDatabase): Promise<{ proxy: Awaited<ReturnType<typeof silenceableProxy>>; url: string }> {
  const target = new URL((db.target as { url: string }).url);
  const proxy = await silenceableProxy(target);
  return { proxy, url: `postgres://postgres@127.0.0.1:${proxy.port}${target.pathname}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}` };
}

/** A TCP proxy to PostgreSQL that can go silent: connections stay open and nothing is forwarded any more. */
async function silenceableProxy(target: URL): Promise<{ port: number; silence(): void; close(): void }> {
  let silent = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on('data', (chunk) => (silent ? undefined : to.write(chunk)));
      from.on('error', () => undefined);
      from.on('close', () => (silent ? undefined : to.destroy()));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    silence: () => {
      silent = true;
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
