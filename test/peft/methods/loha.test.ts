// LoHa: ΔW = (α/r)·(W1a·W1b) ⊙ (W2a·W2b) against a direct computation; PEFT key names and config fields
// (checked against PEFT 0.20 src/peft/tuners/loha/{config,layer}.py); the shared variant checks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { LohaLinear } from '../../../src/peft/loha/index.js';
import { adapted, relDiff, saveLoadRoundTrip, standardChecks, stories, Q_PROJ } from './variant-helpers.js';

const CONFIG = { peft_type: 'LOHA', r: 4, alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] };

describe('LoHa', () => {
  it('ΔW equals (α/r)·(W1a·W1b) ⊙ (W2a·W2b) computed directly; zero at init', () => {
    const { peft } = adapted({ ...CONFIG, init_weights: false });
    const layer = peft.model.getModule(Q_PROJ) as LohaLinear;
    const t = new Map(layer.adapterTensors('default').map(([k, v]) => [k, v.toTyped() as Float32Array]));
    const [out, inF, r] = [64, 64, 4];
    const prod = (a: Float32Array, b: Float32Array, i: number, j: number) => {
      let s = 0;
      for (let k = 0; k < r; k++) s += a[i * r + k]! * b[k * inF + j]!;
      return s;
    };
    const want = new Float32Array(out * inF);
    for (let i = 0; i < out; i++)
      for (let j = 0; j < inF; j++) want[i * inF + j] = (8 / 4) * prod(t.get('hada_w1_a')!, t.get('hada_w1_b')!, i, j) * prod(t.get('hada_w2_a')!, t.get('hada_w2_b')!, i, j);
    const got = pj.noGrad(() => layer.deltaWeight('default').toTyped() as Float32Array);
    assert.ok(relDiff(want, got) < 1e-5, `ΔW mismatch ${relDiff(want, got)}`);
    const zero = adapted(CONFIG).peft.model.getModule(Q_PROJ) as LohaLinear;
    assert.ok(pj.noGrad(() => (zero.deltaWeight('default').toTyped() as Float32Array).every((v) => v === 0)), 'init_weights true: ΔW = 0');
  });

  it('saves PEFT keys (hada_w1_a [out, r], hada_w1_b [r, in], …) and PEFT config fields', () => {
    const { keys, config } = saveLoadRoundTrip(stories, CONFIG);
    const p = 'base_model.model.model.layers.0.mlp.down_proj';
    assert.deepEqual(keys.get(`${p}.hada_w1_a`), [64, 4]);
    assert.deepEqual(keys.get(`${p}.hada_w1_b`), [4, 172]);
    assert.deepEqual(keys.get(`${p}.hada_w2_a`), [64, 4]);
    assert.deepEqual(keys.get(`${p}.hada_w2_b`), [4, 172]);
    assert.equal(keys.size, 5 * 3 * 4);
    assert.equal(config.peft_type, 'LOHA');
    for (const f of ['r', 'alpha', 'rank_dropout', 'module_dropout', 'use_effective_conv2d', 'init_weights', 'rank_pattern', 'alpha_pattern']) assert.ok(f in config, f);
  });

  standardChecks(CONFIG);
});
