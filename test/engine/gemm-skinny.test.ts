// The native GEMM takes f32 products with M or N ≤ 16 (LoRA's x·Aᵀ, g·B, uᵀ·x, gᵀ·t), and bf16 products whose M
// and N are both ≤ 64 (LoRA's weight gradients at small widths), through its own register-tiled loops instead of
// OpenBLAS / oneDNN. These cases pin every product with a small dimension against the reference backend — LoRA's
// shapes on whichever path takes them, and the tile edges: N ≤ 8 (ymm tiles), 9–16, 17–32 and wider (zmm tiles),
// row counts that leave partial row tiles, both orientations of A and B, alpha/beta, and sizes above the path's
// serial threshold (threaded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GemmDType } from '../../src/engine/backend/kernels.js';
import { loadNative } from '../../src/engine/backend/native.js';
import { reference as R } from '../../src/engine/backend/reference/index.js';
import { Rng } from '../helpers/random.js';

const loaded = loadNative();
const skip = loaded instanceof Error ? `native addon unavailable: ${loaded.message.split('\n')[0]}` : false;

function rand(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform());
}

/** Worst |native − reference| relative to the reference's largest magnitude. */
function relErr(a: Float32Array, b: Float32Array): number {
  let scale = 1e-6;
  let diff = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    const d = Math.abs(a[i]! - b[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  return diff / scale;
}

// [M, N, K]: LoRA's down (x·Aᵀ), up (t·Bᵀ), u = g·B, gx += u·A, gA = uᵀ·x, gB = gᵀ·t at r = 8 and 16, plus tile edges.
const SHAPES: [number, number, number][] = [
  [1024, 8, 576], [1024, 576, 8], [8, 576, 1024], [576, 8, 1024],
  [2048, 16, 64], [2048, 172, 16], [16, 172, 2048], [172, 16, 2048],
  [37, 5, 9], [9, 37, 5], [5, 9, 37], [13, 24, 70], [70, 13, 31], [31, 70, 13], [2, 64, 3], [11, 100, 64],
];

test('gemm f32 with a small dimension matches the reference: every transpose, alpha/beta, threaded sizes', { skip }, () => {
  const N = loaded as Exclude<typeof loaded, Error>;
  const rng = new Rng(7);
  for (const [M, Nn, K] of SHAPES)
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const [alpha, beta] of [[1, 0], [0.5, 1], [2, -0.25]] as const) {
          const a = rand(rng, M * K);
          const b = rand(rng, K * Nn);
          const c0 = rand(rng, M * Nn);
          const cn = c0.slice();
          const cr = c0.slice();
          N.gemm(GemmDType.F32, a, b, cn, 1, M, Nn, K, transA, transB, 0, 0, 0, alpha, beta);
          R.gemm(GemmDType.F32, a, b, cr, 1, M, Nn, K, transA, transB, 0, 0, 0, alpha, beta);
          const e = relErr(cn, cr);
          assert.ok(e <= 1e-5, `M=${M} N=${Nn} K=${K} tA=${transA} tB=${transB} α=${alpha} β=${beta}: error ${e.toExponential(2)}`);
        }
});

// [M, N, K] with M, N ≤ 64: uᵀ·x and gᵀ·t at tiny widths (r = 8, in/out 64 or 32), and tile edges.
const BF16_SHAPES: [number, number, number][] = [[8, 64, 2048], [64, 8, 2048], [32, 8, 2048], [5, 37, 300], [64, 64, 9], [2, 17, 1]];

test('gemm bf16 with small M and N matches the reference: every transpose, alpha/beta', { skip }, () => {
  const N = loaded as Exclude<typeof loaded, Error>;
  const rng = new Rng(9);
  const bf16 = (x: Float32Array) => {
    const b = new Uint16Array(x.length);
    R.castF32ToBF16(x, b, x.length);
    return b;
  };
  for (const [M, Nn, K] of BF16_SHAPES)
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const [alpha, beta] of [[1, 0], [2, -0.5]] as const) {
          const a = bf16(rand(rng, M * K));
          const b = bf16(rand(rng, K * Nn));
          const cn = rand(rng, M * Nn);
          const cr = cn.slice();
          N.gemm(GemmDType.BF16, a, b, cn, 1, M, Nn, K, transA, transB, 0, 0, 0, alpha, beta);
          R.gemm(GemmDType.BF16, a, b, cr, 1, M, Nn, K, transA, transB, 0, 0, 0, alpha, beta);
          const e = relErr(cn, cr);
          assert.ok(e <= 1e-5, `bf16 M=${M} N=${Nn} K=${K} tA=${transA} tB=${transB} α=${alpha} β=${beta}: error ${e.toExponential(2)}`);
        }
});

test('gemm f32 small-dimension path: beta = 0 ignores NaN in C; batches with shared and accumulated C', { skip }, () => {
  const N = loaded as Exclude<typeof loaded, Error>;
  const rng = new Rng(8);
  const [M, Nn, K] = [300, 8, 40];
  const a = rand(rng, 3 * M * K);
  const b = rand(rng, K * Nn);
  const c = new Float32Array(M * Nn).fill(NaN);
  N.gemm(GemmDType.F32, a, b, c, 1, M, Nn, K, false, true, 0, 0, 0, 1, 0);
  assert.ok(c.every(Number.isFinite), 'beta = 0 must overwrite NaN');
  // Three entries, B shared (stride 0), all accumulated into one C (strideC = 0) with beta = 1.
  const cn = rand(rng, M * Nn);
  const cr = cn.slice();
  N.gemm(GemmDType.F32, a, b, cn, 3, M, Nn, K, false, false, M * K, 0, 0, 1, 1);
  R.gemm(GemmDType.F32, a, b, cr, 3, M, Nn, K, false, false, M * K, 0, 0, 1, 1);
  assert.ok(relErr(cn, cr) <= 1e-5, `batched: error ${relErr(cn, cr).toExponential(2)}`);
});
