// (IA)³: learned vectors rescale k, v (outputs) and the FFN intermediate (down_proj's input); identity at init;
// gradcheck; training on stories260K; HF PEFT keys (ia3_l [out, 1] / [1, in]) and config; exact merge.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { Ia3Linear } from '../../../src/peft/ia3/index.js';
import { checkMergedCheckpoint, logits, relDiff, saveLoadRoundTrip, stories, TINY_GPT2, trainSteps } from './classic-helpers.js';

const gen = new pj.Generator(7);
const leaf = (shape: number[]) => pj.keep(pj.randn(shape, 0.5, 0, gen));

describe('IA3', () => {
  it('scales the output of k/v and the input of the feedforward layer by ia3_l', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'IA3' });
    const layer0 = model.getModule('model.layers.0');
    const k = layer0.getModule('self_attn.k_proj') as Ia3Linear;
    const down = layer0.getModule('mlp.down_proj') as Ia3Linear;
    assert.equal(k.isFeedforward, false);
    assert.equal(down.isFeedforward, true);
    const x = pj.randn([3, 64], 1, 0, gen);
    const h = pj.randn([3, 172], 1, 0, gen);
    const y = (m: Ia3Linear, v: pj.Tensor) => pj.noGrad(() => m.forward(v).toTyped() as Float32Array);
    // At init (ones) the layers are the base layers.
    assert.deepEqual(y(k, x), pj.noGrad(() => k.base.forward(x).toTyped()));
    const lk = k.adapterTensors('default')[0]![1];
    const ld = down.adapterTensors('default')[0]![1];
    (lk.data as Float32Array).fill(0).set([2, -1], 0);
    (ld.data as Float32Array).fill(1)[5] = 3;
    const base = pj.noGrad(() => k.base.forward(x).toTyped() as Float32Array);
    const scaled = y(k, x);
    for (let r = 0; r < 3; r++) {
      assert.ok(Math.abs(scaled[r * 32]! - 2 * base[r * 32]!) < 1e-6 && Math.abs(scaled[r * 32 + 1]! + base[r * 32 + 1]!) < 1e-6);
      assert.equal(Math.abs(scaled[r * 32 + 2]!), 0);
    }
    const hScaled = pj.mul(h, pj.tensor(Array.from({ length: 172 }, (_, i) => (i === 5 ? 3 : 1)), [172]));
    assert.ok(relDiff(y(down, h), pj.noGrad(() => down.base.forward(hScaled).toTyped() as Float32Array)) < 1e-6);
    assert.equal(peft.parameterCounts().trainable, 5 * (32 + 32 + 172));
  });

  it('gradcheck: output-scaling and feedforward layers (f32)', () => {
    for (const ff of [false, true]) {
      const layer = new Ia3Linear(new pj.Linear(leaf([4, 5]), leaf([4])), ff);
      layer.addAdapter('default', false);
      layer.setActiveAdapters(['default'], false);
      const x = leaf([3, 5]);
      x.requiresGrad = true;
      pj.gradcheck(() => layer.forward(x), [x, ...layer.adapterTensors('default').map(([, t]) => t)]);
    }
  });

  it('training on stories260K lowers the loss; save → load is identical with PEFT keys', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'IA3' });
    const { first, last } = trainSteps(model, peft, 15, 3e-2);
    assert.ok(last < first - 0.1, `loss ${first} → ${last}`);
    const { keys, config } = saveLoadRoundTrip(stories, { peft_type: 'IA3' });
    assert.deepEqual(keys.get('base_model.model.model.layers.0.self_attn.k_proj.ia3_l'), [32, 1]);
    assert.deepEqual(keys.get('base_model.model.model.layers.4.mlp.down_proj.ia3_l'), [1, 172]);
    assert.equal(keys.size, 15);
    assert.deepEqual(config.feedforward_modules, ['down_proj']);
    assert.equal(config.init_ia3_weights, true);
    assert.equal(config.peft_type, 'IA3');
  });

  it('saveMergedModel on GPT-2 scales the biases of output-scaled layers too: it reloads to the adapted logits', () => {
    checkMergedCheckpoint(TINY_GPT2, { peft_type: 'IA3', target_modules: ['c_attn', 'mlp.c_proj'], feedforward_modules: ['mlp.c_proj'] });
  });

  it('merge equals the unmerged model and unmerge restores the base', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'IA3', init_ia3_weights: false });
    const base = peft.disableAdapters(() => logits(model));
    const adapted = logits(model);
    assert.ok(relDiff(adapted, base) > 1e-2);
    peft.merge();
    assert.ok(relDiff(logits(model), adapted) < 1e-5);
    peft.unmerge();
    assert.ok(relDiff(peft.disableAdapters(() => logits(model)), base) < 1e-5);
  });
});
