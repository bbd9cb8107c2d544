/**
 * Backend selection. Both backends compute on the same typed-array storage, so switching backends never copies
 * tensors: tests run one op on `reference` and on `native` and compare.
 *
 * The default is `native`; set `PEFTJS_BACKEND=reference` to force the pure-TypeScript one. If the addon cannot
 * load, peftjs says so once on stderr and uses `reference`.
 */
import type { Kernels } from './kernels.js';
import { loadNative, type NativeKernels } from './native.js';
import { reference } from './reference/index.js';

export type BackendName = 'native' | 'reference';

let current: Kernels | null = null;
let nativeKernels: Kernels | Error | null = null;

function native(): Kernels | Error {
  return (nativeKernels ??= loadNative());
}

/** The kernels every op runs on. */
export function backend(): Kernels {
  if (current) return current;
  const wanted = (process.env.PEFTJS_BACKEND ?? 'native') as BackendName;
  if (wanted === 'reference') return (current = reference);
  const n = native();
  if (n instanceof Error) {
    process.stderr.write(
      `peftjs: the native addon could not be loaded (${n.message.split('\n')[0]}); using the pure-TypeScript ` +
        `reference backend, which is much slower. Rebuild it with 'npm run build:native'.\n`,
    );
    return (current = reference);
  }
  return (current = n);
}

/**
 * The native addon's calls outside the kernel contract — file mappings, the read-ahead and preallocation threads — when
 * the current backend is native, else null.
 */
export function nativeExtras(): NativeKernels | null {
  const b = backend();
  return b.name === 'native' ? (b as NativeKernels) : null;
}

/** Whether the native addon loads on this machine. */
export function nativeAvailable(): boolean {
  return !(native() instanceof Error);
}

/** Selects the backend for all following ops; throws if `native` is asked for and cannot load. */
export function setBackend(name: BackendName): void {
  if (name === 'reference') {
    current = reference;
    return;
  }
  const n = native();
  if (n instanceof Error) throw new Error(`peftjs: native backend unavailable: ${n.message}`);
  current = n;
}

/** Runs `fn` with `name` as the backend, restoring the previous one afterwards. */
export function withBackend<T>(name: BackendName, fn: () => T): T {
  const previous = backend();
  setBackend(name);
  try {
    return fn();
  } finally {
    current = previous;
  }
}

/** Sets the number of threads kernels use (GEMM libraries and the element-wise pool). */
export function setNumThreads(n: number): void {
  backend().setNumThreads(n);
}
