/**
 * The inbox worker of `serve` on a thread of its own (started by `InboxWorkerThread`, src/inbox/worker-thread-host.ts).
 * It opens its own runtime (database connection or pool, logger) from the server's configuration and runs the same
 * worker as `consent-bridge worker`, in `serve`'s slices: it reads the request path's signals from shared memory
 * (src/inbox/request-signals.ts), so it still lets waiting webhook requests commit first and rests between slices
 * while webhooks arrive. Messages: 'notify' (a delivery was stored), 'stop' (finish the delivery in progress, close,
 * answer 'stopped').
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AppConfig } from '../config/config';
import { createRuntime, createWorker } from '../main';
import { SharedRequestSignals } from './request-signals';

export interface WorkerThreadData {
  readonly config: AppConfig;
  readonly signals: SharedArrayBuffer;
}

export type WorkerThreadMessage = 'notify' | 'stop';

const data = workerData as WorkerThreadData;
const runtime = createRuntime(data.config);
const worker = createWorker(runtime, { inProcessWith: new SharedRequestSignals(data.signals) });
worker.start();

parentPort!.on('message', (message: WorkerThreadMessage) => {
  if (message === 'notify') {
    worker.notify();
    return;
  }
  void worker
    .stop()
    .then(() => runtime.close())
    .finally(() => parentPort!.postMessage('stopped'));
});
