/**
 * Runs `serve`'s inbox worker on a thread of its own (src/inbox/worker-thread.ts) instead of the event loop that
 * answers webhooks and gate checks. On a SQLite file every worker slice is up to 5 ms of synchronous work
 * (better-sqlite3), which holds up every request arriving meanwhile; on its own thread it runs beside them and the
 * operating system shares the cores (bench:ingest's load at 200 connections: 6–10% more webhooks per second). It
 * keeps `serve`'s manners through shared memory (waiting requests commit first; it rests between slices while
 * webhooks arrive; src/inbox/request-signals.ts). Used where the thread can open the same runtime from the
 * configuration (`Runtime.reopenable`) and its compiled file exists (the built app; tests run from sources use
 * the worker on the event loop). PostgreSQL keeps the worker on the event loop (src/main.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { AppConfig } from '../config/config';
import type { Logger } from '../ports';
import type { SharedRequestSignals } from './request-signals';
import type { WorkerThreadData, WorkerThreadMessage } from './worker-thread';

/** The thread's compiled file next to this one (dist); absent when running from TypeScript sources. */
export const DEFAULT_WORKER_THREAD_FILE = path.join(__dirname, 'worker-thread.js');

/** A thread that dies is started again after this long (ms), so a crash loop cannot spin. */
const RESTART_DELAY_MS = 1000;

export class InboxWorkerThread {
  readonly #config: AppConfig;
  readonly #signals: SharedRequestSignals;
  readonly #logger: Logger;
  readonly #file: string;
  #thread: Worker | null = null;
  #stopping: Promise<void> | null = null;
  #notifyQueued = false;
  #restartTimer: NodeJS.Timeout | undefined;

  /** Whether the thread's compiled file exists (it does in the built app). */
  static available(threadFile = DEFAULT_WORKER_THREAD_FILE): boolean {
    return fs.existsSync(threadFile);
  }

  constructor(config: AppConfig, signals: SharedRequestSignals, logger: Logger, threadFile = DEFAULT_WORKER_THREAD_FILE) {
    this.#config = config;
    this.#signals = signals;
    this.#logger = logger;
    this.#file = threadFile;
  }

  start(): void {
    if (this.#thread !== null || this.#stopping !== null) return;
    const thread = new Worker(this.#file, { workerData: { config: this.#config, signals: this.#signals.buffer } satisfies WorkerThreadData });
    this.#thread = thread;
    thread.on('error', (err) => this.#logger.error({ err }, 'inbox worker thread failed; starting it again'));
    thread.once('exit', (code) => {
      this.#thread = null;
      if (this.#stopping !== null) return;
      this.#logger.error({ code }, 'inbox worker thread exited; starting it again');
      this.#restartTimer = setTimeout(() => this.start(), RESTART_DELAY_MS);
    });
  }

  /** Wake the worker (a delivery was stored): at most one message per event-loop turn, however many requests. */
  notify(): void {
    if (this.#notifyQueued || this.#thread === null) return;
    this.#notifyQueued = true;
    setImmediate(() => {
      this.#notifyQueued = false;
      this.#thread?.postMessage('notify' satisfies WorkerThreadMessage);
    });
  }

  /** Stop taking rows: the delivery in progress commits or rolls back, the thread closes its database and ends. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#restartTimer);
      const thread = this.#thread;
      if (thread === null) return;
      const ended = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
      thread.once('message', () => void thread.terminate());
      thread.postMessage('stop' satisfies WorkerThreadMessage);
      await ended;
    })();
    return this.#stopping;
  }
}
