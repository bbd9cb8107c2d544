// LayerNorm tuning: only the norms' affine parameters train (copies, PEFT's ln_tuning_layers); gradcheck; training
// on stories260K; HF PEFT keys and config; merge swaps the tuned parameters in (exact) and back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { LnTuningLayer } from '../../../src/peft/ln-tuning/index.js';
import { checkMergedCheckpoint, logits, relDiff, saveLoadRoundTrip, stories, TINY_GPT2, trainSteps } from './classic-helpers.js';

const gen = new pj.Generator(13);

describe('LN_TUNING', () => {
  it('trains only the norm weights: 2 per layer + the final norm, nothing else gets a gradient', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'LN_TUNING' });
    const names = peft.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
    assert.equal(names.length, 2 * 5 + 1);
    assert.ok(names.every((n) => /(input_layernorm|post_attention_layernorm|model\.norm)\.ln_tuning_layers\.default\.weight$/.test(n)), names.join());
    assert.equal(peft.parameterCounts().trainable, 11 * 64);
    trainSteps(model, peft, 1);
    for (const [n, p] of peft.namedParameters()) assert.equal(p.grad != null && !names.includes(n), false, `${n} has a gradient`);
  });

  it('gradcheck of the tuned RMSNorm (f32)', () => {
    const layer = new LnTuningLayer(new pj.RMSNorm(pj.keep(pj.randn([6], 0.5, 1, gen)), 1e-5));
    layer.addAdapter('default');
    layer.setActiveAdapters(['default'], false);
    const x = pj.keep(pj.randn([3, 6], 1, 0, gen));
    x.requiresGrad = true;
    pj.gradcheck(() => layer.forward(x), [x, layer.adapterTensors('default')[0]![1]]);
  });

  it('saveMergedModel on GPT-2 writes the tuned LayerNorm weights and biases: it reloads to the adapted logits', () => {
    checkMergedCheckpoint(TINY_GPT2, { peft_type: 'LN_TUNING', target_modules: ['ln_1', 'ln_f'] });
  });

  it('training lowers the loss; merge = unmerged; save → load identical with PEFT keys', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'LN_TUNING' });
    const base = logits(model);
    const { first, last } = trainSteps(model, peft, 15, 3e-2);
    assert.ok(last < first - 0.1, `loss ${first} → ${last}`);
    const tuned = logits(model);
    peft.merge();
    assert.ok(relDiff(logits(model), tuned) < 1e-6);
    peft.unmerge();
    assert.ok(relDiff(peft.disableAdapters(() => logits(model)), base) < 1e-6);
    const { keys, config } = saveLoadRoundTrip(stories, { peft_type: 'LN_TUNING' });
    assert.deepEqual(keys.get('base_model.model.model.layers.2.input_layernorm.ln_tuning_layers.weight'), [64]);
    assert.deepEqual(keys.get('base_model.model.model.norm.ln_tuning_layers.weight'), [64]);
    assert.equal(keys.size, 11);
    assert.deepEqual(config.target_modules, ['input_layernorm', 'post_attention_layernorm', 'norm']);
  });
});
