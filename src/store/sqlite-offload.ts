/**
 * SQLite transactions run on a thread of their own (src/store/sqlite-offload-thread.ts), for the webhook request
 * path inside `serve`: better-sqlite3 is synchronous, so a durable commit (an fsync) on the main thread stops the
 * event loop, and with it every other request, for the length of the fsync. Run on the thread, the commit waits
 * there while the main thread goes on reading, verifying and answering requests. The thread has its own connection
 * to the same file with the same durability settings; SQLite's file lock serialises it with the main connection's
 * writes (busy timeout on both sides). Only for a SQLite file (an in-memory database exists per connection).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { OffloadAnswer, OffloadMessage, OffloadOutcome, OffloadStatement } from './sqlite-offload-thread';

export type { OffloadOutcome, OffloadStatement };

/** The thread's compiled file next to this one (dist); absent when running from TypeScript sources. */
export const DEFAULT_THREAD_FILE = path.join(__dirname, 'sqlite-offload-thread.js');

interface Pending {
  resolve(outcomes: OffloadOutcome[]): void;
  reject(err: Error): void;
}

export class SqliteOffload {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #failure: Error | null = null;

  /** Whether the thread's compiled file exists (it does in the built app). */
  static available(threadFile = DEFAULT_THREAD_FILE): boolean {
    return fs.existsSync(threadFile);
  }

  constructor(file: string, options: { busyTimeoutMs: number; threadFile?: string }) {
    this.#worker = new Worker(options.threadFile ?? DEFAULT_THREAD_FILE, { workerData: { file, busyTimeoutMs: options.busyTimeoutMs } });
    this.#worker.on('message', (answer: OffloadAnswer) => {
      const pending = this.#pending.get(answer.id);
      this.#pending.delete(answer.id);
      pending?.resolve(answer.outcomes);
    });
    // A thread that dies fails what it had and everything after: the caller answers 5xx, the platforms retry.
    const fail = (err: Error): void => {
      this.#failure ??= err;
      for (const pending of this.#pending.values()) pending.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`SQLite offload thread exited (code ${code})`)));
  }

  /**
   * Run the requests' statements in one transaction on the thread (each request alone if the group fails).
   * Resolves with one outcome per request; rejects only if the thread is gone.
   */
  run(requests: ReadonlyArray<readonly OffloadStatement[]>): Promise<OffloadOutcome[]> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise<OffloadOutcome[]>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, requests } satisfies OffloadMessage);
    });
  }

  /** Stop the thread after the transactions sent so far (its connection closes with it). */
  async close(): Promise<void> {
    while (this.#pending.size > 0 && this.#failure === null) await new Promise((resolve) => setTimeout(resolve, 5));
    this.#failure ??= new Error('SQLite offload closed');
    await this.#worker.terminate();
  }
}
