/**
 * Dense linear algebra on row-major f32 arrays for the SVD/QR-based adapter initialisations: a GEMM helper on the
 * active backend, a thin Householder QR (TypeScript, f64 accumulation), and column orthonormalisation. The SVD itself
 * is the engine's `svd` (LAPACK `gesdd` on the native backend); see rsvd.ts for the randomized one.
 */
import { backend } from '../../engine/index.js';
import { GemmDType } from '../../engine/backend/kernels.js';

/** `op(a)·op(b)` as a fresh [m, n] array; op(a) is [m, k], op(b) is [k, n] (`ta` / `tb`: stored transposed). */
export function matmul32(a: Float32Array, b: Float32Array, m: number, k: number, n: number, ta = false, tb = false): Float32Array {
  if (a.length < m * k || b.length < k * n) throw new Error(`matmul32: operands too small for [${m}, ${k}]·[${k}, ${n}]`);
  const c = new Float32Array(m * n);
  if (m && n && k) backend().gemm(GemmDType.F32, a, b, c, 1, m, n, k, ta, tb, 0, 0, 0, 1, 0);
  return c;
}

/** The transpose of row-major `a` [m, n] as a fresh [n, m] array. */
export function transpose32(a: Float32Array, m: number, n: number): Float32Array {
  const t = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
}

/** Rows `from..to` of row-major `a` [rows, n]. */
export function rows32(a: Float32Array, n: number, from: number, to: number): Float32Array {
  return a.slice(from * n, to * n);
}

/** Columns `from..to` of row-major `a` [m, n] as a fresh [m, to − from] array. */
export function cols32(a: Float32Array, m: number, n: number, from: number, to: number): Float32Array {
  const w = to - from;
  const out = new Float32Array(m * w);
  for (let i = 0; i < m; i++) out.set(a.subarray(i * n + from, i * n + to), i * w);
  return out;
}

/** `a` [m, n] with column j multiplied by `s[j]` (in place; returns `a`). */
export function scaleCols32(a: Float32Array, m: number, n: number, s: ArrayLike<number>): Float32Array {
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j]! *= s[j]!;
  return a;
}

/** `a` [m, n] with row i multiplied by `s[i]` (in place; returns `a`). */
export function scaleRows32(a: Float32Array, m: number, n: number, s: ArrayLike<number>): Float32Array {
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j]! *= s[i]!;
  return a;
}

/** A thin QR factorisation: `q` [m, k] with orthonormal columns, `r` [k, n] upper triangular, k = min(m, n). */
export interface Qr {
  q: Float32Array;
  r: Float32Array;
  k: number;
}

/**
 * Thin QR of row-major `a` [m, n] by Householder reflections (as LAPACK `geqrf` + `orgqr`, so the signs match
 * `torch.linalg.qr`: R's diagonal is −sign(x₀)·‖x‖ per column). Cost O(m·n·k) in TypeScript: fine for the
 * tall-skinny matrices of a randomized SVD and for weights up to a few thousand on a side.
 */
export function qr(a: Float32Array, m: number, n: number): Qr {
  if (a.length < m * n) throw new Error(`qr: a has ${a.length} elements, needs ${m}×${n}`);
  const k = Math.min(m, n);
  const R = Float64Array.from(a.subarray(0, m * n));
  const vs: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    // Reflector H = I − 2vvᵀ/(vᵀv) mapping R[j:, j] onto alpha·e₁.
    let norm2 = 0;
    for (let i = j; i < m; i++) norm2 += R[i * n + j]! ** 2;
    const x0 = R[j * n + j]!;
    const alpha = -(x0 >= 0 ? 1 : -1) * Math.sqrt(norm2);
    const v = new Float64Array(m - j);
    for (let i = j; i < m; i++) v[i - j] = R[i * n + j]!;
    v[0]! -= alpha;
    let vv = 0;
    for (let i = 0; i < v.length; i++) vv += v[i]! * v[i]!;
    vs.push(vv > 0 ? v : new Float64Array(0));
    if (vv === 0) continue;
    for (let c = j; c < n; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * R[i * n + c]!;
      const f = (2 * dot) / vv;
      for (let i = j; i < m; i++) R[i * n + c]! -= f * v[i - j]!;
    }
  }
  // Q = H₀·H₁·…·H_{k−1} applied to the first k columns of the identity, last reflector first.
  const Q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) Q[i * k + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const v = vs[j]!;
    if (v.length === 0) continue;
    let vv = 0;
    for (let i = 0; i < v.length; i++) vv += v[i]! * v[i]!;
    for (let c = 0; c < k; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * Q[i * k + c]!;
      const f = (2 * dot) / vv;
      if (f !== 0) for (let i = j; i < m; i++) Q[i * k + c]! -= f * v[i - j]!;
    }
  }
  const r = new Float32Array(k * n);
  for (let i = 0; i < k; i++) for (let c = i; c < n; c++) r[i * n + c] = R[i * n + c]!;
  return { q: Float32Array.from(Q), r, k };
}
