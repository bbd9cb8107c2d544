/**
 * `npm run bench:ops`: the engine's kernels side by side with their anchors, in one run.
 * 1. GEMM through the engine vs the raw library call (bench/gemm.ts).
 * 2. Each fused kernel vs the same op in PyTorch fp32 and bf16 autocast (bench/fused.ts + bench/torch_ops.py),
 *    as speed-up ratios (PyTorch time / peftjs time; > 1x means peftjs is faster).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchGemm } from './gemm.js';
import { benchFused } from './fused.js';
import { loadNative } from '../src/engine/backend/native.js';

benchGemm();
console.log('');

const k = loadNative();
if (k instanceof Error) throw k;
const ours = benchFused(k);
const py = spawnSync('/usr/bin/python3', [fileURLToPath(new URL('./torch_ops.py', import.meta.url))], {
  encoding: 'utf8',
  env: { ...process.env, OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2' },
});
const torch = py.status === 0 ? (JSON.parse(py.stdout) as Record<string, { fp32_ms: number; bf16_ms: number }>) : null;
if (!torch) console.log(`(PyTorch anchor skipped: ${py.error?.message ?? py.stderr.trim().split('\n').pop()}; install python3-torch)`);
const ms = (x?: number) => (x === undefined ? '-' : x.toFixed(2)).padStart(11);
const ratio = (t?: number, o?: number) => (t === undefined || o === undefined ? '-' : `${(t / o).toFixed(2)}x`).padStart(11);
console.log(`${'fused kernel'.padEnd(30)}${'peftjs ms'.padStart(11)}${'torch fp32'.padStart(11)}${'torch bf16'.padStart(11)}${'vs fp32'.padStart(11)}${'vs bf16'.padStart(11)}`);
for (const [op, t] of Object.entries(ours)) {
  const a = torch?.[op];
  console.log(`${op.padEnd(30)}${ms(t)}${ms(a?.fp32_ms)}${ms(a?.bf16_ms)}${ratio(a?.fp32_ms, t)}${ratio(a?.bf16_ms, t)}`);
}
