// SSF: y = γ ⊙ (Wx + b) + β per output channel; the folded model (W ← diag(γ)W, b ← γb + β) equals the unfolded
// one; gradcheck; training on stories260K; save → load.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { SsfLinear } from '../../../src/peft/ssf/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkMergedCheckpoint, logits, mergedCheckpoint, relDiff, saveLoadRoundTrip, stories, STORIES, trainSteps } from './classic-helpers.js';

const gen = new pj.Generator(11);
const leaf = (shape: number[]) => pj.keep(pj.randn(shape, 0.5, 0, gen));

describe('SSF', () => {
  it('computes γ ⊙ base(x) + β', () => {
    const layer = new SsfLinear(new pj.Linear(leaf([3, 4]), leaf([3])));
    layer.addAdapter('default', false);
    layer.setActiveAdapters(['default'], false);
    const x = leaf([2, 4]);
    const [[, g], [, b]] = layer.adapterTensors('default') as [string, pj.Tensor][];
    const want = pj.noGrad(() => pj.add(pj.mul(layer.base.forward(x), g!), b!).toTyped() as Float32Array);
    assert.deepEqual(pj.noGrad(() => layer.forward(x).toTyped()), want);
  });

  it('folded equals unfolded on stories260K (bias-less layers gain the shift as a bias), and unfolds back', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'SSF', init_ssf_weights: false });
    const base = peft.disableAdapters(() => logits(model));
    const unfolded = logits(model);
    assert.ok(relDiff(unfolded, base) > 1e-3);
    peft.merge();
    const q = model.getModule('model.layers.0.self_attn.q_proj') as SsfLinear;
    assert.ok(q.base.bias, 'the fold stores the shift in a bias');
    assert.ok(relDiff(logits(model), unfolded) < 1e-5, `folded ≠ unfolded: ${relDiff(logits(model), unfolded)}`);
    peft.unmerge();
    assert.ok(relDiff(logits(model), unfolded) < 1e-5);
  });

  it('saveMergedModel on Llama: the shifts become biases (attention_bias / mlp_bias set, zero biases for the rest of each group); it reloads to the adapted logits', () => {
    const merged = checkMergedCheckpoint(STORIES, { peft_type: 'SSF', target_modules: ['q_proj', 'down_proj'] });
    assert.equal(merged.config.attention_bias, true);
    assert.equal(merged.config.mlp_bias, true);
    for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'mlp.up_proj', 'mlp.down_proj'])
      assert.ok(merged.names.includes(`model.layers.4.${m}.bias`), m);
  });

  it('saveMergedModel refuses a shift the checkpoint format has no bias for (a Qwen2 o_proj)', () => {
    const peft = new PeftModel(stories(), { peft_type: 'SSF', target_modules: ['o_proj'], init_ssf_weights: false });
    const config = { ...JSON.parse(readFileSync(join(STORIES, 'config.json'), 'utf8')), model_type: 'qwen2' };
    assert.throws(() => mergedCheckpoint(peft, STORIES, undefined, config), /adds model\.layers\.0\.self_attn\.o_proj\.bias .*qwen2 checkpoint has no place for; save the adapter instead/);
  });

  it('gradcheck (f32)', () => {
    const layer = new SsfLinear(new pj.Linear(leaf([4, 5]), null));
    layer.addAdapter('default', false);
    layer.setActiveAdapters(['default'], false);
    const x = leaf([3, 5]);
    x.requiresGrad = true;
    pj.gradcheck(() => layer.forward(x), [x, ...layer.adapterTensors('default').map(([, t]) => t)]);
  });

  it('training lowers the loss; save → load is identical', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'SSF', target_modules: ['q_proj', 'v_proj', 'down_proj'] });
    const { first, last } = trainSteps(model, peft, 15, 2e-2);
    assert.ok(last < first - 0.1, `loss ${first} → ${last}`);
    const { keys, config } = saveLoadRoundTrip(stories, { peft_type: 'SSF' });
    assert.deepEqual(keys.get('base_model.model.model.layers.0.mlp.up_proj.ssf_scale'), [172]);
    assert.deepEqual(keys.get('base_model.model.model.layers.0.mlp.up_proj.ssf_shift'), [172]);
    assert.equal(keys.size, 2 * 7 * 5);
    assert.equal(config.peft_type, 'SSF');
  });
});
