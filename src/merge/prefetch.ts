/**
 * Read-ahead for streamed merges: a native thread brings the checkpoints' tensor bytes into the page cache in the
 * order the merge will consume them, so they are there when the main thread reads them. Disk reads then overlap the
 * merge's compute and writes instead of alternating with them, while the merge's own API stays synchronous. The
 * thread stays at most `aheadBytes` past the tensor the merge is on (the page cache, not the process's memory, holds
 * what it read), reads a tensor from every checkpoint at once without copying it, and skips tensors already wholly in
 * the page cache (the addon's readAheadStart). Without the native addon there is no read-ahead: the merge reads as it
 * goes.
 */
import type { NativeKernels, ReadAheadHandle } from '../engine/backend/native.js';

/** A byte range of a file. */
export interface FileRange {
  file: string;
  offset: number;
  length: number;
}

/** The native calls a read-ahead makes. */
export type ReadAheadKernels = Pick<NativeKernels, 'readAheadStart' | 'readAheadAt' | 'readAheadStop'>;

/** A running read-ahead; call {@link Prefetcher.at} as the merge reaches each tensor, {@link Prefetcher.close} at the end. */
export class Prefetcher {
  private readonly handle: ReadAheadHandle;

  /** `tensors[t]` lists the ranges the merge reads for its t-th tensor. */
  constructor(
    tensors: readonly (readonly FileRange[])[],
    aheadBytes: number,
    private readonly kernels: ReadAheadKernels,
  ) {
    const ranges = tensors.flat();
    this.handle = kernels.readAheadStart(
      ranges.map((r) => r.file),
      Int32Array.from(tensors, (t) => t.length),
      Float64Array.from(ranges, (r) => r.offset),
      Float64Array.from(ranges, (r) => r.length),
      aheadBytes,
    );
  }

  /** The merge has reached tensor `t`. */
  at(t: number): void {
    this.kernels.readAheadAt(this.handle, t);
  }

  /** Stops the read-ahead (it finishes the piece it is reading). */
  close(): void {
    this.kernels.readAheadStop(this.handle);
  }
}
