/**
 * `openStore`'s description of a PostgreSQL target (printed by `migrate`, `worker`): host or socket directory, port
 * and database, never the password. The pool connects on the first query, so no server is needed here; the store
 * suites (test/contract) connect for real.
 */
import { openStore } from '../../../src/store/database';

describe('openStore description (PostgreSQL)', () => {
  it.each([
    ['postgres://app:s3cr3t@db.internal:5433/consent', 'PostgreSQL db.internal:5433/consent'],
    ['postgresql://app:s3cr3t@/consent?host=/var/run/postgresql', 'PostgreSQL /var/run/postgresql/consent'],
    ['postgres://app@db.internal/consent?password=s3cr3t', 'PostgreSQL db.internal/consent'],
  ])('%s → %s', async (url, description) => {
    const store = openStore({ kind: 'postgres', url }, { schema: 'tenant_x' });
    try {
      expect(store.description).toBe(`${description} (schema tenant_x)`);
      expect(store.description).not.toContain('s3cr3t');
    } finally {
      await store.close();
    }
  });
});

describe('openStore description of a schema set in the URL', () => {
  it('shows the search_path of ?options=-c search_path=…', async () => {
    const store = openStore({ kind: 'postgres', url: `postgres://app@db.internal/consent?options=${encodeURIComponent('-c search_path=shop_eu')}` });
    try {
      expect(store.description).toBe('PostgreSQL db.internal/consent (schema shop_eu)');
    } finally {
      await store.close();
    }
  });
});
