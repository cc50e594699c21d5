/**
 * `npm run bench:sync-faults` (issue 6 acceptance): with the HubSpot simulator injecting faults (30% of API
 * requests: 5xx, answers slower than the app's timeout, connection resets) and its rate limit on (110 requests per
 * rolling 10 s per portal), a run of BENCH_CHANGES consent changes must end with HubSpot and Shopify showing what the
 * ledger says, no change lost, and the 429s received reported.
 *
 * The run, in one process (the sandbox: the real app as `serve` runs it, both simulators on loopback, one demo
 * tenant, sandbox/sandbox.ts):
 * 1. BENCH_CUSTOMERS customers (default BENCH_CHANGES / 5, country NL) are created in the Shopify simulator; each
 *    then ticks and unticks the email marketing box 4–6 times (first a tick; every change is a real change, so a
 *    webhook), one round of changes at a time, each change stamped one minute after the customer's previous one
 *    (all in the past: Shopify compares consent times in whole seconds, and a person does not tick twice in one
 *    second). About half the customers end subscribed.
 * 2. BENCH_HUBSPOT_SHARE (5%) of the customers, all ending subscribed in Shopify, then change their mind in HubSpot,
 *    as soon as the app has nothing left to write for them: 3 of 5 unsubscribe from all email through a link and the
 *    merchant's workflow runs the app's "Record consent change" action; 1 of 5 unsubscribes from the newsletter type
 *    only, also recorded by the action; 1 of 5 unsubscribes from all with no workflow, so only the reconciliation
 *    poll (every minute in the demo settings) can find it (BENCH_HUBSPOT_POLL=0: none of these, the action records
 *    them all). These count as changes: Shopify changes + HubSpot-side changes = BENCH_CHANGES.
 * 3. Wait until the app is quiet: no webhook waiting in either simulator and nothing pending in the inbox or the
 *    outbox for 2 s, and the reconciliation poll caught up with HubSpot's newest contact change (its cursor at or
 *    past it) with every poll-only unsubscribe in the ledger; from the first time the queues are quiet the poll
 *    gets BENCH_POLL_WAIT_S, then the run goes on (once the queues are quiet again) and says the poll was behind. Dead letters are listed, re-queued once
 *    (as an operator would with `outbox retry --all` / `inbox retry --all`), and the app is waited on again. If a
 *    customer went wrong, the ledger events and platform writes of the first two are printed.
 * 4. Compare every customer (below), print the figures, exit 1 on any mismatch or lost change (or if the app never
 *    became quiet within BENCH_DRAIN_TIMEOUT_S).
 *
 * Comparison rules, per customer (the ledger is the reference; "the gate" is POST /api/v1/gate/check, channel
 * email, recipient `shopifyCustomerId`):
 * - Lost change: the ledger's current state (consent_current, email, purpose `*`) is not what the customer's last
 *   change says (granted after a final tick; withdrawn after a final untick or an unsubscribe from all in HubSpot);
 *   after a newsletter-only unsubscribe the gate still allows the `newsletter` purpose; fewer Shopify-sourced email
 *   events in the ledger than Shopify changes made; or a HubSpot-side change that left no HubSpot-sourced event.
 * - Shopify (emailMarketingConsent.state): SUBSCRIBED exactly when the ledger's `*` state is granted on consent (a
 *   soft opt-in is never SUBSCRIBED in Shopify: it is not consent); UNSUBSCRIBED when it is withdrawn (REDACTED when
 *   erased); otherwise anything but SUBSCRIBED.
 * - HubSpot subscription status, per mapped subscription type (the demo tenant's purposes: newsletter 101, footwear
 *   202, insurance 303): subscribed (status SUBSCRIBED and not "opted out of all") exactly when the gate allows the
 *   type's purpose (with the purpose's category groups, so a soft opt-in for them counts); a contact the gate blocks
 *   is never SUBSCRIBED. A subscribed type's legal basis is CONSENT_WITH_NOTICE when the gate's reason is consent,
 *   LEGITIMATE_INTEREST_CLIENT when it is soft opt-in. A type never written reads as not subscribed.
 * - HubSpot contact: exists; its `consent_bridge_email_gate` property is `allowed` exactly when the gate allows
 *   purpose `*` (no soft opt-in in this run, so no categories), else `blocked`; it is on the suppression list
 *   "Consent Bridge: blocked contacts" exactly when blocked.
 * - The gate for `*` agrees with consent_current (allowed exactly when granted on consent: NL customers, single
 *   opt-in is valid there).
 * - Before a customer's HubSpot-side change, HubSpot must already show them SUBSCRIBED on every mapped type (the
 *   ledger says granted then); otherwise that is a mismatch too (the change would hide it).
 *
 * What makes it finish in minutes (the sandbox options it passes, all defaults of `serve` otherwise): the app's
 * HubSpot timeout is BENCH_HUBSPOT_TIMEOUT_MS (1 s; the simulator's slow answers come 500 ms after it, so a slow
 * fault costs 1 s, not 15 s: the dispatcher sends one request at a time); the outbox backoff starts at 0.5 s and is
 * capped at 5 s (default 5 s doubling, capped at 1 h: the number of attempts before a dead letter, 15, is unchanged,
 * so the dead-letter odds are those of `serve`, reached in seconds instead of hours); the demo portal grants the v4
 * batch subscription scopes (Marketing Hub Enterprise) and the connector is told so (not detected: a failed
 * introspection would mean 5 minutes of per-email calls), so unsubscribes, fresh re-subscribes and the poll's status
 * reads go 100 per request. Without them (BENCH_HUBSPOT_BATCH=0) every subscription write and every status read
 * is its own request: 5,000 changes × 3 subscription types at 10 requests/s is about 25 minutes of rate limit
 * alone, and each poll costs 2 requests per modified contact; use a small BENCH_CHANGES then.
 *
 * Options: BENCH_CHANGES (5000), BENCH_CUSTOMERS (changes / 5), BENCH_FAULT_RATE (0.3: 40% of it 5xx, 30% slow,
 * 30% resets), BENCH_HUBSPOT_TIMEOUT_MS (1000), BENCH_HUBSPOT_BATCH (1; 0 = no batch scopes),
 * BENCH_HUBSPOT_RATE_LIMIT (the simulator's requests per 10 s, 110; the app budgets 100, so lower it to see 429s
 * handled), BENCH_HUBSPOT_SHARE (0.05), BENCH_HUBSPOT_POLL (1; 0 = no poll-only unsubscribes), BENCH_POLL_WAIT_S
 * (300), BENCH_DRAIN_TIMEOUT_S (1500), BENCH_POSTGRES_URL or a postgres://
 * DATABASE_URL (PostgreSQL, in a new schema dropped afterwards; default SQLite in a temporary directory), LOG_LEVEL
 * (the app's log level; default silent).
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { Client } from 'pg';
import { listDeadDeliveries, retryDeadDeliveries } from '../src/inbox/inbox';
import { listDeadOutbox, retryDeadOutbox } from '../src/outbox/outbox';
import { backfillProgress } from '../src/sync/backfill';
import { RECONCILE_CURSOR } from '../src/sync/reconcile';
import { DEMO_SETTINGS, DEMO_SUBSCRIPTION_TYPES, startSandbox, type Sandbox } from '../sandbox/sandbox';

function intOption(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a whole number ≥ 0, not ${raw}`);
  return value;
}

function shareOption(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`${name} must be between 0 and 1, not ${raw}`);
  return value;
}

const CHANGES = Math.max(1, intOption('BENCH_CHANGES', 5000));
const CUSTOMERS = Math.min(CHANGES, Math.max(1, intOption('BENCH_CUSTOMERS', Math.max(1, Math.round(CHANGES / 5)))));
const FAULT_RATE = shareOption('BENCH_FAULT_RATE', 0.3);
const TIMEOUT_MS = Math.max(100, intOption('BENCH_HUBSPOT_TIMEOUT_MS', 1000));
const BATCH_SCOPES = process.env.BENCH_HUBSPOT_BATCH !== '0';
const RATE_LIMIT = Math.max(1, intOption('BENCH_HUBSPOT_RATE_LIMIT', 110));
const HUBSPOT_SHARE = shareOption('BENCH_HUBSPOT_SHARE', 0.05);
const DRAIN_TIMEOUT_MS = Math.max(10, intOption('BENCH_DRAIN_TIMEOUT_S', 1500)) * 1000;
const POLL_WAIT_MS = intOption('BENCH_POLL_WAIT_S', 300) * 1000;
const POLL_ONLY = process.env.BENCH_HUBSPOT_POLL !== '0';
const PG_URL = process.env.BENCH_POSTGRES_URL ?? (/^postgres(ql)?:\/\//.test(process.env.DATABASE_URL ?? '') ? process.env.DATABASE_URL : undefined);

const FAULTS = { errorRate: FAULT_RATE * 0.4, slowRate: FAULT_RATE * 0.3, resetRate: FAULT_RATE * 0.3, delayMs: TIMEOUT_MS + 500 };
const BACKOFF = { backoffBaseMs: 500, backoffCapMs: 5_000 };
const MINUTE = 60_000;
const SUPPRESSION_LIST = 'Consent Bridge: blocked contacts';
const GATE_PROPERTY = 'consent_bridge_email_gate';

/** Purposes of the demo tenant with their HubSpot subscription types and category groups. */
const PURPOSES = DEMO_SETTINGS.purposes.map((p) => ({ id: p.id, types: [...p.hubspotSubscriptionTypeIds], categories: [...p.categoryGroups] }));
const MAPPED_TYPES = PURPOSES.flatMap((p) => p.types.map((type) => ({ type, purpose: p.id })));

type HubspotSide = 'none' | 'all-action' | 'type-action' | 'all-poll';

interface Customer {
  readonly index: number;
  /** The Shopify customer id, once created. */
  id: string;
  readonly email: string;
  readonly shopifyChanges: number;
  readonly hubspot: HubspotSide;
  hubspotDone: boolean;
  /** The HubSpot-side change could not be made (no HubSpot contact although nothing was pending). */
  hubspotGaveUp: boolean;
}

interface GateResult {
  readonly allowed: boolean;
  readonly reason: string;
}

interface SubscriptionEntry {
  readonly email: string;
  readonly optedOutOfAll: boolean;
  readonly statuses: ReadonlyArray<{ readonly subscriptionId: string; readonly status: string; readonly legalBasis: string | null }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const n = (value: number): string => value.toLocaleString('en');
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const pct = (part: number, whole: number): string => (whole === 0 ? '0%' : `${((100 * part) / whole).toFixed(1)}%`);

// ------------------------------------------------------------------------------------------------ the plan

/**
 * Shopify changes per customer: an even share of the Shopify changes, then -1/+1 on two of every four customers
 * (same sum) so end states differ (odd: ends subscribed). HubSpot-side changes go to customers ending subscribed.
 */
function plan(runId: string): { customers: Customer[]; shopifyChanges: number; hubspotChanges: number } {
  const subscribedCapacity = (counts: number[]) => counts.filter((c) => c % 2 === 1).length;
  let hubspotChanges = Math.min(Math.round(CUSTOMERS * HUBSPOT_SHARE), CHANGES - CUSTOMERS);
  let counts: number[] = [];
  for (;;) {
    const shopify = CHANGES - hubspotChanges;
    const base = Math.floor(shopify / CUSTOMERS);
    const rest = shopify - base * CUSTOMERS;
    counts = Array.from({ length: CUSTOMERS }, (_, i) => base + (i < rest ? 1 : 0));
    for (let g = 0; g + 3 < CUSTOMERS; g += 4) {
      if (counts.slice(g, g + 4).every((c) => c >= 2)) {
        counts[g + 1]! -= 1;
        counts[g + 2]! += 1;
      }
    }
    if (hubspotChanges <= subscribedCapacity(counts)) break;
    hubspotChanges = subscribedCapacity(counts);
  }
  const sides: HubspotSide[] = counts.map(() => 'none');
  const candidates = counts.map((c, i) => (c % 2 === 1 ? i : -1)).filter((i) => i >= 0);
  const kinds: HubspotSide[] = POLL_ONLY ? ['all-action', 'type-action', 'all-action', 'all-poll', 'all-action'] : ['all-action', 'type-action', 'all-action', 'all-action'];
  for (let k = 0; k < hubspotChanges; k++) sides[candidates[Math.floor((k * candidates.length) / hubspotChanges)]!] = kinds[k % kinds.length]!;
  const customers = counts.map((count, index) => ({ index, id: '', email: `c${index}.${runId}@bench.example`, shopifyChanges: count, hubspot: sides[index]!, hubspotDone: false, hubspotGaveUp: false }));
  return { customers, shopifyChanges: CHANGES - hubspotChanges, hubspotChanges };
}

// ------------------------------------------------------------------------------------------------ reading the app

async function postgresSchema(url: string): Promise<{ databaseUrl: string; drop: () => Promise<void> }> {
  const schema = `bench_sync_faults_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: url });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  return {
    databaseUrl: `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    drop: async () => {
      const client = new Client({ connectionString: url });
      await client.connect();
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
    },
  };
}

async function queueCounts(sandbox: Sandbox): Promise<{ inboxPending: number; inboxDead: number; outboxPending: number; outboxDead: number; outboxDone: number }> {
  const db = sandbox.runtime.store.db;
  const inbox = await db.selectFrom('inbox').select(['status', db.fn.countAll<number>().as('n')]).groupBy('status').execute();
  const outbox = await db.selectFrom('outbox').select(['status', db.fn.countAll<number>().as('n')]).groupBy('status').execute();
  const of = (rows: Array<{ status: string; n: number | string | bigint }>, status: string) => Number(rows.find((r) => r.status === status)?.n ?? 0);
  return { inboxPending: of(inbox, 'pending'), inboxDead: of(inbox, 'dead'), outboxPending: of(outbox, 'pending'), outboxDead: of(outbox, 'dead'), outboxDone: of(outbox, 'done') };
}

/** Shopify customer ids of subjects with an outbox row still pending. */
async function customersWithPendingWrites(sandbox: Sandbox): Promise<Set<string>> {
  const rows = await sql<{ value: string }>`
    select distinct i.value as value from outbox o
    join subject_identity i on i.tenant_id = o.tenant_id and i.subject_id = o.subject_id and i.kind = 'shopify_customer'
    where o.tenant_id = ${sandbox.tenant.id} and o.status = 'pending'`.execute(sandbox.runtime.store.db);
  return new Set(rows.rows.map((r) => String(r.value)));
}

/** The reconciliation poll has caught up with HubSpot: its cursor is at or past the newest contact change. */
async function pollIsCaughtUp(sandbox: Sandbox, newestContactChange: number): Promise<boolean> {
  const row = await sandbox.runtime.store.db.selectFrom('sync_cursor').select(['value']).where('tenant_id', '=', sandbox.tenant.id).where('name', '=', RECONCILE_CURSOR).executeTakeFirst();
  if (row === undefined) return newestContactChange === 0;
  const position = JSON.parse(row.value) as { modifiedAt?: string; caughtUp?: boolean };
  return position.caughtUp === true && typeof position.modifiedAt === 'string' && Date.parse(position.modifiedAt) >= newestContactChange;
}

function portalState(sandbox: Sandbox) {
  const portal = sandbox.hubspot.state().portals.find((p) => p.portalId === sandbox.portalId);
  if (portal === undefined) throw new Error('the demo portal is missing from the HubSpot simulator');
  return portal;
}

function subscriptionsByEmail(portal: ReturnType<typeof portalState>): Map<string, SubscriptionEntry> {
  return new Map((portal.subscriptions as SubscriptionEntry[]).map((s) => [s.email.toLowerCase(), s]));
}

function subscribedIn(entry: SubscriptionEntry | undefined, type: string): { subscribed: boolean; legalBasis: string | null; status: string } {
  const status = entry?.statuses.find((s) => String(s.subscriptionId) === type);
  const state = status?.status ?? 'none';
  return { subscribed: state === 'SUBSCRIBED' && entry?.optedOutOfAll !== true, legalBasis: status?.legalBasis ?? null, status: entry?.optedOutOfAll ? `${state}, opted out of all` : state };
}

async function gate(sandbox: Sandbox, purpose: string, categories: readonly string[], customerIds: readonly string[]): Promise<Map<string, GateResult>> {
  const out = new Map<string, GateResult>();
  for (let i = 0; i < customerIds.length; i += 10_000) {
    const part = customerIds.slice(i, i + 10_000);
    const response = await fetch(`${sandbox.appUrl}/api/v1/gate/check`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${sandbox.apiKey}` },
      body: JSON.stringify({ channel: 'email', purpose, categories, recipients: part.map((id) => ({ shopifyCustomerId: id })) }),
    });
    if (response.status !== 200) throw new Error(`gate check answered ${response.status}: ${await response.text()}`);
    const body = (await response.json()) as { results: GateResult[] };
    part.forEach((id, k) => out.set(id, body.results[k]!));
  }
  return out;
}

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

async function scrapeMetrics(sandbox: Sandbox): Promise<Sample[]> {
  const text = await (await fetch(`${sandbox.appUrl}/metrics`)).text();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{([^}]*)\})? ([-+0-9.eE]+|NaN)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

// ------------------------------------------------------------------------------------------------ the run

async function main(): Promise<number> {
  const runId = randomBytes(3).toString('hex');
  const { customers, shopifyChanges, hubspotChanges } = plan(runId);
  const pg = PG_URL ? await postgresSchema(PG_URL) : null;
  const print = (line: string): void => void process.stdout.write(`${line}\n`);
  const sandbox = await startSandbox({
    ...(pg ? { databaseUrl: pg.databaseUrl } : {}),
    ...(process.env.LOG_LEVEL ? { logLevel: process.env.LOG_LEVEL } : {}),
    hubspotFaults: FAULTS,
    hubspotRateLimit: { max: RATE_LIMIT, windowMs: 10_000 },
    hubspotBatchScopes: BATCH_SCOPES,
    hubspotTimeoutMs: TIMEOUT_MS,
    outboxBackoff: BACKOFF,
  });
  const { shopify, hubspot, shop, portalId } = sandbox;
  // Ctrl-C or a kill: stop the sandbox (its temporary directory goes) and drop the PostgreSQL schema.
  const interrupted = (): void => {
    void (async () => {
      await sandbox.stop().catch(() => undefined);
      await pg?.drop().catch(() => undefined);
      process.exit(130);
    })();
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  let failed = false;
  try {
    print(`bench:sync-faults: ${n(CHANGES)} consent changes by ${n(CUSTOMERS)} customers (${n(shopifyChanges)} in Shopify, ${n(hubspotChanges)} in HubSpot) on ${pg ? `PostgreSQL (${sandbox.runtime.store.description})` : sandbox.database}`);
    print(
      `  HubSpot simulator: faults ${pct(FAULT_RATE, 1)} of API requests (5xx ${pct(FAULTS.errorRate, 1)}, answered after ${n(FAULTS.delayMs)} ms ${pct(FAULTS.slowRate, 1)}, reset ${pct(FAULTS.resetRate, 1)}), ` +
        `rate limit ${RATE_LIMIT} per 10 s per portal`,
    );
    print(
      `  app: HubSpot timeout ${n(TIMEOUT_MS)} ms, v4 batch scopes ${BATCH_SCOPES ? 'on' : 'off'}, outbox backoff ${BACKOFF.backoffBaseMs} ms doubling capped at ${seconds(BACKOFF.backoffCapMs)}, ` +
        `${sandbox.runtime.config.outbox.maxAttempts} attempts; reconciliation poll every ${DEMO_SETTINGS.reconciliationIntervalMinutes} min`,
    );

    // The backfill of the new tenant (nothing to read yet) ends before the customers arrive, so every
    // Shopify-sourced ledger event below comes from a change made here.
    const backfillDeadline = Date.now() + 60_000;
    while (!(await backfillProgress(sandbox.runtime.store)).some((p) => p.tenant === sandbox.tenant.id && p.finishedAt !== null)) {
      if (Date.now() > backfillDeadline) throw new Error('the initial backfill did not finish within 60 s');
      await sleep(200);
    }

    // 1. Customers and their Shopify changes, one round at a time.
    const started = Date.now();
    const rounds = Math.max(...customers.map((c) => c.shopifyChanges));
    const base = Date.now() - (rounds + 2) * MINUTE;
    const ids: string[] = [];
    for (const c of customers) {
      const created = shopify.createCustomer(shop, { email: c.email, firstName: `Bench${c.index}`, country: 'NL', at: new Date(base).toISOString() });
      ids.push(String(created.id));
    }
    customers.forEach((c, i) => (c.id = ids[i]!));
    await shopify.flush();
    let ticks = 0;
    let unticks = 0;
    for (let round = 1; round <= rounds; round++) {
      for (const c of customers) {
        if (c.shopifyChanges < round) continue;
        const subscribed = round % 2 === 1;
        shopify.setEmailMarketing(shop, c.id, { subscribed, at: new Date(base + round * MINUTE + (c.index % 30) * 1000).toISOString() });
        if (subscribed) ticks += 1;
        else unticks += 1;
      }
      await shopify.flush();
      const q = await queueCounts(sandbox);
      print(`  round ${round}: Shopify changes so far ${n(ticks + unticks)} (${seconds(Date.now() - started)}); inbox pending ${n(q.inboxPending)}, outbox pending ${n(q.outboxPending)}`);
    }
    const shopifyDoneAt = Date.now();

    // 2. HubSpot-side changes, each once the app has nothing left to write for that customer.
    const mismatches: string[] = [];
    const mismatchKinds = new Map<string, number>();
    const mismatch = (kind: string, text: string): void => {
      mismatches.push(text);
      mismatchKinds.set(kind, (mismatchKinds.get(kind) ?? 0) + 1);
    };
    const actionAnswers = new Map<string, number>();
    const hubspotSide = customers.filter((c) => c.hubspot !== 'none');
    let lastProgress = Date.now();
    const contactMissingSince = new Map<Customer, number>();
    while (hubspotSide.some((c) => !c.hubspotDone && !c.hubspotGaveUp)) {
      if (Date.now() - shopifyDoneAt > DRAIN_TIMEOUT_MS) break;
      const pending = await customersWithPendingWrites(sandbox);
      const ready = hubspotSide.filter((c) => !c.hubspotDone && !c.hubspotGaveUp && !pending.has(c.id));
      if (ready.length > 0) {
        const portal = portalState(sandbox);
        const subscriptions = subscriptionsByEmail(portal);
        const contacts = new Map(portal.contacts.map((contact) => [(contact.email ?? '').toLowerCase(), contact.id]));
        for (const c of ready) {
          const contactId = contacts.get(c.email);
          if (contactId === undefined) {
            // The contact's creation may still be on its way (its webhook, or a write about to be retried); a
            // contact still missing 30 s after the app had nothing left to write for the customer is a finding.
            const since = contactMissingSince.get(c) ?? Date.now();
            contactMissingSince.set(c, since);
            if (Date.now() - since >= 30_000) {
              c.hubspotGaveUp = true;
              mismatch('HubSpot contact missing', `${c.email} (customer ${c.id}): no HubSpot contact 30 s after the app had nothing left to write for the customer (dead letters?), so its HubSpot-side change was not made`);
            }
            continue;
          }
          const entry = subscriptions.get(c.email);
          const notSubscribed = MAPPED_TYPES.filter((t) => !subscribedIn(entry, t.type).subscribed);
          if (notSubscribed.length > 0) {
            mismatch('HubSpot not SUBSCRIBED before a HubSpot-side change', `${c.email} (customer ${c.id}): before its HubSpot-side change, the ledger says granted but HubSpot is not SUBSCRIBED on ${notSubscribed.map((t) => `${t.type} (${subscribedIn(entry, t.type).status})`).join(', ')}`);
          }
          const type = c.hubspot === 'type-action' ? DEMO_SUBSCRIPTION_TYPES.newsletter : undefined;
          hubspot.unsubscribeViaLink(portalId, c.email, type);
          if (c.hubspot !== 'all-poll') {
            const callbackId = `bench-${runId}-${c.index}`;
            const inputFields = { channel: 'email', status: 'NOT_SUBSCRIBED', source: 'preferences_page', ...(type ? { subscription_type: type } : {}) };
            let answer: Awaited<ReturnType<typeof hubspot.callWorkflowAction>> | null = null;
            // HubSpot retries a 5xx or a missing answer with the same callbackId.
            for (let attempt = 1; attempt <= 5; attempt++) {
              answer = await hubspot.callWorkflowAction({ portalId, contactId, action: 'record-consent-change', inputFields, properties: ['email'], callbackId });
              if (answer.status !== null && answer.status < 500) break;
              await sleep(1000);
            }
            const status = answer?.status ?? 0;
            actionAnswers.set(String(status), (actionAnswers.get(String(status)) ?? 0) + 1);
            const recorded = (answer?.body as { outputFields?: { recorded?: string; reason?: string } } | null)?.outputFields;
            if (status !== 200 || recorded?.recorded !== 'yes') mismatch('workflow action not recorded', `${c.email}: the "Record consent change" action answered ${status} ${JSON.stringify(answer?.body ?? answer?.error ?? null).slice(0, 200)}`);
          }
          c.hubspotDone = true;
        }
      }
      if (Date.now() - lastProgress > 15_000) {
        lastProgress = Date.now();
        const q = await queueCounts(sandbox);
        print(`  HubSpot-side changes made ${hubspotSide.filter((c) => c.hubspotDone).length} of ${hubspotSide.length}; outbox pending ${n(q.outboxPending)} (${seconds(Date.now() - started)})`);
      }
      await sleep(1000);
    }
    const changesDoneAt = Date.now();
    const notMade = hubspotSide.filter((c) => !c.hubspotDone);
    print(`  all changes made after ${seconds(changesDoneAt - started)}${notMade.length > 0 ? ` (${notMade.length} HubSpot-side changes NOT made: the customer's writes never finished or its HubSpot contact never appeared)` : ''}`);

    // 3. Wait until quiet; then dead letters: list, retry once, wait again.
    // Quiet: no webhook waiting in either simulator, nothing pending in the inbox or the outbox for 2 s, and the
    // reconciliation poll caught up with HubSpot's newest contact change (its cursor at or past it) with every
    // poll-only unsubscribe in the ledger; the poll gets BENCH_POLL_WAIT_S once the queues are quiet.
    const drain = async (label: string, pollWaitMs: number): Promise<{ drained: boolean; pollCaughtUp: boolean }> => {
      const deadline = Date.now() + DRAIN_TIMEOUT_MS;
      let quietSince: number | null = null;
      // The poll's wait starts the first time the queues are quiet and is not restarted by what the poll itself
      // then records (a poll that is behind appends a few events every minute).
      let pollWaitFrom: number | null = null;
      let lastPrint = Date.now();
      for (;;) {
        const q = await queueCounts(sandbox);
        const portal = portalState(sandbox);
        const newest = Math.max(0, ...portal.contacts.map((c) => Date.parse(c.properties.lastmodifieddate ?? c.updatedAt)));
        const shopifyPending = shopify.deliveries().filter((d) => d.status === 'pending').length;
        const hubspotPending = hubspot.pendingWebhooks().length;
        const pollsOk = await pollIsCaughtUp(sandbox, newest);
        const pollOnlyPending = hubspotSide.some((c) => c.hubspot === 'all-poll' && c.hubspotDone) ? await pollOnlyNotRecorded(sandbox, hubspotSide) : 0;
        const queuesQuiet = q.inboxPending === 0 && q.outboxPending === 0 && shopifyPending === 0 && hubspotPending === 0;
        if (queuesQuiet) quietSince ??= Date.now();
        else quietSince = null;
        if (queuesQuiet) pollWaitFrom ??= Date.now();
        const quietFor = quietSince === null ? 0 : Date.now() - quietSince;
        if (quietFor >= 2000 && ((pollsOk && pollOnlyPending === 0) || Date.now() - pollWaitFrom! >= pollWaitMs)) return { drained: true, pollCaughtUp: pollsOk && pollOnlyPending === 0 };
        if (Date.now() > deadline) {
          print(`  ${label}: NOT quiet after ${seconds(DRAIN_TIMEOUT_MS)}: inbox pending ${q.inboxPending}, outbox pending ${q.outboxPending}, webhooks waiting ${shopifyPending + hubspotPending}, poll caught up ${pollsOk}`);
          return { drained: false, pollCaughtUp: pollsOk };
        }
        if (Date.now() - lastPrint > 15_000) {
          lastPrint = Date.now();
          print(
            `  ${label}: inbox pending ${n(q.inboxPending)}, outbox pending ${n(q.outboxPending)} (done ${n(q.outboxDone)}, dead ${q.outboxDead}), webhooks waiting ${shopifyPending + hubspotPending}, ` +
              `poll ${pollsOk ? 'caught up' : 'behind'}${pollOnlyPending > 0 ? `, ${pollOnlyPending} poll-only unsubscribes not in the ledger yet` : ''} (${seconds(Date.now() - started)})`,
          );
        }
        await sleep(500);
      }
    };
    const first = await drain('draining', POLL_WAIT_MS);
    let quiet = first.drained;
    let pollCaughtUp = first.pollCaughtUp;
    const drainedAt = Date.now();
    const deadOutbox = await listDeadOutbox(sandbox.runtime.store, { limit: 10_000 });
    const deadInbox = await listDeadDeliveries(sandbox.runtime.store, { limit: 10_000 });
    let retried = { outbox: 0, inbox: 0 };
    if (deadOutbox.length + deadInbox.length > 0) {
      print(`  dead letters: outbox ${deadOutbox.length}, inbox ${deadInbox.length}; first ones:`);
      for (const d of deadOutbox.slice(0, 10)) print(`    outbox ${d.operation} ${d.idempotencyKey} after ${d.attempts} attempts: ${(d.lastError ?? '').slice(0, 300)}`);
      for (const d of deadInbox.slice(0, 10)) print(`    inbox ${d.platform} ${d.topic} after ${d.attempts} attempts: ${(d.lastError ?? '').slice(0, 300)}`);
      retried = { outbox: await retryDeadOutbox(sandbox.runtime.store, 'all', { tenantId: sandbox.tenant.id }), inbox: await retryDeadDeliveries(sandbox.runtime.store, sandbox.runtime, { tenantId: sandbox.tenant.id }) };
      print(`  retried once (outbox retry --all, inbox retry --all): ${retried.outbox} outbox, ${retried.inbox} inbox`);
      // A poll that did not catch up before will not now: then only the queues are waited on.
      const again = await drain('after the retry', first.pollCaughtUp ? POLL_WAIT_MS : 0);
      quiet = again.drained && quiet;
      pollCaughtUp = again.pollCaughtUp;
    }
    const finishedAt = Date.now();
    const stillDead = await queueCounts(sandbox);

    // 4. Compare.
    const db = sandbox.runtime.store.db;
    const identities = await db.selectFrom('subject_identity').select(['subject_id', 'value']).where('tenant_id', '=', sandbox.tenant.id).where('kind', '=', 'shopify_customer').execute();
    const subjectOf = new Map(identities.map((r) => [String(r.value), r.subject_id]));
    const currentRows = await db.selectFrom('consent_current').select(['subject_id', 'purpose', 'status', 'basis']).where('tenant_id', '=', sandbox.tenant.id).where('channel', '=', 'email').execute();
    const current = new Map<string, Map<string, { status: string; basis: string | null }>>();
    for (const r of currentRows) {
      let bySubject = current.get(r.subject_id);
      if (bySubject === undefined) current.set(r.subject_id, (bySubject = new Map()));
      bySubject.set(r.purpose, { status: r.status, basis: r.basis });
    }
    const eventRows = await db
      .selectFrom('consent_event')
      .select(['subject_id', 'source', db.fn.countAll<number>().as('n')])
      .where('tenant_id', '=', sandbox.tenant.id)
      .where('channel', '=', 'email')
      .groupBy(['subject_id', 'source'])
      .execute();
    const eventsOf = new Map<string, number>();
    const eventTotals = new Map<string, number>();
    for (const r of eventRows) {
      eventsOf.set(`${r.subject_id} ${r.source}`, Number(r.n));
      eventTotals.set(r.source, (eventTotals.get(r.source) ?? 0) + Number(r.n));
    }
    const customerIds = customers.map((c) => c.id);
    const gates = new Map<string, Map<string, GateResult>>();
    gates.set('*', await gate(sandbox, '*', [], customerIds));
    for (const p of PURPOSES) gates.set(p.id, await gate(sandbox, p.id, p.categories, customerIds));
    const portal = portalState(sandbox);
    const subscriptions = subscriptionsByEmail(portal);
    const contacts = new Map(portal.contacts.map((c) => [(c.email ?? '').toLowerCase(), c]));
    const list = portal.lists.find((l) => l.name === SUPPRESSION_LIST);
    const listed = new Set(list?.members ?? []);
    const shopifyCustomers = new Map((shopify.state().shops.find((s) => s.domain === shop)?.customers ?? []).map((c) => [String(c.id), c]));

    const lost: string[] = [];
    const firstBad: Customer[] = [];
    for (const c of customers) {
      const before = lost.length + mismatches.length;
      const who = `${c.email} (customer ${c.id})`;
      const subject = subjectOf.get(c.id);
      if (subject === undefined) {
        lost.push(`${who}: not in the ledger at all`);
        continue;
      }
      const star = current.get(subject)?.get('*');
      const granted = star?.status === 'granted' && star.basis === 'consent';
      const g = (purpose: string) => gates.get(purpose)!.get(c.id)!;

      // Lost changes: the ledger against the customer's own last change.
      const wantGranted = c.hubspot === 'all-action' || c.hubspot === 'all-poll' ? !c.hubspotDone && c.shopifyChanges % 2 === 1 : c.shopifyChanges % 2 === 1;
      if (wantGranted !== granted || (!wantGranted && star?.status !== 'withdrawn')) {
        lost.push(`${who}: last change (${c.hubspot !== 'none' && c.hubspotDone ? `HubSpot ${c.hubspot}` : `Shopify ${c.shopifyChanges % 2 === 1 ? 'tick' : 'untick'}`}) wants ${wantGranted ? 'granted' : 'withdrawn'}, ledger * is ${star?.status ?? 'none'}`);
      }
      if (c.hubspot === 'type-action' && c.hubspotDone && g('newsletter').allowed) lost.push(`${who}: unsubscribed from the newsletter in HubSpot, but the gate still allows purpose newsletter (${g('newsletter').reason})`);
      const fromShopify = eventsOf.get(`${subject} shopify`) ?? 0;
      if (fromShopify < c.shopifyChanges) lost.push(`${who}: ${fromShopify} Shopify-sourced email events in the ledger for ${c.shopifyChanges} changes made`);
      if (c.hubspot !== 'none' && c.hubspotDone && (eventsOf.get(`${subject} hubspot`) ?? 0) === 0) lost.push(`${who}: HubSpot-side change (${c.hubspot}) left no HubSpot-sourced event`);

      // Shopify against the ledger.
      const shopifyState = shopifyCustomers.get(c.id)?.emailMarketingConsent.state ?? 'missing';
      const wantShopify = granted ? ['SUBSCRIBED'] : star?.status === 'withdrawn' ? ['UNSUBSCRIBED'] : star?.status === 'erased' ? ['REDACTED'] : ['NOT_SUBSCRIBED', 'UNSUBSCRIBED', 'PENDING'];
      if (!wantShopify.includes(shopifyState)) mismatch('Shopify ≠ ledger', `${who}: Shopify ${shopifyState}, ledger * ${star?.status ?? 'none'}${star?.basis ? ` (${star.basis})` : ''}`);

      // The gate against consent_current.
      if (g('*').allowed !== granted) mismatch('gate ≠ consent_current', `${who}: gate * ${g('*').allowed ? 'allows' : 'blocks'} (${g('*').reason}), consent_current * is ${star?.status ?? 'none'}`);

      // HubSpot subscription statuses against the gate, per mapped type.
      const entry = subscriptions.get(c.email);
      for (const { type, purpose } of MAPPED_TYPES) {
        const decision = g(purpose);
        const actual = subscribedIn(entry, type);
        if (actual.subscribed !== decision.allowed) mismatch('HubSpot subscription ≠ gate', `${who}: HubSpot type ${type} ${actual.status}, gate ${purpose} ${decision.allowed ? 'allows' : 'blocks'} (${decision.reason})`);
        else if (actual.subscribed) {
          const basis = decision.reason === 'soft_opt_in' ? 'LEGITIMATE_INTEREST_CLIENT' : 'CONSENT_WITH_NOTICE';
          if (actual.legalBasis !== basis) mismatch('HubSpot legal basis', `${who}: HubSpot type ${type} legal basis ${actual.legalBasis ?? 'none'}, expected ${basis} (gate reason ${decision.reason})`);
        }
      }

      // HubSpot contact: gate property and suppression list.
      const contact = contacts.get(c.email);
      const wantGate = g('*').allowed ? 'allowed' : 'blocked';
      if (contact === undefined) mismatch('HubSpot contact missing', `${who}: no HubSpot contact`);
      else {
        const property = contact.properties[GATE_PROPERTY] ?? '(unset)';
        if (property !== wantGate) mismatch('HubSpot gate property ≠ gate', `${who}: HubSpot ${GATE_PROPERTY} ${property}, gate * ${wantGate}`);
        if (listed.has(contact.id) !== (wantGate === 'blocked')) mismatch('suppression list ≠ gate', `${who}: ${listed.has(contact.id) ? 'on' : 'not on'} the suppression list, gate * ${wantGate}`);
      }
      if (lost.length + mismatches.length > before && firstBad.length < 2) firstBad.push(c);
    }

    // 5. Figures.
    const metrics = await scrapeMetrics(sandbox);
    const sum = (name: string, match: Record<string, string> = {}) => metrics.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    const calls = metrics.filter((s) => s.name === 'consent_bridge_platform_calls_total' && s.value > 0);
    const byOutcome = (platform: string) =>
      calls
        .filter((s) => s.labels.platform === platform)
        .sort((a, b) => b.value - a.value)
        .map((s) => `${s.labels.outcome}${s.labels.status && s.labels.status !== 'none' ? `/${s.labels.status}` : ''} ${n(s.value)}`)
        .join(', ');
    const outcomes = metrics.filter((s) => s.name === 'consent_bridge_outbox_outcomes_total' && s.value > 0);
    const outboxLine = [...new Set(outcomes.map((s) => s.labels.operation!))]
      .sort()
      .map((op) => `${op}: ${outcomes.filter((s) => s.labels.operation === op).map((s) => `${s.labels.outcome} ${n(s.value)}`).join(', ')}`)
      .join('; ');
    const hs = hubspot.state().counters;
    const shopCounters = shopify.state().counters;
    const shopifyGivenUp = shopify.deliveries().filter((d) => d.status === 'failed').length;
    const injected = hs.faults.error + hs.faults.slow + hs.faults.reset;
    const kinds = { 'all-action': 0, 'type-action': 0, 'all-poll': 0 };
    for (const c of hubspotSide) if (c.hubspotDone) kinds[c.hubspot as keyof typeof kinds] += 1;
    const madeHubspot = kinds['all-action'] + kinds['type-action'] + kinds['all-poll'];

    print('');
    print(`Changes made          ${n(ticks + unticks + madeHubspot)} of ${n(CHANGES)}: ${n(ticks + unticks)} in Shopify (${n(ticks)} ticks, ${n(unticks)} unticks) by ${n(CUSTOMERS)} customers; ${madeHubspot} in HubSpot (${kinds['all-action']} unsubscribe-all and ${kinds['type-action']} newsletter-only recorded by the workflow action, ${kinds['all-poll']} unsubscribe-all found by the poll)`);
    print(`Time taken            ${seconds(finishedAt - started)} in all: Shopify changes ${seconds(shopifyDoneAt - started)}, HubSpot-side changes done at ${seconds(changesDoneAt - started)}, quiet at ${seconds(drainedAt - started)}${finishedAt !== drainedAt ? ` (after the dead-letter retry ${seconds(finishedAt - started)})` : ''}`);
    print(`Webhooks delivered    Shopify → app ${n(shopCounters.webhooksDelivered)} (${n(shopCounters.webhookAttemptsFailed)} failed attempts retried, ${shopifyGivenUp} given up); HubSpot → app ${n(hs.webhooks.delivered)} events in ${n(hs.webhooks.requests)} requests (${n(hs.webhooks.failed)} failed, ${n(hs.webhooks.dropped)} dropped); workflow action calls ${n(hs.workflowActions.calls)} (${[...actionAnswers].map(([s, k]) => `${k} × ${s}`).join(', ') || 'none'})`);
    print(`Ledger events         email: ${[...eventTotals].map(([source, k]) => `${source} ${n(k)}`).join(', ')}`);
    print(`Platform calls (app)  HubSpot: ${byOutcome('hubspot') || 'none'}`);
    print(`                      Shopify: ${byOutcome('shopify') || 'none'}`);
    print(`Outbox outcomes       ${outboxLine || 'none'}`);
    print(`HubSpot simulator     ${n(hs.requests.api)} API + ${n(hs.requests.oauth)} OAuth requests; faults injected ${n(injected)} (${pct(injected, hs.requests.total)}): 5xx ${n(hs.faults.error)}, slow ${n(hs.faults.slow)}, reset ${n(hs.faults.reset)}`);
    print(`429s received         ${n(hs.rateLimited.TEN_SECONDLY_ROLLING + hs.rateLimited.SECONDLY)} answered by the simulator (TEN_SECONDLY_ROLLING ${n(hs.rateLimited.TEN_SECONDLY_ROLLING)}, SECONDLY ${n(hs.rateLimited.SECONDLY)}); app counted consent_bridge_platform_rate_limited_total hubspot ${n(sum('consent_bridge_platform_rate_limited_total', { platform: 'hubspot' }))}, shopify ${n(sum('consent_bridge_platform_rate_limited_total', { platform: 'shopify' }))} (Shopify THROTTLED answers ${n(shopCounters.throttled)})`);
    print(`Reconciliation poll   ${pollCaughtUp ? 'caught up with HubSpot at the end' : `NOT caught up with HubSpot's newest contact change ${seconds(POLL_WAIT_MS)} after the queues were first quiet`}`);
    print(`Dead letters          outbox ${deadOutbox.length}, inbox ${deadInbox.length} when first quiet; retried ${retried.outbox + retried.inbox}; dead now: outbox ${stillDead.outboxDead}, inbox ${stillDead.inboxDead}`);
    print(`Lost changes          ${lost.length}`);
    for (const line of lost.slice(0, 10)) print(`  ${line}`);
    const badCustomers = new Set([...mismatches, ...lost].map((line) => /\(customer (\d+)\)/.exec(line)?.[1]).filter((id) => id !== undefined)).size;
    print(`Mismatches            ${mismatches.length}${mismatches.length > 0 ? ` (${[...mismatchKinds].map(([kind, k]) => `${kind} ${n(k)}`).join(', ')}); customers with a mismatch or a lost change: ${n(badCustomers)} of ${n(CUSTOMERS)}` : ''}`);
    for (const line of mismatches.slice(0, 10)) print(`  ${line}`);
    for (const c of firstBad) {
      // What happened to one customer that went wrong: its ledger events and its platform writes, in order.
      const subject = subjectOf.get(c.id);
      if (subject === undefined) continue;
      print(`History of ${c.email} (customer ${c.id}, ${c.shopifyChanges} Shopify changes${c.hubspot !== 'none' ? `, then HubSpot ${c.hubspot}` : ''}):`);
      const events = await db.selectFrom('consent_event').select(['seq', 'purpose', 'kind', 'occurred_at', 'received_at', 'source']).where('tenant_id', '=', sandbox.tenant.id).where('subject_id', '=', subject).where('channel', '=', 'email').orderBy('seq').execute();
      for (const e of events) print(`  ledger #${e.seq} ${e.source} ${e.kind} ${e.purpose} at ${e.occurred_at} (received ${e.received_at.slice(11)})`);
      const writes = await db.selectFrom('outbox').select(['operation', 'payload', 'status', 'attempts', 'created_at', 'done_at', 'note', 'last_error']).where('tenant_id', '=', sandbox.tenant.id).where('subject_id', '=', subject).where('operation', '!=', 'hubspot.sync_contact').orderBy('created_at').execute();
      for (const w of writes) {
        const payload = JSON.parse(w.payload) as { subscriptionTypeId?: string; subscribed?: boolean; state?: string };
        const what = w.operation === 'hubspot.subscription' ? `type ${payload.subscriptionTypeId} ${payload.subscribed ? 'SUBSCRIBED' : 'NOT_SUBSCRIBED'}` : `${payload.state}`;
        print(`  write ${w.operation} ${what}: enqueued ${w.created_at.slice(11)}, ${w.status}${w.done_at ? ` ${w.done_at.slice(11)}` : ''} after ${w.attempts} failed attempts${w.note ? ` (${w.note.slice(0, 120)})` : ''}${w.last_error ? ` last error: ${w.last_error.slice(0, 120)}` : ''}`);
      }
    }
    if (!quiet) print('The app did not become quiet in time: the comparison above is of a run still in progress.');
    failed = lost.length > 0 || mismatches.length > 0 || !quiet || notMade.length > 0;
    print(failed ? 'FAILED' : 'OK: HubSpot and Shopify show what the ledger says, and no change was lost');
  } finally {
    await sandbox.stop();
    await pg?.drop();
  }
  return failed ? 1 : 0;
}

/** Poll-only unsubscribes (made in HubSpot) the ledger does not show yet. */
async function pollOnlyNotRecorded(sandbox: Sandbox, hubspotSide: readonly Customer[]): Promise<number> {
  const ids = hubspotSide.filter((c) => c.hubspot === 'all-poll' && c.hubspotDone).map((c) => c.id);
  const rows = await sql<{ value: string; status: string }>`
    select i.value as value, cc.status as status from subject_identity i
    join consent_current cc on cc.tenant_id = i.tenant_id and cc.subject_id = i.subject_id and cc.channel = 'email' and cc.purpose = '*'
    where i.tenant_id = ${sandbox.tenant.id} and i.kind = 'shopify_customer'`.execute(sandbox.runtime.store.db);
  const status = new Map(rows.rows.map((r) => [String(r.value), r.status]));
  return ids.filter((id) => status.get(id) !== 'withdrawn').length;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
