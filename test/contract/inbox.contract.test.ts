/**
 * Inbox and worker contract, on SQLite and PostgreSQL: processing, retries as rows with backoff, dead letters
 * that never block the queue, replay, retention pruning, and several workers taking each row exactly once.
 */
import { ALL_PURPOSES } from '../../src/domain/consent';
import { PermanentDeliveryError, type InboundMapper } from '../../src/domain/inbound';
import { InboxWriter, inboxStats, listDeadDeliveries, retryDeadDeliveries, type NewDelivery } from '../../src/inbox/inbox';
import { InboxWorker, retryDelayMs } from '../../src/inbox/worker';
import { INBOX_ROWS_PER_STATEMENT } from '../../src/store/inbox.repository';
import { silentLogger } from '../../src/log/logger';
import type { Store } from '../../src/store/database';
import { addTenant, setTenantSettings, type Tenant } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

/** A test mapper: `ok` appends one email grant, `fail` throws a retryable error, `bad` a permanent one. */
const mapper: InboundMapper = (delivery) => {
  const payload = delivery.payload as { email: string; mode: 'ok' | 'fail' | 'bad' };
  if (payload.mode === 'fail') throw new Error('platform hiccup');
  if (payload.mode === 'bad') throw new PermanentDeliveryError('payload does not match its schema', ['email: required']);
  return [
    {
      kind: 'consent',
      identities: [{ kind: 'email', value: payload.email }],
      events: [
        {
          channel: 'email',
          purpose: ALL_PURPOSES,
          kind: 'grant',
          basis: 'consent',
          occurredAt: '2026-05-01T00:00:00.000Z',
          source: 'shopify',
          sourceDeliveryId: delivery.deliveryKey,
          evidence: { affirmative: true, capturePoint: 'test' },
        },
      ],
    },
  ];
};

describe.each(testDialects())('inbox worker on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let tenant: Tenant;
  const clock = fixedClock('2026-06-01T12:00:00.000Z');
  const ids = countingIds('ib');
  const deps = { clock, ids, secretBox: null };
  const workerOn = (s: Store, options = {}) =>
    new InboxWorker({ store: s, mappers: { shopify: mapper, hubspot: mapper }, mapperContext: { hubspotAppId: null }, clock, ids, logger: silentLogger, random: () => 0 }, { maxAttempts: 3, ...options });
  const delivery = (key: string, mode: 'ok' | 'fail' | 'bad' = 'ok', email = `${key}@example.com`): NewDelivery => ({
    tenantId: tenant.id,
    platform: 'shopify',
    deliveryKey: key,
    topic: 'customers_email_marketing_consent/update',
    payload: JSON.stringify({ email, mode }),
    meta: {},
  });
  const accept = (...deliveries: NewDelivery[]) => new InboxWriter(store, deps).accept({ deliveries, privacyRequests: [], unrouted: [] });
  const row = (key: string) => store.db.selectFrom('inbox').selectAll().where('delivery_key', '=', key).executeTakeFirstOrThrow();

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    tenant = await addTenant(store, deps, { shopDomain: 'inbox.myshopify.com', hubspotPortalId: '4242' });
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('insert-first: a repeated delivery key is a duplicate, in one request or across requests', async () => {
    expect(await accept(delivery('d1'), delivery('d1'))).toMatchObject({ accepted: 1, duplicates: 1 });
    expect(await accept(delivery('d1'))).toMatchObject({ accepted: 0, duplicates: 1 });
  });

  it('group commit: concurrent requests share one transaction, and each gets the counts of its own rows', async () => {
    const writer = new InboxWriter(store, deps);
    const send = (...deliveries: NewDelivery[]) => writer.accept({ deliveries, privacyRequests: [], unrouted: [] });
    await send(delivery('g0'));
    // Issued together, so they are written as one group: a key repeated across requests counts once, for the
    // first request that carries it; a key stored before is a duplicate for everyone.
    const results = await Promise.all([send(delivery('g1'), delivery('g2')), send(delivery('g2'), delivery('g3')), send(delivery('g0'), delivery('g1')), send(delivery('g4'))]);
    expect(results.map((r) => [r.accepted, r.duplicates])).toEqual([
      [2, 0],
      [1, 1],
      [0, 2],
      [1, 0],
    ]);
    const stored = await store.db.selectFrom('inbox').select('delivery_key').where('delivery_key', 'in', ['g0', 'g1', 'g2', 'g3', 'g4']).execute();
    expect(stored.map((r) => r.delivery_key).sort()).toEqual(['g0', 'g1', 'g2', 'g3', 'g4']);
    await store.db.deleteFrom('inbox').where('delivery_key', 'in', ['g0', 'g1', 'g2', 'g3', 'g4']).execute(); // the next tests count rows
  });

  it('group commit: a request that cannot be written fails alone; the others of its group are committed', async () => {
    // On PostgreSQL a plain group is one statement (no BEGIN/COMMIT): the bad row fails it whole, and the requests
    // are then written one by one, as after a failed group transaction.
    const writer = new InboxWriter(store, deps);
    const send = (...deliveries: NewDelivery[]) => writer.accept({ deliveries, privacyRequests: [], unrouted: [] });
    const [good, bad, alsoGood] = await Promise.allSettled([
      send(delivery('f1'), delivery('f2')),
      send({ ...delivery('f3'), tenantId: 'no-such-tenant' }),
      send(delivery('f4')),
    ]);
    expect(good).toMatchObject({ status: 'fulfilled', value: { accepted: 2, duplicates: 0 } });
    expect(bad).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: expect.stringMatching(/foreign key/i) }) });
    expect(alsoGood).toMatchObject({ status: 'fulfilled', value: { accepted: 1, duplicates: 0 } });
    const stored = await store.db.selectFrom('inbox').select('delivery_key').where('delivery_key', 'in', ['f1', 'f2', 'f3', 'f4']).orderBy('delivery_key').execute();
    expect(stored.map((r) => r.delivery_key)).toEqual(['f1', 'f2', 'f4']);
    await store.db.deleteFrom('inbox').where('delivery_key', 'in', ['f1', 'f2', 'f4']).execute();
  });

  it('group commit: on PostgreSQL a group of plain deliveries is one statement; side rows or more rows than one insert take a transaction', async () => {
    const transactions = jest.spyOn(store.db, 'transaction');
    try {
      const writer = new InboxWriter(store, deps);
      const privacy = { tenantId: tenant.id, platform: 'shopify' as const, account: 'inbox.myshopify.com', deliveryKey: 'q-1', topic: 'customers/redact', payload: '{}' };
      await Promise.all([writer.accept({ deliveries: [delivery('q1')], privacyRequests: [], unrouted: [] }), writer.accept({ deliveries: [delivery('q2')], privacyRequests: [], unrouted: [] })]);
      expect(transactions).toHaveBeenCalledTimes(dialect === 'postgres' ? 0 : 1);
      await writer.accept({ deliveries: [delivery('q3')], privacyRequests: [privacy], unrouted: [] });
      expect(transactions).toHaveBeenCalledTimes(dialect === 'postgres' ? 1 : 2);
      await writer.accept({ deliveries: Array.from({ length: INBOX_ROWS_PER_STATEMENT + 1 }, (_, i) => delivery(`q-many-${i}`)), privacyRequests: [], unrouted: [] });
      expect(transactions).toHaveBeenCalledTimes(dialect === 'postgres' ? 2 : 3);
    } finally {
      transactions.mockRestore();
    }
    await store.db.deleteFrom('inbox').where('delivery_key', 'like', 'q%').execute();
    await store.db.deleteFrom('privacy_request').where('delivery_key', '=', 'q-1').execute();
  });

  it('group commit: a request whose privacy request cannot be written fails whole and alone', async () => {
    const writer = new InboxWriter(store, deps);
    const badPrivacy = { tenantId: 'no-such-tenant', platform: 'shopify' as const, account: 'inbox.myshopify.com', deliveryKey: 'r-1', topic: 'customers/redact', payload: '{}' };
    const [good, bad] = await Promise.allSettled([
      writer.accept({ deliveries: [delivery('r1')], privacyRequests: [], unrouted: [] }),
      writer.accept({ deliveries: [delivery('r2')], privacyRequests: [badPrivacy], unrouted: [] }),
    ]);
    expect(good).toMatchObject({ status: 'fulfilled', value: { accepted: 1, duplicates: 0 } });
    expect(bad).toMatchObject({ status: 'rejected' });
    expect((await store.db.selectFrom('inbox').select('delivery_key').where('delivery_key', 'in', ['r1', 'r2']).execute()).map((r) => r.delivery_key)).toEqual(['r1']);
    expect(await store.db.selectFrom('privacy_request').select('id').where('delivery_key', '=', 'r-1').execute()).toHaveLength(0);
    await store.db.deleteFrom('inbox').where('delivery_key', '=', 'r1').execute();
  });

  it('group commit: privacy requests and unrouted counters commit with the inbox rows of their group', async () => {
    const writer = new InboxWriter(store, deps);
    const privacy = { tenantId: tenant.id, platform: 'shopify' as const, account: 'inbox.myshopify.com', deliveryKey: 'p-1', topic: 'customers/redact', payload: '{}' };
    const unrouted = { platform: 'shopify' as const, account: 'gone.myshopify.com', topic: 'orders/paid', reason: 'unknown_tenant' as const };
    const results = await Promise.all([
      writer.accept({ deliveries: [delivery('s1')], privacyRequests: [], unrouted: [] }),
      writer.accept({ deliveries: [delivery('s2')], privacyRequests: [privacy], unrouted: [unrouted] }),
    ]);
    expect(results.map((r) => [r.accepted, r.duplicates, r.privacyRecorded, r.unrouted])).toEqual([
      [1, 0, 0, 0],
      [1, 0, 1, 1],
    ]);
    expect(await store.db.selectFrom('inbox').select('delivery_key').where('delivery_key', 'in', ['s1', 's2']).execute()).toHaveLength(2);
    expect(await store.db.selectFrom('privacy_request').select('delivery_key').where('delivery_key', '=', 'p-1').execute()).toHaveLength(1);
    expect(await store.db.selectFrom('unrouted_delivery').select('count').where('account', '=', 'gone.myshopify.com').executeTakeFirstOrThrow()).toEqual({ count: 1 });
    await store.db.deleteFrom('inbox').where('delivery_key', 'in', ['s1', 's2']).execute();
    await store.db.deleteFrom('privacy_request').where('delivery_key', '=', 'p-1').execute();
    await store.db.deleteFrom('unrouted_delivery').where('account', '=', 'gone.myshopify.com').execute();
  });

  it('group commit: a group of more rows than one insert takes is still all or nothing', async () => {
    // More than INBOX_ROWS_PER_STATEMENT rows need several statements, so they take a transaction: otherwise the
    // first statement would stay committed when a later one fails, and the retry one by one would then count
    // those rows as duplicates.
    const writer = new InboxWriter(store, deps);
    const send = (...deliveries: NewDelivery[]) => writer.accept({ deliveries, privacyRequests: [], unrouted: [] });
    const many = Array.from({ length: INBOX_ROWS_PER_STATEMENT }, (_, i) => delivery(`m${i}`));
    const [first, bad] = await Promise.allSettled([send(...many), send({ ...delivery('m-bad'), tenantId: 'no-such-tenant' })]);
    expect(first).toMatchObject({ status: 'fulfilled', value: { accepted: INBOX_ROWS_PER_STATEMENT, duplicates: 0 } });
    expect(bad).toMatchObject({ status: 'rejected' });
    const count = await store.db.selectFrom('inbox').select((eb) => eb.fn.countAll().as('n')).where('delivery_key', 'like', 'm%').executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(INBOX_ROWS_PER_STATEMENT);
    await store.db.deleteFrom('inbox').where('delivery_key', 'like', 'm%').execute();
  });

  it('processes a delivery: ledger event, projection and inbox status in one transaction', async () => {
    const worker = workerOn(store);
    expect(await worker.drain()).toBe(1);
    expect(await row('d1')).toMatchObject({ status: 'done', attempts: 0, outcome: 'appended 1 event', processed_at: '2026-06-01T12:00:00.000Z' });
    const events = await store.db.selectFrom('consent_event').select(['kind', 'source_delivery_id']).where('tenant_id', '=', tenant.id).execute();
    expect(events).toEqual([{ kind: 'grant', source_delivery_id: 'd1' }]);
    expect(await worker.step()).toBe('idle');
  });

  it('retries a failing row with backoff, dead-letters it after maxAttempts, and keeps serving the others meanwhile', async () => {
    await accept(delivery('f1', 'fail'), delivery('ok-after-fail'));
    const worker = workerOn(store);
    expect(await worker.step()).toBe('failed');
    expect(await row('f1')).toMatchObject({ status: 'pending', attempts: 1, last_error: 'Error: platform hiccup', run_at: new Date(Date.parse('2026-06-01T12:00:00.000Z') + retryDelayMs(1, 0)).toISOString() });
    // The failing row waits in the future; the next row is processed now.
    expect(await worker.step()).toBe('processed');
    expect((await row('ok-after-fail')).status).toBe('done');
    expect(await worker.step()).toBe('idle');
    clock.advance(retryDelayMs(1, 0));
    expect(await worker.step()).toBe('failed');
    clock.advance(retryDelayMs(2, 0));
    expect(await worker.step()).toBe('failed');
    expect(await row('f1')).toMatchObject({ status: 'dead', attempts: 3 });
    expect(await worker.step()).toBe('idle');
    const dead = await listDeadDeliveries(store, { tenantId: tenant.id });
    expect(dead.map((d) => [d.deliveryKey, d.attempts, d.lastError])).toEqual([['f1', 3, 'Error: platform hiccup']]);
  });

  it('dead-letters a permanently bad payload at once', async () => {
    await accept(delivery('bad1', 'bad'));
    expect(await workerOn(store).step()).toBe('failed');
    expect(await row('bad1')).toMatchObject({ status: 'dead', attempts: 1, last_error: 'PermanentDeliveryError: payload does not match its schema: email: required' });
  });

  it('`inbox retry` re-queues dead rows with fresh attempts; stats show every state', async () => {
    const stats = await inboxStats(store);
    const mine = stats.byTenant.filter((s) => s.tenantId === tenant.id).map((s) => [s.status, s.count]);
    expect(mine).toEqual([
      ['dead', 2],
      ['done', 2],
    ]);
    expect(await retryDeadDeliveries(store, deps, { ids: [(await row('bad1')).id] })).toBe(1);
    expect(await row('bad1')).toMatchObject({ status: 'pending', attempts: 0 });
    expect(await retryDeadDeliveries(store, deps, { tenantId: tenant.id })).toBe(1); // f1 (bad1 is pending already)
    expect(await workerOn(store).drain()).toBe(2);
    expect((await row('bad1')).status).toBe('dead');
  });

  it('prunes processed rows past the tenant retention, never pending or dead ones', async () => {
    await setTenantSettings(store, deps, tenant.id, { ...tenant.settings, inboxRetentionDays: 1 });
    await accept(delivery('fresh', 'fail'));
    const worker = workerOn(store);
    clock.advance(86_400_000 + 1);
    const before = await store.db.selectFrom('inbox').select(['delivery_key', 'status']).where('tenant_id', '=', tenant.id).execute();
    const removed = await worker.prune();
    const after = await store.db.selectFrom('inbox').select(['delivery_key', 'status']).where('tenant_id', '=', tenant.id).orderBy('delivery_key').execute();
    expect(removed).toBe(before.filter((r) => r.status === 'done').length);
    expect(after.every((r) => r.status !== 'done')).toBe(true);
    expect(after.map((r) => r.delivery_key)).toEqual(['bad1', 'f1', 'fresh']);
    // A re-delivery of a pruned delivery is stored again but appends nothing: the ledger remembers the key.
    await accept(delivery('d1'));
    await worker.drain();
    expect(await row('d1')).toMatchObject({ status: 'done', outcome: 'ledger already had this delivery' });
    expect(await store.db.selectFrom('consent_event').select('seq').where('source_delivery_id', '=', 'd1').execute()).toHaveLength(1);
  });

  it('several workers take each row exactly once', async () => {
    // PostgreSQL: a second pool, as a second process would have (FOR UPDATE SKIP LOCKED). SQLite: better-sqlite3
    // is synchronous, so two connections in one process would block each other's event loop; in-process workers
    // share the connection (separate processes wait on busy_timeout instead).
    const second = dialect === 'postgres' ? db.open() : store;
    try {
      const keys = Array.from({ length: 120 }, (_, i) => `par-${i}`);
      await accept(...keys.map((k) => delivery(k)));
      const [a, b] = [workerOn(store), workerOn(second)];
      const [handledA, handledB] = await Promise.all([a.drain(), b.drain()]);
      const done = await store.db.selectFrom('inbox').select('delivery_key').where('delivery_key', 'like', 'par-%').where('status', '=', 'done').execute();
      expect(done).toHaveLength(120);
      // `fresh` (failing, due again) may be taken by either worker: count only the par-* rows.
      expect(handledA + handledB).toBeGreaterThanOrEqual(120);
      const appended = await store.db.selectFrom('consent_event').select('source_delivery_id').where('source_delivery_id', 'like', 'par-%').execute();
      expect(appended).toHaveLength(120);
      expect(new Set(appended.map((e) => e.source_delivery_id)).size).toBe(120);
    } finally {
      if (second !== store) await second.close();
    }
  });

  it('in `serve` mode, while webhooks are arriving, the running worker rests between slices; otherwise it goes straight on', async () => {
    const keys = Array.from({ length: 3 }, (_, i) => `rest-${i}`);
    const done = async () => (await store.db.selectFrom('inbox').select('status').where('delivery_key', 'like', 'rest-%').execute()).filter((r) => r.status === 'done').length;
    const runUntilDone = async (active: boolean): Promise<number> => {
      await accept(...keys.map((k) => delivery(`${k}-${active}`)));
      const worker = new InboxWorker(
        { store, mappers: { shopify: mapper, hubspot: mapper }, mapperContext: { hubspotAppId: null }, clock, ids, logger: silentLogger, random: () => 0, requestsActive: () => active },
        { sliceMs: 1, batchSize: 1, restWhileActiveMs: 40, pollIntervalMs: 5 },
      );
      const started = performance.now();
      worker.start();
      const target = active ? 6 : 3;
      while ((await done()) < target) await new Promise((resolve) => setTimeout(resolve, 2));
      const took = performance.now() - started;
      await worker.stop();
      return took;
    };
    expect(await runUntilDone(false)).toBeLessThan(1_000);
    // Three one-row slices with a 40 ms rest after each of the first two (timers never fire early).
    expect(await runUntilDone(true)).toBeGreaterThanOrEqual(80);
    await store.db.deleteFrom('inbox').where('delivery_key', 'like', 'rest-%').execute();
  });

  it('a worker more than restUnlessBehindMs behind does not rest, so a steady stream cannot grow its backlog without end', async () => {
    await accept(...['behind-0', 'behind-1', 'behind-2'].map((k) => delivery(k)));
    await store.db.updateTable('inbox').set({ received_at: '2026-06-01T11:58:00.000Z' }).where('delivery_key', 'like', 'behind-%').execute();
    const worker = new InboxWorker(
      { store, mappers: { shopify: mapper, hubspot: mapper }, mapperContext: { hubspotAppId: null }, clock, ids, logger: silentLogger, random: () => 0, requestsActive: () => true },
      { sliceMs: 1, batchSize: 1, restWhileActiveMs: 5_000, restUnlessBehindMs: 60_000, pollIntervalMs: 5 },
    );
    const started = performance.now();
    worker.start();
    const done = async () => (await store.db.selectFrom('inbox').select('status').where('delivery_key', 'like', 'behind-%').where('status', '=', 'done').execute()).length;
    while ((await done()) < 3 && performance.now() - started < 4_000) await new Promise((resolve) => setTimeout(resolve, 2));
    await worker.stop();
    // Two minutes behind: no 5 s rest between the slices.
    expect(await done()).toBe(3);
    expect(performance.now() - started).toBeLessThan(4_000);
    await store.db.deleteFrom('inbox').where('delivery_key', 'like', 'behind-%').execute();
  });

  it('in `serve` mode a batch stops at its time slice; the rest stay pending and come next', async () => {
    const keys = Array.from({ length: 6 }, (_, i) => `slice-${i}`);
    await accept(...keys.map((k) => delivery(k)));
    // A fake monotonic clock that moves 4 ms per reading: start 4 (deadline 14), then 8, 12, 16: the third row
    // crosses the 10 ms slice and the batch commits with three.
    let ms = 0;
    const worker = new InboxWorker(
      { store, mappers: { shopify: mapper, hubspot: mapper }, mapperContext: { hubspotAppId: null }, clock, ids, logger: silentLogger, random: () => 0, nowMs: () => (ms += 4) },
      { sliceMs: 10 },
    );
    expect(await worker.stepBatch()).toBe(3);
    const statuses = await store.db.selectFrom('inbox').select(['delivery_key', 'status']).where('delivery_key', 'like', 'slice-%').orderBy('delivery_key').execute();
    expect(statuses.filter((r) => r.status === 'done')).toHaveLength(3);
    expect(statuses.filter((r) => r.status === 'pending')).toHaveLength(3);
    expect(await worker.drain()).toBe(3);
  });
});
