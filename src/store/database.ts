/**
 * Opens the store: Kysely over better-sqlite3 (embedded default) or pg (PostgreSQL), chosen by DATABASE_URL.
 */
import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { Pool, types as pgTypes } from 'pg';
import { parse as parsePgConnectionString } from 'pg-connection-string';
import type { DatabaseTarget } from '../config/config';
import type { Database } from './schema';
import { applyWriterSettings } from './sqlite-settings';

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  readonly db: Kysely<Database>;
  /**
   * For reads on the webhook request path. SQLite: a second connection, so lookups never queue behind the
   * writer's open transaction (WAL readers do not block); PostgreSQL: the same pool.
   */
  readonly reader: Kysely<Database>;
  readonly dialect: Dialect;
  /** Human-readable target without secrets. */
  readonly description: string;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** PostgreSQL only: schema to use instead of `public` (tests isolate each suite in its own schema). */
  readonly schema?: string;
  /** PostgreSQL pool size. Default 10. */
  readonly poolSize?: number;
  /**
   * PostgreSQL: a connection failed (server restart or failover, `idle_session_timeout`, a network cut), idle or
   * in use. A query it was running fails as usual; the pool drops the connection and opens a new one on next use.
   * This only reports it. node-postgres raises such failures as `error` events, which would end the process as
   * uncaught exceptions without a listener.
   */
  readonly onConnectionError?: (err: Error) => void;
  /**
   * PostgreSQL: longest wait for a connection before a query fails (ms), a new one or a free one when all the pool's
   * are busy. Default 10,000.
   */
  readonly connectTimeoutMs?: number;
}

/** PostgreSQL connect timeout: a server that accepts TCP but never answers fails queries instead of hanging them. */
export const PG_CONNECT_TIMEOUT_MS = 10_000;

/** SQLite busy timeout: how long a writer waits for another process's lock before failing. Default 5 s. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** int8 (bigint) columns come back as JS numbers; ledger sequence numbers stay far below 2^53. */
const INT8_OID = 20;
const pgTypeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (value: string) => Number(value) : pgTypes.getTypeParser(oid, format as 'text')) as typeof pgTypes.getTypeParser,
};

/** Prepared statements kept per SQLite connection (Kysely prepares on every query otherwise). */
const STATEMENT_CACHE_SIZE = 500;

/**
 * better-sqlite3 with a bounded cache of prepared statements keyed by SQL text. Kysely's driver calls
 * `prepare` for every query; re-preparing the same few statements cost about a tenth of the webhook request
 * path (bench:ingest profile). Safe because this app never streams (`iterate`) a statement.
 */
function withStatementCache(sqlite: BetterSqlite3.Database, options: { immediateTransactions?: boolean } = {}): BetterSqlite3.Database {
  const cache = new Map<string, BetterSqlite3.Statement>();
  const rawPrepare = sqlite.prepare.bind(sqlite);
  // The writer connection's transactions take the write lock when they begin (Kysely says plain `begin`): with a
  // second writer on the file (src/store/sqlite-offload.ts), a transaction that read first and wrote later could
  // otherwise fail at once with SQLITE_BUSY (its snapshot went stale), which the busy timeout does not wait out.
  const prepare = options.immediateTransactions === true ? (source: string) => rawPrepare(/^begin$/i.test(source.trim()) ? 'begin immediate' : source) : rawPrepare;
  return new Proxy(sqlite, {
    get(targetDb, property, receiver) {
      if (property !== 'prepare') {
        const value = Reflect.get(targetDb, property, receiver) as unknown;
        // Native methods must run on the real instance, not the proxy.
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(targetDb) : value;
      }
      return (source: string) => {
        let statement = cache.get(source);
        if (statement === undefined) {
          statement = prepare(source);
          if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
          cache.set(source, statement);
        }
        return statement;
      };
    },
  });
}

export function openStore(target: DatabaseTarget, options: OpenStoreOptions = {}): Store {
  if (target.kind === 'sqlite') {
    if (target.file !== ':memory:') fs.mkdirSync(path.dirname(target.file), { recursive: true });
    const sqlite = new BetterSqlite3(target.file);
    applyWriterSettings(sqlite, SQLITE_BUSY_TIMEOUT_MS);
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite, { immediateTransactions: true }) }) });
    // An in-memory database exists once per connection, so it has no separate reader.
    const reader =
      target.file === ':memory:'
        ? db
        : new Kysely<Database>({
            dialect: new SqliteDialect({
              // Opened lazily, on the first read (after migrations created the file's tables).
              database: async () => {
                const connection = new BetterSqlite3(target.file);
                connection.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
                connection.pragma('query_only = ON');
                return withStatementCache(connection);
              },
            }),
          });
    return {
      db,
      reader,
      dialect: 'sqlite',
      description: `SQLite ${target.file}`,
      close: async () => {
        if (reader !== db) await reader.destroy();
        await db.destroy();
      },
    };
  }
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  const pool = new Pool({
    connectionString: target.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? PG_CONNECT_TIMEOUT_MS,
    // TCP keepalive from 30 s of silence (Linux would wait 2 h), so a peer that vanished without closing (a cut
    // network) is noticed on idle connections too.
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000,
    types: pgTypeParsers,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // Every connection gets its own listener for its whole life (the pool listens only while a connection is idle),
  // reporting its first failure only: a terminated backend sends its FATAL message, then the socket closes.
  pool.on('connect', (client) => {
    let reported = false;
    client.on('error', (err) => {
      if (reported) return;
      reported = true;
      options.onConnectionError?.(err);
    });
  });
  pool.on('error', () => undefined); // an idle connection's failure, already reported by the listener above
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  // Host (or socket directory), port, database and schema only, never the password.
  const { host, port, database, options: urlOptions } = parsePgConnectionString(target.url);
  const searchPath = schema ?? /search_path\s*=\s*([^\s]+)/.exec(urlOptions ?? '')?.[1];
  return {
    db,
    reader: db,
    dialect: 'postgres',
    description: `PostgreSQL ${host || 'localhost'}${port ? `:${port}` : ''}/${database ?? ''}${searchPath ? ` (schema ${searchPath})` : ''}`,
    close: () => db.destroy(),
  };
}

/** Cheap reachability check for /readyz. */
export async function pingStore(store: Store): Promise<void> {
  await sql`select 1`.execute(store.db);
}
