/**
 * Runs once before all suites: decides whether the PostgreSQL suites run. Set REQUIRE_POSTGRES=1 (CI does,
 * through .ci/run) to fail instead of skipping when PostgreSQL is unreachable.
 */
import { Client } from 'pg';
import { postgresUrl } from './env';

export default async function globalSetup(): Promise<void> {
  const required = process.env.REQUIRE_POSTGRES === '1';
  const client = new Client({ connectionString: postgresUrl(), connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    process.env.POSTGRES_AVAILABLE = '1';
  } catch (err) {
    process.env.POSTGRES_AVAILABLE = '0';
    if (required) {
      throw new Error(`REQUIRE_POSTGRES=1 but PostgreSQL at ${postgresUrl()} is unreachable: ${(err as Error).message}`);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}
