/**
 * Read-ahead for streamed merges: a worker thread reads the checkpoints' tensor bytes in the order the merge will
 * consume them (and throws them away), so they are in the page cache when the main thread's synchronous reads ask
 * for them. Disk reads then overlap the merge's compute and writes instead of alternating with them, while the
 * merge's own API stays synchronous. The worker stays at most `aheadBytes` past the tensor the merge is on (the
 * page cache, not the process's memory, holds what it read).
 */
import { Worker } from 'node:worker_threads';

/** A byte range of a file. */
export interface FileRange {
  file: string;
  offset: number;
  length: number;
}

// Plain CommonJS run with `eval`, so the worker needs no TypeScript loader. shared[0]: the tensor the merge is on;
// shared[1]: 1 when the worker must stop.
const WORKER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { tensors, ahead, shared } = workerData;
const state = new Int32Array(shared);
const prefix = [0];
for (const t of tensors) prefix.push(prefix[prefix.length - 1] + t.reduce((a, r) => a + r.length, 0));
const fds = new Map();
const buf = Buffer.allocUnsafe(8 << 20);
for (let u = 0; u < tensors.length && !Atomics.load(state, 1); u++) {
  let at;
  while (!Atomics.load(state, 1) && prefix[u] - prefix[(at = Atomics.load(state, 0))] > ahead) Atomics.wait(state, 0, at, 100);
  if (u < Atomics.load(state, 0)) continue;
  for (const r of tensors[u]) {
    if (!fds.has(r.file)) fds.set(r.file, fs.openSync(r.file, 'r'));
    for (let done = 0, n = 1; done < r.length && n > 0 && !Atomics.load(state, 1); done += n)
      n = fs.readSync(fds.get(r.file), buf, 0, Math.min(buf.length, r.length - done), r.offset + done);
  }
}
for (const fd of fds.values()) fs.closeSync(fd);
`;

/** A running read-ahead worker; call {@link Prefetcher.at} as the merge reaches each tensor, {@link Prefetcher.close} at the end. */
export class Prefetcher {
  private readonly state = new Int32Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;

  /** `tensors[t]` lists the ranges the merge reads for its t-th tensor. */
  constructor(tensors: readonly (readonly FileRange[])[], aheadBytes: number) {
    this.worker = new Worker(WORKER, { eval: true, execArgv: [], workerData: { tensors, ahead: aheadBytes, shared: this.state.buffer } });
    // A read error only costs the read-ahead: the merge's own reads report real problems.
    this.worker.on('error', () => {});
    this.worker.unref();
  }

  /** The merge has reached tensor `t`. */
  at(t: number): void {
    Atomics.store(this.state, 0, t);
    Atomics.notify(this.state, 0);
  }

  /** Stops the worker (it finishes its current read and exits). */
  close(): void {
    Atomics.store(this.state, 1, 1);
    Atomics.notify(this.state, 0);
  }
}
