// SSF: y = γ ⊙ (Wx + b) + β per output channel; the folded model (W ← diag(γ)W, b ← γb + β) equals the unfolded
// one; gradcheck; training on stories260K; save → load.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { SsfLinear } from '../../../src/peft/ssf/index.js';
import { logits, relDiff, saveLoadRoundTrip, stories, trainSteps } from './classic-helpers.js';

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
