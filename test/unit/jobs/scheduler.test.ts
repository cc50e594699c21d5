/**
 * Background jobs on their own loops (src/jobs/scheduler.ts): a slow job does not hold up another, a failing
 * one is logged and runs again, and stop() waits for runs under way.
 */
import { JobScheduler, type BackgroundJob } from '../../../src/jobs/scheduler';
import { silentLogger } from '../../../src/log/logger';

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('JobScheduler', () => {
  it('runs each job on its own loop: a job waiting on a platform does not hold up the others', async () => {
    let release: () => void = () => undefined;
    const slowStarted: number[] = [];
    let fastRuns = 0;
    const slow: BackgroundJob = {
      name: 'slow',
      intervalMs: 1,
      run: async () => {
        slowStarted.push(1);
        await new Promise<void>((resolve) => (release = resolve));
        return 0;
      },
    };
    const fast: BackgroundJob = { name: 'fast', intervalMs: 1, run: async () => ++fastRuns };
    const scheduler = new JobScheduler([slow, fast], { logger: silentLogger });
    scheduler.start();
    await tick(50);
    expect(slowStarted).toHaveLength(1);
    expect(fastRuns).toBeGreaterThan(3);
    const stopped = scheduler.stop();
    let done = false;
    void stopped.then(() => (done = true));
    await tick(10);
    expect(done).toBe(false); // the slow run under way is waited for
    release();
    await stopped;
    const after = fastRuns;
    await tick(20);
    expect(fastRuns).toBe(after);
  });

  it('logs a failing job and runs it again at its next interval; runAll runs each once and never throws', async () => {
    let runs = 0;
    const failing: BackgroundJob = {
      name: 'failing',
      intervalMs: 5,
      run: async () => {
        runs += 1;
        throw new Error('platform down');
      },
    };
    const scheduler = new JobScheduler([failing], { logger: silentLogger });
    await expect(scheduler.runAll()).resolves.toBe(0);
    expect(runs).toBe(1);
    scheduler.start();
    await tick(60);
    await scheduler.stop();
    expect(runs).toBeGreaterThan(2);
  });

  it('waits the interval between the starts of two runs', async () => {
    const starts: number[] = [];
    const job: BackgroundJob = { name: 'timed', intervalMs: 40, run: async () => starts.push(performance.now()) };
    const scheduler = new JobScheduler([job], { logger: silentLogger });
    scheduler.start();
    for (let waited = 0; starts.length < 3 && waited < 5_000; waited += 10) await tick(10);
    await scheduler.stop();
    expect(starts.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(35);
  });

  it('stop(graceMs) leaves a run that does not end in time behind, instead of hanging the shutdown', async () => {
    const stuck: BackgroundJob = { name: 'stuck', intervalMs: 1, run: () => new Promise<number>(() => undefined) };
    const scheduler = new JobScheduler([stuck], { logger: silentLogger });
    scheduler.start();
    await tick(5);
    await expect(scheduler.stop(20)).resolves.toBeUndefined();
  });
});
