/**
 * Read-ahead for streamed merges: a worker thread brings the checkpoints' tensor bytes into the page cache in the
 * order the merge will consume them, so they are there when the main thread reads them. Disk reads then overlap the
 * merge's compute and writes instead of alternating with them, while the merge's own API stays synchronous. The
 * worker stays at most `aheadBytes` past the tensor the merge is on (the page cache, not the process's memory, holds
 * what it read), reading a tensor from every checkpoint at once. With the native addon it reads without copying
 * (`readAhead`: the pages are mapped and populated, one thread per checkpoint) and skips tensors already wholly in the
 * page cache (`pageCached`); otherwise it reads into a buffer it throws away, which costs the CPU far more (a cold
 * read's copy out of freshly read pages took 0.33–1.06 s of system time per GB on a VM, against 0.07 s).
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
// Reads the next PIECE (at most) of every range of tensor t from \`done\` bytes into the page cache: with the addon all at
// once (one stream per checkpoint), else one after another into a buffer thrown away.
const readPieces = (t, done) => {
  const ranges = t.filter((r) => r.length > done);
  const lengths = ranges.map((r) => Math.min(PIECE, r.length - done));
  if (readAhead) return readAhead(ranges.map((r) => r.file), Float64Array.from(ranges, (r) => r.offset + done), Float64Array.from(lengths));
  ranges.forEach((r, j) => {
    if (!fds.has(r.file)) fds.set(r.file, fs.openSync(r.file, 'r'));
    for (let got = 0, n = 1; got < lengths[j] && n > 0; got += n) n = fs.readSync(fds.get(r.file), buf, 0, lengths[j] - got, r.offset + done + got);
  });
};
for (let u = 0; u < tensors.length && !Atomics.load(state, 1); u++) {
  let at;
  while (!Atomics.load(state, 1) && prefix[u] - prefix[(at = Atomics.load(state, 0))] > ahead) Atomics.wait(state, 0, at, 100);
  if (u < Atomics.load(state, 0) || cached(tensors[u])) continue;
  const longest = Math.max(0, ...tensors[u].map((r) => r.length));
  for (let done = 0; done < longest && !Atomics.load(state, 1); done += PIECE) readPieces(tensors[u], done);
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
