/** Linear algebra on the active backend: thin SVD and linear solves. */
import { backend } from './backend/index.js';

/** A thin SVD as fresh arrays: `u` [m, k], `s` [k] (descending), `vt` [k, n], k = min(m, n). */
export interface Svd {
  u: Float32Array;
  s: Float32Array;
  vt: Float32Array;
  k: number;
}

/** Thin SVD of row-major `a` [m, n] (LAPACK `gesdd` on the native backend). */
export function svd(a: Float32Array, m: number, n: number): Svd {
  if (a.length < m * n) throw new Error(`svd: a has ${a.length} elements, needs ${m}×${n}`);
  const k = Math.min(m, n);
  const out = { u: new Float32Array(m * k), s: new Float32Array(k), vt: new Float32Array(k * n), k };
  backend().svd(a, m, n, out.u, out.s, out.vt);
  return out;
}

/** `a`⁻¹ · `b` for row-major `a` [n, n] and `b` [n, nrhs], as a fresh [n, nrhs] array. */
export function solve(a: Float32Array, b: Float32Array, n: number, nrhs: number): Float32Array {
  const x = new Float32Array(n * nrhs);
  backend().solve(a, b, n, nrhs, x);
  return x;
}
