/**
 * Background jobs (soft opt-in evaluation, expiry, provisioning, the reconciliation poll, the backfill), each on
 * its own loop beside the inbox worker and the outbox dispatcher, inside `serve` and `consent-bridge worker`.
 *
 * Why separate loops: a job that waits on a platform (a poll retrying HubSpot under faults, a catalog read) must
 * not hold up webhook processing, and a slow job must not hold up the others. Each job runs at most every
 * `intervalMs` (measured from the start of its previous run); a failure is logged and the job runs again at its
 * next interval, never stopping the process. Jobs keep their own state durable (cursors, rows): a process that
 * stops in the middle of a run loses nothing but the run.
 */
import type { Logger } from '../ports';
import { WakeableSleep } from './wakeable-sleep';

export interface BackgroundJob {
  readonly name: string;
  /** Least time between the starts of two runs (ms). */
  readonly intervalMs: number;
  /** Returns how much it did (logged when > 0). */
  run(): Promise<number>;
}

export interface SchedulerDeps {
  readonly logger: Logger;
  /** Monotonic milliseconds. Default `performance.now`. */
  readonly nowMs?: () => number;
}

export class JobScheduler {
  readonly #jobs: readonly BackgroundJob[];
  readonly #logger: Logger;
  readonly #nowMs: () => number;
  #running = false;
  #loops: Promise<void>[] = [];
  /** The loops' waits between runs, cut short by stop. */
  readonly #sleeper = new WakeableSleep();

  constructor(jobs: readonly BackgroundJob[], deps: SchedulerDeps) {
    this.#jobs = jobs;
    this.#logger = deps.logger.child({ component: 'jobs' });
    this.#nowMs = deps.nowMs ?? (() => performance.now());
  }

  /** Run one job once; a failure is logged, not thrown. Returns what it did (0 on failure). */
  async runOnce(job: BackgroundJob): Promise<number> {
    try {
      const done = await job.run();
      if (done > 0) this.#logger.info({ job: job.name, done }, 'background job ran');
      return done;
    } catch (err) {
      this.#logger.error({ job: job.name, err }, 'background job failed; it runs again at its next interval');
      return 0;
    }
  }

  /** Every job once, one after the other (`worker --once`, tests). */
  async runAll(): Promise<number> {
    let done = 0;
    for (const job of this.#jobs) done += await this.runOnce(job);
    return done;
  }

  start(): void {
    if (this.#running || this.#loops.length > 0) return; // running, or still stopping
    this.#running = true;
    this.#loops = this.#jobs.map((job) => this.#loop(job));
  }

  /**
   * Stop starting runs; runs under way may finish for up to `graceMs` (default: wait for them). A run still going
   * after that is left behind (jobs keep their progress durable, so the next start goes on from there) and named
   * in a warning, so a shutdown never hangs on a platform that keeps failing.
   */
  async stop(graceMs = Infinity): Promise<void> {
    this.#running = false;
    this.#sleeper.wake();
    const pending = new Set(this.#jobs.map((j) => j.name));
    const loops = this.#loops.map((loop, i) => loop.then(() => pending.delete(this.#jobs[i]!.name)));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      if (Number.isFinite(graceMs)) timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    if ((await Promise.race([Promise.all(loops), timedOut])) === 'timeout') {
      this.#logger.warn({ jobs: [...pending], graceMs }, 'background jobs still running at shutdown were left behind; they go on from their saved progress at the next start');
    }
    clearTimeout(timer);
    this.#loops = [];
  }

  async #loop(job: BackgroundJob): Promise<void> {
    while (this.#running) {
      const started = this.#nowMs();
      await this.runOnce(job);
      await this.#sleep(Math.max(0, job.intervalMs - (this.#nowMs() - started)));
    }
  }

  #sleep(ms: number): Promise<void> {
    return this.#running ? this.#sleeper.sleep(ms) : Promise.resolve();
  }
}
