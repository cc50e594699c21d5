/**
 * The CLI in-process (runCli with its own env and output), against SQLite and PostgreSQL.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli';
import { postgresUrl } from '../helpers/env';
import { createTestDatabase, rawSql, testDialects, type TestDatabase } from '../helpers/stores';

const KEY = 'a'.repeat(64);

function databaseUrl(db: TestDatabase): string {
  if (db.target.kind === 'sqlite') return `sqlite:${db.target.file}`;
  return `${db.target.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
}

describe.each(testDialects())('consent-bridge CLI on %s', (dialect) => {
  let db: TestDatabase;
  let dir: string;
  let env: Record<string, string>;

  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runCli(['node', 'consent-bridge', ...args], {
      env,
      cwd: dir,
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
      handleSignals: false,
    });
    return { code, out, err };
  }

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-cli-'));
    env = { DATABASE_URL: databaseUrl(db), ENCRYPTION_KEY: KEY, LOG_LEVEL: 'silent' };
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('migrate applies the migrations once', async () => {
    expect(await cli('migrate')).toMatchObject({ code: 0, out: expect.stringContaining('applied 0001_initial') });
    expect(await cli('migrate')).toMatchObject({ code: 0, out: expect.stringContaining('up to date') });
  });

  test('--help works everywhere and exits 0', async () => {
    for (const args of [['--help'], ['help'], ['help', 'inbox'], ['tenant', '--help'], ['tenant', 'settings', 'set', '--help'], ['ledger', 'verify', '--help']]) {
      const result = await cli(...args);
      expect(result.code).toBe(0);
      expect(result.out).toMatch(/Usage: consent-bridge/);
    }
  });

  test('bad arguments give a clear message and exit 2', async () => {
    const unknown = await cli('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/unknown command 'frobnicate'/);
    const missing = await cli('tenant', 'add', '--shop', 'x.myshopify.com');
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--portal/);
    for (const args of [[], ['inbox'], ['tenant', 'settings']]) {
      const bare = await cli(...args);
      expect(bare.code).toBe(2); // no command given: help on stderr, a usage error
      expect(bare.err).toMatch(/Usage: consent-bridge/);
    }
    expect(await cli('inbox', 'retry', 'some-id', '--all')).toMatchObject({ code: 2, err: expect.stringMatching(/not both/) });
    const invalid = await cli('tenant', 'add', '--shop', 'not a shop', '--portal', 'abc');
    expect(invalid.code).toBe(2);
    expect(invalid.err).toMatch(/myshopify\.com[\s\S]*portal id/);
  });

  test('tenant add / list / show; tokens are never printed', async () => {
    const token = 'shpat_secret_token_value_123';
    const added = await cli('tenant', 'add', '--shop', 'acme.myshopify.com', '--portal', '777', '--shopify-token', token);
    expect(added.code).toBe(0);
    expect(added.out).not.toContain(token);
    expect(JSON.parse(added.out)).toMatchObject({ shopDomain: 'acme.myshopify.com', hubspotPortalId: '777', shopifyCredentials: 'stored (encrypted)' });
    const again = await cli('tenant', 'add', '--shop', 'acme.myshopify.com', '--portal', '778');
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already links/);
    const list = await cli('tenant', 'list');
    expect(list.out).toMatch(/acme\.myshopify\.com\s+portal 777\s+active/);
    const shown = await cli('tenant', 'show', '777');
    expect(JSON.parse(shown.out)).toMatchObject({ shopDomain: 'acme.myshopify.com', settings: { inboxRetentionDays: 30 } });
    expect((await cli('tenant', 'show', 'nobody.myshopify.com')).code).toBe(1);
  });

  test('tenant add --credentials-file keeps tokens off the command line; a bad file or tokens given twice are refused, nothing stored', async () => {
    const file = path.join(dir, 'creds.json');
    fs.writeFileSync(file, JSON.stringify({ hubspot: { accessToken: 'hubspot-access-from-file', refreshToken: 'hubspot-refresh-from-file', expiresAt: '2026-07-01T00:00:00Z' } }));
    const added = await cli('tenant', 'add', '--shop', 'filed.myshopify.com', '--portal', '881', '--credentials-file', file);
    expect(added.code).toBe(0);
    expect(added.out).not.toContain('from-file');
    expect(JSON.parse(added.out)).toMatchObject({ shopDomain: 'filed.myshopify.com', hubspotCredentials: 'stored (encrypted)', shopifyCredentials: 'none' });

    const bad = path.join(dir, 'bad-creds.json');
    fs.writeFileSync(bad, JSON.stringify({ hubspot: { accessToken: '' }, shopfy: {} }));
    const refused = await cli('tenant', 'add', '--shop', 'refused.myshopify.com', '--portal', '882', '--credentials-file', bad);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/hubspot\.accessToken[\s\S]*shopfy|shopfy[\s\S]*hubspot\.accessToken/);
    const twice = await cli('tenant', 'add', '--shop', 'refused.myshopify.com', '--portal', '882', '--credentials-file', file, '--hubspot-token', 'x');
    expect(twice.code).toBe(2);
    expect(twice.err).toMatch(/not both/);
    const refreshTwice = await cli('tenant', 'add', '--shop', 'refused.myshopify.com', '--portal', '882', '--credentials-file', file, '--shopify-refresh-token', 'y');
    expect(refreshTwice).toMatchObject({ code: 2, err: expect.stringMatching(/not both/) });
    // A refresh token or expiry without its access token is refused, not dropped.
    const orphan = await cli('tenant', 'add', '--shop', 'refused.myshopify.com', '--portal', '882', '--hubspot-refresh-token', 'x');
    expect(orphan).toMatchObject({ code: 2, err: expect.stringMatching(/--hubspot-refresh-token and --hubspot-token-expires need --hubspot-token/) });
    expect(await cli('tenant', 'add', '--shop', 'refused.myshopify.com', '--portal', '882', '--shopify-token-expires', '2026-07-01T00:00:00Z')).toMatchObject({ code: 2, err: expect.stringMatching(/need --shopify-token/) });
    expect((await cli('tenant', 'show', 'refused.myshopify.com')).code).toBe(1);
  });

  test('tenant settings set validates against the manifest schema; a bad file changes nothing', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ shopCountry: 'Netherlands', inboxRetentionDays: -1, unknownThing: true }));
    const refused = await cli('tenant', 'settings', 'set', 'acme.myshopify.com', '--file', bad);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/shopCountry/);
    expect(refused.err).toMatch(/inboxRetentionDays/);
    expect(refused.err).toMatch(/unknownThing/);
    expect(JSON.parse((await cli('tenant', 'settings', 'get', 'acme.myshopify.com')).out)).toMatchObject({ shopCountry: null, inboxRetentionDays: 30 });

    const notJson = path.join(dir, 'broken.json');
    fs.writeFileSync(notJson, '{ nope');
    expect(await cli('tenant', 'settings', 'set', 'acme.myshopify.com', '--file', notJson)).toMatchObject({ code: 2, err: expect.stringMatching(/not valid JSON/) });
    expect(await cli('tenant', 'settings', 'set', 'acme.myshopify.com', '--file', path.join(dir, 'missing.json'))).toMatchObject({ code: 2 });

    const good = path.join(dir, 'good.json');
    fs.writeFileSync(good, JSON.stringify({ shopCountry: 'NL', categoryGroups: [{ id: 'footwear', label: 'Footwear', productTypes: ['Shoes'] }] }));
    expect((await cli('tenant', 'settings', 'set', 'acme.myshopify.com', '--file', good)).code).toBe(0);
    expect(JSON.parse((await cli('tenant', 'settings', 'get', '777')).out)).toMatchObject({ shopCountry: 'NL', categoryGroups: [{ id: 'footwear', tags: [] }] });
  });

  test('tokens need ENCRYPTION_KEY; without it the command fails naming the variable', async () => {
    const saved = env;
    env = { DATABASE_URL: saved.DATABASE_URL! };
    const result = await cli('tenant', 'add', '--shop', 'nokey.myshopify.com', '--portal', '779', '--hubspot-token', 'pat-na1-0000000000');
    env = saved;
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/ENCRYPTION_KEY/);
  });

  test('an invalid configuration exits 1 naming every bad variable', async () => {
    const saved = env;
    env = { PORT: 'abc', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x', ENCRYPTION_KEY: 'short' };
    const result = await cli('migrate');
    env = saved;
    expect(result.code).toBe(1);
    for (const name of ['PORT', 'LOG_LEVEL', 'DATABASE_URL', 'ENCRYPTION_KEY']) expect(result.err).toContain(name);
  });

  test('ledger verify exits 0 on an intact ledger and 1 naming the first bad event; rebuild reports no differences', async () => {
    const { appendToLedger } = await import('../../src/ledger/ledger');
    const { resolveSubject } = await import('../../src/subjects/subjects');
    const { loadConfig } = await import('../../src/config/config');
    const { createRuntime } = await import('../../src/main');
    const { silentLogger } = await import('../../src/log/logger');
    const runtime = createRuntime(loadConfig(env, dir), { logger: silentLogger });
    const tenant = await runtime.store.db.selectFrom('tenant').select('id').where('shop_domain', '=', 'acme.myshopify.com').executeTakeFirstOrThrow();
    const subjectId = await runtime.store.db.transaction().execute(async (trx) => (await resolveSubject(trx, runtime, tenant.id, [{ kind: 'email', value: 'x@example.com' }])).subjectId);
    const appended = await appendToLedger(runtime.store, runtime, {
      tenantId: tenant.id,
      deliveryKey: 'cli-1',
      events: [1, 2, 3].map((d) => ({
        subjectId,
        channel: 'email' as const,
        purpose: '*',
        kind: 'grant' as const,
        basis: 'consent' as const,
        occurredAt: `2026-05-0${d}T00:00:00.000Z`,
        source: 'admin' as const,
        sourceDeliveryId: null,
        evidence: { affirmative: true, capturePoint: 'import' },
      })),
    });
    await runtime.close();

    const ok = await cli('ledger', 'verify', '--tenant', 'acme.myshopify.com');
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/ok\s+tenant .*: 3 events/);
    expect(await cli('ledger', 'rebuild')).toMatchObject({ code: 0, out: expect.stringMatching(/0 differed/) });

    const victim = appended.events[1]!.id;
    const statements =
      db.dialect === 'postgres'
        ? ['alter table consent_event disable trigger user', `update consent_event set purpose = 'x' where id = '${victim}'`, 'alter table consent_event enable trigger user']
        : ['drop trigger consent_event_no_update', `update consent_event set purpose = 'x' where id = '${victim}'`];
    await rawSql(db, statements);
    const bad = await cli('ledger', 'verify');
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`FAIL tenant ${tenant.id}: first bad event at seq 2 (event ${victim})`);
  });

  test('outbox stats / dlq / retry', async () => {
    const { loadConfig } = await import('../../src/config/config');
    const { createRuntime } = await import('../../src/main');
    const { silentLogger } = await import('../../src/log/logger');
    const { enqueueOutbox } = await import('../../src/outbox/outbox');
    const { OutboxDispatcher } = await import('../../src/outbox/dispatcher');
    // Earlier tests of this file appended ledger events, which owe platform writes: the outbox is not empty here.
    expect((await cli('outbox', 'stats')).code).toBe(0);
    expect((await cli('tenant', 'add', '--shop', 'outbox-cli.myshopify.com', '--portal', '8801')).code).toBe(0);
    expect((await cli('tenant', 'add', '--shop', 'outbox-other.myshopify.com', '--portal', '8802')).code).toBe(0);
    const runtime = createRuntime(loadConfig(env, dir), { logger: silentLogger });
    try {
      const tenantId = async (shop: string) => (await runtime.store.db.selectFrom('tenant').select('id').where('shop_domain', '=', shop).executeTakeFirstOrThrow()).id;
      const [mine, other] = [await tenantId('outbox-cli.myshopify.com'), await tenantId('outbox-other.myshopify.com')];
      // Only this test's rows: the writes owed by earlier tests' ledger events would go dead here (no handlers).
      await runtime.store.db.deleteFrom('outbox').execute();
      const item = (tenant: string, key: string, operation = 'subscription') => ({ tenantId: tenant, platform: 'hubspot' as const, operation, idempotencyKey: key, subjectId: null, payload: { key }, sourceSeq: null });
      await enqueueOutbox(runtime.store, runtime, [item(mine, 'rejected-1'), item(mine, 'rejected-2'), item(other, 'rejected-3'), item(mine, 'fine', 'contact_properties')]);
      const refuse = { platform: 'hubspot' as const, operation: 'subscription', maxBatch: 100, handle: async (_t: string, rows: readonly { id: string }[]) => rows.map((r) => ({ key: r.id, ok: false as const, error: 'INVALID_EMAIL', retryable: false })) };
      const accept = { platform: 'hubspot' as const, operation: 'contact_properties', maxBatch: 100, handle: async (_t: string, rows: readonly { id: string }[]) => rows.map((r) => ({ key: r.id, ok: true as const })) };
      expect(await new OutboxDispatcher({ store: runtime.store, clock: runtime.clock, logger: silentLogger, handlers: [refuse, accept] }).drain()).toBe(4);

      const stats = await cli('outbox', 'stats');
      expect(stats.code).toBe(0);
      expect(stats.out).toMatch(new RegExp(`tenant ${mine}  hubspot/subscription\\s+dead\\s+2  oldest \\d{4}-`));
      expect(stats.out).toMatch(new RegExp(`tenant ${mine}  hubspot/contact_properties\\s+done\\s+1`));
      const json = JSON.parse((await cli('outbox', 'stats', '--json')).out) as { byTenant: Array<{ tenantId: string; status: string; count: number }> };
      expect(json.byTenant.filter((r) => r.status === 'dead').map((r) => [r.tenantId, r.count])).toEqual(expect.arrayContaining([[mine, 2], [other, 1]]));

      const dlq = await cli('outbox', 'dlq', '--tenant', '8801');
      expect(dlq.code).toBe(0);
      expect(dlq.out).toMatch(/hubspot\/subscription  key rejected-1  attempts 1  dead since .*\n    INVALID_EMAIL/);
      expect(dlq.out).not.toContain('rejected-3');
      const dead = JSON.parse((await cli('outbox', 'dlq', '--json')).out) as Array<{ id: string; idempotencyKey: string; tenantId: string; lastError: string }>;
      expect(dead.map((d) => d.idempotencyKey).sort()).toEqual(['rejected-1', 'rejected-2', 'rejected-3']);
      expect(JSON.parse((await cli('outbox', 'dlq', '--limit', '1', '--json')).out)).toHaveLength(1);
      expect(await cli('outbox', 'dlq', '--limit', '0')).toMatchObject({ code: 2, err: expect.stringMatching(/--limit/) });
      expect(await cli('outbox', 'dlq', '--tenant', 'nobody.myshopify.com')).toMatchObject({ code: 1 });

      expect(await cli('outbox', 'retry')).toMatchObject({ code: 2, err: expect.stringMatching(/give outbox ids, or --all/) });
      const first = dead.find((d) => d.idempotencyKey === 'rejected-1')!;
      expect(await cli('outbox', 'retry', first.id)).toMatchObject({ code: 0, out: 're-queued 1 outbox write\n' });
      expect(await cli('outbox', 'retry', first.id)).toMatchObject({ code: 0, out: 're-queued 0 outbox writes\n' }); // pending now
      expect(await cli('outbox', 'retry', '--all', '--tenant', 'outbox-cli.myshopify.com')).toMatchObject({ code: 0, out: 're-queued 1 outbox write\n' });
      expect((await cli('outbox', 'dlq')).out).toMatch(/key rejected-3/);
      expect(await cli('outbox', 'retry', '--all')).toMatchObject({ code: 0, out: 're-queued 1 outbox write\n' });
      expect((await cli('outbox', 'dlq')).out).toBe('no dead-lettered outbox writes\n');
      const pending = await runtime.store.db.selectFrom('outbox').select(['idempotency_key', 'status', 'attempts']).where('status', '=', 'pending').where('tenant_id', 'in', [mine, other]).orderBy('idempotency_key').execute();
      expect(pending).toEqual(['rejected-1', 'rejected-2', 'rejected-3'].map((k) => ({ idempotency_key: k, status: 'pending', attempts: 0 })));
      expect((await cli('outbox', 'retry', '--help')).code).toBe(0);
    } finally {
      await runtime.close();
    }
  });
});

describe('consent-bridge CLI environment', () => {
  it('a .env that cannot be read exits 1 with a message naming it, not a stack trace', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-cli-env-'));
    try {
      fs.mkdirSync(path.join(dir, '.env'));
      let err = '';
      const code = await runCli(['node', 'consent-bridge', 'tenant', 'list'], { cwd: dir, stdout: () => undefined, stderr: (t) => (err += t), handleSignals: false });
      expect(code).toBe(1);
      expect(err).toMatch(/^Invalid configuration \(1 problem\):\n {2}- .*\.env cannot be read \(EISDIR\)/);
      expect(err).not.toMatch(/\n\s+at /);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(testDialects().filter((d) => d === 'postgres'))('consent-bridge CLI database errors on %s', () => {
  const run = async (databaseUrl: string): Promise<{ code: number; err: string }> => {
    let err = '';
    const code = await runCli(['node', 'consent-bridge', 'migrate'], { env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' }, cwd: os.tmpdir(), stdout: () => undefined, stderr: (t) => (err += t), handleSignals: false });
    return { code, err };
  };

  it('names the missing schema of the search_path instead of a missing migration table', async () => {
    const url = `${postgresUrl()}?options=${encodeURIComponent('-c search_path=no_such_schema_x')}`;
    const { code, err } = await run(url);
    expect(code).toBe(1);
    expect(err).toMatch(/no schema of the PostgreSQL search_path \(no_such_schema_x\) exists on PostgreSQL .* or is usable by this role; create it first/);
  });

  it('names the database it cannot reach, without its password', async () => {
    const { code, err } = await run('postgres://app:s3cr3t@127.0.0.1:1/consent');
    expect(code).toBe(1);
    expect(err).toMatch(/cannot query PostgreSQL 127\.0\.0\.1:1\/consent: .*ECONNREFUSED/);
    expect(err).not.toContain('s3cr3t');
  });
});
