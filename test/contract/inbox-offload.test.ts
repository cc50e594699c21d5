/**
 * The SQLite write thread of the webhook request path (src/store/sqlite-offload.ts with InboxWriter), SQLite only
 * by nature (PostgreSQL commits are asynchronous already). It needs the built thread file (`npm test` builds
 * first). Counts per request as on the main connection, one bad request never fails the others of its group,
 * writes on the main connection at the same time are waited for, and a closed thread fails requests instead of
 * hanging them.
 */
import path from 'node:path';
import { sql } from 'kysely';
import { InboxWriter, type NewDelivery } from '../../src/inbox/inbox';
import type { Store } from '../../src/store/database';
import { SQLITE_BUSY_TIMEOUT_MS } from '../../src/store/database';
import { SqliteOffload } from '../../src/store/sqlite-offload';
import { addTenant, type Tenant } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from '../helpers/deps';
import { migratedStore, type TestDatabase } from '../helpers/stores';

const THREAD_FILE = path.join(__dirname, '..', '..', 'dist', 'src', 'store', 'sqlite-offload-thread.js');

describe('inbox writes on the SQLite write thread', () => {
  let db: TestDatabase;
  let store: Store;
  let tenant: Tenant;
  let offload: SqliteOffload;
  const deps = { clock: fixedClock('2026-06-01T12:00:00.000Z'), ids: countingIds('off'), secretBox: null };
  const delivery = (key: string, tenantId = tenant.id): NewDelivery => ({
    tenantId,
    platform: 'shopify',
    deliveryKey: key,
    topic: 'customers_email_marketing_consent/update',
    payload: JSON.stringify({ key }),
    meta: {},
  });

  beforeAll(async () => {
    expect(SqliteOffload.available(THREAD_FILE)).toBe(true); // run `npm run build` first
    ({ db, store } = await migratedStore('sqlite'));
    tenant = await addTenant(store, deps, { shopDomain: 'offload.myshopify.com', hubspotPortalId: '4343' });
    offload = new SqliteOffload((db.target as { file: string }).file, { busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS, threadFile: THREAD_FILE });
  });
  afterAll(async () => {
    await offload.close();
    await store.close();
    await db.drop();
  });

  it('commits a group in one transaction there, each request counted on its own rows, readable on the main connection', async () => {
    const writer = new InboxWriter(store, deps, 200, offload);
    const send = (...deliveries: NewDelivery[]) => writer.accept({ deliveries, privacyRequests: [], unrouted: [] });
    await send(delivery('o0'));
    const results = await Promise.all([send(delivery('o1'), delivery('o2')), send(delivery('o2'), delivery('o3')), send(delivery('o0'))]);
    expect(results.map((r) => [r.accepted, r.duplicates])).toEqual([
      [2, 0],
      [1, 1],
      [0, 1],
    ]);
    const keys = await store.db.selectFrom('inbox').select('delivery_key').where('delivery_key', 'like', 'o%').orderBy('delivery_key').execute();
    expect(keys.map((k) => k.delivery_key)).toEqual(['o0', 'o1', 'o2', 'o3']);
  });

  it('a request that cannot be written fails alone; the others of its group are committed', async () => {
    const writer = new InboxWriter(store, deps, 200, offload);
    const send = (...deliveries: NewDelivery[]) => writer.accept({ deliveries, privacyRequests: [], unrouted: [] });
    const [good, bad, alsoGood] = await Promise.allSettled([send(delivery('b1')), send(delivery('b2', 'no-such-tenant')), send(delivery('b3'))]);
    expect(good).toMatchObject({ status: 'fulfilled', value: { accepted: 1 } });
    expect(bad).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: expect.stringMatching(/FOREIGN KEY/i) }) });
    expect(alsoGood).toMatchObject({ status: 'fulfilled', value: { accepted: 1 } });
    expect(await store.db.selectFrom('inbox').select('delivery_key').where('delivery_key', 'in', ['b1', 'b2', 'b3']).execute()).toHaveLength(2);
  });

  it('waits for a transaction of the main connection instead of failing', async () => {
    const writer = new InboxWriter(store, deps, 200, offload);
    let accepted: Promise<unknown> | undefined;
    await store.db.transaction().execute(async (trx) => {
      await sql`update tenant set updated_at = updated_at`.execute(trx); // holds the write lock
      accepted = writer.accept({ deliveries: [delivery('w1')], privacyRequests: [], unrouted: [] });
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    await expect(accepted).resolves.toMatchObject({ accepted: 1 });
  });

  it('once closed, requests fail at once rather than wait', async () => {
    const own = new SqliteOffload((db.target as { file: string }).file, { busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS, threadFile: THREAD_FILE });
    await own.close();
    const writer = new InboxWriter(store, deps, 200, own);
    await expect(writer.accept({ deliveries: [delivery('c1')], privacyRequests: [], unrouted: [] })).rejects.toThrow(/closed/);
  });
});
