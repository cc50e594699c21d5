/**
 * Precompiled queries (src/store/precompiled.ts) give the same results as the query builder, on SQLite and
 * PostgreSQL, with fresh parameters on every run; a builder that hides a placeholder inside an expression is refused.
 */
import { sql } from 'kysely';
import type { Store } from '../../src/store/database';
import { hasExactlyColumns, PrecompiledQuery } from '../../src/store/precompiled';
import { addTenant, type Tenant } from '../../src/tenants/tenants';
import { countingIds, fixedClock } from '../helpers/deps';
import { migratedStore, testDialects, type TestDatabase } from '../helpers/stores';

describe.each(testDialects())('precompiled queries on %s', (dialect) => {
  let db: TestDatabase;
  let store: Store;
  let tenants: Tenant[];
  const deps = { clock: fixedClock('2026-06-01T12:00:00.000Z'), ids: countingIds('pc'), secretBox: null };

  beforeAll(async () => {
    ({ db, store } = await migratedStore(dialect));
    tenants = [
      await addTenant(store, deps, { shopDomain: 'one.myshopify.com', hubspotPortalId: '1001' }),
      await addTenant(store, deps, { shopDomain: 'two.myshopify.com', hubspotPortalId: '1002' }),
    ];
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const byPortal = new PrecompiledQuery(['portal'], (kysely, a) => kysely.selectFrom('tenant').select(['id', 'shop_domain']).where('hubspot_portal_id', '=', a.portal as string));

  it('runs with fresh parameters each time and matches the query builder', async () => {
    for (const tenant of tenants) {
      const { rows } = await byPortal.execute(store.db, dialect, { portal: tenant.hubspotPortalId });
      const expected = await store.db.selectFrom('tenant').select(['id', 'shop_domain']).where('hubspot_portal_id', '=', tenant.hubspotPortalId).execute();
      expect(rows).toEqual(expected);
      expect(rows).toEqual([{ id: tenant.id, shop_domain: tenant.shopDomain }]);
    }
    expect((await byPortal.execute(store.db, dialect, { portal: '9999' })).rows).toEqual([]);
  });

  it('runs inside a transaction, and reports affected rows of a write', async () => {
    const touch = new PrecompiledQuery(['at', 'id'], (kysely, a) => kysely.updateTable('tenant').set({ updated_at: a.at as string }).where('id', '=', a.id as string));
    const affected = await store.db.transaction().execute(async (trx) => (await touch.execute(trx, dialect, { at: '2026-07-01T00:00:00.000Z', id: tenants[0]!.id })).numAffectedRows);
    expect(Number(affected)).toBe(1);
    const row = await store.db.selectFrom('tenant').select('updated_at').where('id', '=', tenants[0]!.id).executeTakeFirstOrThrow();
    expect(row.updated_at).toBe('2026-07-01T00:00:00.000Z');
  });

  it('refuses a builder that does not use each argument exactly once as a value', async () => {
    const hidden = new PrecompiledQuery(['portal'], (kysely) => kysely.selectFrom('tenant').select('id').where(sql<boolean>`1 = 1`));
    await expect(hidden.execute(store.db, dialect, { portal: '1' })).rejects.toThrow('argument portal must be used exactly once as a value');
  });
});

describe('hasExactlyColumns (the shape a precompiled one-row insert takes)', () => {
  const columns = ['a', 'b', 'c'];
  it.each([
    [{ a: 1, b: null, c: 'x' }, true],
    [{ a: 1, b: null }, false],
    [{ a: 1, b: null, c: 'x', d: 2 }, false],
    [{ a: 1, b: undefined, c: 'x' }, false],
    [{ a: 1, c: 'x', d: null }, false],
  ])('%j → %s', (row, expected) => {
    expect(hasExactlyColumns(row, columns)).toBe(expected);
  });
});
