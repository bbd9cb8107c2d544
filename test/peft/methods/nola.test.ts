// NOLA: A = Σ α_i A_i, B = Σ β_j B_j over frozen seeded bases; the file holds only the coefficients (the config
// holds the seed), reloading regenerates identical bases; ΔW = (α/r)·B·A. PEFT has no NOLA (peftjs config).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { NolaLinear, nolaBases, nolaLayerSeed } from '../../../src/peft/nola/index.js';
import { adapted, relDiff, saveLoadRoundTrip, standardChecks, stories, Q_PROJ } from './variant-helpers.js';

const CONFIG = { peft_type: 'NOLA', r: 4, num_basis_A: 16, num_basis_B: 8, nola_alpha: 8, target_modules: ['q_proj', 'v_proj'], projection_prng_key: 9 };
const arr = (t: pj.Tensor) => t.toTyped() as Float32Array;

describe('NOLA', () => {
  it('A and B are the coefficient-weighted sums of the seeded bases; ΔW = (α/r)·B·A; zero at init', () => {
    const { peft } = adapted({ ...CONFIG, init_weights: false });
    const layer = peft.model.getModule(Q_PROJ) as NolaLinear;
    const coef = new Map(layer.adapterTensors('default').map(([k, v]) => [k, arr(v)]));
    const { a, b } = pj.noGrad(() => layer.factors('default'));
    const spec = { r: 4, kA: 16, kB: 8, scale: 2, dropout: 0, seed: 0, init: false };
    // The bases of this layer, regenerated independently: its seed is derived from (key, module name).
    const bases = nolaBases({ ...spec, seed: nolaLayerSeed(9, Q_PROJ) }, 64, 64);
    const combine = (c: Float32Array, basis: Float32Array, n: number) => Float32Array.from({ length: n }, (_, x) => c.reduce((s, ci, i) => s + ci * basis[i * n + x]!, 0));
    assert.ok(relDiff(combine(coef.get('nola_coef_A')!, arr(bases.a), 4 * 64), arr(a)) < 1e-5);
    assert.ok(relDiff(combine(coef.get('nola_coef_B')!, arr(bases.b), 64 * 4), arr(b)) < 1e-5);
    const other = pj.noGrad(() => arr((peft.model.getModule('model.layers.1.self_attn.q_proj') as NolaLinear).factors('default').a));
    assert.notDeepEqual(other, arr(a), 'each layer has its own bases');
    const zero = adapted(CONFIG).peft.model.getModule(Q_PROJ) as NolaLinear;
    assert.ok(pj.noGrad(() => arr(zero.deltaWeight('default')).every((v) => v === 0)), 'β = 0 at init');
  });

  it('the saved file holds only the coefficients (+ the seed in the config); reload regenerates identical bases', () => {
    const { keys, config } = saveLoadRoundTrip(stories, CONFIG);
    assert.equal(keys.size, 5 * 2 * 2);
    for (const [k, shape] of keys) {
      assert.match(k, /\.nola_coef_[AB]$/);
      assert.deepEqual(shape, k.endsWith('_A') ? [16] : [8]);
    }
    assert.equal(config.projection_prng_key, 9);
    assert.equal(config.peft_type, 'NOLA');
  });

  standardChecks(CONFIG, { lr: 3e-2 });
});
