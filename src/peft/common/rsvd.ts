/**
 * Randomized truncated SVD (Halko, Martinsson & Tropp 2011, Algorithms 4.3/4.4 — the method behind
 * `torch.svd_lowrank`): sample the range of A with a Gaussian test matrix, sharpen it with `niter` power
 * (subspace) iterations re-orthonormalised by QR each half step, then take the exact SVD of the small projection.
 * Cost O(m·n·q) per pass instead of O(m·n·min(m, n)) for a full SVD.
 */
import { svd, type Generator, globalGenerator } from '../../engine/index.js';
import { matmul32, qr } from './linalg.js';

export interface RsvdOptions {
  /** Extra sampled directions beyond k (more = more accurate); default 0, as `torch.svd_lowrank(q=k)`. */
  oversample?: number;
  /** Power iterations; default 2 (torch's default). */
  niter?: number;
  /** Draws the Gaussian test matrix (default: the global generator). */
  gen?: Generator;
}

/** A truncated SVD: `u` [m, k], `s` [k] descending, `vt` [k, n]. */
export interface TruncatedSvd {
  u: Float32Array;
  s: Float32Array;
  vt: Float32Array;
  k: number;
}

/** The top-`k` singular triplets of row-major `a` [m, n], approximately (exact when k + oversample ≥ min(m, n)). */
export function randomizedSvd(a: Float32Array, m: number, n: number, k: number, opts: RsvdOptions = {}): TruncatedSvd {
  const { oversample = 0, niter = 2, gen = globalGenerator } = opts;
  if (!(Number.isInteger(k) && k >= 1 && k <= Math.min(m, n))) throw new Error(`randomizedSvd: k must be in [1, ${Math.min(m, n)}], got ${k}`);
  if (!(Number.isInteger(niter) && niter >= 0)) throw new Error(`randomizedSvd: niter must be a non-negative integer, got ${niter}`);
  const q = Math.min(k + oversample, m, n);
  const omega = new Float32Array(n * q);
  for (let i = 0; i < omega.length; i++) omega[i] = gen.normal();
  let Q = qr(matmul32(a, omega, m, n, q), m, q).q; // [m, q], an orthonormal basis of range(A·Ω)
  for (let it = 0; it < niter; it++) {
    const Z = qr(matmul32(a, Q, n, m, q, true), n, q).q; // [n, q] basis of range(Aᵀ·Q)
    Q = qr(matmul32(a, Z, m, n, q), m, q).q;
  }
  const B = matmul32(Q, a, q, m, n, true); // Qᵀ·A [q, n]
  const small = svd(B, q, n);
  const ub = small.u; // [q, q]
  const u = matmul32(Q, ub, m, q, q);
  // Keep the first k triplets.
  const uk = new Float32Array(m * k);
  for (let i = 0; i < m; i++) uk.set(u.subarray(i * q, i * q + k), i * k);
  return { u: uk, s: small.s.slice(0, k), vt: small.vt.slice(0, k * n), k };
}
