/**
 * The native backend: the N-API addon built from `native/*.cc` (`npm run build:native`), whose exported functions
 * implement {@link Kernels} one-to-one (same names, same argument order).
 */
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GemmDType, Kernels } from './kernels.js';

/** A running read-ahead thread of the native addon (an opaque handle). */
export type ReadAheadHandle = { readonly __readAhead: unique symbol };

/** A running preallocation thread of the native addon (an opaque handle). */
export type PreallocationHandle = { readonly __preallocation: unique symbol };

/** The native kernels plus the addon's extras outside the kernel contract. */
export interface NativeKernels extends Kernels {
  readonly name: 'native';
  /**
   * Seconds for `iters` back-to-back `C = A·B` ([M,K]·[K,N]) calls made straight to the GEMM library from C++
   * (OpenBLAS for f32, oneDNN for bf16), after one warm-up call: the baseline that `bench/gemm.ts` compares
   * {@link Kernels.gemm} against.
   */
  benchRawGemm(dtype: GemmDType, M: number, N: number, K: number, iters: number): number;
  /**
   * A window: an ArrayBuffer of at least `bytes` (whole pages) over reserved address space, reading as zeros until
   * {@link NativeKernels.mapWindow} maps a range of a file into it. Release it with {@link NativeKernels.unmap}.
   */
  reserveWindow(bytes: number): ArrayBuffer;
  /**
   * Maps bytes [offset, offset + length) of a file into `window` from its start (from the page boundary below
   * `offset`), replacing the range it held, privately and copy-on-write: reading it reads the page cache in place. The
   * rest of the window reads as zeros. Returns where `offset` lies in the window (less than a page); throws naming
   * the file when the range lies past its end or does not fit the window.
   */
  mapWindow(window: ArrayBuffer, path: string, offset: number, length: number): number;
  /** Releases a {@link NativeKernels.reserveWindow} buffer now and detaches it (its views become empty). */
  unmap(buffer: ArrayBuffer): void;
  /**
   * Starts a read-ahead thread that brings ranges of files into the page cache, without copying them, tensor by tensor
   * in the order given (tensor t: the next `counts[t]` entries of paths, offsets and lengths), the ranges of a tensor
   * concurrently, staying at most `aheadBytes` past the tensor {@link NativeKernels.readAheadAt} last named, and skipping
   * tensors already in the page cache; read errors only end a range's read-ahead. Returns its handle.
   */
  readAheadStart(paths: readonly string[], counts: Int32Array, offsets: Float64Array, lengths: Float64Array, aheadBytes: number): ReadAheadHandle;
  /** Tells a read-ahead that its reader has reached tensor `t`. */
  readAheadAt(handle: ReadAheadHandle, t: number): void;
  /** Stops a read-ahead and waits for its thread (at most one piece's read); a no-op when it is stopped already. */
  readAheadStop(handle: ReadAheadHandle): void;
  /**
   * Whether every page of bytes [offset, offset + length) of a file is in the page cache now (false for a file the
   * process may not write: Linux then reports only pages it has mapped); throws naming the file when the range lies
   * past its end or the file cannot be opened.
   */
  pageCached(path: string, offset: number, length: number): boolean;
  /**
   * Starts a thread that allocates the blocks of bytes [0, lengths[i]) of each existing file `paths[i]`, in order
   * (fallocate, 16 MB per call, so writes to the file meanwhile wait at most one call), so that writing them later
   * only copies. Best effort: a file that cannot be opened or preallocated (a file system without fallocate, no space
   * left) is skipped, and the writes report what fails. Returns its handle.
   */
  preallocateStart(paths: readonly string[], lengths: Float64Array): PreallocationHandle;
  /** Stops a preallocation after its current call and waits for its thread; a no-op when it is stopped already. */
  preallocateStop(handle: PreallocationHandle): void;
}

/** Every function the addon must export: the kernel contract (checked exhaustive below) plus the extras. */
const KERNEL_FUNCTIONS = [
  'setNumThreads', 'getNumThreads',
  'copyStrided', 'castF32ToBF16', 'castBF16ToF32', 'castF16ToF32', 'fill', 'affine', 'axpy',
  'gemm',
  'binary', 'unary', 'unaryBackward', 'swiglu', 'swigluBackward', 'where', 'dropout',
  'sum', 'sumSquares',
  'softmax', 'softmaxBackward',
  'rmsNorm', 'rmsNormBackward', 'layerNorm', 'layerNormBackward',
  'rope',
  'attention', 'attentionBackward',
  'embedding', 'embeddingBackward',
  'crossEntropy', 'crossEntropyBackward',
  'loraGather',
  'svd', 'solve',
  'adamw', 'sgd',
  'castF32ToF16', 'weightedSum', 'magnitudeHistogram', 'magnitudeBrackets', 'magnitudeGather', 'magnitudeRankIndex', 'keepMagnitudeBand', 'tiesCombine',
  'benchRawGemm', 'reserveWindow', 'mapWindow', 'unmap', 'pageCached', 'readAheadStart', 'readAheadAt', 'readAheadStop',
  'preallocateStart', 'preallocateStop',
] as const satisfies readonly Exclude<keyof NativeKernels, 'name'>[];

// Compile-time check that KERNEL_FUNCTIONS lists every kernel: `true` only if nothing is missing.
type Missing = Exclude<keyof NativeKernels, 'name' | (typeof KERNEL_FUNCTIONS)[number]>;
const listsEveryKernel: [Missing] extends [never] ? true : Missing = true;
void listsEveryKernel;

/** Where the addon is: `PEFTJS_NATIVE_PATH`, else `build/Release/peftjs.node` under the package root. */
export function nativeAddonPath(): string {
  // This file is src/engine/backend/native.ts (or dist/engine/backend/native.js): three levels below the root.
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  return process.env.PEFTJS_NATIVE_PATH || resolve(root, 'build', 'Release', 'peftjs.node');
}

/**
 * Loads the addon and returns it as the `native` backend, or the reason it cannot be used (the addon is missing,
 * fails to load, or lacks some kernel because it was built from older sources). Prints nothing: the caller
 * decides what to tell the user.
 */
export function loadNative(): NativeKernels | Error {
  const path = nativeAddonPath();
  // libgomp's idle threads spin for milliseconds after every parallel region by default, taking the cores from
  // OpenBLAS's threads and from other processes between kernels (mixed GEMM/element-wise sequences ran 5–10x
  // slower on 2 busy cores). Wait passively unless the user chose a policy; libgomp reads this when the addon
  // loads it, so it must be set first.
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined)
    process.env.OMP_WAIT_POLICY = 'PASSIVE';
  let addon: Record<string, unknown>;
  try {
    addon = createRequire(import.meta.url)(path) as Record<string, unknown>;
  } catch (e) {
    return new Error(`cannot load the native addon ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const missing = KERNEL_FUNCTIONS.filter((f) => typeof addon[f] !== 'function');
  if (missing.length > 0)
    return new Error(`the native addon ${path} lacks ${missing.join(', ')}; rebuild it with 'npm run build:native'`);
  return { ...addon, name: 'native' } as unknown as NativeKernels;
}
