/**
 * Times the native addon's fused kernels on the shapes of `bench/fused-shapes.json` (shared with
 * `bench/torch_ops.py`, the PyTorch anchor). Standalone (`node --import tsx bench/fused.ts`) it also runs the
 * PyTorch script with /usr/bin/python3 when that works and prints both side by side.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Kernels } from '../src/engine/backend/kernels.js';
import { loadNative } from '../src/engine/backend/native.js';

interface AttentionShape { name: string; B: number; T: number; H: number; KVH: number; D: number; causal: boolean }
interface Shapes {
  rmsnorm: { rows: number; cols: number; eps: number };
  rope: { B: number; T: number; H: number; D: number };
  softmax: { rows: number; cols: number };
  attention: AttentionShape[];
  crossEntropy: { N: number; V: number };
  adamw: { n: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
}

const shapesPath = fileURLToPath(new URL('./fused-shapes.json', import.meta.url));

/** Median milliseconds of `fn` over repeated runs (≥ 5 runs and ≥ 0.5 s after one warm-up call). */
function timeMs(fn: () => void): number {
  fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 5 || (performance.now() - start < 500 && times.length < 200)) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * scale;
  return a;
}

/** Milliseconds per call of each fused kernel, keyed like the PyTorch script's output. */
export function benchFused(k: Kernels): Record<string, number> {
  const s = JSON.parse(readFileSync(shapesPath, 'utf8')) as Shapes;
  const r: Record<string, number> = {};

  {
    const { rows, cols, eps } = s.rmsnorm;
    const x = randn(rows * cols), w = randn(cols), out = new Float32Array(rows * cols), rstd = new Float32Array(rows);
    const gy = randn(rows * cols), gx = new Float32Array(rows * cols), gw = new Float32Array(cols);
    r['rmsnorm_fwd_bwd'] = timeMs(() => {
      k.rmsNorm(x, w, out, rstd, rows, cols, eps);
      k.rmsNormBackward(x, w, rstd, gy, gx, gw, rows, cols);
    });
  }
  {
    const { B, T, H, D } = s.rope;
    const x = randn(B * T * H * D), out = new Float32Array(x.length);
    const ang = Float32Array.from({ length: (T * D) / 2 }, (_, i) => Math.floor(i / (D / 2)) * 10000 ** (-(i % (D / 2)) / (D / 2)));
    r['rope'] = timeMs(() => k.rope(x, out, ang.map(Math.cos), ang.map(Math.sin), B, T, H, D, 0, false, false));
  }
  {
    const { rows, cols } = s.softmax;
    const x = randn(rows * cols, 4), out = new Float32Array(rows * cols);
    r['softmax'] = timeMs(() => k.softmax(x, out, rows, cols, false));
  }
  for (const a of s.attention) {
    const { B, T, H, KVH, D, causal } = a;
    const q = randn(B * T * H * D), kk = randn(B * T * KVH * D), v = randn(B * T * KVH * D);
    const out = new Float32Array(q.length), lse = new Float32Array(B * H * T), gout = randn(q.length);
    const gq = new Float32Array(q.length), gk = new Float32Array(kk.length), gv = new Float32Array(v.length);
    const fwd = () => k.attention(q, kk, v, out, lse, null, B, T, T, T, H, KVH, D, 1 / Math.sqrt(D), causal);
    r[`attention_${a.name}_fwd`] = timeMs(fwd);
    r[`attention_${a.name}_fwd_bwd`] = timeMs(() => {
      fwd();
      k.attentionBackward(q, kk, v, out, lse, null, gout, gq, gk, gv, B, T, T, T, H, KVH, D, 1 / Math.sqrt(D), causal);
    });
  }
  {
    const { N, V } = s.crossEntropy;
    const logits = randn(N * V, 4), targets = Int32Array.from({ length: N }, () => Math.floor(Math.random() * V));
    const losses = new Float32Array(N), lse = new Float32Array(N), gy = new Float32Array(N).fill(1 / N), gl = new Float32Array(N * V);
    r['cross_entropy_fwd_bwd'] = timeMs(() => {
      k.crossEntropy(logits, targets, losses, lse, N, V, -100);
      k.crossEntropyBackward(logits, targets, lse, gy, gl, N, V, -100);
    });
  }
  {
    const { n, lr, beta1, beta2, eps, weightDecay } = s.adamw;
    const p = randn(n), g = randn(n), m = new Float32Array(n), v = new Float32Array(n);
    let t = 0;
    r['adamw'] = timeMs(() => {
      t++;
      k.adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, 1 - beta1 ** t, 1 - beta2 ** t);
    });
  }
  return r;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const native = loadNative();
  if (native instanceof Error) throw native;
  const ours = benchFused(native);
  const py = spawnSync('/usr/bin/python3', [fileURLToPath(new URL('./torch_ops.py', import.meta.url))], { encoding: 'utf8' });
  const torch = py.status === 0 ? (JSON.parse(py.stdout) as Record<string, { fp32_ms: number; bf16_ms: number }>) : null;
  if (!torch) console.error(`PyTorch comparison skipped: ${py.error?.message ?? py.stderr.trim().split('\n').pop()}`);
  const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(2)).padStart(10);
  console.log(`${'op'.padEnd(28)}${'peftjs ms'.padStart(10)}${'torch fp32'.padStart(11)}${'torch bf16'.padStart(11)}`);
  for (const [op, ms] of Object.entries(ours)) console.log(`${op.padEnd(28)}${f(ms)} ${f(torch?.[op]?.fp32_ms)} ${f(torch?.[op]?.bf16_ms)}`);
}
