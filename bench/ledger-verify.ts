/**
 * `npm run bench:ledger`: seeds a 100,000-event ledger (1,000 subjects × 100 events, appended in batches of
 * 1,000) on SQLite and, when reachable, PostgreSQL, then times `ledger verify` and `ledger rebuild`.
 * Target (issue 2): verify of an intact 100,000-event ledger succeeds; its time is reported, not asserted.
 *
 * Options: BENCH_EVENTS (default 100000), BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import type { NewConsentEvent } from '../src/domain/consent';
import { appendToLedger, rebuildProjection, verifyLedger } from '../src/ledger/ledger';
import { openStore, type Store } from '../src/store/database';
import { migrateToLatest } from '../src/store/migrations';
import { resolveSubject } from '../src/subjects/subjects';
import { addTenant } from '../src/tenants/tenants';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const PG_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SUBJECTS = 1000;
const BATCH = 1000;
const deps = { clock: { now: () => new Date() }, ids: { next: () => randomUUID() }, secretBox: null };
const KINDS: NewConsentEvent['kind'][] = ['grant', 'withdraw', 'pending', 'confirm', 'soft_opt_in_earned', 'object'];

async function run(label: string, store: Store): Promise<void> {
  await migrateToLatest(store);
  const tenant = await addTenant(store, deps, { shopDomain: `bench-${Date.now()}.myshopify.com`, hubspotPortalId: String(Date.now()) });
  const subjects = await store.db.transaction().execute(async (trx) => {
    const out: string[] = [];
    for (let i = 0; i < SUBJECTS; i++) out.push((await resolveSubject(trx, deps, tenant.id, [{ kind: 'email', value: `bench-${i}@example.com` }])).subjectId);
    return out;
  });
  const seedStart = performance.now();
  const base = Date.UTC(2026, 0, 1);
  for (let offset = 0; offset < EVENTS; offset += BATCH) {
    const events: NewConsentEvent[] = [];
    for (let i = offset; i < Math.min(EVENTS, offset + BATCH); i++) {
      const kind = KINDS[i % KINDS.length]!;
      events.push({
        // 10 subjects per batch: each batch re-projects 10 (subject, channel) pairs.
        subjectId: subjects[(Math.floor(offset / BATCH) * 10 + (i % 10)) % SUBJECTS]!,
        channel: i % 3 === 0 ? 'sms' : 'email',
        purpose: i % 4 === 0 ? 'newsletter' : '*',
        kind,
        basis: kind === 'soft_opt_in_earned' ? 'soft_opt_in' : kind === 'withdraw' || kind === 'object' ? null : 'consent',
        occurredAt: new Date(base + i * 60_000).toISOString(),
        source: 'shopify',
        sourceDeliveryId: `d-${i}`,
        evidence: { affirmative: true, capturePoint: 'checkout', categories: ['footwear'], optInLevel: 'single_opt_in' },
      });
    }
    await appendToLedger(store, deps, { tenantId: tenant.id, deliveryKey: `bench-${offset}`, events });
  }
  const seedMs = performance.now() - seedStart;

  const verifyStart = performance.now();
  const verified = await verifyLedger(store.db, tenant.id);
  const verifyMs = performance.now() - verifyStart;
  if (!verified.ok) throw new Error(`verify failed on an intact ledger: ${JSON.stringify(verified.firstProblem)}`);

  const rebuildStart = performance.now();
  const rebuilt = await rebuildProjection(store, deps.clock, tenant.id);
  const rebuildMs = performance.now() - rebuildStart;

  const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en')}/s`;
  console.log(
    `${label.padEnd(10)} events ${verified.events.toLocaleString('en')} | append ${(seedMs / 1000).toFixed(1)} s (${rate(EVENTS, seedMs)})` +
      ` | verify ${(verifyMs / 1000).toFixed(2)} s (${rate(verified.events, verifyMs)}) ok` +
      ` | rebuild ${(rebuildMs / 1000).toFixed(2)} s, ${rebuilt.rows} rows, ${rebuilt.differences} differences`,
  );
  if (rebuilt.differences !== 0) throw new Error('rebuild differed from the incremental projection');
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-bench-'));
  const sqlite = openStore({ kind: 'sqlite', file: path.join(dir, 'bench.sqlite') });
  try {
    await run('sqlite', sqlite);
  } finally {
    await sqlite.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const schema = `bench_${Date.now()}`;
  const admin = new Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch {
    console.log(`postgres   SKIPPED: no server at ${PG_URL}`);
    return;
  }
  await admin.query(`create schema ${schema}`);
  const pg = openStore({ kind: 'postgres', url: PG_URL }, { schema });
  try {
    await run('postgres', pg);
  } finally {
    await pg.close();
    await admin.query(`drop schema ${schema} cascade`);
    await admin.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
