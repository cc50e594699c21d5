/**
 * `npm run bench:ingest`: signed Shopify consent webhooks fired with autocannon at the real server process
 * (`consent-bridge serve`, worker on as by default) on loopback, on SQLite and, when reachable, PostgreSQL; and
 * the same load at a bare Koa endpoint that only answers 200, measured in the same run.
 *
 * Two phases per target after a 3 s warm-up: saturation (BENCH_CONNECTIONS connections for BENCH_SECONDS) for
 * throughput, and a fixed 500 requests/s for the ack latency (p50/p99). BENCH_PASSES (default 3) passes, each
 * starting every server afresh (bare Koa, then the app on a new SQLite file, then on a new PostgreSQL schema), so a
 * slow stretch of the machine weighs on one pass rather than on one side; medians are compared, and the worst p99.
 * Every request carries a new X-Shopify-Webhook-Id and a valid HMAC, so each one is verified and commits a new
 * inbox row (durable: SQLite WAL with synchronous=FULL, PostgreSQL synchronous_commit=on).
 * Targets (issue 3): throughput ≥ 40% of bare Koa; p99 ack latency < 25 ms at 500 requests/s. Reported, not asserted.
 * Also reported where /proc exists (Linux): the server process's CPU per request in the saturation phase (all its
 * threads: the SQLite write thread and the in-process worker included; PostgreSQL's own processes not).
 *
 * Options: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 50), BENCH_RATE (default 500), BENCH_PASSES
 * (default 3), BENCH_RUN_WORKER (default true), BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
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
const PASSES = Number(process.env.BENCH_PASSES ?? 3);
if (!Number.isInteger(PASSES) || PASSES < 1) throw new Error(`BENCH_PASSES must be a whole number of at least 1, not ${process.env.BENCH_PASSES}`);
const WARMUP_SECONDS = 3;
const PG_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SECRET = 'bench-shopify-secret';
const SHOP = 'bench-shop.myshopify.com';
const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'consent-bridge.js');

interface Server {
  readonly url: string;
  /** CPU time the server process has used so far (all its threads), in µs; null where /proc is not available. */
  cpuMicros(): number | null;
  stop(): Promise<void>;
}

/** User + system CPU of a process from /proc/<pid>/stat (Linux), in µs; null elsewhere or once it has exited. */
function processCpuMicros(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop()!.trim().split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
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
        // A process that already exited (crashed mid-phase) must not leave `stop` waiting for an exit event gone by.
        const stop = (): Promise<void> =>
          child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((done) => (child.once('exit', () => done()), child.kill('SIGTERM')));
        resolve({ url, stop, cpuMicros: () => processCpuMicros(child.pid) });
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
  /** Requests answered in the phase. */
  readonly requests: number;
  /** Server CPU per request during the phase (µs, all threads), when measured. */
  readonly cpuPerRequest?: number | null;
  readonly p50: number;
  readonly p99: number;
  readonly non2xx: number;
  readonly errors: number;
}

async function fire(url: string, rate?: number, seconds = SECONDS): Promise<Figures> {
  const result = await autocannon({
    url: `${url}/webhooks/shopify`,
    connections: rate ? Math.min(CONNECTIONS, 20) : CONNECTIONS,
    duration: seconds,
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
  return { rps: result.requests.average, requests: result.requests.total, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors }; // autocannon's `errors` already counts timeouts
}

async function postgresTarget(): Promise<{ url: string; drop: () => Promise<void> } | null> {
  const schema = `bench_ingest_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: PG_URL });
  try {
    await admin.connect();
  } catch {
    return null;
  }
  try {
    await admin.query(`create schema ${schema}`);
  } finally {
    await admin.end();
  }
  return {
    url: `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    drop: async () => {
      const client = new Client({ connectionString: PG_URL });
      await client.connect();
      try {
        await client.query(`drop schema ${schema} cascade`);
      } finally {
        await client.end();
      }
    },
  };
}

function cli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`consent-bridge ${args.join(' ')} exited ${code}`))));
  });
}

function line(label: string, f: Figures): string {
  const cpu = f.cpuPerRequest === undefined || f.cpuPerRequest === null ? '' : `   server CPU ${Math.round(f.cpuPerRequest)} µs/request`;
  return `${label.padEnd(34)} ${f.rps.toFixed(0).padStart(7)} req/s   p50 ${String(f.p50).padStart(4)} ms   p99 ${String(f.p99).padStart(4)} ms   non-2xx ${f.non2xx}   errors ${f.errors}${cpu}`;
}

interface Measured {
  readonly saturated: Figures;
  readonly paced: Figures;
}

/** Warm up (JIT, connection pool, SQLite page cache), then the saturation and the paced phase. */
async function measure(server: Server): Promise<Measured> {
  await fire(server.url, 100, WARMUP_SECONDS);
  const before = server.cpuMicros();
  const saturated = await fire(server.url);
  const after = server.cpuMicros();
  const cpuPerRequest = before !== null && after !== null && saturated.requests > 0 ? (after - before) / saturated.requests : null;
  return { saturated: { ...saturated, cpuPerRequest }, paced: await fire(server.url, RATE) };
}

async function measureBare(cwd: string): Promise<Measured> {
  const server = await launch([path.join(__dirname, 'bare-koa.js')], {}, cwd);
  try {
    return await measure(server);
  } finally {
    await server.stop();
  }
}

async function measureApp(databaseUrl: string, cwd: string): Promise<Measured> {
  const env = { PORT: '0', HOST: '127.0.0.1', DATABASE_URL: databaseUrl, SHOPIFY_API_KEY: 'bench', SHOPIFY_API_SECRET: SECRET, LOG_LEVEL: 'warn', RUN_WORKER: process.env.BENCH_RUN_WORKER ?? 'true' };
  await cli(['tenant', 'add', '--shop', SHOP, '--portal', String(Date.now() % 1_000_000_000)], env, cwd);
  const server = await launch([BIN, 'serve'], env, cwd);
  try {
    return await measure(server);
  } finally {
    await server.stop();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  const worker = (process.env.BENCH_RUN_WORKER ?? 'true') === 'false' ? 'request path only (RUN_WORKER=false)' : 'worker in the same process';
  console.log(`bench:ingest — ${PASSES} passes, ${SECONDS} s per phase, Node ${process.version}, ${os.cpus().length} CPUs; app: ${worker}`);
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-bench-ingest-'));
  const runs = new Map<string, Measured[]>([['bare Koa', []], ['SQLite', []], ['PostgreSQL', []]]);
  let postgres = true;
  try {
    for (let pass = 1; pass <= PASSES; pass++) {
      const record = (label: string, figures: Measured): void => {
        runs.get(label)!.push(figures);
        console.log(line(`pass ${pass} ${label}: saturation`, figures.saturated));
        console.log(line(`pass ${pass} ${label}: ${RATE} req/s`, figures.paced));
      };
      record('bare Koa', await measureBare(cwd));
      record('SQLite', await measureApp(`sqlite:${path.join(cwd, `bench-${pass}.sqlite`)}`, cwd));
      const pg = postgres ? await postgresTarget() : null;
      if (pg) {
        try {
          record('PostgreSQL', await measureApp(pg.url, cwd));
        } finally {
          await pg.drop();
        }
      } else if (postgres) {
        postgres = false;
        console.log(`PostgreSQL: skipped (${PG_URL} unreachable)`);
      }
    }
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }

  const bareRps = median(runs.get('bare Koa')!.map((m) => m.saturated.rps));
  console.log(`\nmedians of ${PASSES} passes (saturation at ${CONNECTIONS} connections; worst p99 at ${RATE} req/s):`);
  for (const [label, measured] of runs) {
    if (measured.length === 0) continue;
    const rps = median(measured.map((m) => m.saturated.rps));
    const p99 = Math.max(...measured.map((m) => m.paced.p99));
    const errors = measured.reduce((sum, m) => sum + m.saturated.non2xx + m.saturated.errors + m.paced.non2xx + m.paced.errors, 0);
    const share = rps / bareRps;
    const targets = label === 'bare Koa' ? '' : `; ${(share * 100).toFixed(1)}% of bare Koa (target ≥ 40%: ${share >= 0.4 ? 'met' : 'NOT met'}); p99 target < 25 ms: ${p99 < 25 ? 'met' : 'NOT met'}`;
    const cpus = measured.map((m) => m.saturated.cpuPerRequest).filter((c): c is number => typeof c === 'number');
    const cpu = cpus.length === measured.length ? `; server CPU ${Math.round(median(cpus))} µs per request` : '';
    const passes = measured.length === PASSES ? 'passes' : `only ${measured.length} of ${PASSES} passes`;
    console.log(`${label.padEnd(11)} ${Math.round(rps).toLocaleString('en').padStart(7)} req/s (${passes} ${measured.map((m) => Math.round(m.saturated.rps)).join(', ')}), p99 ${p99} ms, non-2xx or errors ${errors}${cpu}${targets}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
