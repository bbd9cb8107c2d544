/**
 * GEMM throughput through the engine (`pj.matmul` on tensors: op dispatch, output allocation from the pool, the N-API
 * call, argument checks, the primitive cache) against the raw library call timed inside C++ (`benchRawGemm`:
 * cblas_sgemm for f32, a pre-built oneDNN matmul for bf16 — sgemm where oneDNN has no bf16 matmul, an AVX2-only CPU
 * on which `gemm` widens bf16 operands to f32), at shapes typical of LoRA training. Goal ≥ 0.9x.
 *
 * Run: `node --import tsx bench/gemm.ts`
 */
import { pathToFileURL } from 'node:url';
import { GemmDType } from '../src/engine/backend/kernels.js';
import { loadNative } from '../src/engine/backend/native.js';
import * as pj from '../src/index.js';

/** One measured shape: C[M,N] = A[M,K]·B[K,N]. */
export interface GemmBenchRow {
  dtype: 'f32' | 'bf16';
  M: number;
  N: number;
  K: number;
  engineGflops: number;
  rawGflops: number;
}

/** [M, N, K]: LoRA-sized projections (tokens × out × in) and two square-ish references. */
export const GEMM_SHAPES: readonly (readonly [number, number, number])[] = [
  [2048, 768, 288],
  [2048, 1536, 576],
  [1024, 1024, 1024],
  [4096, 4096, 1024],
];

/** Seconds for `iters` engine matmuls (`pj.matmul` on tensors, output disposed each call), after one warm-up call. */
function timeEngine(dtype: GemmDType, M: number, N: number, K: number, iters: number): number {
  const make = (shape: number[]): pj.Tensor => {
    const x = pj.rand(shape, -1, 1);
    if (dtype === GemmDType.F32) return x;
    const bits = pj.castTo(x, 'bf16');
    x.dispose();
    return bits;
  };
  const a = make([M, K]);
  const b = make([K, N]);
  const run = (): void => pj.matmul(a, b).dispose();
  run();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) run();
  const seconds = (performance.now() - t0) / 1000;
  a.dispose();
  b.dispose();
  return seconds;
}

/**
 * Measures every shape in f32 and bf16, engine and raw alternately, keeping the best of `repeats` runs of each
 * (about `seconds` per run), prints a table and returns the rows.
 */
export function benchGemm(shapes = GEMM_SHAPES, seconds = 0.5, repeats = 3): GemmBenchRow[] {
  const k = loadNative();
  if (k instanceof Error) throw k;
  const rows: GemmBenchRow[] = [];
  for (const dtype of [GemmDType.F32, GemmDType.BF16])
    for (const [M, N, K] of shapes) {
      const flop = 2 * M * N * K;
      const once = k.benchRawGemm(dtype, M, N, K, 1);
      const iters = Math.max(1, Math.round(seconds / once));
      let engine = Infinity, raw = Infinity;
      for (let r = 0; r < repeats; r++) {
        raw = Math.min(raw, k.benchRawGemm(dtype, M, N, K, iters) / iters);
        engine = Math.min(engine, timeEngine(dtype, M, N, K, iters) / iters);
      }
      rows.push({ dtype: dtype === GemmDType.F32 ? 'f32' : 'bf16', M, N, K, engineGflops: flop / engine / 1e9, rawGflops: flop / raw / 1e9 });
    }
  const header = ['kernel', 'M×N×K', 'engine GFLOP/s', 'raw GFLOP/s', 'engine/raw'];
  const table = rows.map((r) => [
    `gemm ${r.dtype}`,
    `${r.M}×${r.N}×${r.K}`,
    r.engineGflops.toFixed(1),
    r.rawGflops.toFixed(1),
    `${(r.engineGflops / r.rawGflops).toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`threads: ${k.getNumThreads()}`);
  console.log(line(header));
  for (const t of table) console.log(line(t));
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) benchGemm();
