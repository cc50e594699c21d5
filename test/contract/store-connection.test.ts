/**
 * PostgreSQL connections that die under the app (a server restart, failover, `idle_session_timeout`, a network
 * cut) are reported and replaced, never an uncaught exception that ends the process (src/store/database.ts). Killed
 * here for real with pg_terminate_backend, idle and in the middle of a query. PostgreSQL only: SQLite has no
 * connection to lose.
 */
import { Client } from 'pg';
import { sql } from 'kysely';
import type { Store } from '../../src/store/database';
import { openStore } from '../../src/store/database';
import { createTestDatabase, type TestDatabase } from '../helpers/stores';
import { postgresAvailable, postgresUrl } from '../helpers/env';

const describePostgres = postgresAvailable() ? describe : describe.skip;

describePostgres('PostgreSQL connection loss', () => {
  let db: TestDatabase;
  let store: Store;
  let admin: Client;
  const reported: Error[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    store = openStore(db.target, { schema: db.schema!, onConnectionError: (err) => reported.push(err) });
    admin = new Client({ connectionString: postgresUrl() });
    await admin.connect();
  });

  afterAll(async () => {
    await admin.end();
    await store.close();
    await db.drop();
  });

  const backendPid = async (): Promise<number> => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(store.db)).rows[0]!.pid;
  const terminate = (pid: number) => admin.query('select pg_terminate_backend($1)', [pid]);
  const until = async (done: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  };

  it('reports an idle connection that was ended and answers the next query on a new one', async () => {
    const pid = await backendPid();
    reported.length = 0;
    await terminate(pid);
    await until(() => reported.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(reported).toHaveLength(1); // the FATAL message and the closed socket: one report
    const next = await backendPid();
    expect(next).not.toBe(pid);
  });

  it('fails the query a connection was running when it is ended, reports it, and carries on', async () => {
    const pid = await backendPid();
    reported.length = 0;
    const running = sql`select pg_sleep(5)`.execute(store.db);
    const outcome = running.then(
      () => 'answered',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    // End the connection once the server is running the query.
    for (let i = 0; i < 200; i++) {
      const { rows } = await admin.query<{ query: string }>("select query from pg_stat_activity where pid = $1 and state = 'active'", [pid]);
      if (rows[0]?.query.includes('pg_sleep')) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await terminate(pid);
    expect(await outcome).toMatch(/terminat|connection/i);
    await until(() => reported.length > 0);
    expect(reported.length).toBeGreaterThanOrEqual(1);
    expect(await backendPid()).not.toBe(pid);
  });
});
