/**
 * A dispatcher process for test/e2e/outbox-crash.test.ts (run with `node -r test/helpers/ts-register.js`).
 * Its handler stands in for a platform: a SQLite "sink" file records every delivery (`delivery`, one row per
 * handler call per item) and applies each write idempotently (`applied`, keyed by idempotency key), the way a
 * platform write is idempotent by nature: setting a subscription status that is already set has no further effect.
 *
 * argv[2]: JSON `ChildConfig`. With `crashAfterChunks` the handler, after applying that many chunks to the sink,
 * prints `CRASH-POINT` and hangs before answering, i.e. after the platform applied the writes but before the
 * outbox recorded it: the parent SIGKILLs it there. SIGTERM stops gracefully (exit 0).
 */
import BetterSqlite3 from 'better-sqlite3';
import type { DatabaseTarget } from '../../src/config/config';
import { createLogger } from '../../src/log/logger';
import { OutboxDispatcher, type OutboxHandler } from '../../src/outbox/dispatcher';
import { systemClock } from '../../src/ports';
import { openStore } from '../../src/store/database';

export interface ChildConfig {
  readonly target: DatabaseTarget;
  readonly schema?: string;
  readonly sinkFile: string;
  readonly batchSize: number;
  readonly maxBatch: number;
  readonly leaseMs: number;
  readonly crashAfterChunks: number | null;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
const store = config.schema ? openStore(config.target, { schema: config.schema }) : openStore(config.target);
const sink = new BetterSqlite3(config.sinkFile);
sink.pragma('journal_mode = WAL');
sink.pragma('synchronous = FULL');
sink.pragma('busy_timeout = 5000');
sink.exec('create table if not exists delivery (key text not null, pid integer not null)');
sink.exec('create table if not exists applied (key text primary key, state text not null, count integer not null)');
const recordDelivery = sink.prepare('insert into delivery (key, pid) values (?, ?)');
const findApplied = sink.prepare('select state from applied where key = ?');
const apply = sink.prepare('insert into applied (key, state, count) values (?, ?, 1)');

let chunks = 0;
const handler: OutboxHandler = {
  platform: 'hubspot',
  operation: 'subscription',
  maxBatch: config.maxBatch,
  async handle(_tenantId, rows) {
    for (const row of rows) {
      recordDelivery.run(row.idempotencyKey, process.pid);
      // Check the sink first: a write already applied is not applied again (same state, one effect).
      if (findApplied.get(row.idempotencyKey) === undefined) apply.run(row.idempotencyKey, JSON.stringify(row.payload));
    }
    chunks += 1;
    if (config.crashAfterChunks !== null && chunks >= config.crashAfterChunks) {
      process.stdout.write('CRASH-POINT\n');
      await new Promise<never>(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
    return rows.map((row) => ({ key: row.id, ok: true as const }));
  },
};

const dispatcher = new OutboxDispatcher(
  { store, clock: systemClock, logger: createLogger({ level: 'warn' }), handlers: [handler] },
  { batchSize: config.batchSize, leaseMs: config.leaseMs, pollIntervalMs: 100 },
);

process.on('SIGTERM', () => {
  void (async () => {
    await dispatcher.stop();
    await store.close();
    sink.close();
    process.exit(0);
  })();
});

dispatcher.start();
process.stdout.write(`dispatcher ${process.pid} running\n`);
