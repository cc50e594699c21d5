/**
 * `npm run bench:gate`: decisions per second of the send gate (src/gate/gate.ts `checkRecipients`, the code
 * behind POST /api/v1/gate/check, without HTTP) for 1,000,000 recipients in batches of 10,000, against a
 * baseline that only looks each recipient up in an in-memory Map, measured in the same run.
 *
 * Seed: BENCH_GATE_SUBJECTS (default 50,000) subjects with an email identity, a profile country and a projection
 * row (consent, soft opt-in for footwear, or withdrawn), written straight into the tables the gate reads.
 * Recipients are drawn from them plus 10% unknown addresses. SQLite file in a temporary directory.
 * Targets (issue 4): at least 200,000 decisions/s and at least 25% of the baseline. Reported, not asserted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EMPTY_STATE, type ConsentState } from '../src/domain/consent';
import { checkRecipients, parseGateRequest } from '../src/gate/gate';
import { openStore } from '../src/store/database';
import { migrateToLatest } from '../src/store/migrations';
import { addTenant } from '../src/tenants/tenants';

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

    const batches = Array.from({ length: TOTAL / BATCH }, (_, b) =>
      Array.from({ length: BATCH }, (_, k) => {
        const i = (b * 7919 + k * 104_729) % Math.round(SUBJECTS * 1.1);
        return { email: i < SUBJECTS ? `p${i}@example.com` : `unknown${i}@example.com` };
      }),
    );

    // Baseline: only look each recipient up in an in-memory Map.
    const map = new Map<string, ConsentState>();
    for (let i = 0; i < SUBJECTS; i++) map.set(`p${i}@example.com`, stateFor(i));
    let found = 0;
    const baseStart = performance.now();
    for (const batch of batches) for (const r of batch) if (map.get(r.email) !== undefined) found += 1;
    const baseSeconds = (performance.now() - baseStart) / 1000;
    const baseRate = TOTAL / baseSeconds;

    await checkRecipients(store, tenant, parseGateRequest({ channel: 'email', categories: ['footwear'], recipients: batches[0]! }), clock.now()); // warm-up
    let allowed = 0;
    const gateStart = performance.now();
    for (const batch of batches) {
      const request = parseGateRequest({ channel: 'email', categories: ['footwear'], recipients: batch });
      const response = await checkRecipients(store, tenant, request, clock.now());
      for (const r of response.results) if (r.allowed) allowed += 1;
    }
    const gateSeconds = (performance.now() - gateStart) / 1000;
    const gateRate = TOTAL / gateSeconds;
    console.log(`baseline (Map lookup):   ${Math.round(baseRate).toLocaleString('en').padStart(12)} lookups/s   (${found.toLocaleString('en')} found)`);
    console.log(`gate (checkRecipients):  ${Math.round(gateRate).toLocaleString('en').padStart(12)} decisions/s (${allowed.toLocaleString('en')} allowed of ${TOTAL.toLocaleString('en')}; ${gateSeconds.toFixed(2)} s)`);
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
