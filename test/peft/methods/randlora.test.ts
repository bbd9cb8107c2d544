// RandLoRA: ΔW = (α/r)·Σ_j B_j·diag(Λ_j)·A·diag(Γ_j) reaches full rank (rank > r) with frozen seeded bases; the
// file holds Λ and Γ and, with save_projection, PEFT's shared randlora_A / randlora_B (which win on load); PEFT key names and config fields (PEFT 0.20 src/peft/tuners/randlora/{config,layer,model}.py).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { layersWith } from '../../../src/peft/common/seeded-basis.js';
import * as pj from '../../../src/index.js';
import { RandLoraLinear, randLoraBases } from '../../../src/peft/randlora/index.js';
import { adapted, relDiff, saveLoadRoundTrip, standardChecks, stories, Q_PROJ, setCorner, swappedProjections } from './variant-helpers.js';

const CONFIG = { peft_type: 'RANDLORA', r: 8, randlora_alpha: 16, target_modules: ['q_proj', 'v_proj'], projection_prng_key: 2 };
const V_PROJ = 'model.layers.0.self_attn.v_proj';
const arr = (t: pj.Tensor) => t.toTyped() as Float32Array;

/** Numerical rank: singular values above 1e-4 × the largest. */
function rankOf(w: Float32Array, m: number, n: number): number {
  const { s } = pj.svd(w, m, n);
  return s.filter((v) => v > 1e-4 * s[0]!).length;
}

describe('RandLoRA', () => {
  it('ΔW reaches full rank (> r): v_proj [32, 64] has rank 32 with r = 8 once Γ varies; matches the explicit sum of bases', () => {
    const { peft } = adapted({ ...CONFIG, init_weights: false });
    const layer = peft.model.getModule(V_PROJ) as RandLoraLinear; // out 32 < in 64: d = 32, D = 64, n = 4 bases
    const gammaT = layer.adapterTensors('default').find(([k]) => k === 'randlora_gamma')![1];
    // A constant Γ (its init) makes every term share A's r directions (rank ≤ r); Γ varying per basis, as training
    // makes it, unlocks the full rank.
    assert.ok(rankOf(pj.noGrad(() => arr(layer.deltaWeight('default'))), 32, 64) <= 8);
    const g = new pj.Generator(8);
    (gammaT.data as Float32Array).set(Float32Array.from({ length: gammaT.size }, () => g.normal()));
    const delta = pj.noGrad(() => arr(layer.deltaWeight('default')));
    assert.equal(rankOf(delta, 32, 64), 32);
    const t = new Map(layer.adapterTensors('default').map(([k, v]) => [k, arr(v)]));
    const [lambda, gamma] = [t.get('randlora_lambda')!, t.get('randlora_gamma')!]; // [8, 4], [4, 32]
    const { a, b } = randLoraBases(2, 8, 64, 32);
    const [A, B] = [arr(a), arr(b)]; // A [8, 1, 32], B [64, 32]
    // ΔWᵀ [in 64, out 32] = (α/r)·Σ_{i,j} B̂[:, k(i,j)]·Λ[i,j]·A[i, :]⊙Γ[j, :], k = i·n + j paired as PEFT flattens.
    const want = new Float32Array(32 * 64);
    for (let i = 0; i < 8; i++)
      for (let j = 0; j < 4; j++)
        for (let o = 0; o < 32; o++)
          for (let c = 0; c < 64; c++) want[o * 64 + c]! += 2 * B[c * 32 + i * 4 + j]! * lambda[i * 4 + j]! * A[i * 32 + o]! * gamma[j * 32 + o]!;
    assert.ok(relDiff(want, delta) < 1e-5, `ΔW mismatch ${relDiff(want, delta)}`);
    const zero = adapted(CONFIG).peft.model.getModule(V_PROJ) as RandLoraLinear;
    assert.ok(pj.noGrad(() => arr(zero.deltaWeight('default')).every((v) => v === 0)), 'Λ = 0 at init');
  });

  it('the file holds Λ [r, n] and Γ [n, min(in, out)], and PEFT\'s shared bases only with save_projection; PEFT config fields', () => {
    const off = saveLoadRoundTrip(stories, { ...CONFIG, save_projection: false }).keys;
    assert.equal(off.size, 5 * 2 * 2);
    const { keys, config } = saveLoadRoundTrip(stories, CONFIG);
    assert.equal(keys.size, 5 * 2 * 2 + 2);
    // largest (out, in) = (64, 64): A [r, 1, 64], B [64, ⌈64/r⌉, r]
    assert.deepEqual(keys.get('base_model.randlora_A'), [8, 1, 64]);
    assert.deepEqual(keys.get('base_model.randlora_B'), [64, 8, 8]);
    assert.deepEqual(keys.get(`base_model.model.${Q_PROJ}.randlora_lambda`), [8, 8]);
    assert.deepEqual(keys.get(`base_model.model.${Q_PROJ}.randlora_gamma`), [8, 64]);
    assert.deepEqual(keys.get(`base_model.model.${V_PROJ}.randlora_gamma`), [4, 32]);
    assert.equal(config.peft_type, 'RANDLORA');
    for (const f of ['r', 'projection_prng_key', 'save_projection', 'sparse', 'very_sparse', 'randlora_alpha', 'randlora_dropout']) assert.ok(f in config, f);
  });

  it('a file\'s own bases win over the seed: each layer uses A[:, :, :d] and B[:D, :n, :]', () => {
    const { loaded, seeded, byHand } = swappedProjections(CONFIG, 'randlora', (peft, a, b) => {
      for (const l of layersWith(peft, 'default', RandLoraLinear)) {
        setCorner(l.basis('default').a, a, 64);
        setCorner(l.basis('default').b, b, 64);
      }
    });
    assert.ok(relDiff(loaded, seeded) > 1e-3, 'the file\'s bases change the outputs');
    assert.ok(relDiff(loaded, byHand) < 1e-6, `loaded ≠ a model built from the file's bases (${relDiff(loaded, byHand)})`);
  });

  standardChecks(CONFIG, { lr: 3e-2 });
});
