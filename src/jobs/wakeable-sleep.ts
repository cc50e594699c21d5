/**
 * A wait that ends early when woken: the idle waits of the inbox worker, the outbox dispatcher and the job
 * scheduler, which `notify()` (new work) and `stop()` cut short. Several waits may be pending; `wake` ends them all.
 */
export class WakeableSleep {
  readonly #sleepers = new Set<() => void>();

  /** Wait `ms`, or until `wake()`. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  /** End every pending wait now. */
  wake(): void {
    for (const wake of [...this.#sleepers]) wake();
  }
}
