/**
 * The databases every store/ledger suite runs against: SQLite always, PostgreSQL when reachable (required in
 * CI). Each suite gets a fresh SQLite file or its own PostgreSQL schema, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import type { DatabaseTarget } from '../../src/config/config';
import { openStore, type Dialect, type Store } from '../../src/store/database';
import { migrateToLatest } from '../../src/store/migrations';
import { postgresAvailable, postgresUrl } from './env';

export interface TestDatabase {
  readonly dialect: Dialect;
  readonly target: DatabaseTarget;
  /** PostgreSQL schema (search_path) of this suite. */
  readonly schema?: string;
  open(): Store;
  drop(): Promise<void>;
}

export function testDialects(): Dialect[] {
  return postgresAvailable() ? ['sqlite', 'postgres'] : ['sqlite'];
}

export async function createTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  const suffix = randomBytes(6).toString('hex');
  if (dialect === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-test-'));
    const target: DatabaseTarget = { kind: 'sqlite', file: path.join(dir, 'test.sqlite') };
    return { dialect, target, open: () => openStore(target), drop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  const schema = `t_${suffix}`;
  const admin = new Client({ connectionString: postgresUrl() });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const target: DatabaseTarget = { kind: 'postgres', url: postgresUrl() };
  return {
    dialect,
    target,
    schema,
    open: () => openStore(target, { schema }),
    drop: async () => {
      const client = new Client({ connectionString: postgresUrl() });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    },
  };
}

/** A migrated store plus its database, for one suite. */
export async function migratedStore(dialect: Dialect): Promise<{ db: TestDatabase; store: Store }> {
  const db = await createTestDatabase(dialect);
  const store = db.open();
  await migrateToLatest(store);
  return { db, store };
}

/** Run raw SQL as an attacker with direct database access would (bypassing the app and its triggers). */
export async function rawSql(db: TestDatabase, statements: string[]): Promise<void> {
  if (db.target.kind === 'sqlite') {
    const BetterSqlite3 = (await import('better-sqlite3')).default;
    const conn = new BetterSqlite3(db.target.file);
    try {
      for (const statement of statements) conn.exec(statement);
    } finally {
      conn.close();
    }
    return;
  }
  const client = new Client({ connectionString: db.target.url, options: `-c search_path=${db.schema}` });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}
