// Shared fixtures for the classic PEFT method tests (IA3, prompt/prefix tuning, bottleneck, SSF, BitFit, LN tuning):
// the real stories260K-hf checkpoint, a token batch from its tokenizer, a short training run, save → load.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { loadCausalLM, randomModel } from '../../../src/models/index.js';
import type { CausalLM } from '../../../src/models/types.js';
import { loadTokenizer } from '../../../src/io/tokenizer.js';
import { PeftModel } from '../../../src/peft/model.js';
import { readAdapterFiles } from '../../../src/peft/format.js';

export const STORIES = new URL('../../../../shared/models/stories260K-hf', import.meta.url).pathname;
export const TINY_GPT2 = new URL('../../../../shared/models/tiny-gpt2-random', import.meta.url).pathname;

const TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';

/** The base model, fresh (adapters modify it in place). */
export function stories(): CausalLM {
  return loadCausalLM(STORIES);
}

/** A small random Llama (f32, grouped-query) for gradchecks through the whole model. */
export function tinyLlama(): CausalLM {
  return randomModel(
    { model_type: 'llama', vocab_size: 32, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1 },
    { seed: 3 },
  ) as CausalLM;
}

/** ids / next-token targets [2, T] from real text. */
export function storyBatch(dir = STORIES, T = 16): { ids: number[]; targets: number[]; B: number; T: number } {
  const tok = loadTokenizer(dir).encode(TEXT);
  const ids: number[] = [];
  const targets: number[] = [];
  for (const start of [0, 5]) for (let t = 0; t < T; t++) (ids.push(tok[start + t]!), targets.push(tok[start + t + 1]!));
  return { ids, targets, B: 2, T };
}

export function idsTensor(b: { ids: number[]; B: number; T: number }): pj.Tensor {
  return pj.tensor(b.ids, [b.B, b.T], 'i32');
}

/** Logits of `model` on the batch (no grad), as a flat array. */
export function logits(model: CausalLM, b: { ids: number[]; B: number; T: number } = storyBatch()): Float32Array {
  return pj.tidy(() => pj.noGrad(() => model.forward(idsTensor(b)).toTyped() as Float32Array));
}

/** Largest |a − b| relative to the largest |a|. */
export function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) ((d = Math.max(d, Math.abs(a[i]! - b[i]!))), (m = Math.max(m, Math.abs(a[i]!))));
  return d / m;
}

/** `steps` AdamW steps on one batch; returns the first and last loss. */
export function trainSteps(model: CausalLM, peft: PeftModel, steps = 15, lr = 1e-2, b = storyBatch()): { first: number; last: number } {
  const opt = new pj.AdamW(peft.trainableParameters(), { lr });
  const losses: number[] = [];
  model.train();
  for (let s = 0; s < steps; s++) {
    losses.push(
      pj.tidy(() => {
        const l = model.loss(idsTensor(b), pj.tensor(b.targets, [b.B, b.T], 'i32'));
        l.backward();
        return l.item();
      }),
    );
    opt.step();
    opt.zeroGrad();
  }
  model.eval();
  return { first: losses[0]!, last: losses[losses.length - 1]! };
}

/**
 * Trains `config` a few steps on `base()`, saves it, loads it into a fresh base and checks identical logits;
 * returns the saved tensors' keys and shapes and the saved config.
 */
export function saveLoadRoundTrip(
  base: () => CausalLM,
  config: Record<string, unknown>,
  b = storyBatch(),
): { keys: Map<string, readonly number[]>; config: Record<string, unknown> } {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-classic-'));
  try {
    pj.manualSeed(5);
    const model = base();
    const peft = new PeftModel(model, config);
    trainSteps(model, peft, 3, 1e-2, b);
    const before = logits(model, b);
    peft.save(dir);
    const loaded = base();
    PeftModel.fromPretrained(loaded, dir);
    assert.deepEqual(logits(loaded, b), before, 'save → load changed the outputs');
    const files = readAdapterFiles(dir);
    return { keys: new Map([...files.tensors].map(([k, t]) => [k, t.shape])), config: files.rawConfig };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Writes `peft`'s merged checkpoint (config from `baseDir`, or `config`) and reloads it: its config and its logits
 * on `batch`.
 */
export function mergedCheckpoint(
  peft: PeftModel,
  baseDir: string,
  batch = storyBatch(baseDir),
  config?: Record<string, unknown>,
): { config: Record<string, unknown>; logits: Float32Array; names: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-merged-'));
  try {
    peft.saveMergedModel(dir, { config: config ?? baseDir });
    const model = loadCausalLM(dir);
    const names = model.namedParameters().map(([k]) => k);
    const out = { config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>, logits: logits(model, batch), names };
    model.dispose();
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Loads `baseDir`, adds `config` moved off its init ({@link perturb}), writes the merged checkpoint and asserts that
 * it reloads to the adapted logits (1e-5 relative) and that the adapter changed them; returns the checkpoint's
 * config and parameter names.
 */
export function checkMergedCheckpoint(baseDir: string, config: Record<string, unknown>): { config: Record<string, unknown>; names: string[] } {
  const model = loadCausalLM(baseDir);
  const peft = new PeftModel(model, config);
  perturb(peft);
  const batch = storyBatch(baseDir);
  const adapted = logits(model, batch);
  assert.ok(relDiff(adapted, peft.disableAdapters(() => logits(model, batch))) > 1e-3, 'the adapter changes the logits');
  const merged = mergedCheckpoint(peft, baseDir, batch);
  assert.ok(relDiff(merged.logits, adapted) < 1e-5, `merged checkpoint ≠ adapter: ${relDiff(merged.logits, adapted)}`);
  return merged;
}

/** Moves every trainable adapter tensor away from its init (as training would): adds 0.2·sin(i + 1) to entry i. */
export function perturb(peft: PeftModel): void {
  for (const t of peft.trainableParameters()) (t.data as Float32Array).forEach((v, i, a) => (a[i] = v + 0.2 * Math.sin(i + 1)));
}

/** Runs `fn` with PEFT warnings collected instead of printed: its result and the warnings. */
export function withWarnings<T>(fn: () => T): [T, string[]] {
  const warnings: string[] = [];
  const prev = pj.setPeftWarningHandler((m) => warnings.push(m));
  try {
    return [fn(), warnings];
  } finally {
    pj.setPeftWarningHandler(prev);
  }
}

/** Runs `fn` with PEFT warnings silenced. */
export function quietly<T>(fn: () => T): T {
  return withWarnings(fn)[0];
}
