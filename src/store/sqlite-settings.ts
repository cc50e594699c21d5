/**
 * The settings of every SQLite connection that writes (the main one, src/store/database.ts, and the request
 * path's write thread, src/store/sqlite-offload-thread.ts), in one place because their order matters: the busy
 * timeout first, since switching to WAL needs a lock another open connection may hold. WAL lets readers run beside
 * the writer; synchronous=FULL makes every commit durable (an acknowledged webhook must survive a power cut);
 * foreign keys are off by default in SQLite.
 */
import type BetterSqlite3 from 'better-sqlite3';

export function applyWriterSettings(connection: BetterSqlite3.Database, busyTimeoutMs: number): void {
  connection.pragma(`busy_timeout = ${busyTimeoutMs}`);
  connection.pragma('journal_mode = WAL');
  connection.pragma('synchronous = FULL');
  connection.pragma('foreign_keys = ON');
}
