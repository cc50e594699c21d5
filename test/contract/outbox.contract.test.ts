/**
 * Outbox and dispatcher contract, on SQLite and PostgreSQL: insert-first enqueue, chunking per (tenant, platform,
 * operation) by the handler's maxBatch, per-item outcomes, Retry-After, backoff with jitter, dead letters, leases
 * (a dead dispatcher's rows come back; a late one records nothing), several dispatchers taking each row once,
 * replay of dead rows, pruning and a graceful stop.
 */
import { silentLogger } from '../../src/log/logger';
import type { Logger } from '../../src/ports';
import { OutboxDispatcher, outboxRetryDelayMs, type DispatcherOptions, type OutboxHandler } from '../../src/outbox/dispatcher';
import { enqueueInTransaction, enqueueOutbox, listDeadOutbox, outboxStats, pruneDoneOutbox, retryDeadOutbox, type OutboxItem, type OutboxRow } from '../../src/outbox/outbox';
import type { Store } from '../../src/store/database';
import { PlatformCallError, type ItemOutcome } from '../../src/sync/ports';
import { addTenant, type Tenant } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

const T0 = '2026-06-01T12:00:00.000Z';

interface Call {
  readonly tenantId: string;
  readonly operation: string;
  readonly ids: string[];
  readonly keys: string[];
}

type Behaviour = (tenantId: string, rows: readonly OutboxRow[]) => Promise<ItemOutcome[]>;

/**
 * Answers each row by its payload `mode`: ok, kept (ok with a note), fail (retryable), throttled (retryable with a
 * Retry-After), bad (not retryable), omit (no outcome).
 */
const byMode: Behaviour = async (_tenantId, rows) =>
  rows.flatMap((row): ItemOutcome[] => {
    const mode = (row.payload as { mode?: string }).mode ?? 'ok';
    if (mode === 'omit') return [];
    if (mode === 'fail') return [{ key: row.id, ok: false, error: 'HTTP 503 from the platform', retryable: true }];
    if (mode === 'bad') return [{ key: row.id, ok: false, error: 'INVALID_EMAIL: not a valid address', retryable: false }];
    if (mode === 'throttled') return [{ key: row.id, ok: false, error: 'THROTTLED', retryable: true, retryAfterMs: 90_000 }];
    if (mode === 'kept') return [{ key: row.id, ok: true, note: 'the platform kept a newer consent record' }];
    return [{ key: row.id, ok: true }];
  });

function recording(operation: string, options: { platform?: 'hubspot' | 'shopify'; maxBatch?: number; behaviour?: Behaviour } = {}): OutboxHandler & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    platform: options.platform ?? 'hubspot',
    operation,
    maxBatch: options.maxBatch ?? 100,
    calls,
    async handle(tenantId, rows) {
      calls.push({ tenantId, operation, ids: rows.map((r) => r.id), keys: rows.map((r) => r.idempotencyKey) });
      return (options.behaviour ?? byMode)(tenantId, rows);
    },
  };
}

/** A promise with its resolver, to hold a handler call open. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe.each(testDialects())('outbox on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let acme: Tenant;
  let beta: Tenant;
  const clock = fixedClock(T0);
  const ids = countingIds('ob');
  const deps = { clock, ids, secretBox: null };

  const item = (tenant: Tenant, key: string, extra: Partial<OutboxItem> & { mode?: string } = {}): OutboxItem => ({
    tenantId: tenant.id,
    platform: extra.platform ?? 'hubspot',
    operation: extra.operation ?? 'subscription',
    idempotencyKey: key,
    subjectId: extra.subjectId ?? null,
    payload: extra.payload ?? { email: `${key}@example.com`, mode: extra.mode ?? 'ok' },
    sourceSeq: extra.sourceSeq ?? null,
  });
  const enqueue = (...items: OutboxItem[]) => enqueueOutbox(store, deps, items);
  const dispatcher = (handlers: OutboxHandler[], options: Partial<DispatcherOptions> = {}, on: Store = store, random = () => 0.5) =>
    new OutboxDispatcher({ store: on, clock, logger: silentLogger, random, handlers }, { maxAttempts: 3, ...options });
  const row = (key: string, tenant: Tenant = acme) =>
    store.db.selectFrom('outbox').selectAll().where('tenant_id', '=', tenant.id).where('idempotency_key', '=', key).executeTakeFirstOrThrow();
  const statuses = async () => {
    const rows = await store.db.selectFrom('outbox').select(['idempotency_key', 'status']).orderBy('idempotency_key').execute();
    return Object.fromEntries(rows.map((r) => [r.idempotency_key, r.status]));
  };
  const at = (ms: number) => new Date(clock.now().getTime() + ms).toISOString();

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    acme = await addTenant(store, deps, { shopDomain: 'outbox-acme.myshopify.com', hubspotPortalId: '5001' });
    beta = await addTenant(store, deps, { shopDomain: 'outbox-beta.myshopify.com', hubspotPortalId: '5002' });
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });
  beforeEach(async () => {
    await store.db.deleteFrom('outbox').execute();
  });

  it('enqueue is insert-first on (tenant, idempotency key): a repeat enqueues nothing, in one call or across calls', async () => {
    expect(await enqueue(item(acme, 'k1', { sourceSeq: 7, subjectId: 'subj-1' }), item(acme, 'k1'), item(acme, 'k2'))).toBe(2);
    expect(await enqueue(item(acme, 'k1'), item(acme, 'k2'))).toBe(0);
    // The key is per tenant.
    expect(await enqueue(item(beta, 'k1'))).toBe(1);
    expect(await row('k1')).toMatchObject({
      platform: 'hubspot',
      operation: 'subscription',
      subject_id: 'subj-1',
      source_seq: 7,
      status: 'pending',
      attempts: 0,
      run_at: T0,
      claimed_until: null,
      created_at: T0,
      done_at: null,
    });
    expect(JSON.parse((await row('k1')).payload)).toEqual({ email: 'k1@example.com', mode: 'ok' });

    // A repeat after delivery adds nothing either.
    await dispatcher([recording('subscription')]).drain();
    expect(await enqueue(item(acme, 'k1'))).toBe(0);
    expect((await row('k1')).status).toBe('done');
  });

  it('enqueueInTransaction writes with its cause: a rolled-back transaction leaves nothing; bad items are refused whole', async () => {
    await expect(
      store.db.transaction().execute(async (trx) => {
        expect(await enqueueInTransaction(trx, store.dialect, deps, [item(acme, 'rolled-back')])).toBe(1);
        throw new Error('the cause failed');
      }),
    ).rejects.toThrow('the cause failed');
    expect(await store.db.selectFrom('outbox').select('id').execute()).toEqual([]);

    const bad = [
      item(acme, ''),
      { ...item(acme, 'x'), platform: 'mailchimp' as never },
      { ...item(acme, 'y'), operation: 'Bad Operation' },
      { ...item(acme, 'z'), payload: undefined },
      { ...item(acme, 'w'), sourceSeq: 0 },
    ];
    await expect(store.db.transaction().execute((trx) => enqueueInTransaction(trx, store.dialect, deps, bad))).rejects.toMatchObject({
      code: 'validation_failed',
      details: expect.arrayContaining([
        'items[0].idempotencyKey: 1 to 512 characters',
        'items[1].platform: must be hubspot or shopify',
        expect.stringMatching(/^items\[2\]\.operation/),
        'items[4].sourceSeq: a ledger seq (≥ 1) or null',
      ]),
    });
    await expect(enqueue({ ...item(acme, 'z'), payload: undefined })).rejects.toMatchObject({ details: ['items[0].payload: not serialisable'] });
    expect(await store.db.selectFrom('outbox').select('id').execute()).toEqual([]);
  });

  it('chunks per (tenant, platform, operation) by maxBatch: 250 rows at maxBatch 100 are ceil(250/100) = 3 calls', async () => {
    const subscriptions = recording('subscription', { maxBatch: 100 });
    const properties = recording('contact_properties', { maxBatch: 100 });
    const consent = recording('customer_consent', { platform: 'shopify', maxBatch: 25 });
    await enqueue(...Array.from({ length: 250 }, (_, i) => item(acme, `sub-${String(i).padStart(3, '0')}`)));
    await enqueue(...Array.from({ length: 120 }, (_, i) => item(acme, `prop-${i}`, { operation: 'contact_properties' })));
    await enqueue(...Array.from({ length: 30 }, (_, i) => item(beta, `beta-sub-${i}`)));
    await enqueue(...Array.from({ length: 60 }, (_, i) => item(beta, `consent-${i}`, { platform: 'shopify', operation: 'customer_consent' })));
    const d = dispatcher([subscriptions, properties, consent]);
    expect(await d.drain()).toBe(460);

    const acmeSubs = subscriptions.calls.filter((c) => c.tenantId === acme.id);
    expect(acmeSubs).toHaveLength(3);
    expect(acmeSubs.map((c) => c.ids.length)).toEqual([100, 100, 50]);
    expect(new Set(acmeSubs.flatMap((c) => c.keys)).size).toBe(250);
    expect(subscriptions.calls.filter((c) => c.tenantId === beta.id).map((c) => c.ids.length)).toEqual([30]);
    expect(properties.calls.map((c) => [c.tenantId, c.ids.length])).toEqual([
      [acme.id, 100],
      [acme.id, 20],
    ]);
    expect(consent.calls.map((c) => c.ids.length)).toEqual([25, 25, 10]);
    expect(consent.calls.every((c) => c.tenantId === beta.id)).toBe(true);
    // Each call holds one tenant's rows of one operation only.
    const tenantOf = new Map((await store.db.selectFrom('outbox').select(['id', 'tenant_id']).execute()).map((r) => [r.id, r.tenant_id]));
    for (const call of [...subscriptions.calls, ...properties.calls, ...consent.calls]) expect(new Set(call.ids.map((id) => tenantOf.get(id)))).toEqual(new Set([call.tenantId]));
    expect(Object.values(await statuses()).every((s) => s === 'done')).toBe(true);
    expect((await row('sub-000')).done_at).toBe(T0);
  });

  it('records per-item outcomes: ok → done, retryable → retry with backoff or Retry-After, not retryable → dead, no outcome → retry', async () => {
    await enqueue(
      item(acme, 'ok'),
      item(acme, 'fail', { mode: 'fail' }),
      item(acme, 'bad', { mode: 'bad' }),
      item(acme, 'omit', { mode: 'omit' }),
      item(acme, 'throttled', { mode: 'throttled' }),
      item(acme, 'kept', { mode: 'kept' }),
    );
    const handler = recording('subscription');
    expect(await dispatcher([handler]).stepOnce()).toBe(6);
    expect(handler.calls).toHaveLength(1);
    expect(await row('ok')).toMatchObject({ status: 'done', done_at: T0, claimed_until: null, last_error: null, attempts: 0, note: null });
    expect(await row('kept')).toMatchObject({ status: 'done', done_at: T0, note: 'the platform kept a newer consent record' });
    expect(await row('throttled')).toMatchObject({ status: 'pending', attempts: 1, last_error: 'THROTTLED', run_at: at(90_000) });
    expect(await row('fail')).toMatchObject({ status: 'pending', attempts: 1, last_error: 'HTTP 503 from the platform', claimed_until: null, run_at: at(2500) });
    expect(await row('bad')).toMatchObject({ status: 'dead', attempts: 1, last_error: 'INVALID_EMAIL: not a valid address', claimed_until: null, done_at: null });
    expect(await row('omit')).toMatchObject({ status: 'pending', attempts: 1, last_error: 'the handler returned no outcome for this row' });
    // Nothing is due until the backoff passed.
    expect(await dispatcher([handler]).stepOnce()).toBe(0);
  });

  it('a thrown PlatformCallError applies to the whole chunk and its Retry-After is honoured; another error is retried', async () => {
    await enqueue(item(acme, 'throttled-1'), item(acme, 'throttled-2'));
    const throttled = recording('subscription', {
      behaviour: async () => {
        throw new PlatformCallError('hubspot', 'HTTP 429 rate limited', { status: 429, retryable: true, retryAfterMs: 120_000, kind: 'rate_limited' });
      },
    });
    expect(await dispatcher([throttled]).stepOnce()).toBe(2);
    for (const key of ['throttled-1', 'throttled-2']) {
      expect(await row(key)).toMatchObject({ status: 'pending', attempts: 1, run_at: at(120_000), last_error: 'PlatformCallError: HTTP 429 rate limited' });
    }

    // A Retry-After shorter than the backoff does not shorten it.
    await store.db.deleteFrom('outbox').execute();
    await enqueue(item(acme, 'short-retry-after'));
    const brief = recording('subscription', {
      behaviour: async () => {
        throw new PlatformCallError('hubspot', 'HTTP 429', { status: 429, retryable: true, retryAfterMs: 1000, kind: 'rate_limited' });
      },
    });
    await dispatcher([brief], {}, store, () => 0.9).stepOnce();
    expect((await row('short-retry-after')).run_at).toBe(at(4500));

    await store.db.deleteFrom('outbox').execute();
    await enqueue(item(acme, 'boom'));
    const broken = recording('subscription', {
      behaviour: async () => {
        throw new TypeError('cannot read properties of undefined');
      },
    });
    await dispatcher([broken]).stepOnce();
    expect(await row('boom')).toMatchObject({ status: 'pending', attempts: 1, last_error: 'TypeError: cannot read properties of undefined' });

    await store.db.deleteFrom('outbox').execute();
    await enqueue(item(acme, 'forbidden-1'), item(acme, 'forbidden-2'));
    const forbidden = recording('subscription', {
      behaviour: async () => {
        throw new PlatformCallError('hubspot', 'HTTP 403 missing scope', { status: 403, retryable: false, kind: 'auth' });
      },
    });
    await dispatcher([forbidden]).stepOnce();
    expect(await statuses()).toEqual({ 'forbidden-1': 'dead', 'forbidden-2': 'dead' });
    expect((await row('forbidden-1')).last_error).toBe('PlatformCallError: HTTP 403 missing scope');
  });

  it('backs off exponentially with full jitter (fixed random), capped, then dead-letters after maxAttempts', async () => {
    // The backoff itself: ceiling 5 s · 2^(attempt-1) capped at 1 h, scaled by the random factor, at least 1 s.
    expect([1, 2, 3, 4, 5].map((a) => outboxRetryDelayMs(a, 0.5))).toEqual([2500, 5000, 10_000, 20_000, 40_000]);
    expect(outboxRetryDelayMs(20, 0.5)).toBe(1_800_000);
    expect(outboxRetryDelayMs(20, 0.999_999)).toBe(3_599_996);
    expect(outboxRetryDelayMs(3, 0)).toBe(1000);

    await enqueue(item(acme, 'flaky', { mode: 'fail' }));
    const handler = recording('subscription');
    const d = dispatcher([handler], { maxAttempts: 5, backoffBaseMs: 5000, backoffCapMs: 30_000 });
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const before = clock.now().getTime();
      expect(await d.stepOnce()).toBe(1);
      const r = await row('flaky');
      expect(r).toMatchObject({ status: 'pending', attempts: attempt });
      delays.push(Date.parse(r.run_at) - before);
      // Not due a millisecond early.
      clock.advance(Date.parse(r.run_at) - before - 1);
      expect(await d.stepOnce()).toBe(0);
      clock.advance(1);
    }
    expect(delays).toEqual([2500, 5000, 10_000, 15_000]); // 20 s and 40 s ceilings capped at 30 s, times 0.5
    expect(await d.stepOnce()).toBe(1);
    expect(await row('flaky')).toMatchObject({ status: 'dead', attempts: 5, last_error: 'HTTP 503 from the platform', claimed_until: null });
    expect(await d.stepOnce()).toBe(0);
    expect(handler.calls).toHaveLength(5);
  });

  it('rows of an operation without a handler, or with a payload that is not JSON, are dead at once', async () => {
    await enqueue(item(acme, 'orphan', { operation: 'list_membership' }), item(acme, 'fine'), item(acme, 'garbled'));
    await store.db.updateTable('outbox').set({ payload: '{not json' }).where('idempotency_key', '=', 'garbled').execute();
    const handler = recording('subscription');
    expect(await dispatcher([handler]).drain()).toBe(3);
    expect(await row('orphan')).toMatchObject({ status: 'dead', attempts: 1, last_error: 'no outbox handler for hubspot operation list_membership' });
    expect(await row('garbled')).toMatchObject({ status: 'dead', last_error: 'stored payload is not JSON' });
    expect((await row('fine')).status).toBe('done');
    expect(handler.calls.map((c) => c.keys)).toEqual([['fine']]);
  });

  it('rows for a platform the dispatcher is not configured for stay pending, untouched, until one that is takes them', async () => {
    await enqueue(item(acme, 'to-hubspot'), item(acme, 'to-shopify', { platform: 'shopify', operation: 'consent' }));
    const hubspot = recording('subscription');
    const shopify = recording('consent', { platform: 'shopify' });
    const shopifyOnly = new OutboxDispatcher({ store, clock, logger: silentLogger, random: () => 0.5, handlers: [hubspot, shopify], platforms: ['shopify'] }, { maxAttempts: 3 });
    expect(await shopifyOnly.drain()).toBe(1);
    expect(await row('to-hubspot')).toMatchObject({ status: 'pending', attempts: 0, last_error: null, claimed_until: null });
    expect(hubspot.calls).toEqual([]);
    const none = new OutboxDispatcher({ store, clock, logger: silentLogger, handlers: [hubspot], platforms: [] }, { maxAttempts: 3 });
    expect(await none.drain()).toBe(0);
    // A running dispatcher says, at start, how many writes wait for a platform it does not write to.
    const warnings: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const recordingLogger: Logger = { ...silentLogger, warn: (fields, message) => warnings.push({ fields, message }), child: () => recordingLogger };
    const running = new OutboxDispatcher({ store, clock, logger: recordingLogger, handlers: [hubspot, shopify], platforms: ['shopify'] }, { maxAttempts: 3 });
    running.start();
    await running.stop();
    expect(warnings).toEqual([{ fields: { platform: 'hubspot', rows: 1 }, message: expect.stringContaining('outbox writes wait for a process configured for their platform') }]);

    expect(await dispatcher([hubspot, shopify]).drain()).toBe(1);
    expect(await statuses()).toEqual({ 'to-hubspot': 'done', 'to-shopify': 'done' });
  });

  it('a claim is a lease: rows of a dispatcher that died are due again when it ends, and the late outcome is not recorded', async () => {
    await enqueue(item(acme, 'lease-1'), item(acme, 'lease-2'));
    const held = gate();
    const stuck = recording('subscription', {
      behaviour: async (_t, rows) => {
        await held.promise;
        return rows.map((r) => ({ key: r.id, ok: false, error: 'late answer', retryable: false }));
      },
    });
    const first = dispatcher([stuck], { leaseMs: 60_000 });
    const firstStep = first.stepOnce(); // claims, then hangs in the handler like a dispatcher that died
    while (stuck.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(await row('lease-1')).toMatchObject({ status: 'pending', claimed_until: at(60_000), run_at: at(60_000) });

    const healthy = recording('subscription');
    const second = dispatcher([healthy], { leaseMs: 60_000 });
    expect(await second.stepOnce()).toBe(0); // claimed: not due
    clock.advance(59_999);
    expect(await second.stepOnce()).toBe(0);
    clock.advance(1);
    expect(await second.stepOnce()).toBe(2); // the lease ended: reclaimed and delivered
    expect(healthy.calls.map((c) => c.keys)).toEqual([['lease-1', 'lease-2']]);

    held.open();
    expect(await firstStep).toBe(0); // fenced: its lease was taken over, it records nothing
    expect(await row('lease-1')).toMatchObject({ status: 'done', attempts: 0, last_error: null });
    expect((await row('lease-2')).status).toBe('done');
  });

  it('renews the lease between chunks of a long step, so later chunks are not taken over', async () => {
    await enqueue(...Array.from({ length: 4 }, (_, i) => item(acme, `long-${i}`)));
    const rival = recording('subscription');
    const rivalSteps: number[] = [];
    const slow = recording('subscription', {
      maxBatch: 1,
      behaviour: async (_t, rows) => {
        clock.advance(40_000); // each call takes 40 s of a 60 s lease
        // Without renewal the rows of the third and fourth chunk would be due again here (lease ended at 60 s).
        rivalSteps.push(await dispatcher([rival], { leaseMs: 60_000 }).stepOnce());
        return rows.map((r) => ({ key: r.id, ok: true }));
      },
    });
    expect(await dispatcher([slow], { leaseMs: 60_000 }).stepOnce()).toBe(4);
    expect(slow.calls).toHaveLength(4);
    expect(rivalSteps).toEqual([0, 0, 0, 0]);
    expect(rival.calls).toEqual([]);
    expect(Object.values(await statuses())).toEqual(['done', 'done', 'done', 'done']);
  });

  it('several dispatchers never hand the same row to two handlers', async () => {
    // PostgreSQL: a second pool, as a second process would have (FOR UPDATE SKIP LOCKED). SQLite: one writer;
    // in-process dispatchers share the connection (separate processes wait on busy_timeout).
    const second = dialect === 'postgres' ? db.open() : store;
    try {
      await enqueue(...Array.from({ length: 300 }, (_, i) => item(i % 2 === 0 ? acme : beta, `par-${i}`)));
      const seen: string[] = [];
      const slowish: Behaviour = async (_t, rows) => {
        seen.push(...rows.map((r) => r.id));
        await new Promise((r) => setTimeout(r, 5));
        return rows.map((r) => ({ key: r.id, ok: true }));
      };
      const dispatchers = [store, second, store, second].map((s) => dispatcher([recording('subscription', { maxBatch: 10, behaviour: slowish })], { batchSize: 20 }, s));
      const handled = await Promise.all(dispatchers.map((d) => d.drain()));
      expect(handled.reduce((a, b) => a + b, 0)).toBe(300);
      expect(seen).toHaveLength(300);
      expect(new Set(seen).size).toBe(300);
      if (dialect === 'postgres') expect(handled.filter((n) => n > 0).length).toBeGreaterThan(1);
      expect(Object.values(await statuses()).every((s) => s === 'done')).toBe(true);
    } finally {
      if (second !== store) await second.close();
    }
  });

  it('`outbox retry` re-queues dead rows with fresh attempts (by id, all, or all of one tenant); dlq and stats show them', async () => {
    const created = clock.now().toISOString();
    await enqueue(item(acme, 'dead-a1', { mode: 'bad' }), item(acme, 'dead-a2', { mode: 'bad' }), item(beta, 'dead-b1', { mode: 'bad' }), item(acme, 'fine'));
    await enqueue(item(acme, 'later', { mode: 'fail', operation: 'contact_properties' }));
    await dispatcher([recording('subscription'), recording('contact_properties')]).drain();

    const stats = await outboxStats(store);
    expect(stats.byTenant.filter((s) => s.tenantId === acme.id).map((s) => [s.platform, s.operation, s.status, s.count, s.nextRunAt])).toEqual([
      ['hubspot', 'contact_properties', 'pending', 1, at(2500)],
      ['hubspot', 'subscription', 'dead', 2, null],
      ['hubspot', 'subscription', 'done', 1, null],
    ]);
    expect(stats.byTenant.find((s) => s.tenantId === beta.id)).toMatchObject({ status: 'dead', count: 1, oldestCreatedAt: created, claimed: 0 });

    const dead = await listDeadOutbox(store, { tenantId: acme.id });
    expect(dead.map((d) => [d.idempotencyKey, d.operation, d.attempts, d.lastError])).toEqual([
      ['dead-a1', 'subscription', 1, 'INVALID_EMAIL: not a valid address'],
      ['dead-a2', 'subscription', 1, 'INVALID_EMAIL: not a valid address'],
    ]);
    expect(await listDeadOutbox(store, { limit: 1 })).toHaveLength(1);
    expect(await listDeadOutbox(store)).toHaveLength(3);

    clock.advance(1000);
    expect(await retryDeadOutbox(store, [dead[0]!.id, (await row('fine')).id], { clock })).toBe(1); // a done row is not dead
    expect(await row('dead-a1')).toMatchObject({ status: 'pending', attempts: 0, run_at: clock.now().toISOString(), claimed_until: null });
    expect(await retryDeadOutbox(store, [(await row('dead-b1', beta)).id], { tenantId: acme.id, clock })).toBe(0); // another tenant's row
    expect(await retryDeadOutbox(store, 'all', { tenantId: acme.id, clock })).toBe(1); // dead-a2
    expect((await row('dead-b1', beta)).status).toBe('dead');
    expect(await retryDeadOutbox(store, 'all', { clock })).toBe(1);
    expect(await retryDeadOutbox(store, [], { clock })).toBe(0);

    // Replayed with a handler that now succeeds.
    await dispatcher([recording('subscription', { behaviour: async (_t, rows) => rows.map((r) => ({ key: r.id, ok: true })) })]).stepOnce();
    expect(await statuses()).toMatchObject({ 'dead-a1': 'done', 'dead-a2': 'done', 'dead-b1': 'done', later: 'pending' });
  });

  it('prunes done rows past the retention, never pending or dead ones', async () => {
    await enqueue(item(acme, 'old-done'), item(acme, 'old-dead', { mode: 'bad' }), item(acme, 'pending', { mode: 'fail' }));
    const d = dispatcher([recording('subscription')], { doneRetentionMs: 86_400_000 });
    await d.stepOnce();
    clock.advance(86_400_000);
    expect(await d.prune()).toBe(0); // exactly at the cutoff: kept
    clock.advance(1);
    expect(await d.prune()).toBe(1);
    expect(await statuses()).toEqual({ 'old-dead': 'dead', pending: 'pending' });
    expect(await pruneDoneOutbox(store, clock.now())).toBe(0);
  });

  it('start/stop: the loop delivers what is enqueued after notify(); stop lets the chunk in flight finish and releases the rest', async () => {
    const handler = recording('subscription', { maxBatch: 2 });
    const d = dispatcher([handler], { pollIntervalMs: 60_000 });
    d.start();
    await enqueue(item(acme, 'woken'));
    d.notify();
    for (let i = 0; i < 200 && (await row('woken')).status !== 'done'; i++) await new Promise((r) => setTimeout(r, 5));
    expect((await row('woken')).status).toBe('done');
    await d.stop();

    await enqueue(...Array.from({ length: 6 }, (_, i) => item(acme, `stop-${i}`)));
    const held = gate();
    const slow = recording('subscription', {
      maxBatch: 2,
      behaviour: async (_t, rows) => {
        await held.promise;
        return rows.map((r) => ({ key: r.id, ok: true }));
      },
    });
    const stopping = dispatcher([slow], { pollIntervalMs: 60_000 });
    stopping.start();
    while (slow.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    const stopped = stopping.stop();
    held.open();
    await stopped;
    expect(slow.calls).toHaveLength(1);
    const after = await statuses();
    expect(Object.entries(after).filter(([k]) => k.startsWith('stop-')).map(([, s]) => s)).toEqual(['done', 'done', 'pending', 'pending', 'pending', 'pending']);
    // The released rows are due now, not at the end of the lease.
    expect(await row('stop-5')).toMatchObject({ claimed_until: null, run_at: clock.now().toISOString(), attempts: 0 });
    expect(await dispatcher([handler]).drain()).toBe(4);
  });
});
