/**
 * `consent-bridge expire` in-process (runCli with its own env and output), against SQLite and PostgreSQL.
 * The CLI runs on the real clock, so the seeded windows ended long ago.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli';
import { loadConfig } from '../../src/config/config';
import { applyEffects } from '../../src/inbox/apply';
import { silentLogger } from '../../src/log/logger';
import { createRuntime } from '../../src/main';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/stores';

function databaseUrl(db: TestDatabase): string {
  if (db.target.kind === 'sqlite') return `sqlite:${db.target.file}`;
  return `${db.target.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`;
}

describe.each(testDialects())('consent-bridge expire on %s', (dialect) => {
  let db: TestDatabase;
  let dir: string;
  let env: Record<string, string>;

  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runCli(['node', 'consent-bridge', ...args], { env, cwd: dir, stdout: (t) => (out += t), stderr: (t) => (err += t), handleSignals: false });
    return { code, out, err };
  }

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-expire-'));
    env = { DATABASE_URL: databaseUrl(db), LOG_LEVEL: 'silent' };
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('appends the due expiries, prints the counts, and appends nothing the second time', async () => {
    expect((await cli('tenant', 'add', '--shop', 'expiring.myshopify.com', '--portal', '4242')).code).toBe(0);
    const runtime = createRuntime(loadConfig(env, dir), { logger: silentLogger });
    try {
      const tenant = await runtime.store.db.selectFrom('tenant').select('id').where('shop_domain', '=', 'expiring.myshopify.com').executeTakeFirstOrThrow();
      const person = (email: string, country: string, event: Record<string, unknown>) =>
        runtime.store.db.transaction().execute((trx) =>
          applyEffects(trx, runtime.store.dialect, runtime, { tenantId: tenant.id, ledgerKey: `seed:${email}` }, [
            { kind: 'identify', identities: [{ kind: 'email', value: email }], profile: { country, company: null, sourceUpdatedAt: '2019-01-01T00:00:00.000Z' } },
            {
              kind: 'consent',
              identities: [{ kind: 'email', value: email }],
              events: [{ channel: 'email', purpose: '*', source: 'shopify', sourceDeliveryId: null, ...event } as never],
            },
          ]),
        );
      await person('ie@example.ie', 'IE', {
        kind: 'soft_opt_in_earned',
        basis: 'soft_opt_in',
        occurredAt: '2019-01-10T00:00:00.000Z',
        evidence: { capturePoint: 'checkout', orderId: '1', categories: ['footwear'], validUntil: '2020-01-10T00:00:00.000Z' },
      });
      await person('fr@example.fr', 'FR', { kind: 'grant', basis: 'consent', occurredAt: '2019-01-01T00:00:00.000Z', evidence: { affirmative: true, capturePoint: 'checkout' } });
    } finally {
      await runtime.close();
    }

    const first = await cli('expire');
    expect(first).toMatchObject({ code: 0, err: '' });
    expect(first.out).toMatch(/^expired 1 soft opt-in window\(s\) and 1 consent\(s\) in 1 tenant\(s\); 2 projection row\(s\) scanned\n$/);
    const again = await cli('expire', '--tenant', 'expiring.myshopify.com', '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toEqual({ tenants: 1, scanned: 0, softOptInExpired: 0, consentExpired: 0 }) // nothing granted or soft-opted-in is left;
    expect(await cli('ledger', 'verify')).toMatchObject({ code: 0, out: expect.stringMatching(/ok\s+tenant .*: 4 events/) });
  });

  test('an unknown tenant exits 1; --help exits 0', async () => {
    expect(await cli('expire', '--tenant', 'nobody.myshopify.com')).toMatchObject({ code: 1, err: expect.stringMatching(/no tenant/) });
    expect(await cli('expire', '--help')).toMatchObject({ code: 0, out: expect.stringMatching(/Usage: consent-bridge expire/) });
  });
});
