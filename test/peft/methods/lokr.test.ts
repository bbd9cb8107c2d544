// LoKr: ΔW = (α/r)·W1 ⊗ W2 against a direct Kronecker product; PEFT's factorization and factor layout
// (decompose_both, decompose_factor), key names and config fields (PEFT 0.20 src/peft/tuners/lokr/{config,layer}.py).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { factorization, LokrLinear } from '../../../src/peft/lokr/index.js';
import { adapted, relDiff, saveLoadRoundTrip, standardChecks, stories } from './variant-helpers.js';

const CONFIG = { peft_type: 'LOKR', r: 2, alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] };
const DOWN = 'model.layers.0.mlp.down_proj';

describe('LoKr', () => {
  it('factorization matches PEFT (256 → 16·16, 128 → 8·16, 127 → 1·127, factor 4 → 4·32, 172 → 4·43)', () => {
    assert.deepEqual(factorization(256), [16, 16]);
    assert.deepEqual(factorization(128), [8, 16]);
    assert.deepEqual(factorization(127), [1, 127]);
    assert.deepEqual(factorization(128, 4), [4, 32]);
    assert.deepEqual(factorization(172), [4, 43]);
  });

  it('ΔW equals (α/r)·kron(W1, W2) computed directly (W2 = W2a·W2b when r is small); zero at init', () => {
    const { peft } = adapted({ ...CONFIG, init_weights: false, decompose_both: true });
    const layer = peft.model.getModule(DOWN) as LokrLinear; // out 64 = 8·8, in 172 = 4·43
    const t = new Map(layer.adapterTensors('default').map(([k, v]) => [k, { d: v.toTyped() as Float32Array, s: v.shape }]));
    assert.deepEqual([...t.keys()].sort(), ['lokr_w1_a', 'lokr_w1_b', 'lokr_w2_a', 'lokr_w2_b']);
    const mm = (a: Float32Array, b: Float32Array, m: number, k: number, n: number) =>
      Float32Array.from({ length: m * n }, (_, x) => {
        let s = 0;
        for (let j = 0; j < k; j++) s += a[Math.floor(x / n) * k + j]! * b[j * n + (x % n)]!;
        return s;
      });
    const w1 = mm(t.get('lokr_w1_a')!.d, t.get('lokr_w1_b')!.d, 8, 2, 4);
    const w2 = mm(t.get('lokr_w2_a')!.d, t.get('lokr_w2_b')!.d, 8, 2, 43);
    const want = new Float32Array(64 * 172);
    for (let i = 0; i < 8; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 8; k++) for (let l = 0; l < 43; l++) want[(i * 8 + k) * 172 + j * 43 + l] = 2 * w1[i * 4 + j]! * w2[k * 43 + l]!;
    const got = pj.noGrad(() => layer.deltaWeight('default').toTyped() as Float32Array);
    assert.ok(relDiff(want, got) < 1e-5, `ΔW mismatch ${relDiff(want, got)}`);
    const zero = adapted(CONFIG).peft.model.getModule(DOWN) as LokrLinear;
    assert.ok(pj.noGrad(() => (zero.deltaWeight('default').toTyped() as Float32Array).every((v) => v === 0)), 'init_weights true: ΔW = 0');
  });

  it('saves PEFT keys: whole W1 [l, m] unless decompose_both, W2 factored when r < max(k, n)/2; config fields', () => {
    const { keys, config } = saveLoadRoundTrip(stories, { ...CONFIG, decompose_factor: 4 });
    const p = `base_model.model.${DOWN}`;
    assert.deepEqual(keys.get(`${p}.lokr_w1`), [4, 4]); // out 64 = 4·16, in 172 = 4·43
    assert.deepEqual(keys.get(`${p}.lokr_w2_a`), [16, 2]);
    assert.deepEqual(keys.get(`${p}.lokr_w2_b`), [2, 43]);
    assert.equal(config.peft_type, 'LOKR');
    for (const f of ['r', 'alpha', 'decompose_both', 'decompose_factor', 'rank_dropout_scale', 'init_weights', 'rank_pattern']) assert.ok(f in config, f);
  });

  standardChecks(CONFIG);
});
