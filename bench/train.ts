/**
 * `npm run bench:train [-- tiny small medium] [--steps N] [--precision fp32|bf16] [--profile] [--no-torch]`
 *
 * LoRA training throughput, peftjs vs the PyTorch anchor (../shared/bench/torch_llama_lora.py, run with
 * /usr/bin/python3 and the thread settings its docstring gives as PyTorch's best), on the same Llama shapes with
 * random weights, LoRA r=8 α=16 on all 7 projections, AdamW lr 1e-3, one step = forward + backward + update of a
 * [B, T+1] batch of random tokens. Prints tokens/s (median step after 2 warm-up steps), the ratio peftjs/PyTorch,
 * and the achieved GFLOP/s against the machine's bf16 peak, measured at start as the best rate of oneDNN on a
 * 1024³ bf16 GEMM called straight from C++ (`benchRawGemm`) with the same threads (OpenBLAS sgemm where oneDNN has
 * no bf16 matmul: an AVX2-only CPU, where the addon widens bf16 operands to f32).
 * `--profile` adds where peftjs's time goes, per kernel.
 */
import { spawnSync } from 'node:child_process';
import { AdamW, backend, crossEntropy, fromStorage, Generator, manualSeed, tidy, type Tensor } from '../src/engine/index.js';
import { GemmDType } from '../src/engine/backend/kernels.js';
import type { NativeKernels } from '../src/engine/backend/native.js';
import { randomModel, type CausalLM } from '../src/models/index.js';
import { PeftModel } from '../src/peft/model.js';

type Precision = 'fp32' | 'bf16';
/** dim, layers, heads, kv heads, hidden, vocab, seq, batch — as the anchor's CONFIGS. */
const CONFIGS = {
  tiny: [64, 5, 8, 4, 172, 512, 256, 8],
  small: [288, 6, 6, 6, 768, 32000, 256, 8],
  medium: [576, 30, 9, 3, 1536, 49152, 256, 4],
} as const;
type ConfigName = keyof typeof CONFIGS;
const DEFAULT_STEPS: Record<ConfigName, number> = { tiny: 10, small: 6, medium: 3 };
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** Model FLOPs of one training step (frozen base: no weight gradients except LoRA's). */
function stepFlops(name: ConfigName): number {
  const [d, L, H, KVH, hid, V, T, B] = CONFIGS[name];
  const hd = d / H;
  const kv = KVH * hd;
  const tokens = B * T;
  const base = L * (d * d + 2 * d * kv + d * d + 3 * d * hid) + V * d; // GEMM weights per token
  const lora = L * 8 * (d + d + 2 * (d + kv) + (d + d) + 2 * (d + hid) + (hid + d)); // r·(in+out) per adapter
  const attnFwd = 2 * B * L * H * T * T * hd; // QKᵀ and PV, causal half
  // forward 2·P, backward input-gradient 2·P (no base weight grads); LoRA adds its weight grads; attention bwd ≈ 2× fwd
  return 4 * base * tokens + 6 * lora * tokens + 3 * attnFwd;
}

/** GFLOP/s of the raw library bf16 GEMM at 1024³ (best of 3 runs of 10 calls), or null on the reference backend. */
function measurePeakBF16(): number | null {
  const k = backend() as Partial<NativeKernels>;
  if (!k.benchRawGemm) return null;
  const n = 1024;
  const seconds = Math.min(...[0, 1, 2].map(() => k.benchRawGemm!(GemmDType.BF16, n, n, n, 10) / 10));
  return (2 * n ** 3) / seconds / 1e9;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * Wall and CPU milliseconds (all threads) per kernel name (gemm split by dtype), when profiling. On a shared,
 * loaded machine the CPU time is the steadier measure of a kernel's work.
 */
const profile = new Map<string, { ms: number; cpuMs: number; calls: number }>();

function instrumentKernels(): void {
  const k = backend() as unknown as Record<string, unknown>;
  for (const name of Object.keys(k)) {
    const f = k[name];
    if (typeof f !== 'function' || name === 'setNumThreads' || name === 'getNumThreads') continue;
    k[name] = (...args: unknown[]) => {
      const key = name === 'gemm' ? `gemm ${args[0] === GemmDType.BF16 ? 'bf16' : 'f32'}` : name;
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const r = (f as (...a: unknown[]) => unknown)(...args);
      const c = process.cpuUsage(c0);
      const e = profile.get(key) ?? { ms: 0, cpuMs: 0, calls: 0 };
      e.ms += performance.now() - t0;
      e.cpuMs += (c.user + c.system) / 1000;
      e.calls++;
      profile.set(key, e);
      return r;
    };
  }
}

function runPeftjs(name: ConfigName, precision: Precision, steps: number): { tokensPerSecond: number; stepMs: number; timedMs: number; loss0: number; loss1: number } {
  const [d, L, H, KVH, hid, V, T, B] = CONFIGS[name];
  const model = randomModel(
    {
      model_type: 'llama',
      hidden_size: d,
      num_hidden_layers: L,
      num_attention_heads: H,
      num_key_value_heads: KVH,
      intermediate_size: hid,
      vocab_size: V,
      max_position_embeddings: T,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: true,
    },
    { dtype: precision === 'bf16' ? 'bf16' : 'f32', seed: 0 },
  ) as CausalLM;
  manualSeed(0);
  const peft = new PeftModel(model, { r: 8, lora_alpha: 16, target_modules: TARGETS, task_type: 'CAUSAL_LM' });
  const opt = new AdamW(peft.trainableParameters(), { lr: 1e-3, weightDecay: 0.01 });
  const gen = new Generator(0);
  const data = Int32Array.from({ length: B * (T + 1) }, () => Math.floor(gen.uniform() * V));
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    ids.set(data.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    targets.set(data.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
  }
  model.train();
  const times: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < steps + 2; i++) {
    if (i === 2) profile.clear();
    const t0 = performance.now();
    losses.push(
      tidy(() => {
        const loss = crossEntropy(model.forward(fromStorage(ids.slice(), [B, T], 'i32')), fromStorage(targets.slice(), [B, T], 'i32') as Tensor);
        loss.backward();
        return loss.item();
      }),
    );
    opt.step();
    opt.zeroGrad();
    times.push(performance.now() - t0);
  }
  model.dispose();
  const stepMs = median(times.slice(2));
  const timedMs = times.slice(2).reduce((a, b) => a + b, 0);
  return { tokensPerSecond: (B * T) / (stepMs / 1000), stepMs, timedMs, loss0: losses[0]!, loss1: losses.at(-1)! };
}

function runTorch(name: ConfigName, precision: Precision, steps: number): { tokensPerSecond: number } | { error: string } {
  // The anchor's docstring: fp32 is fastest with OMP 1 / OpenBLAS 2 threads, bf16 autocast with OMP 2.
  const env = { ...process.env, ...(precision === 'fp32' ? { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '2' } : { OMP_NUM_THREADS: '2' }) };
  const r = spawnSync('/usr/bin/python3', ['../shared/bench/torch_llama_lora.py', name, String(steps), precision], { encoding: 'utf8', env });
  const m = /tokens\/s ([\d.]+)/.exec(r.stdout ?? '');
  return m ? { tokensPerSecond: Number(m[1]) } : { error: (r.stderr || r.stdout || String(r.error)).trim().split('\n').pop()! };
}

function main(): void {
  const args = process.argv.slice(2);
  const names = args.filter((a): a is ConfigName => a in CONFIGS);
  const stepsArg = args.indexOf('--steps');
  const precArg = args.indexOf('--precision');
  const precisions: Precision[] = precArg >= 0 ? [args[precArg + 1] as Precision] : ['bf16', 'fp32'];
  const withTorch = !args.includes('--no-torch');
  const peak = measurePeakBF16();
  if (args.includes('--profile')) instrumentKernels();
  console.log(`LoRA r=8 α=16 on ${TARGETS.length} projections; tokens/s = B·T / median step (after 2 warm-up steps)`);
  console.log(`bf16 peak: ${peak ? `${peak.toFixed(0)} GFLOP/s (1024³ bf16 GEMM straight to the library — oneDNN, or OpenBLAS sgemm on a CPU where oneDNN has no bf16 matmul — ${backend().getNumThreads()} threads)` : 'not measured (no native backend)'}`);
  console.log(`${'config'.padEnd(8)} ${'prec'.padEnd(5)} ${'peftjs tok/s'.padStart(13)} ${'torch tok/s'.padStart(12)} ${'ratio'.padStart(7)} ${'step ms'.padStart(9)} ${'GFLOP/s'.padStart(8)} ${'% of bf16 peak'.padStart(15)}`);
  for (const name of names.length ? names : (Object.keys(CONFIGS) as ConfigName[])) {
    const steps = stepsArg >= 0 ? Number(args[stepsArg + 1]) : DEFAULT_STEPS[name];
    for (const precision of precisions) {
      const ours = runPeftjs(name, precision, steps);
      const theirs = withTorch ? runTorch(name, precision, steps) : null;
      const gflops = stepFlops(name) / (ours.stepMs / 1000) / 1e9;
      const torchCol = !theirs ? '-' : 'error' in theirs ? 'error' : theirs.tokensPerSecond.toFixed(0);
      const ratio = theirs && !('error' in theirs) ? `${(ours.tokensPerSecond / theirs.tokensPerSecond).toFixed(2)}x` : '-';
      console.log(
        `${name.padEnd(8)} ${precision.padEnd(5)} ${ours.tokensPerSecond.toFixed(0).padStart(13)} ${torchCol.padStart(12)} ${ratio.padStart(7)} ${ours.stepMs.toFixed(1).padStart(9)} ${gflops.toFixed(1).padStart(8)} ${(peak ? `${((100 * gflops) / peak).toFixed(1)}%` : '-').padStart(15)}`,
      );
      if (theirs && 'error' in theirs) console.log(`  torch failed: ${theirs.error}`);
      if (profile.size) {
        const total = [...profile.values()].reduce((s, e) => s + e.ms, 0);
        const wall = ours.timedMs;
        console.log(`  profile (${steps} steps; kernels ${((100 * total) / wall).toFixed(0)}% of wall time):`);
        for (const [k, e] of [...profile].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12))
          console.log(
            `    ${k.padEnd(22)} ${(e.ms / steps).toFixed(1).padStart(8)} ms/step ${((100 * e.ms) / wall).toFixed(1).padStart(5)}%  ${(e.cpuMs / steps).toFixed(1).padStart(8)} cpu ms/step ${String(Math.round(e.calls / steps)).padStart(5)} calls/step`,
          );
        profile.clear();
      }
    }
  }
}

main();
