// Test fixtures for serving: LoRA adapters built on a base model with large random factors (so each adapter's
// greedy output is recognisably its own), saved in the HF PEFT format, and each adapter's output generated alone
// through src/peft + src/models (an independent path: PeftModel's LoRA layers, not the gathered kernel).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCausalLM, generate, type CausalLM } from '../../src/models/index.js';
import { PeftModel } from '../../src/peft/index.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { Rng } from '../helpers/random.js';

export const STORIES = new URL('../../../shared/models/stories260K-hf', import.meta.url).pathname;

export interface AdapterSpec {
  r: number;
  targets: string[];
  alpha?: number;
  rankPattern?: Record<string, number>;
  seed: number;
}

/** Four adapters of different ranks, targets and rank patterns. */
export const SPECS: AdapterSpec[] = [
  { r: 4, targets: ['q_proj', 'v_proj'], seed: 11 },
  { r: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], alpha: 16, seed: 12 },
  { r: 2, targets: ['gate_proj', 'up_proj', 'down_proj'], seed: 13 },
  { r: 6, targets: ['v_proj', 'down_proj'], rankPattern: { down_proj: 3 }, seed: 14 },
];

/** Saves adapter `spec` for the model at `modelDir` into a new temporary directory; returns it. */
export function makeAdapter(modelDir: string, spec: AdapterSpec): string {
  const base = loadCausalLM(modelDir);
  const peft = new PeftModel(base, {
    peft_type: 'LORA',
    r: spec.r,
    lora_alpha: spec.alpha ?? spec.r,
    target_modules: spec.targets,
    rank_pattern: spec.rankPattern ?? {},
  });
  const rng = new Rng(spec.seed);
  for (const [name, p] of peft.namedParameters()) {
    if (!name.includes('lora_')) continue;
    const scale = name.includes('lora_B') ? 1.5 : 0.5;
    (p.data as Float32Array).set(rng.f32(p.size, scale));
  }
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-serve-adapter-'));
  peft.save(dir);
  base.dispose();
  return dir;
}

/** Greedy ids of `prompt` under adapter `dir` (null: the base model), generated alone with PeftModel + generate(). */
export function aloneGreedy(modelDir: string, tokenizer: Tokenizer, dir: string | null, prompt: string, maxNewTokens: number): number[] {
  const base = loadCausalLM(modelDir);
  const model = dir ? (PeftModel.fromPretrained(base, dir).model as CausalLM) : base;
  const [g] = generate(model, tokenizer, [prompt], { maxNewTokens, temperature: 0 });
  base.dispose();
  return g!.ids;
}
