/**
 * The thread behind src/store/sqlite-offload.ts: its own better-sqlite3 connection to the SQLite file, with the
 * same settings as the main connection (sqlite-settings.ts: WAL, synchronous=FULL), running transactions of compiled
 * statements sent by the main thread. Each message is a group of requests; the whole group is one transaction
 * (one durable commit). If it fails, each request is run in its own transaction, so one bad request never fails
 * another. Answers: per request, the `changes` of each statement, or the error.
 */
import { parentPort, workerData } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { applyWriterSettings } from './sqlite-settings';

export interface OffloadStatement {
  readonly sql: string;
  readonly parameters: readonly unknown[];
}

export interface OffloadMessage {
  readonly id: number;
  readonly requests: ReadonlyArray<readonly OffloadStatement[]>;
}

export type OffloadOutcome = { readonly changes: number[] } | { readonly error: string };

export interface OffloadAnswer {
  readonly id: number;
  readonly outcomes: OffloadOutcome[];
}

interface ThreadData {
  readonly file: string;
  readonly busyTimeoutMs: number;
}

const { file, busyTimeoutMs } = workerData as ThreadData;
const db = new BetterSqlite3(file);
applyWriterSettings(db, busyTimeoutMs);

const statements = new Map<string, BetterSqlite3.Statement>();
function statement(sql: string): BetterSqlite3.Statement {
  let prepared = statements.get(sql);
  if (prepared === undefined) {
    prepared = db.prepare(sql);
    statements.set(sql, prepared);
  }
  return prepared;
}

const runRequest = (request: readonly OffloadStatement[]): number[] => request.map((s) => statement(s.sql).run(...s.parameters).changes);
const runGroup = db.transaction((requests: ReadonlyArray<readonly OffloadStatement[]>) => requests.map(runRequest));
const runOne = db.transaction(runRequest);

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

parentPort!.on('message', (message: OffloadMessage) => {
  let outcomes: OffloadOutcome[];
  try {
    // BEGIN IMMEDIATE: take the write lock first (waiting out the main connection's writes with the busy timeout).
    outcomes = runGroup.immediate(message.requests).map((changes) => ({ changes }));
  } catch (groupError) {
    outcomes = message.requests.map((request) => {
      try {
        return { changes: runOne.immediate(request) };
      } catch (err) {
        return { error: errorText(err) || errorText(groupError) };
      }
    });
  }
  parentPort!.postMessage({ id: message.id, outcomes } satisfies OffloadAnswer);
});
