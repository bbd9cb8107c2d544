// Shared checks for the LoRA-variant method tests (DoRA, VeRA, NOLA, RandLoRA, LoHa, LoKr, LoLDU, DyLoRA,
// AdaLoRA) on the real stories260K-hf checkpoint: layer gradcheck, a short training run that lowers the loss,
// save → load → identical outputs, merged = unmerged (1e-5 relative) and unmerge restoring the base.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import type { CausalLM } from '../../../src/models/types.js';
import { idsTensor, logits, quietly, relDiff, saveLoadRoundTrip, stories, storyBatch, trainSteps } from './classic-helpers.js';

export { idsTensor, logits, quietly, relDiff, saveLoadRoundTrip, stories, storyBatch, trainSteps };

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
