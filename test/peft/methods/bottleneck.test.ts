// Houlsby bottleneck adapters (down, nonlinearity, up, residual after o_proj and down_proj) and Compacter's PHM form
// (W = Σᵢ Aᵢ ⊗ Bᵢ): identity at init, the bottleneck's parameter count, the Kronecker sum, gradcheck, training on
// stories260K, save → load.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { BottleneckLinear, kroneckerSum } from '../../../src/peft/bottleneck/index.js';
import { logits, saveLoadRoundTrip, stories, trainSteps } from './classic-helpers.js';

const gen = new pj.Generator(17);
const leaf = (shape: number[], std = 0.5) => pj.keep(pj.randn(shape, std, 0, gen));

describe('BOTTLENECK', () => {
  it('starts as the identity; m = d / reduction_factor; parameters 2dm + d + m per adapted layer', () => {
    const model = stories();
    const base = logits(model);
    const peft = new PeftModel(model, { peft_type: 'BOTTLENECK', reduction_factor: 16 });
    assert.deepEqual(logits(model), base);
    const d = 64;
    const m = 4;
    assert.equal(peft.parameterCounts().trainable, 2 * 5 * (2 * d * m + d + m));
    const o = model.getModule('model.layers.0.self_attn.o_proj') as BottleneckLinear;
    assert.deepEqual(o.adapterTensors('default').map(([k, t]) => [k, [...t.shape]]), [
      ['adapter_down.weight', [m, d]],
      ['adapter_down.bias', [m]],
      ['adapter_up.weight', [d, m]],
      ['adapter_up.bias', [d]],
    ]);
  });

  it('kroneckerSum is Σᵢ Aᵢ ⊗ Bᵢ', () => {
    const a = pj.randn([2, 2, 2], 1, 0, gen);
    const b = pj.randn([2, 3, 2], 1, 0, gen);
    const got = kroneckerSum(a, b).toTyped() as Float32Array;
    const A = a.toTyped() as Float32Array;
    const B = b.toTyped() as Float32Array;
    for (let r = 0; r < 6; r++)
      for (let c = 0; c < 4; c++) {
        let want = 0;
        for (let i = 0; i < 2; i++) want += A[i * 4 + Math.floor(r / 3) * 2 + Math.floor(c / 2)]! * B[i * 6 + (r % 3) * 2 + (c % 2)]!;
        assert.ok(Math.abs(got[r * 4 + c]! - want) < 1e-5);
      }
  });

  it('Compacter: PHM projections with n = 4, rank 1 use far fewer parameters and start as the identity', () => {
    const model = stories();
    const base = logits(model);
    const peft = new PeftModel(model, { peft_type: 'BOTTLENECK', phm_layer: true, reduction_factor: 8, non_linearity: 'gelu' });
    assert.deepEqual(logits(model), base);
    const [n, d, m] = [4, 64, 8];
    const perProjection = (p: number, q: number) => n * n * n + n * p + n * q;
    assert.equal(peft.parameterCounts().trainable, 2 * 5 * (perProjection(d / n, m / n) + m + perProjection(m / n, d / n) + d));
    assert.ok(peft.parameterCounts().trainable < 2 * 5 * (2 * d * m + d + m) / 2);
  });

  it('gradcheck: plain and PHM adapters (f32)', () => {
    for (const phm of [null, { n: 2, rank: 1, factorized: true, initRange: 0.3 }]) {
      const layer = new BottleneckLinear(new pj.Linear(leaf([4, 6]), leaf([4])));
      layer.addAdapter('default', { width: 2, act: 'swish', phm, init: 'bert' });
      for (const [, t] of layer.adapterTensors('default')) (t.data as Float32Array).set(pj.randn([t.size], 0.5, 0, gen).toTyped() as Float32Array);
      layer.setActiveAdapters(['default'], false);
      const x = leaf([3, 6]);
      x.requiresGrad = true;
      pj.gradcheck(() => layer.forward(x), [x, ...layer.adapterTensors('default').map(([, t]) => t)]);
    }
  });

  it('training lowers the loss (Houlsby and Compacter); save → load identical', () => {
    for (const cfg of [{ peft_type: 'BOTTLENECK' }, { peft_type: 'BOTTLENECK', phm_layer: true, reduction_factor: 8 }]) {
      const model = stories();
      const peft = new PeftModel(model, cfg);
      const { first, last } = trainSteps(model, peft, 15, 1e-2);
      assert.ok(last < first - 0.1, `${JSON.stringify(cfg)}: loss ${first} → ${last}`);
      const { keys } = saveLoadRoundTrip(stories, cfg);
      assert.ok(keys.has(`base_model.model.model.layers.1.mlp.down_proj.adapter_up.${cfg.phm_layer ? 'W_right' : 'weight'}`));
    }
  });
});
