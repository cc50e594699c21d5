/**
 * `npm run bench:ingest`: signed Shopify consent webhooks fired with autocannon at the real server process
 * (`consent-bridge serve`, worker on as by default) on loopback, on SQLite and, when reachable, PostgreSQL; and
 * the same load at a bare Koa endpoint that only answers 200, measured in the same run.
 *
 * Two phases per target: saturation (BENCH_CONNECTIONS connections for BENCH_SECONDS) for throughput, and a
 * fixed 500 requests/s for the ack latency (p50/p99). Every request carries a new X-Shopify-Webhook-Id and a
 * valid HMAC, so each one is verified and commits a new inbox row (durable: SQLite WAL with synchronous=FULL,
 * PostgreSQL synchronous_commit=on).
 * Targets (issue 3): throughput ≥ 40% of bare Koa; p99 ack latency < 25 ms at 500 requests/s. Reported, not asserted.
 *
 * Options: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 50), BENCH_RATE (default 500),
 * BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'pg';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const RATE = Number(process.env.BENCH_RATE ?? 500);
const PG_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SECRET = 'bench-shopify-secret';
const SHOP = 'bench-shop.myshopify.com';
const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'consent-bridge.js');

interface Server {
  readonly url: string;
  stop(): Promise<void>;
}

function launch(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, args, { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (d: Buffer): void => {
      output += d.toString();
      const match = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (match) {
        child.stdout!.off('data', onData);
        const url = match[1]!.replace('0.0.0.0', '127.0.0.1');
        resolve({ url, stop: () => new Promise((done) => (child.once('exit', () => done()), child.kill('SIGTERM'))) });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => reject(new Error(`process exited with ${code}:\n${output}`)));
  });
}

let counter = 0;
/** A fresh, correctly signed consent webhook per request (new webhook id, one of 5,000 customers). */
function signedRequest(): { body: string; headers: Record<string, string> } {
  counter += 1;
  const customer = 9_000_000_000 + (counter % 5000);
  const body = JSON.stringify({
    customer_id: customer,
    email_address: `bench${customer}@example.com`,
    email_marketing_consent: { state: counter % 4 === 0 ? 'unsubscribed' : 'subscribed', opt_in_level: 'single_opt_in', consent_updated_at: new Date(Date.UTC(2026, 0, 1) + counter * 1000).toISOString() },
  });
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-shopify-topic': 'customers_email_marketing_consent/update',
      'x-shopify-shop-domain': SHOP,
      'x-shopify-webhook-id': `bench-${process.pid}-${counter}-${randomBytes(4).toString('hex')}`,
      'x-shopify-api-version': '2026-04',
      'x-shopify-hmac-sha256': createHmac('sha256', SECRET).update(body).digest('base64'),
    },
  };
}

interface Figures {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly non2xx: number;
  readonly errors: number;
}

async function fire(url: string, rate?: number): Promise<Figures> {
  const result = await autocannon({
    url: `${url}/webhooks/shopify`,
    connections: rate ? Math.min(CONNECTIONS, 20) : CONNECTIONS,
    duration: SECONDS,
    ...(rate ? { overallRate: rate } : {}),
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          const { body, headers } = signedRequest();
          return { ...request, method: 'POST', body, headers };
        },
      },
    ],
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors + result.timeouts };
}

async function postgresTarget(): Promise<{ url: string; drop: () => Promise<void> } | null> {
  const schema = `bench_ingest_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: PG_URL });
  try {
    await admin.connect();
  } catch {
    return null;
  }
  await admin.query(`create schema ${schema}`);
  await admin.end();
  return {
    url: `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    drop: async () => {
      const client = new Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
    },
  };
}

function cli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: 'inherit' });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`consent-bridge ${args.join(' ')} exited ${code}`))));
  });
}

function line(label: string, f: Figures): string {
  return `${label.padEnd(34)} ${f.rps.toFixed(0).padStart(7)} req/s   p50 ${String(f.p50).padStart(4)} ms   p99 ${String(f.p99).padStart(4)} ms   non-2xx ${f.non2xx}   errors ${f.errors}`;
}

async function benchApp(label: string, databaseUrl: string, cwd: string, bare: { saturated: Figures }): Promise<void> {
  const env = { PORT: '0', HOST: '127.0.0.1', DATABASE_URL: databaseUrl, SHOPIFY_API_KEY: 'bench', SHOPIFY_API_SECRET: SECRET, LOG_LEVEL: 'warn', RUN_WORKER: process.env.BENCH_RUN_WORKER ?? 'true' };
  await cli(['tenant', 'add', '--shop', SHOP, '--portal', String(Date.now() % 1_000_000_000)], env, cwd);
  const server = await launch([BIN, 'serve'], env, cwd);
  try {
    await fire(server.url, 100); // warm-up: JIT, connection pool, SQLite page cache
    const saturated = await fire(server.url);
    const paced = await fire(server.url, RATE);
    console.log(line(`${label}: saturation (${CONNECTIONS} conns)`, saturated));
    console.log(line(`${label}: ${RATE} req/s`, paced));
    const ratio = saturated.rps / bare.saturated.rps;
    console.log(
      `${label}: ${(ratio * 100).toFixed(1)}% of bare-Koa throughput (target ≥ 40%: ${ratio >= 0.4 ? 'met' : 'NOT met'}); ` +
        `p99 at ${RATE} req/s ${paced.p99} ms (target < 25 ms: ${paced.p99 < 25 ? 'met' : 'NOT met'})`,
    );
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  console.log(`bench:ingest — ${SECONDS} s per phase, Node ${process.version}, ${os.cpus().length} CPUs`);
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-bench-ingest-'));
  try {
    const bareServer = await launch([path.join(__dirname, 'bare-koa.js')], {}, cwd);
    let bare: { saturated: Figures; paced: Figures };
    try {
      await fire(bareServer.url, 100);
      bare = { saturated: await fire(bareServer.url), paced: await fire(bareServer.url, RATE) };
    } finally {
      await bareServer.stop();
    }
    console.log(line(`bare Koa: saturation (${CONNECTIONS} conns)`, bare.saturated));
    console.log(line(`bare Koa: ${RATE} req/s`, bare.paced));

    await benchApp('SQLite', `sqlite:${path.join(cwd, 'bench.sqlite')}`, cwd, bare);
    const pg = await postgresTarget();
    if (pg) {
      try {
        await benchApp('PostgreSQL', pg.url, cwd, bare);
      } finally {
        await pg.drop();
      }
    } else {
      console.log(`PostgreSQL: skipped (${PG_URL} unreachable)`);
    }
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
