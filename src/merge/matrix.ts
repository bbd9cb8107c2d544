/** Small dense-matrix helpers for merging over row-major f32 arrays, on the active backend's GEMM. */
import { backend } from '../engine/index.js';
import { GemmDType } from '../engine/backend/kernels.js';

/**
 * `op(a) · op(b)` as a fresh [M, N] array, op(X) = X or Xᵀ: `a` is [M, K] (or [K, M] when `transA`), `b` is [K, N]
 * (or [N, K] when `transB`). With `into`, accumulates `alpha · op(a)·op(b)` into it instead.
 */
export function matmul(
  a: Float32Array,
  b: Float32Array,
  M: number,
  K: number,
  N: number,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; into?: Float32Array } = {},
): Float32Array {
  const c = opts.into ?? new Float32Array(M * N);
  if (c.length < M * N) throw new Error(`matmul: output holds ${c.length} elements, needs ${M}×${N}`);
  if (M * N === 0) return c;
  backend().gemm(GemmDType.F32, a, b, c, 1, M, N, K, opts.transA ?? false, opts.transB ?? false, 0, 0, 0, opts.alpha ?? 1, opts.into ? 1 : 0);
  return c;
}

/** The [cols, rows] transpose of row-major `a` [rows, cols]. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

/** Frobenius norm, accumulated in double precision. */
export function frobenius(a: Float32Array): number {
  return Math.sqrt(backend().sumSquares(a, a.length));
}
