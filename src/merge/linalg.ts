/**
 * SVD and linear solves for merging, on the active backend: the native addon's LAPACK functions (native/linalg.cc)
 * when the native backend is active and the loaded addon exports them, else the pure-TypeScript reference
 * (src/engine/backend/reference/linalg.ts). Not yet part of the kernel contract (`Kernels`); the signatures below
 * are the ones to add there.
 */
import { backend } from '../engine/index.js';
import * as reference from '../engine/backend/reference/linalg.js';

/** The two linear-algebra kernels, with the argument order of the contract. */
export interface LinalgKernels {
  /**
   * Thin SVD of row-major `a` [m, n] = `u` [m, k] · diag(`s` [k]) · `vt` [k, n], k = min(m, n), `s` descending and
   * non-negative; `a` is not modified.
   */
  svd(a: Float32Array, m: number, n: number, u: Float32Array, s: Float32Array, vt: Float32Array): void;
  /** `x` [n, nrhs] = `a`⁻¹ · `b` for row-major `a` [n, n], `b` [n, nrhs] (LU, double precision); throws if singular. */
  solve(a: Float32Array, b: Float32Array, n: number, nrhs: number, x: Float32Array): void;
}

/** The linear-algebra kernels of the active backend. */
export function linalg(): LinalgKernels {
  const k = backend() as unknown as Partial<LinalgKernels> & { name: string };
  if (k.name === 'native' && typeof k.svd === 'function' && typeof k.solve === 'function') return k as LinalgKernels;
  return reference;
}

/** A thin SVD as fresh arrays: `u` [m, k], `s` [k], `vt` [k, n], k = min(m, n). */
export interface Svd {
  u: Float32Array;
  s: Float32Array;
  vt: Float32Array;
  k: number;
}

/** Thin SVD of row-major `a` [m, n] (see {@link LinalgKernels.svd}). */
export function svd(a: Float32Array, m: number, n: number): Svd {
  const k = Math.min(m, n);
  const out = { u: new Float32Array(m * k), s: new Float32Array(k), vt: new Float32Array(k * n), k };
  linalg().svd(a, m, n, out.u, out.s, out.vt);
  return out;
}

/** `a`⁻¹ · `b` for row-major `a` [n, n] and `b` [n, nrhs] as a fresh [n, nrhs] array. */
export function solve(a: Float32Array, b: Float32Array, n: number, nrhs: number): Float32Array {
  const x = new Float32Array(n * nrhs);
  linalg().solve(a, b, n, nrhs, x);
  return x;
}
