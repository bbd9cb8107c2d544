/**
 * Inference speed of peftjs against a plain-torch Llama with a KV cache (bench/torch_infer.py, run with
 * /usr/bin/python3 and OMP_NUM_THREADS=2): prefill tokens/s (one forward over a prompt, last-position logits) and
 * decode tokens/s (greedy generate() after a short prompt), in f32 and bf16 (peftjs bf16 weights; torch bf16
 * autocast), on stories260K and on a random model of the SmolLM-135M shape. Each figure is the best of `reps`
 * runs after a warm-up, on both sides.
 *
 *     node --import tsx bench/infer.ts [--no-torch]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as pj from '../src/index.js';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260K-hf', import.meta.url));
const SMOLLM = {
  model_type: 'llama',
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
};
const spec = {
  prefill: 128,
  decodePrompt: 16,
  decodeTokens: 64,
  reps: 3,
  models: [
    { name: 'stories260K', config: pj.readConfigJson(`${STORIES}/config.json`), weights: STORIES },
    { name: 'smollm-135m-shape (random)', config: SMOLLM, weights: null as string | null },
  ],
};
type Rates = { prefill: number; decode: number };
type Results = Record<string, Record<'f32' | 'bf16', Rates>>;

/** The fastest of several timed runs (the least disturbed by other load on the machine), in ms. */
function best(run: () => number): number {
  run();
  return Math.min(...Array.from({ length: spec.reps }, run));
}

function benchModel(model: pj.CausalLM): Rates {
  const gen = new pj.Generator(0);
  const V = model.config.vocabSize;
  const ids = Array.from({ length: spec.prefill }, () => 3 + Math.floor(gen.uniform() * (V - 3)));
  const prefillOnce = () =>
    pj.noGrad(() =>
      pj.tidy(() => {
        const cache = model.createCache(1, spec.prefill);
        const t = performance.now();
        model.forward(pj.tensor(ids, [1, spec.prefill], 'i32'), { cache, logitsToKeep: 1 }).toTyped();
        const ms = performance.now() - t;
        cache.dispose();
        return ms;
      }),
    );
  const prefillMs = best(prefillOnce);
  const decodeOnce = () => {
    const stamps: number[] = [];
    pj.generate(model, null, [ids.slice(0, spec.decodePrompt)], {
      maxNewTokens: spec.decodeTokens + 1,
      stopTokens: [],
      onToken: () => stamps.push(performance.now()),
    });
    return stamps.at(-1)! - stamps[0]!;
  };
  const decodeMs = best(decodeOnce);
  return { prefill: (spec.prefill * 1000) / prefillMs, decode: (spec.decodeTokens * 1000) / decodeMs };
}

function runPeftjs(): Results {
  const out: Results = {};
  for (const m of spec.models) {
    const res = {} as Record<'f32' | 'bf16', Rates>;
    for (const dtype of ['f32', 'bf16'] as const) {
      const model = (m.weights ? pj.loadCausalLM(m.weights, { dtype }) : pj.randomModel(m.config, { dtype })) as pj.CausalLM;
      res[dtype] = benchModel(model);
      model.dispose();
      pj.clearPool();
    }
    out[m.name] = res;
  }
  return out;
}

function runTorch(): Results | string {
  const script = fileURLToPath(new URL('./torch_infer.py', import.meta.url));
  const r = spawnSync('/usr/bin/python3', [script, JSON.stringify(spec)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '2' },
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) return `torch run failed: ${r.error?.message ?? r.stderr.trim().split('\n').at(-1)}`;
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Results;
}

const ours = runPeftjs();
const theirs = process.argv.includes('--no-torch') ? 'skipped (--no-torch)' : runTorch();
console.log(`prefill ${spec.prefill} tokens; decode ${spec.decodeTokens} tokens after a ${spec.decodePrompt}-token prompt; batch 1; ${pj.backend().getNumThreads()} threads; tokens/s`);
console.log(`${'model'.padEnd(28)} ${'dtype'.padEnd(5)} ${'phase'.padEnd(8)} ${'peftjs'.padStart(9)} ${'torch'.padStart(9)} ${'ratio'.padStart(6)}`);
for (const [name, res] of Object.entries(ours))
  for (const dtype of ['f32', 'bf16'] as const)
    for (const phase of ['prefill', 'decode'] as const) {
      const a = res[dtype][phase];
      const b = typeof theirs === 'string' ? NaN : theirs[name]![dtype][phase];
      const ratio = Number.isNaN(b) ? '-' : `${(a / b).toFixed(2)}x`;
      console.log(`${name.padEnd(28)} ${dtype.padEnd(5)} ${phase.padEnd(8)} ${a.toFixed(1).padStart(9)} ${(Number.isNaN(b) ? '-' : b.toFixed(1)).padStart(9)} ${ratio.padStart(6)}`);
    }
if (typeof theirs === 'string') console.log(theirs);
