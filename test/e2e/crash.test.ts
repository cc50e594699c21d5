/**
 * Issue 3 acceptance: kill the process (SIGKILL) after the 200 and before processing; after a restart every
 * delivery is processed exactly once. The real server process, real HTTP, on SQLite and PostgreSQL.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli';
import { verifyLedger } from '../../src/ledger/ledger';
import { openStore, type Store } from '../../src/store/database';
import { minimalEnv, start } from '../helpers/process';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/stores';
import { shopifyHeaders, SHOPIFY_SECRET } from '../helpers/webhooks';

const DELIVERIES = 40;

function consentWebhook(i: number): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify({
    customer_id: 8_000_000_000 + (i % 20),
    email_address: `crash${i % 20}@example.com`,
    email_marketing_consent: { state: i % 3 === 0 ? 'unsubscribed' : 'subscribed', opt_in_level: 'single_opt_in', consent_updated_at: new Date(Date.UTC(2026, 4, 1, 0, i)).toISOString() },
  });
  return { body, headers: shopifyHeaders(body, { topic: 'customers_email_marketing_consent/update', webhookId: `crash-${i}` }) };
}

async function counts(store: Store): Promise<{ pending: number; done: number; events: number; distinctDeliveries: number }> {
  const inbox = await store.db.selectFrom('inbox').select(['status']).execute();
  const events = await store.db.selectFrom('consent_event').select('source_delivery_id').execute();
  return {
    pending: inbox.filter((r) => r.status === 'pending').length,
    done: inbox.filter((r) => r.status === 'done').length,
    events: events.length,
    distinctDeliveries: new Set(events.map((e) => e.source_delivery_id)).size,
  };
}

describe.each(testDialects())('SIGKILL between the 200 and processing, on %s', (dialect) => {
  let db: TestDatabase;
  let cwd: string;
  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-crash-'));
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(cwd, { recursive: true, force: true });
  });

  test('every acknowledged delivery is processed exactly once after a restart', async () => {
    const databaseUrl = db.target.kind === 'sqlite' ? `sqlite:${db.target.file}` : `${db.target.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
    const env = { PORT: '0', DATABASE_URL: databaseUrl, SHOPIFY_API_KEY: 'key', SHOPIFY_API_SECRET: SHOPIFY_SECRET, LOG_LEVEL: 'warn' };
    let cliOut = '';
    const added = await runCli(['node', 'consent-bridge', 'tenant', 'add', '--shop', 'acme-de.myshopify.com', '--portal', '62515'], {
      env,
      cwd,
      stdout: (t) => (cliOut += t),
      stderr: (t) => (cliOut += t),
    });
    expect({ added, cliOut }).toMatchObject({ added: 0 });

    // First life: the worker is off, so every delivery is acknowledged and none processed; then SIGKILL.
    const first = await start(cwd, minimalEnv({ ...env, RUN_WORKER: 'false' }));
    const acks: string[] = [];
    try {
      for (let i = 0; i < DELIVERIES; i++) {
        const { body, headers } = consentWebhook(i);
        const res = await fetch(`${first.baseUrl}/webhooks/shopify`, { method: 'POST', headers, body });
        acks.push(`${res.status} ${((await res.json()) as { status: string }).status}`);
      }
    } finally {
      first.child.kill('SIGKILL');
    }
    expect(await first.exited).toBeNull(); // killed by the signal, no exit code
    expect(acks).toEqual(Array.from({ length: DELIVERIES }, () => '200 accepted'));

    const store = db.target.kind === 'sqlite' ? openStore(db.target) : openStore(db.target, { schema: db.schema! });
    try {
      expect(await counts(store)).toEqual({ pending: DELIVERIES, done: 0, events: 0, distinctDeliveries: 0 });

      // Second life, worker on (the default). A platform retry of a few deliveries arrives too.
      const second = await start(cwd, minimalEnv(env));
      try {
        for (let i = 0; i < 5; i++) {
          const { body, headers } = consentWebhook(i);
          const res = await fetch(`${second.baseUrl}/webhooks/shopify`, { method: 'POST', headers, body });
          expect(((await res.json()) as { status: string }).status).toBe('duplicate');
        }
        const deadline = Date.now() + 20_000;
        while ((await counts(store)).pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(await counts(store)).toEqual({ pending: 0, done: DELIVERIES, events: DELIVERIES, distinctDeliveries: DELIVERIES });
        const tenant = await store.db.selectFrom('tenant').select('id').executeTakeFirstOrThrow();
        expect(await verifyLedger(store.db, tenant.id)).toMatchObject({ ok: true, events: DELIVERIES });
      } finally {
        second.child.kill('SIGTERM');
      }
      expect(await second.exited).toBe(0);
    } finally {
      await store.close();
    }
  }, 90_000);
});
