/**
 * Read-ahead for streamed merges: a worker thread brings the checkpoints' tensor bytes into the page cache in the
 * order the merge will consume them, so they are there when the main thread reads them. Disk reads then overlap the
 * merge's compute and writes instead of alternating with them, while the merge's own API stays synchronous. The
 * worker stays at most `aheadBytes` past the tensor the merge is on (the page cache, not the process's memory, holds
 * what it read). With the native addon it reads without copying (`readAhead`: the pages are mapped and populated);
 * otherwise it reads into a buffer it throws away, which costs the CPU far more (a cold read's copy out of freshly
 * read pages took 0.33–1.06 s of system time per GB on a VM, against 0.07 s). Tensors already in the page cache when
 * the merge starts are skipped (native `pageCached`).
 */
import { Worker } from 'node:worker_threads';

/** A byte range of a file. */
export interface FileRange {
  file: string;
  offset: number;
  length: number;
}

// Plain CommonJS run with `eval`, so the worker needs no TypeScript loader. shared[0]: the tensor the merge is on;
// shared[1]: 1 when the worker must stop. `addon`: the native addon's path, or null to read with fs.
const WORKER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { tensors, ahead, shared, addon } = workerData;
const state = new Int32Array(shared);
const prefix = [0];
for (const t of tensors) prefix.push(prefix[prefix.length - 1] + t.reduce((a, r) => a + r.length, 0));
const PIECE = 8 << 20;
const fds = new Map();
const { readAhead, pageCached } = addon ? require(addon) : {};
const buf = addon ? null : Buffer.allocUnsafe(PIECE);
// A tensor wholly in the page cache is not read again: populating it cost a warm merge as much CPU as reading it.
const cached = (t) => Boolean(pageCached) && t.every((r) => pageCached(r.file, r.offset, r.length));
// Reads [offset, offset + length) of file into the page cache; returns the bytes read (0 at the end of the file).
const read = (file, offset, length) => {
  if (readAhead) return readAhead(file, offset, length), length;
  if (!fds.has(file)) fds.set(file, fs.openSync(file, 'r'));
  return fs.readSync(fds.get(file), buf, 0, length, offset);
};
for (let u = 0; u < tensors.length && !Atomics.load(state, 1); u++) {
  let at;
  while (!Atomics.load(state, 1) && prefix[u] - prefix[(at = Atomics.load(state, 0))] > ahead) Atomics.wait(state, 0, at, 100);
  if (u < Atomics.load(state, 0) || cached(tensors[u])) continue;
  for (const r of tensors[u])
    for (let done = 0, n = 1; done < r.length && n > 0 && !Atomics.load(state, 1); done += n)
      n = read(r.file, r.offset + done, Math.min(PIECE, r.length - done));
}
for (const fd of fds.values()) fs.closeSync(fd);
`;

/** A running read-ahead worker; call {@link Prefetcher.at} as the merge reaches each tensor, {@link Prefetcher.close} at the end. */
export class Prefetcher {
  private readonly state = new Int32Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;

  /**
   * `tensors[t]` lists the ranges the merge reads for its t-th tensor; `addon` is the native addon's path (its
   * `readAhead` reads without copying), or null to read into a buffer.
   */
  constructor(tensors: readonly (readonly FileRange[])[], aheadBytes: number, addon: string | null) {
    this.worker = new Worker(WORKER, { eval: true, execArgv: [], workerData: { tensors, ahead: aheadBytes, shared: this.state.buffer, addon } });
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
