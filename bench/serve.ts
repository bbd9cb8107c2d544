// bench:serve — aggregate generated tokens/s of the serving engine at concurrency 32 with 1, 8 and 64 distinct
// LoRA adapters batched together (the gathered kernel), against the naive way (one adapter active at a time:
// requests grouped by adapter, the scheduler's `grouped` policy), plus p50/p99 request latency.
//
// Model: a random Llama of ~30M parameters (hidden 512, 8 layers, MLP 1408, vocab 8000), f32. Adapters: rank 8
// (every fourth rank 16) on q/k/v/o_proj. Closed loop: 32 clients, each submitting its next request when the last
// one finishes; a request is a 16-token prompt and 32 generated tokens (EOS ignored). Engine in-process (no
// HTTP), so the numbers are the scheduler + model + kernel. The workloads' scheduler steps are interleaved and
// each is timed on its own clock (busy time), so contention from other processes hits all of them alike.
//
//   npm run bench:serve     (SERVE_BENCH_REQUESTS=N requests per workload, default 96)
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeAvailable, backend } from '../src/engine/index.js';
import { randomModel, type CausalLM } from '../src/models/index.js';
import { parseLoraConfig, writeAdapterFiles } from '../src/peft/index.js';
import { createEngine, LoraPool } from '../src/serve/index.js';
import type { TensorData } from '../src/io/safetensors.js';
import { Rng } from '../test/helpers/random.js';

const CONFIG = {
  model_type: 'llama',
  vocab_size: 8000,
  hidden_size: 512,
  intermediate_size: 1408,
  num_hidden_layers: 8,
  num_attention_heads: 8,
  num_key_value_heads: 8,
  max_position_embeddings: 512,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
};
const CONCURRENCY = 32;
const REQUESTS = Number(process.env.SERVE_BENCH_REQUESTS ?? 96);
const PROMPT = 16;
const NEW = 32;
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

/** Writes `n` random rank-8/16 adapters in the HF PEFT format; returns their directories. */
function makeAdapters(n: number): string[] {
  const root = mkdtempSync(join(tmpdir(), 'peftjs-bench-serve-'));
  const h = CONFIG.hidden_size;
  return Array.from({ length: n }, (_, i) => {
    const r = i % 4 === 3 ? 16 : 8;
    const rng = new Rng(1000 + i);
    const tensors: [string, TensorData][] = [];
    for (let l = 0; l < CONFIG.num_hidden_layers; l++)
      for (const t of TARGETS) {
        const key = `base_model.model.model.layers.${l}.self_attn.${t}`;
        tensors.push([`${key}.lora_A.weight`, { dtype: 'F32', shape: [r, h], data: Float32Array.from(rng.f32(r * h, 0.05)) }]);
        tensors.push([`${key}.lora_B.weight`, { dtype: 'F32', shape: [h, r], data: Float32Array.from(rng.f32(h * r, 0.05)) }]);
      }
    const dir = join(root, `a${i}`);
    writeAdapterFiles(dir, parseLoraConfig({ peft_type: 'LORA', r, lora_alpha: 2 * r, target_modules: TARGETS }), tensors);
    return dir;
  });
}

interface Run {
  tokensPerSecond: number;
  p50: number;
  p99: number;
  meanBatch: number;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** A closed-loop workload on its own engine: request i uses adapter i mod `adapters`, served by `policy`. */
function workload(dirs: string[], adapters: number, policy: 'mixed' | 'grouped') {
  const model = randomModel(CONFIG, { seed: 1 }) as CausalLM;
  const started = new Map<string, number>();
  const latencies: number[] = [];
  let submitted = 0;
  let tokens = 0;
  let busyMs = 0;
  const rng = new Rng(7);
  const submit = () => {
    if (submitted >= REQUESTS) return;
    const id = `r${submitted}`;
    const adapter = `a${submitted % adapters}`;
    submitted++;
    started.set(id, busyMs);
    engine.scheduler.submit({
      id,
      adapter,
      promptIds: Array.from({ length: PROMPT }, () => rng.int(3, CONFIG.vocab_size)),
      params: { maxTokens: NEW, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], ignoreEos: true },
    });
  };
  const engine = createEngine(model, null, {
    token: () => void tokens++,
    done: (r) => {
      latencies.push(busyMs - started.get(r.id)!);
      submit();
    },
    error: (id, _, msg) => {
      throw new Error(`bench: request ${id} failed: ${msg}`);
    },
  }, { adapters: Object.fromEntries(dirs.slice(0, adapters).map((d, i) => [`a${i}`, d])), maxBatch: CONCURRENCY, maxSeqLen: PROMPT + NEW, policy });
  // Load every adapter before timing.
  for (let i = 0; i < adapters; i++) {
    engine.store.acquire(`a${i}`);
    engine.store.release(`a${i}`);
  }
  for (let i = 0; i < CONCURRENCY; i++) submit();
  return {
    get idle() {
      return engine.scheduler.idle;
    },
    /** One scheduler step, its time added to this workload's clock (latencies are measured on that clock). */
    step() {
      const t0 = performance.now();
      engine.scheduler.step();
      busyMs += performance.now() - t0;
    },
    result(): Run {
      const s = engine.scheduler.stats();
      model.dispose();
      return { tokensPerSecond: tokens / (busyMs / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99), meanBatch: s.batchRowsTotal / Math.max(1, s.steps) };
    },
  };
}

/**
 * Runs workloads with their steps interleaved round-robin, each timed on its own clock, so a machine shared with
 * other work slows them alike and the ratios stay fair.
 */
function interleaved(specs: [number, 'mixed' | 'grouped'][], dirs: string[]): Run[] {
  const ws = specs.map(([n, policy]) => workload(dirs, n, policy));
  while (ws.some((w) => !w.idle)) for (const w of ws) if (!w.idle) w.step();
  return ws.map((w) => w.result());
}

const params = (randomModel(CONFIG) as CausalLM).parameters().reduce((n, p) => n + p.size, 0);
console.log(`bench:serve — ${backend().name} backend${nativeAvailable() ? '' : ' (native addon unavailable)'}; random Llama ${(params / 1e6).toFixed(1)}M params f32;`);
console.log(`concurrency ${CONCURRENCY}, ${REQUESTS} requests of ${PROMPT} prompt + ${NEW} generated tokens; adapters rank 8/16 on ${TARGETS.join(', ')}\n`);
const dirs = makeAdapters(64);
const batched = interleaved([[1, 'mixed'], [8, 'mixed'], [64, 'mixed']], dirs);
const naive = interleaved([[8, 'grouped'], [64, 'grouped']], dirs);
const rows: [string, Run][] = [
  ['1 adapter(s), batched', batched[0]!],
  ['8 adapter(s), batched', batched[1]!],
  ['64 adapter(s), batched', batched[2]!],
  ['8 adapters, naive (grouped)', naive[0]!],
  ['64 adapters, naive (grouped)', naive[1]!],
];
const one = rows[0]![1].tokensPerSecond;

/** Milliseconds per gathered-LoRA call on a [32, 512] → 512 layer with 32 rows over `distinct` adapters. */
function kernelMs(distinct: number): number {
  const h = CONFIG.hidden_size;
  const pool = new LoraPool(h, h, 64, 64 * 16);
  const rng = new Rng(3);
  for (let a = 0; a < 64; a++) pool.set(a, a * 16, rng.f32(8 * h), rng.f32(h * 8), 8, 2);
  const x = rng.f32(32 * h);
  const y = new Float32Array(32 * h);
  const rowAdapter = Int32Array.from({ length: 32 }, (_, r) => r % distinct);
  const call = () => backend().loraGather(x, y, rowAdapter, pool.a!, pool.bT!, pool.offset, pool.rank, pool.scale, 32, h, h, 64);
  for (let i = 0; i < 200; i++) call();
  let bestMs = Infinity;
  for (let rep = 0; rep < 5; rep++) {
    const t0 = performance.now();
    for (let i = 0; i < 2000; i++) call();
    bestMs = Math.min(bestMs, (performance.now() - t0) / 2000);
  }
  return bestMs;
}
const byName = Object.fromEntries(rows);
console.log('| workload | tokens/s | vs 1 adapter | mean batch | p50 latency ms | p99 latency ms |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [name, r] of rows)
  console.log(`| ${name} | ${r.tokensPerSecond.toFixed(0)} | ${(r.tokensPerSecond / one).toFixed(2)}× | ${r.meanBatch.toFixed(1)} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} |`);
for (const n of [8, 64]) {
  const b = byName[`${n} adapter(s), batched`]!;
  const g = byName[`${n} adapters, naive (grouped)`]!;
  console.log(`\n${n} adapters: batched / naive = ${(b.tokensPerSecond / g.tokensPerSecond).toFixed(2)}×`);
}
const k1 = kernelMs(1);
const k64 = kernelMs(32);
console.log(`gathered LoRA kernel, 32 rows, 512→512, rank 8: 1 adapter ${(k1 * 1000).toFixed(1)} µs, 32 distinct adapters ${(k64 * 1000).toFixed(1)} µs per call (${(k64 / k1).toFixed(2)}×)`);
console.log(`64 adapters / 1 adapter = ${(byName['64 adapter(s), batched']!.tokensPerSecond / one).toFixed(2)}× (goal ≥ 0.8×)`);
