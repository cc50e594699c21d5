/**
 * `npm run bench:gate`: decisions per second of the send gate (src/gate/gate.ts `checkRecipients`, the code
 * behind POST /api/v1/gate/check, without HTTP) for 1,000,000 recipients in batches of 10,000, against a
 * baseline that only looks each recipient up in an in-memory Map, measured in the same run.
 *
 * Seed: BENCH_GATE_SUBJECTS (default 50,000) subjects with an email identity, a profile country and a projection
 * row (consent, soft opt-in for footwear, or withdrawn), written straight into the tables the gate reads.
 * Recipients are drawn from them plus 10% unknown addresses. SQLite file in a temporary directory.
 * The gate runs as in `serve`, with the in-memory cache (src/gate/cache.ts) kept current by the change feed; the
 * cold pass (facts loaded from SQLite on first sight) is reported too. Five interleaved passes of each side,
 * medians compared. Targets (issue 4): at least 200,000 decisions/s and at least 25% of the baseline. Reported,
 * not asserted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EMPTY_STATE, type ConsentState } from '../src/domain/consent';
import { GateCache } from '../src/gate/cache';
import { checkRecipients, parseGateRequest } from '../src/gate/gate';
import { openStore } from '../src/store/database';
import { migrateToLatest } from '../src/store/migrations';
import { addTenant } from '../src/tenants/tenants';
import { median } from './stats';

const SUBJECTS = Number(process.env.BENCH_GATE_SUBJECTS ?? 50_000);
const TOTAL = 1_000_000;
const BATCH = 10_000;
const COUNTRIES = ['NL', 'DE', 'FR', 'IE', 'IT', null];

function stateFor(i: number): ConsentState {
  if (i % 3 === 0) return { ...EMPTY_STATE, status: 'granted', basis: 'consent', optInLevel: 'confirmed_opt_in', grantedAt: '2026-01-01T00:00:00.000Z', confirmedAt: '2026-01-01T00:00:00.000Z', evidenceEventIds: [`e${i}`] };
  if (i % 3 === 1) return { ...EMPTY_STATE, softOptIn: { footwear: { earnedAt: '2026-09-01T00:00:00.000Z', validUntil: null, eventId: `e${i}`, orderId: `o${i}` } } };
  return { ...EMPTY_STATE, status: 'withdrawn', withdrawnAt: '2026-02-01T00:00:00.000Z', softOptInEnded: true, softOptInEndedAt: '2026-02-01T00:00:00.000Z', evidenceEventIds: [`e${i}`] };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-bench-gate-'));
  const store = openStore({ kind: 'sqlite', file: path.join(dir, 'gate.sqlite') });
  try {
    await migrateToLatest(store);
    const clock = { now: () => new Date('2026-11-24T12:00:00.000Z') };
    let n = 0;
    const tenant = await addTenant(store, { clock, ids: { next: () => `id${++n}` }, secretBox: null }, { shopDomain: 'bench-gate.myshopify.com', hubspotPortalId: '4242' });
    const seedStart = performance.now();
    for (let from = 0; from < SUBJECTS; from += 1000) {
      const ids = Array.from({ length: Math.min(1000, SUBJECTS - from) }, (_, k) => from + k);
      await store.db.transaction().execute(async (trx) => {
        await trx.insertInto('subject').values(ids.map((i) => ({ id: `s${i}`, tenant_id: tenant.id, created_at: '2026-01-01T00:00:00.000Z' }))).execute();
        await trx.insertInto('subject_identity').values(ids.map((i) => ({ tenant_id: tenant.id, kind: 'email', value: `p${i}@example.com`, subject_id: `s${i}`, created_at: '2026-01-01T00:00:00.000Z' }))).execute();
        await trx.insertInto('subject_profile').values(ids.map((i) => ({ tenant_id: tenant.id, subject_id: `s${i}`, country: COUNTRIES[i % COUNTRIES.length]!, company: null, source_updated_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z' }))).execute();
        await trx
          .insertInto('consent_current')
          .values(ids.map((i) => { const state = stateFor(i); return { tenant_id: tenant.id, subject_id: `s${i}`, channel: 'email', purpose: '*', status: state.status, basis: state.basis, state: JSON.stringify(state), last_event_at: '2026-09-01T00:00:00.000Z', last_seq: i + 1 }; }))
          .execute();
      });
    }
    console.log(`bench:gate: seeded ${SUBJECTS.toLocaleString('en')} subjects in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

    // Through JSON, as the route receives them (src/server/body.ts): flat strings, not the concatenations a template
    // literal leaves behind, which every string read would first have to walk. Both sides read the same batches.
    const batches = JSON.parse(
      JSON.stringify(
        Array.from({ length: TOTAL / BATCH }, (_, b) =>
          Array.from({ length: BATCH }, (_, k) => {
            const i = (b * 7919 + k * 104_729) % Math.round(SUBJECTS * 1.1);
            return { email: i < SUBJECTS ? `p${i}@example.com` : `unknown${i}@example.com` };
          }),
        ),
      ),
    ) as Array<Array<{ email: string }>>;

    // Baseline: only look each recipient up in an in-memory Map.
    const map = new Map<string, ConsentState>();
    for (let i = 0; i < SUBJECTS; i++) map.set(`p${i}@example.com`, stateFor(i));
    let found = 0;
    const baselinePass = (): number => {
      found = 0;
      const start = performance.now();
      for (const batch of batches) for (const r of batch) if (map.get(r.email) !== undefined) found += 1;
      return TOTAL / ((performance.now() - start) / 1000);
    };

    // Reference, not the gate: the least a decision can cost here. Flat records prepared in advance (status as a
    // number, times as epoch ms, the grant inline), looked up in the same kind of Map, decided by three
    // comparisons, one result object each. No validation, no identity normalisation, no profile, no settings.
    // It shows how far the 25% target is from what any per-recipient decision costs on this machine.
    interface FlatRecord { readonly status: number; readonly grantEndMs: number; readonly grantEventId: string | null; readonly evidence: readonly string[] }
    const flat = new Map<string, FlatRecord>();
    for (let i = 0; i < SUBJECTS; i++) {
      const state = stateFor(i);
      const grant = state.softOptIn.footwear;
      flat.set(`p${i}@example.com`, { status: state.status === 'granted' ? 0 : state.status === 'withdrawn' ? 2 : 1, grantEndMs: grant ? Date.parse(grant.earnedAt) + 365 * 86_400_000 : 0, grantEventId: grant?.eventId ?? null, evidence: state.evidenceEventIds });
    }
    const nowMs = clock.now().getTime();
    const floorPass = (): number => {
      let floorAllowed = 0;
      const start = performance.now();
      for (const batch of batches) {
        const results = new Array<{ allowed: boolean; reason: string; evidence: readonly string[] }>(batch.length);
        for (let k = 0; k < batch.length; k++) {
          const record = flat.get(batch[k]!.email);
          const result =
            record === undefined ? { allowed: false, reason: 'unknown_recipient', evidence: [] }
            : record.status === 2 ? { allowed: false, reason: 'withdrawn', evidence: record.evidence }
            : record.status === 0 ? { allowed: true, reason: 'consent', evidence: record.evidence }
            : record.grantEventId !== null && record.grantEndMs > nowMs ? { allowed: true, reason: 'soft_opt_in', evidence: [record.grantEventId] }
            : { allowed: false, reason: 'no_consent', evidence: record.evidence };
          results[k] = result;
          if (result.allowed) floorAllowed += 1;
        }
      }
      if (floorAllowed === 0) throw new Error('floor reference decided nothing');
      return TOTAL / ((performance.now() - start) / 1000);
    };

    // As in `serve`: facts from the in-memory gate cache, brought up to date by the change feed before each batch.
    const facts = new GateCache();
    const check = (batch: Array<{ email: string }>) =>
      checkRecipients(store, tenant, parseGateRequest({ channel: 'email', categories: ['footwear'], recipients: batch }), clock.now(), { facts });
    // Cold pass: every subject's facts are loaded from SQLite into the cache on first sight (reported, not the target).
    const coldStart = performance.now();
    for (const batch of batches.slice(0, 10)) await check(batch);
    const coldRate = (10 * BATCH) / ((performance.now() - coldStart) / 1000);
    for (const batch of batches) await check(batch); // warm-up: the rest of the cache and the JIT
    let allowed = 0;
    const gatePass = async (): Promise<number> => {
      allowed = 0;
      const start = performance.now();
      for (const batch of batches) for (const r of (await check(batch)).results) if (r.allowed) allowed += 1;
      return TOTAL / ((performance.now() - start) / 1000);
    };

    // Five passes of each, interleaved; medians reported (this machine's figures vary by ±30% run to run).
    const baseRates: number[] = [];
    const gateRates: number[] = [];
    const floorRates: number[] = [];
    const PASSES = 5;
    for (let pass = 0; pass < PASSES; pass++) {
      baseRates.push(baselinePass());
      gateRates.push(await gatePass());
      floorRates.push(floorPass());
    }
    const baseRate = median(baseRates);
    const gateRate = median(gateRates);
    const fmt = (rate: number): string => Math.round(rate).toLocaleString('en').padStart(12);
    console.log(`baseline (Map lookup):   ${fmt(baseRate)} lookups/s   (median of ${baseRates.map((r) => Math.round(r / 1000)).join(', ')} k; ${found.toLocaleString('en')} found)`);
    console.log(`gate (checkRecipients):  ${fmt(gateRate)} decisions/s (median of ${gateRates.map((r) => Math.round(r / 1000)).join(', ')} k; ${allowed.toLocaleString('en')} allowed of ${TOTAL.toLocaleString('en')})`);
    const floorRate = median(floorRates);
    console.log(`reference floor:         ${fmt(floorRate)} decisions/s (median; flat records, three comparisons: ${((floorRate / baseRate) * 100).toFixed(1)}% of the baseline)`);
    console.log(`gate, cold cache:        ${fmt(coldRate)} decisions/s (first ${(10 * BATCH).toLocaleString('en')} recipients, facts loaded from SQLite on first sight)`);
    const share = gateRate / baseRate;
    console.log(
      `target ≥ 200,000 decisions/s: ${gateRate >= 200_000 ? 'met' : 'NOT met'}; share of baseline ${(share * 100).toFixed(2)}% (target ≥ 25%: ${share >= 0.25 ? 'met' : 'NOT met'})`,
    );
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
