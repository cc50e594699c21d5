/**
 * What the inbox worker inside `serve` asks of the webhook request path before each slice (src/inbox/worker.ts):
 * whether requests are waiting for their inbox commit (they go first), and whether a webhook arrived within the
 * last `ms` (the worker then rests between slices). `InboxWriter` answers for a worker on its own thread;
 * `SharedRequestSignals` carries the same answers to a worker on another thread.
 */
export interface RequestSignals {
  readonly busy: boolean;
  activeWithin(ms: number): boolean;
}

/** Slot 0 (Int32): 1 while requests wait for their commit. Slot 1 (BigInt64, at byte 8): last accept, epoch ms. */
const BYTES = 16;

/**
 * The request path's signals in shared memory: the serving thread writes them (`InboxWriter`, on each accept and
 * at the end of each run of group commits), the worker thread reads them. Writes and reads are `Atomics`
 * operations, so no message is sent per request. Times are wall-clock (`Date.now`), the one clock both threads
 * share; a clock step can only make the worker rest once more or once less.
 */
export class SharedRequestSignals implements RequestSignals {
  readonly buffer: SharedArrayBuffer;
  readonly #busy: Int32Array;
  readonly #lastAccept: BigInt64Array;
  readonly #nowMs: () => number;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(BYTES), nowMs: () => number = Date.now) {
    if (buffer.byteLength < BYTES) throw new RangeError(`request signals need ${BYTES} bytes, not ${buffer.byteLength}`);
    this.buffer = buffer;
    this.#busy = new Int32Array(buffer, 0, 1);
    this.#lastAccept = new BigInt64Array(buffer, 8, 1);
    this.#nowMs = nowMs;
    if (Atomics.load(this.#lastAccept, 0) === 0n) Atomics.store(this.#lastAccept, 0, BigInt(Number.MIN_SAFE_INTEGER));
  }

  accepted(): void {
    Atomics.store(this.#lastAccept, 0, BigInt(this.#nowMs()));
    Atomics.store(this.#busy, 0, 1);
  }

  idle(): void {
    Atomics.store(this.#busy, 0, 0);
  }

  get busy(): boolean {
    return Atomics.load(this.#busy, 0) === 1;
  }

  activeWithin(ms: number): boolean {
    return this.#nowMs() - Number(Atomics.load(this.#lastAccept, 0)) < ms;
  }
}
