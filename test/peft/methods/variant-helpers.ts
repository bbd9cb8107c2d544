// Shared checks for the LoRA-variant method tests (DoRA, VeRA, NOLA, RandLoRA, LoHa, LoKr, LoLDU, DyLoRA,
// AdaLoRA) on the real stories260K-hf checkpoint: layer gradcheck, a short training run that lowers the loss,
// save → load → identical outputs, merged = unmerged (1e-5 relative) and unmerge restoring the base.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import type { CausalLM } from '../../../src/models/types.js';
import { idsTensor, logits, quietly, relDiff, saveLoadRoundTrip, stories, storyBatch, trainSteps, withWarnings } from './classic-helpers.js';

export { idsTensor, logits, quietly, relDiff, saveLoadRoundTrip, stories, storyBatch, trainSteps, withWarnings };

/** The module every layer-level check uses. */
export const Q_PROJ = 'model.layers.0.self_attn.q_proj';

/** A fresh stories260K with adapter `config` (warnings about unknown keys silenced), seeded. */
export function adapted(config: Record<string, unknown>, seed = 7): { model: CausalLM; peft: PeftModel } {
  pj.manualSeed(seed);
  const model = stories();
  const peft = quietly(() => new PeftModel(model, config));
  return { model, peft };
}

/** The adapter layer at `path` with its trainable tensors for `adapter`. */
export function layerOf(
  peft: PeftModel,
  path = Q_PROJ,
  keep: (name: string) => boolean = () => true,
): { layer: pj.Module & { forward(x: pj.Tensor): pj.Tensor }; trainable: pj.Tensor[] } {
  const layer = peft.model.getModule(path) as pj.Module & { forward(x: pj.Tensor): pj.Tensor };
  const trainable = layer
    .namedParameters()
    .filter(([n, p]) => p.requiresGrad && !n.startsWith('base_layer.') && keep(n))
    .map(([, p]) => p);
  return { layer, trainable };
}

/**
 * The checks every variant passes: gradcheck of an adapted layer after a few training steps (so no factor is
 * still zero), a training run that lowers the loss, save → load identity, and (when `merge`) merged = unmerged.
 */
export function standardChecks(
  config: Record<string, unknown>,
  opts: { merge?: boolean; lr?: number; steps?: number; gradcheck?: (paramName: string) => boolean } = {},
): void {
  it('gradcheck of the adapted layer (f32)', () => {
    const { model, peft } = adapted(config);
    trainSteps(model, peft, 3, opts.lr ?? 1e-2);
    const { layer, trainable } = layerOf(peft, Q_PROJ, opts.gradcheck);
    assert.ok(trainable.length > 0, 'the layer has trainable tensors');
    const x = pj.keep(pj.randn([3, 64], 1, 0, new pj.Generator(11)));
    pj.gradcheck(() => layer.forward(x), trainable, { maxPerInput: 24 });
  });

  it('a short training run on stories260K lowers the loss', () => {
    const { model, peft } = adapted(config);
    const { first, last } = trainSteps(model, peft, opts.steps ?? 12, opts.lr ?? 1e-2);
    assert.ok(last < first - 0.05, `loss ${first} → ${last}`);
  });

  it('save → load gives identical outputs', () => {
    saveLoadRoundTrip(stories, config);
  });

  if (opts.merge !== false)
    it('merged = unmerged within 1e-5 relative; unmerge restores the base weights', () => {
      const { model, peft } = adapted(config);
      trainSteps(model, peft, 3, opts.lr ?? 1e-2);
      const before = logits(model);
      const base = peft.disableAdapters(() => logits(model));
      assert.ok(relDiff(before, base) > 1e-3, 'the trained adapter changes the outputs');
      const w = pj.contiguousCopy((peft.model.getModule(Q_PROJ) as unknown as { weight: pj.Tensor }).weight).toTyped() as Float32Array;
      peft.merge();
      assert.ok(relDiff(before, logits(model)) < 1e-5, `merged vs unmerged: ${relDiff(before, logits(model))}`);
      peft.unmerge();
      const w2 = (peft.model.getModule(Q_PROJ) as unknown as { weight: pj.Tensor }).weight.toTyped() as Float32Array;
      assert.ok(relDiff(w, w2) < 1e-6, 'unmerge restores the base weight');
      assert.ok(relDiff(before, logits(model)) < 1e-5);
    });
}

/** Copies the top-left corner of `src` (a [·, cols] matrix) into `block`, viewed as [its first dim, the rest]. */
export function setCorner(block: pj.Tensor, src: Float32Array, cols: number): void {
  const [br, bc] = [block.shape[0]!, block.size / block.shape[0]!];
  for (let i = 0; i < br; i++) (block.data as Float32Array).set(src.subarray(i * cols, i * cols + bc), i * bc);
}

/**
 * Saves a trained-looking adapter, swaps the file's shared `base_model.<method>_A` / `_B` projections (VeRA, RandLoRA
 * with save_projection) for other values, applies `fileConfig` to the saved config and reloads it: returns the loaded
 * model's logits, the saving model's (seeded projections), the saving model's after its layers got the file's
 * corners by hand, and the warnings of the load.
 */
export function swappedProjections(
  config: Record<string, unknown>,
  method: 'vera' | 'randlora',
  setLayers: (peft: pj.PeftModel, a: Float32Array, b: Float32Array) => void,
  fileConfig: Record<string, unknown> = {},
) {
  const dir = mkdtempSync(join(tmpdir(), `peftjs-${method}-`));
  try {
    const { model, peft } = adapted({ ...config, init_weights: false });
    peft.save(dir);
    const files = pj.readAdapterFiles(dir);
    const g = new pj.Generator(11);
    const swapped = (k: string) => {
      const t = files.tensors.get(k)!;
      const data = Float32Array.from({ length: t.data.length }, () => g.uniform() - 0.5);
      files.tensors.set(k, { ...t, data });
      return data;
    };
    const [a, b] = [swapped(`base_model.${method}_A`), swapped(`base_model.${method}_B`)];
    pj.writeAdapterFiles(dir, { ...files.config, ...fileConfig }, files.tensors);
    const loaded = stories();
    const [, warnings] = withWarnings(() => pj.PeftModel.fromPretrained(loaded, dir));
    const seeded = logits(model);
    setLayers(peft, a, b);
    return { loaded: logits(loaded), seeded, byHand: logits(model), warnings };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
