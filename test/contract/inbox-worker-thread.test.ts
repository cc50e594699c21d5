/**
 * `serve`'s inbox worker on a thread of its own (src/inbox/worker-thread-host.ts), SQLite file only (where `serve`
 * uses it). It needs the built thread file (`npm test` builds first). The thread opens its own runtime from the
 * configuration, processes what the request path stores, reads the request path's signals from shared memory,
 * stops cleanly, and a thread that dies is started again.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InboxWriter, type NewDelivery } from '../../src/inbox/inbox';
import { SharedRequestSignals } from '../../src/inbox/request-signals';
import { InboxWorkerThread } from '../../src/inbox/worker-thread-host';
import type { LogFields, Logger } from '../../src/ports';
import type { Store } from '../../src/store/database';
import { addTenant, type Tenant } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from '../helpers/deps';
import { migratedStore, type TestDatabase } from '../helpers/stores';
import { testConfig } from '../helpers/webhooks';
import { silentLogger } from '../../src/log/logger';

const THREAD_FILE = path.join(__dirname, '..', '..', 'dist', 'src', 'inbox', 'worker-thread.js');
const FIXTURE = fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'shopify', 'customers-email-consent-subscribed.json'), 'utf8');

async function until(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('SharedRequestSignals', () => {
  it('carries busy and the last accept across instances on the same memory', () => {
    let now = 1_000_000;
    const writer = new SharedRequestSignals(undefined, () => now);
    const reader = new SharedRequestSignals(writer.buffer, () => now);
    expect([reader.busy, reader.activeWithin(100)]).toEqual([false, false]);
    writer.accepted();
    now += 50;
    expect([reader.busy, reader.activeWithin(100)]).toEqual([true, true]);
    writer.idle();
    now += 100;
    expect([reader.busy, reader.activeWithin(100)]).toEqual([false, false]);
    expect(() => new SharedRequestSignals(new SharedArrayBuffer(4))).toThrow(RangeError);
  });
});

describe('inbox worker on its own thread (SQLite file)', () => {
  let db: TestDatabase;
  let store: Store;
  let tenant: Tenant;
  const deps = { clock: fixedClock('2026-06-01T12:00:00.000Z'), ids: countingIds('thr'), secretBox: null };
  const delivery = (key: string): NewDelivery => ({
    tenantId: tenant.id,
    platform: 'shopify',
    deliveryKey: key,
    topic: 'customers_email_marketing_consent/update',
    payload: FIXTURE,
    meta: { apiVersion: '2026-04', shopDomain: 'thread.myshopify.com' },
  });
  const status = async (key: string) => (await store.db.selectFrom('inbox').select('status').where('delivery_key', '=', key).executeTakeFirstOrThrow()).status;

  beforeAll(async () => {
    expect(InboxWorkerThread.available(THREAD_FILE)).toBe(true); // run `npm run build` first
    ({ db, store } = await migratedStore('sqlite'));
    tenant = await addTenant(store, deps, { shopDomain: 'thread.myshopify.com', hubspotPortalId: '4545' });
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('processes what the request path stores, sees its signals, and leaves new deliveries pending once stopped', async () => {
    const config = testConfig({ DATABASE_URL: `sqlite:${(db.target as { file: string }).file}` });
    const signals = new SharedRequestSignals();
    const writer = new InboxWriter(store, deps, 200, null, signals);
    const host = new InboxWorkerThread(config, signals, silentLogger, THREAD_FILE);
    host.start();
    try {
      const accepted = writer.accept({ deliveries: [delivery('t1')], privacyRequests: [], unrouted: [] });
      expect(signals.busy).toBe(true); // until the group is committed
      await expect(accepted).resolves.toMatchObject({ accepted: 1 });
      expect(signals.busy).toBe(false);
      expect(signals.activeWithin(60_000)).toBe(true);
      host.notify();
      await until(async () => (await status('t1')) === 'done');
      const events = await store.db.selectFrom('consent_event').select('id').where('tenant_id', '=', tenant.id).execute();
      expect(events).toHaveLength(1);
    } finally {
      await host.stop();
    }
    await writer.accept({ deliveries: [delivery('t2')], privacyRequests: [], unrouted: [] });
    host.notify(); // no thread any more: nothing to wake, nothing thrown
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await status('t2')).toBe('pending');
  });

  it('a thread that dies is logged and started again; stop ends it for good', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-thread-'));
    const starts = path.join(dir, 'starts');
    const failing = path.join(dir, 'failing-thread.js');
    fs.writeFileSync(failing, `require('node:fs').appendFileSync(${JSON.stringify(starts)}, 'x'); process.exit(3);\n`);
    const errors: LogFields[] = [];
    const logger: Logger = { ...silentLogger, error: (fields: LogFields) => void errors.push(fields), child: () => logger };
    const host = new InboxWorkerThread(testConfig(), new SharedRequestSignals(), logger, failing);
    try {
      host.start();
      await until(async () => fs.existsSync(starts) && fs.readFileSync(starts, 'utf8').length >= 2, 5000);
      expect(errors[0]).toMatchObject({ code: 3 });
    } finally {
      await host.stop();
    }
    const count = fs.readFileSync(starts, 'utf8').length;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(fs.readFileSync(starts, 'utf8').length).toBe(count);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
