/** Batched GEMM: `C_b = alpha·op(A_b)·op(B_b) + beta·C_b`, accumulated in double precision. */
import { GemmDType, type U16 } from '../kernels.js';
import { bf16ToF32 } from './copy.js';

/**
 * Copies the `rows`×`cols` matrix op(X) — X stored row-major from `x[offset]`, transposed when `trans` — into a
 * contiguous row-major Float64Array, decoding bf16 bits when `bf16`.
 */
function pack(x: Float32Array | U16, bf16: boolean, offset: number, rows: number, cols: number, trans: boolean): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const v = x[offset + (trans ? c * rows + r : r * cols + c)];
      out[r * cols + c] = bf16 ? bf16ToF32(v) : v;
    }
  return out;
}

/**
 * Batched row-major GEMM (see the contract). Operands are packed as op(A) [M,K] and op(B)ᵀ [N,K] so the inner
 * k-loop reads both contiguously. `beta = 0` overwrites C without reading it (BLAS convention).
 */
export function gemm(
  dtype: GemmDType,
  a: Float32Array | U16,
  b: Float32Array | U16,
  c: Float32Array,
  batch: number,
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  strideA: number,
  strideB: number,
  strideC: number,
  alpha: number,
  beta: number,
): void {
  const bf16 = dtype === GemmDType.BF16;
  if (bf16 !== a instanceof Uint16Array || bf16 !== b instanceof Uint16Array)
    throw new TypeError(`gemm: dtype ${GemmDType[dtype]} needs ${bf16 ? 'Uint16Array' : 'Float32Array'} operands a and b`);
  for (let bi = 0; bi < batch; bi++) {
    const A = pack(a, bf16, bi * strideA, M, K, transA); // op(A) [M,K]
    const Bt = pack(b, bf16, bi * strideB, N, K, !transB); // op(B)ᵀ [N,K]
    const c0 = bi * strideC;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += A[m * K + k] * Bt[n * K + k];
        const ci = c0 + m * N + n;
        c[ci] = beta === 0 ? alpha * acc : alpha * acc + beta * c[ci];
      }
  }
}
