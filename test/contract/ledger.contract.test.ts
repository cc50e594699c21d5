/**
 * Store and ledger contract: the same suite on SQLite and on PostgreSQL (style.md §18).
 */
import fc from 'fast-check';
import { sql } from 'kysely';
import { Client } from 'pg';
import { createSecretBox } from '../../src/crypto/secret-box';
import type { NewConsentEvent } from '../../src/domain/consent';
import { AppError } from '../../src/domain/errors';
import { FOLD_VERSION } from '../../src/domain/fold';
import { canonicalJson } from '../../src/ledger/chain';
import { normalizeIdentity, type Identity } from '../../src/domain/identity';
import { appendToLedger, currentStateOf, rebuildProjection, verifyLedger } from '../../src/ledger/ledger';
import type { Store } from '../../src/store/database';
import { migrateToLatest, pendingMigrations } from '../../src/store/migrations';
import { resolveSubject } from '../../src/subjects/subjects';
import { addTenant, findTenant, readCredentials, setTenantSettings } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from '../helpers/deps';
import { postgresUrl } from '../helpers/env';
import { migratedStore, rawSql, testDialects, type TestDatabase } from '../helpers/stores';

const key = Buffer.alloc(32, 7);

describe.each(testDialects())('store and ledger contract on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  const clock = fixedClock();
  const ids = countingIds(`${dialect}`);
  const deps = { clock, ids, secretBox: createSecretBox(key) };
  let tenantId: string;

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    tenantId = (await addTenant(store, deps, { shopDomain: 'acme.myshopify.com', hubspotPortalId: '4242' })).id;
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  async function subject(email: string): Promise<string> {
    return store.db.transaction().execute(async (trx) => (await resolveSubject(trx, deps, tenantId, [normalizeIdentity('email', email)!])).subjectId);
  }

  function grant(subjectId: string, occurredAt: string, extra: Partial<NewConsentEvent> = {}): NewConsentEvent {
    return {
      subjectId,
      channel: 'email',
      purpose: '*',
      kind: 'grant',
      basis: 'consent',
      occurredAt,
      source: 'shopify',
      sourceDeliveryId: null,
      evidence: { affirmative: true, capturePoint: 'checkout', optInLevel: 'single_opt_in' },
      ...extra,
    };
  }

  describe('migrations', () => {
    test('are applied once and report nothing pending; running again is a no-op', async () => {
      expect(await pendingMigrations(store)).toEqual([]);
      const again = await migrateToLatest(store);
      expect(again.results).toEqual([]);
    });

    if (dialect === 'postgres') {
      test('a fresh schema migrates while other schemas of the same database are created and dropped', async () => {
        // Kysely's own introspector looked up every table of every schema by name; a schema dropped meanwhile
        // (a parallel suite's, another instance's) failed our migration with "relation … does not exist".
        let churning = true;
        const churner = async (name: string) => {
          const client = new Client({ connectionString: postgresUrl() });
          await client.connect();
          let round = 0;
          try {
            while (churning) {
              const tables = Array.from({ length: 30 }, (_, i) => `create table ${name}.t${i} (id serial primary key, v text);`).join('');
              await client.query(`create schema ${name};${tables}`);
              await client.query(`drop schema ${name} cascade`);
              round += 1;
            }
          } finally {
            await client.end();
          }
          return round;
        };
        const churn = Promise.all(['a', 'b', 'c'].map((n) => churner(`churn_${n}_${process.pid}`))).then((rounds) => rounds.reduce((a, b) => a + b, 0));
        try {
          for (let i = 0; i < 12; i += 1) {
            const fresh = await migratedStore('postgres');
            expect(await pendingMigrations(fresh.store)).toEqual([]);
            await fresh.store.close();
            await fresh.db.drop();
          }
        } finally {
          churning = false;
        }
        expect(await churn).toBeGreaterThan(0);
      });
    }
  });

  describe('tenants', () => {
    test('a shop or portal can be linked once', async () => {
      await expect(addTenant(store, deps, { shopDomain: 'ACME.myshopify.com', hubspotPortalId: '9999' })).rejects.toMatchObject({ code: 'conflict' });
      await expect(addTenant(store, deps, { shopDomain: 'other.myshopify.com', hubspotPortalId: '4242' })).rejects.toMatchObject({ code: 'conflict' });
    });

    test('tokens are stored encrypted, never in plain text, and decrypt only for their own row', async () => {
      const token = 'shpat_0123456789abcdef0123456789abcdef';
      const refresh = 'hubspot-refresh-0123456789';
      const t = await addTenant(store, deps, {
        shopDomain: 'tokens.myshopify.com',
        hubspotPortalId: '5001',
        shopify: { accessToken: token },
        hubspot: { accessToken: 'hubspot-access-0123456789', refreshToken: refresh },
      });
      const row = await store.db.selectFrom('tenant').selectAll().where('id', '=', t.id).executeTakeFirstOrThrow();
      const dump = JSON.stringify(row);
      expect(dump).not.toContain(token);
      expect(dump).not.toContain(refresh);
      expect(row.shopify_credentials).toMatch(/^v1\./);
      expect(await readCredentials(store, deps.secretBox, t.id, 'shopify')).toEqual({ accessToken: token });
      expect((await readCredentials(store, deps.secretBox, t.id, 'hubspot'))?.refreshToken).toBe(refresh);
      // A sealed token copied onto another tenant's row does not decrypt (associated data binds it to the row).
      await store.db.updateTable('tenant').set({ shopify_credentials: row.shopify_credentials }).where('id', '=', tenantId).execute();
      await expect(readCredentials(store, deps.secretBox, tenantId, 'shopify')).rejects.toBeInstanceOf(AppError);
      await store.db.updateTable('tenant').set({ shopify_credentials: null }).where('id', '=', tenantId).execute();
    });

    test('tokens are refused when no ENCRYPTION_KEY is configured', async () => {
      await expect(
        addTenant(store, { ...deps, secretBox: null }, { shopDomain: 'nokey.myshopify.com', hubspotPortalId: '5002', shopify: { accessToken: 'shpat_abcdefgh' } }),
      ).rejects.toMatchObject({ code: 'feature_disabled', message: expect.stringContaining('ENCRYPTION_KEY') });
      expect(await findTenant(store, 'nokey.myshopify.com')).toBeUndefined();
    });

    test('bad settings are refused with every error and nothing changes', async () => {
      const before = await findTenant(store, tenantId);
      const error = await setTenantSettings(store, deps, tenantId, { shopCountry: 'nl', inboxRetentionDays: 0, colour: 'red' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).details.length).toBeGreaterThanOrEqual(3);
      expect(await findTenant(store, tenantId)).toEqual(before);
      const updated = await setTenantSettings(store, deps, 'acme.myshopify.com', { shopCountry: 'NL' });
      expect(updated.settings).toMatchObject({ shopCountry: 'NL', inboxRetentionDays: 30 });
      expect((await findTenant(store, '4242'))?.settings.shopCountry).toBe('NL');
    });
  });

  describe('subjects', () => {
    test('identities resolve to one subject, case-insensitively for email, and are added to it', async () => {
      const a = await subject('Ana.Weber@Example.com');
      const b = await subject('ana.weber@example.com ');
      expect(b).toBe(a);
      const phone = normalizeIdentity('phone', '+49 151 1234 5678')!;
      const withPhone = await store.db.transaction().execute((trx) =>
        resolveSubject(trx, deps, tenantId, [normalizeIdentity('email', 'ana.weber@example.com')!, phone]),
      );
      expect(withPhone).toMatchObject({ subjectId: a, created: false, conflictingSubjectIds: [] });
      const byPhone = await store.db.transaction().execute((trx) => resolveSubject(trx, deps, tenantId, [phone]));
      expect(byPhone.subjectId).toBe(a);
    });

    test('concurrent resolution of one new identity yields one subject', async () => {
      const identity: Identity = normalizeIdentity('shopify_customer', 'gid://shopify/Customer/7301122334455')!;
      const results = await Promise.all(
        Array.from({ length: 6 }, () => store.db.transaction().execute((trx) => resolveSubject(trx, deps, tenantId, [identity]))),
      );
      expect(new Set(results.map((r) => r.subjectId)).size).toBe(1);
    });
  });

  describe('ledger', () => {
    test('append assigns a gapless chain and updates the projection in the same transaction', async () => {
      const s = await subject('chain@example.com');
      const result = await appendToLedger(store, deps, { tenantId, deliveryKey: 'shopify:w-1', events: [grant(s, '2026-05-01T10:00:00.000Z')] });
      expect(result.duplicate).toBe(false);
      expect(result.events).toHaveLength(1);
      const states = await currentStateOf(store.db, tenantId, s);
      expect(states).toEqual([{ channel: 'email', purpose: '*', state: expect.objectContaining({ status: 'granted', evidenceEventIds: [result.events[0]!.id] }) }]);
      expect((await verifyLedger(store.db, tenantId)).ok).toBe(true);
    });

    test('the same delivery appended three times gives one event', async () => {
      const s = await subject('dupe@example.com');
      const request = { tenantId, deliveryKey: 'shopify:w-dupe', events: [grant(s, '2026-05-01T10:00:00.000Z')] };
      const results = [await appendToLedger(store, deps, request), await appendToLedger(store, deps, request), await appendToLedger(store, deps, request)];
      expect(results.map((r) => r.duplicate)).toEqual([false, true, true]);
      const rows = await store.db.selectFrom('consent_event').select('id').where('tenant_id', '=', tenantId).where('subject_id', '=', s).execute();
      expect(rows).toHaveLength(1);
    });

    test('concurrent duplicate deliveries still append once', async () => {
      const s = await subject('racer@example.com');
      const request = { tenantId, deliveryKey: 'hubspot:race', events: [grant(s, '2026-05-02T10:00:00.000Z')] };
      const results = await Promise.all(Array.from({ length: 5 }, () => appendToLedger(store, deps, request)));
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    });

    test('malformed events are refused with every problem and nothing is written', async () => {
      const before = await store.db.selectFrom('consent_event').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow();
      const s = await subject('bad@example.com');
      const bad = { ...grant(s, 'yesterday'), channel: 'fax' as 'email', kind: 'maybe' as 'grant' };
      const error = await appendToLedger(store, deps, { tenantId, deliveryKey: 'shopify:bad', events: [grant(s, '2026-05-01T00:00:00.000Z'), bad] }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'validation_failed' });
      expect((error as AppError).details.join('\n')).toMatch(/channel[\s\S]*kind[\s\S]*occurredAt/);
      const after = await store.db.selectFrom('consent_event').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow();
      expect(Number(after.n)).toBe(Number(before.n));
      // The delivery key was not consumed: a corrected retry appends.
      const retry = await appendToLedger(store, deps, { tenantId, deliveryKey: 'shopify:bad', events: [grant(s, '2026-05-01T00:00:00.000Z')] });
      expect(retry.duplicate).toBe(false);
    });

    test('out-of-order arrival gives the same projection as in-order arrival and as a rebuild', async () => {
      const inOrder = await subject('order-a@example.com');
      const shuffled = await subject('order-b@example.com');
      const history = (s: string): NewConsentEvent[] => [
        grant(s, '2026-05-01T10:00:00.000Z'),
        { ...grant(s, '2026-05-02T10:00:00.000Z'), kind: 'withdraw', basis: null, evidence: {} },
        { ...grant(s, '2026-05-03T10:00:00.000Z'), source: 'hubspot', evidence: { note: 'observed in HubSpot' } },
        { ...grant(s, '2026-05-04T10:00:00.000Z'), kind: 'soft_opt_in_earned', basis: 'soft_opt_in', evidence: { categories: ['footwear'] } },
      ];
      let n = 0;
      for (const e of history(inOrder)) await appendToLedger(store, deps, { tenantId, deliveryKey: `in-${n++}`, events: [e] });
      for (const e of history(shuffled).reverse()) await appendToLedger(store, deps, { tenantId, deliveryKey: `out-${n++}`, events: [e] });
      const strip = (rows: Awaited<ReturnType<typeof currentStateOf>>) =>
        rows.map((r) => ({ ...r, state: { ...r.state, evidenceEventIds: r.state.evidenceEventIds.length } }));
      const a = strip(await currentStateOf(store.db, tenantId, inOrder));
      const b = strip(await currentStateOf(store.db, tenantId, shuffled));
      expect(b).toEqual(a);
      expect(a[0]?.state).toMatchObject({ status: 'withdrawn', softOptInEnded: true, softOptIn: {} });
      expect((await rebuildProjection(store, clock, tenantId)).differences).toBe(0);
    });

    test('concurrent appends never fork the chain', async () => {
      const subjects = await Promise.all(Array.from({ length: 8 }, (_, i) => subject(`par-${i}@example.com`)));
      await Promise.all(
        subjects.flatMap((s, i) =>
          Array.from({ length: 5 }, (_, j) =>
            appendToLedger(store, deps, { tenantId, deliveryKey: `par-${i}-${j}`, events: [grant(s, `2026-05-0${1 + j}T10:00:00.000Z`)] }),
          ),
        ),
      );
      const verified = await verifyLedger(store.db, tenantId);
      expect(verified).toMatchObject({ ok: true, firstProblem: null });
      const seqs = await store.db.selectFrom('consent_event').select('seq').where('tenant_id', '=', tenantId).orderBy('seq').execute();
      expect(seqs.map((r) => Number(r.seq))).toEqual(seqs.map((_, i) => i + 1));
    });

    test('update, delete of ledger rows are refused by the database itself', async () => {
      // Target a row appended here, so the statements certainly match one.
      const s = await subject('append-only@example.com');
      const appended = await appendToLedger(store, deps, { tenantId, deliveryKey: 'append-only-check', events: [grant(s, '2026-05-01T10:00:00.000Z')] });
      const id = appended.events[0]!.id;
      // The refusal is read explicitly: under parallel load, jest's `rejects.toThrow` intermittently reported
      // better-sqlite3's SqliteError as "did not throw" although the statement was refused.
      const outcome = (query: { execute(): Promise<unknown> }) =>
        query.execute().then(
          () => 'not refused',
          (err: unknown) => (err instanceof Error || (typeof err === 'object' && err !== null && 'message' in err) ? String((err as Error).message) : String(err)),
        );
      expect(await outcome(store.db.updateTable('consent_event').set({ kind: 'withdraw' }).where('id', '=', id))).toMatch(/append-only: UPDATE refused/);
      expect(await outcome(store.db.deleteFrom('consent_event').where('id', '=', id))).toMatch(/append-only/);
      expect(await store.db.selectFrom('consent_event').select('kind').where('id', '=', id).executeTakeFirst()).toEqual({ kind: 'grant' });
    });

    test('rebuild recomputes exactly the incremental projection', async () => {
      const rows = await store.db.selectFrom('consent_current').selectAll().where('tenant_id', '=', tenantId).orderBy('subject_id').orderBy('purpose').execute();
      const result = await rebuildProjection(store, clock, tenantId);
      expect(result).toMatchObject({ differences: 0, rows: rows.length });
      const after = await store.db.selectFrom('consent_current').selectAll().where('tenant_id', '=', tenantId).orderBy('subject_id').orderBy('purpose').execute();
      expect(after).toEqual(rows);
      // A tampered projection row is found and repaired.
      await store.db.updateTable('consent_current').set({ status: 'granted', state: '{}' }).where('tenant_id', '=', tenantId).where('subject_id', '=', rows[0]!.subject_id).execute();
      expect((await rebuildProjection(store, clock, tenantId)).differences).toBeGreaterThan(0);
      expect((await rebuildProjection(store, clock, tenantId)).differences).toBe(0);
    });
    test('random appends, in and out of order, several subjects, channels and purposes per append, leave the projection a rebuild finds nothing to change in', async () => {
      // Appends later than everything folded extend the stored rows; the rest refold (ledger.ts extendProjection).
      const people = await Promise.all(['ra', 'rb', 'rc'].map((p) => subject(`${p}-random@example.com`)));
      const kinds = ['grant', 'withdraw', 'pending', 'confirm', 'soft_opt_in_earned', 'object', 'consent_expired', 'address_invalid'] as const;
      const arbEvent = fc.record({
        who: fc.nat(2),
        channel: fc.constantFrom('email', 'sms'),
        purpose: fc.constantFrom('*', '*', 'newsletter', 'promo'),
        kind: fc.constantFrom(...kinds),
        // Mostly moving forward, sometimes back: both paths are taken.
        step: fc.integer({ min: -3, max: 6 }),
        affirmative: fc.boolean(),
      });
      let clockDay = 0;
      let delivery = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(arbEvent, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 }), async (appends) => {
          for (const events of appends) {
            await appendToLedger(store, deps, {
              tenantId,
              deliveryKey: `random-${delivery++}`,
              events: events.map((e) => {
                clockDay = Math.max(0, clockDay + e.step);
                const occurredAt = new Date(Date.UTC(2026, 6, 1) + clockDay * 3_600_000).toISOString();
                return grant(people[e.who]!, occurredAt, {
                  channel: e.channel,
                  purpose: e.purpose,
                  kind: e.kind,
                  basis: e.kind === 'soft_opt_in_earned' ? 'soft_opt_in' : e.kind === 'grant' || e.kind === 'pending' || e.kind === 'confirm' ? 'consent' : null,
                  evidence: {
                    ...(e.affirmative ? { affirmative: true, capturePoint: 'checkout' } : {}),
                    ...(e.kind === 'soft_opt_in_earned' ? { categories: ['footwear'] } : {}),
                    ...(e.kind === 'consent_expired' ? { grantedAt: occurredAt } : {}),
                  },
                });
              }),
            });
          }
          expect((await rebuildProjection(store, clock, tenantId)).differences).toBe(0);
        }),
        { numRuns: 15, seed: 4242 },
      );
    });

    test('rows computed by another fold version are refolded by the next append, not extended', async () => {
      const s = await subject('old-fold@example.com');
      await appendToLedger(store, deps, { tenantId, deliveryKey: 'old-fold-1', events: [grant(s, '2026-08-01T10:00:00.000Z')] });
      // As an older release might have left it: a complete state that the running fold would not give, and no
      // fold version. Everything else about the row (last event, last seq) would allow extending it.
      const [before] = await currentStateOf(store.db, tenantId, s);
      const olderFold = canonicalJson({ ...before!.state, status: 'withdrawn', basis: null, withdrawnAt: before!.state.lastEventAt });
      await store.db.updateTable('consent_current').set({ status: 'withdrawn', basis: null, state: olderFold, fold_version: null }).where('tenant_id', '=', tenantId).where('subject_id', '=', s).execute();
      await appendToLedger(store, deps, { tenantId, deliveryKey: 'old-fold-2', events: [grant(s, '2026-08-02T10:00:00.000Z', { kind: 'address_invalid', basis: null, evidence: {} })] });
      const [row] = await currentStateOf(store.db, tenantId, s);
      expect(row?.state).toMatchObject({ status: 'granted', addressInvalid: true });
      const stored = await store.db.selectFrom('consent_current').select('fold_version').where('tenant_id', '=', tenantId).where('subject_id', '=', s).execute();
      expect(stored.map((r) => Number(r.fold_version))).toEqual([FOLD_VERSION]);
    });
  });

  describe('ledger verify detects tampering by direct SQL', () => {
    let tamperTenant: string;
    let eventIds: string[];

    beforeEach(async () => {
      tamperTenant = (await addTenant(store, deps, { shopDomain: `t${ids.next().replace(/\W/g, '')}.myshopify.com`.toLowerCase(), hubspotPortalId: String(10_000 + Math.floor(Math.random() * 1e6)) })).id;
      const s = await store.db.transaction().execute(async (trx) => (await resolveSubject(trx, deps, tamperTenant, [normalizeIdentity('email', 'victim@example.com')!])).subjectId);
      const appended = await appendToLedger(store, deps, {
        tenantId: tamperTenant,
        deliveryKey: null,
        events: Array.from({ length: 5 }, (_, i) => grant(s, `2026-05-0${i + 1}T10:00:00.000Z`)),
      });
      eventIds = appended.events.map((e) => e.id);
      expect((await verifyLedger(store.db, tamperTenant)).ok).toBe(true);
    });

    /** Disable the append-only triggers as a database administrator could, run the statement, re-enable. */
    async function tamper(statement: string): Promise<void> {
      if (db.dialect === 'postgres') {
        await rawSql(db, ['alter table consent_event disable trigger user', statement, 'alter table consent_event enable trigger user']);
      } else {
        await rawSql(db, [
          'drop trigger consent_event_no_update',
          'drop trigger consent_event_no_delete',
          statement,
          "create trigger consent_event_no_update before update on consent_event begin select raise(abort, 'consent_event is append-only: UPDATE refused'); end",
          "create trigger consent_event_no_delete before delete on consent_event begin select raise(abort, 'consent_event is append-only: DELETE refused'); end",
        ]);
      }
    }

    test('an edited row', async () => {
      await tamper(`update consent_event set kind = 'withdraw' where id = '${eventIds[2]}'`);
      expect((await verifyLedger(store.db, tamperTenant)).firstProblem).toMatchObject({ seq: 3, eventId: eventIds[2], problem: expect.stringMatching(/edited/) });
    });

    test('an edited timestamp in the evidence', async () => {
      await tamper(`update consent_event set evidence = '{"affirmative":true}' where id = '${eventIds[0]}'`);
      expect((await verifyLedger(store.db, tamperTenant)).firstProblem).toMatchObject({ seq: 1, eventId: eventIds[0] });
    });

    test('a deleted row in the middle', async () => {
      await tamper(`delete from consent_event where id = '${eventIds[1]}'`);
      expect((await verifyLedger(store.db, tamperTenant)).firstProblem).toMatchObject({ seq: 2, eventId: eventIds[2], problem: expect.stringMatching(/gap/) });
    });

    test('a deleted last row', async () => {
      await tamper(`delete from consent_event where id = '${eventIds[4]}'`);
      expect((await verifyLedger(store.db, tamperTenant)).firstProblem).toMatchObject({ seq: 5, problem: expect.stringMatching(/head/) });
    });

    test('an inserted row', async () => {
      await tamper(`update consent_event set seq = seq + 100 where tenant_id = '${tamperTenant}' and seq >= 3`);
      await tamper(
        `insert into consent_event select tenant_id, 3, 'forged', subject_id, channel, purpose, 'grant', basis, occurred_at, received_at, source, source_delivery_id, evidence, prev_hash, hash from consent_event where id = '${eventIds[1]}'`,
      );
      await tamper(`update consent_event set seq = seq - 99 where tenant_id = '${tamperTenant}' and seq >= 100`);
      const result = await verifyLedger(store.db, tamperTenant);
      expect(result.ok).toBe(false);
      expect(result.firstProblem).toMatchObject({ seq: 3, eventId: 'forged' });
    });

    test('reordered rows', async () => {
      await tamper(`update consent_event set seq = 100 where id = '${eventIds[1]}'`);
      await tamper(`update consent_event set seq = 2 where id = '${eventIds[3]}'`);
      await tamper(`update consent_event set seq = 4 where id = '${eventIds[1]}'`);
      expect((await verifyLedger(store.db, tamperTenant)).firstProblem).toMatchObject({ seq: 2, eventId: eventIds[3] });
    });
  });
});
