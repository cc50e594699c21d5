/**
 * The demo story end to end over real HTTP on loopback (issue 6 §6): the app as `serve` runs it, the Shopify and
 * HubSpot simulators, signed webhooks and workflow calls, the outbox writing back — on SQLite and PostgreSQL.
 * Each step's own checks are in sandbox/story.ts; here every step must pass.
 */
import { startSandbox, type Sandbox } from '../../sandbox/sandbox';
import { runStory } from '../../sandbox/story';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/stores';

jest.setTimeout(120_000);

describe.each(testDialects())('the demo story over real HTTP on %s', (dialect) => {
  let db: TestDatabase;
  let sandbox: Sandbox;

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    const databaseUrl = db.target.kind === 'sqlite' ? `sqlite:${db.target.file}` : `${db.target.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
    sandbox = await startSandbox({ databaseUrl });
  });
  afterAll(async () => {
    await sandbox?.stop();
    await db?.drop();
  });

  it('passes every step: checkout opt-in, DE double opt-in, soft opt-in, HubSpot unsubscribe back to Shopify without ping-pong, backfill re-subscribes nobody', async () => {
    const lines: string[] = [];
    const results = await runStory(sandbox, { print: (line) => lines.push(line) });
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0) throw new Error(`failed steps:\n${lines.join('\n')}`);
    expect(results).toHaveLength(6);
    // The ledger is intact after the whole story.
    const { verifyLedger } = await import('../../src/ledger/ledger');
    expect((await verifyLedger(sandbox.runtime.store.db, sandbox.tenant.id)).ok).toBe(true);
  });
});
