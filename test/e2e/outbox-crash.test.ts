/**
 * Issue 5 §1 acceptance: SIGKILL a dispatcher process mid-dispatch, after the platform applied a chunk but
 * before the outbox recorded it, with later chunks of its step claimed and not yet sent. After a restart every
 * enqueued write is delivered at least once (the claimed rows come back when the dead process's lease ends), and
 * nothing is applied twice: the killed chunk is delivered again, and the sink, like a platform, applies a write
 * that is already in effect as a no-op (setting a status twice has one effect). Real processes, SQLite and
 * PostgreSQL.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { enqueueOutbox } from '../../src/outbox/outbox';
import type { Store } from '../../src/store/database';
import { migrateToLatest } from '../../src/store/migrations';
import { addTenant } from '../../src/tenants/tenants';
import { countingIds } from '../helpers/deps';
import type { ChildConfig } from '../helpers/outbox-child';
import { minimalEnv } from '../helpers/process';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/stores';

const ITEMS = 60;
const REGISTER = path.resolve(__dirname, '../helpers/ts-register.js');
const CHILD = path.resolve(__dirname, '../helpers/outbox-child.ts');

interface Child {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  output(): string;
  /** Resolves when the output contains `text`. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
}

function run(config: ChildConfig): Child {
  const child = spawn(process.execPath, ['--enable-source-maps', '-r', REGISTER, CHILD, JSON.stringify(config)], { env: minimalEnv() });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waitFor = (text: string, timeoutMs = 20_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      const check = (): void => {
        if (!output.includes(text)) return;
        clearTimeout(timer);
        resolve();
      };
      child.stdout.on('data', check);
      void exited.then((code) => {
        clearTimeout(timer);
        if (!output.includes(text)) reject(new Error(`child exited with ${code} before "${text}":\n${output}`));
      });
      check();
    });
  return { child, exited, output: () => output, waitFor };
}

async function outboxState(store: Store): Promise<{ pending: number; claimed: number; done: number; dead: number }> {
  const rows = await store.db.selectFrom('outbox').select(['status', 'claimed_until']).execute();
  return {
    pending: rows.filter((r) => r.status === 'pending').length,
    claimed: rows.filter((r) => r.status === 'pending' && r.claimed_until !== null).length,
    done: rows.filter((r) => r.status === 'done').length,
    dead: rows.filter((r) => r.status === 'dead').length,
  };
}

function sinkCounts(file: string): { deliveries: Map<string, number>; applied: Map<string, number> } {
  const sink = new BetterSqlite3(file, { readonly: true });
  try {
    const deliveries = sink.prepare('select key, count(*) as n from delivery group by key').all() as Array<{ key: string; n: number }>;
    const applied = sink.prepare('select key, count from applied').all() as Array<{ key: string; count: number }>;
    return { deliveries: new Map(deliveries.map((d) => [d.key, d.n])), applied: new Map(applied.map((a) => [a.key, a.count])) };
  } finally {
    sink.close();
  }
}

const key = (i: number) => `item-${String(i).padStart(2, '0')}`;

describe.each(testDialects())('SIGKILL mid-dispatch, on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    store = db.open();
    await migrateToLatest(store);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-outbox-crash-'));
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every enqueued write is delivered at least once after a restart, and none is applied twice', async () => {
    const deps = { clock: { now: () => new Date() }, ids: countingIds('crash') };
    const tenant = await addTenant(store, { ...deps, secretBox: null }, { shopDomain: 'outbox-crash.myshopify.com', hubspotPortalId: '7070' });
    const items = Array.from({ length: ITEMS }, (_, i) => ({
      tenantId: tenant.id,
      platform: 'hubspot' as const,
      operation: 'subscription',
      idempotencyKey: key(i),
      subjectId: null,
      payload: { email: `crash${i}@example.com`, subscriptionTypeId: '101', subscribed: i % 3 !== 0 },
      sourceSeq: i + 1,
    }));
    expect(await enqueueOutbox(store, deps, items)).toBe(ITEMS);

    const sinkFile = path.join(dir, 'sink.sqlite');
    // Steps of 20 rows in chunks of 5: the third chunk of the first step is applied, then the process dies.
    const base: ChildConfig = { target: db.target, ...(db.schema ? { schema: db.schema } : {}), sinkFile, batchSize: 20, maxBatch: 5, leaseMs: 2000, crashAfterChunks: 3 };

    const first = run(base);
    try {
      await first.waitFor('CRASH-POINT');
    } finally {
      first.child.kill('SIGKILL');
    }
    expect(await first.exited).toBeNull(); // killed by the signal

    // Two chunks recorded; the third applied on the "platform" but not recorded; the fourth claimed, never sent.
    expect(await outboxState(store)).toEqual({ pending: 50, claimed: 10, done: 10, dead: 0 });
    const afterCrash = sinkCounts(sinkFile);
    expect([...afterCrash.applied.keys()].sort()).toEqual(Array.from({ length: 15 }, (_, i) => key(i)));

    const second = run({ ...base, crashAfterChunks: null });
    try {
      await second.waitFor('running');
      const deadline = Date.now() + 30_000;
      while ((await outboxState(store)).done < ITEMS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await outboxState(store)).toEqual({ pending: 0, claimed: 0, done: ITEMS, dead: 0 });
    } finally {
      second.child.kill('SIGTERM');
    }
    expect({ code: await second.exited, output: second.output() }).toMatchObject({ code: 0 });

    const { deliveries, applied } = sinkCounts(sinkFile);
    // At least once: every write reached the platform.
    expect([...deliveries.keys()].sort()).toEqual(Array.from({ length: ITEMS }, (_, i) => key(i)));
    // The killed chunk was delivered twice, everything else once.
    const twice = [...deliveries].filter(([, n]) => n > 1).map(([k, n]) => [k, n]);
    expect(twice.sort()).toEqual([10, 11, 12, 13, 14].map((i) => [key(i), 2]));
    // Nothing applied twice: the sink applied each write once.
    expect(applied.size).toBe(ITEMS);
    expect([...applied.values()].every((n) => n === 1)).toBe(true);
  }, 90_000);
});
