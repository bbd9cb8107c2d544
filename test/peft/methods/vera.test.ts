// VeRA: ΔW = diag(λ_b)·B·diag(λ_d)·A with frozen projections shared by all layers and regenerated from
// projection_prng_key; with save_projection the file also holds them (PEFT's vera_A / vera_B) and they win on load; PEFT key names / config fields (PEFT 0.20 src/peft/tuners/vera/{config,layer,model}.py).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersWith } from '../../../src/peft/common/seeded-basis.js';
import * as pj from '../../../src/index.js';
import { VeraLinear } from '../../../src/peft/vera/index.js';
import { adapted, logits, relDiff, withWarnings, saveLoadRoundTrip, standardChecks, stories, Q_PROJ, setCorner, swappedProjections } from './variant-helpers.js';

const CONFIG = { peft_type: 'VERA', r: 16, target_modules: ['q_proj', 'v_proj'], projection_prng_key: 3 };
const V_PROJ = 'model.layers.0.self_attn.v_proj';
const arr = (t: pj.Tensor) => t.toTyped() as Float32Array;

describe('VeRA', () => {
  it('projections are shared: identical across layers, v_proj\'s B is the top rows of q_proj\'s; they follow the seed', () => {
    const { peft } = adapted(CONFIG);
    const q0 = (peft.model.getModule(Q_PROJ) as VeraLinear).projection('default');
    const q3 = (peft.model.getModule('model.layers.3.self_attn.q_proj') as VeraLinear).projection('default');
    const v0 = (peft.model.getModule(V_PROJ) as VeraLinear).projection('default');
    assert.deepEqual(arr(q0.a), arr(q3.a));
    assert.deepEqual(arr(q0.b), arr(q3.b));
    assert.deepEqual(arr(v0.b), arr(q0.b).subarray(0, 32 * 16), 'B [32, r] is the first 32 rows of B [64, r]');
    assert.deepEqual(arr(v0.a), arr(q0.a), 'same in-features: same A');
    const other = (adapted({ ...CONFIG, projection_prng_key: 4 }).peft.model.getModule(Q_PROJ) as VeraLinear).projection('default');
    assert.notDeepEqual(arr(other.a), arr(q0.a));
    const bound = Math.sqrt(6 / 64);
    assert.ok(arr(q0.a).every((v) => Math.abs(v) <= bound) && Math.max(...arr(q0.a).map(Math.abs)) > 0.9 * bound, 'Kaiming-uniform A');
  });

  it('save_projection false: the file holds only λ_b [out] and λ_d [r] (+ the seed in the config); reload regenerates identical projections', () => {
    const { keys, config } = saveLoadRoundTrip(stories, { ...CONFIG, save_projection: false });
    assert.equal(keys.size, 5 * 2 * 2);
    for (const [k, shape] of keys) {
      assert.match(k, /\.vera_lambda_[bd]$/);
      assert.deepEqual(shape, k.endsWith('_d') ? [16] : [k.includes('v_proj') ? 32 : 64]);
    }
    assert.equal(config.projection_prng_key, 3);
    assert.equal(config.peft_type, 'VERA');
    for (const f of ['r', 'save_projection', 'vera_dropout', 'd_initial', 'fan_in_fan_out', 'bias', 'init_weights']) assert.ok(f in config, f);
  });

  it('save_projection (default): the file also holds PEFT\'s shared vera_A [r, max in] and vera_B [max out, r]', () => {
    const { keys } = saveLoadRoundTrip(stories, CONFIG);
    assert.equal(keys.size, 5 * 2 * 2 + 2);
    assert.deepEqual(keys.get('base_model.vera_A'), [16, 64]);
    assert.deepEqual(keys.get('base_model.vera_B'), [64, 16]);
  });

  const setLayers = (peft: pj.PeftModel, a: Float32Array, b: Float32Array) => {
    for (const l of layersWith(peft, 'default', VeraLinear)) {
      setCorner(l.projection('default').a, a, 64);
      setCorner(l.projection('default').b, b, 16);
    }
  };

  it('a file\'s own projections win over the seed: each layer uses their top-left corner (A[:, :in], B[:out, :])', () => {
    const { loaded, seeded, byHand, warnings } = swappedProjections(CONFIG, 'vera', setLayers);
    assert.ok(relDiff(loaded, seeded) > 1e-3, 'the file\'s projections change the outputs');
    assert.ok(relDiff(loaded, byHand) < 1e-6, `loaded ≠ a model built from the file's projections (${relDiff(loaded, byHand)})`);
    assert.deepEqual(warnings, []);
  });

  it('a file with projections but save_projection false: warned (as PEFT warns), and the file\'s projections are used', () => {
    const { loaded, byHand, warnings } = swappedProjections(CONFIG, 'vera', setLayers, { save_projection: false });
    assert.ok(relDiff(loaded, byHand) < 1e-6);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /save_projection false but the file holds base_model\.vera_A; using the file's values/);
  });

  it('a file without projections but save_projection true: warned, and regenerated from the seed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-vera-'));
    try {
      const { model, peft } = adapted({ ...CONFIG, init_weights: false, save_projection: false });
      peft.save(dir);
      const files = pj.readAdapterFiles(dir);
      pj.writeAdapterFiles(dir, { ...files.config, save_projection: true } as pj.PeftConfigBase, files.tensors);
      const loaded = stories();
      const [, warnings] = withWarnings(() => pj.PeftModel.fromPretrained(loaded, dir));
      assert.match(warnings.join('\n'), /save_projection true but the file lacks base_model\.vera_A; regenerating it from projection_prng_key/);
      assert.deepEqual(logits(loaded), logits(model));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the projections span the largest targeted layer: A [r, max in] ~ U(±√(6/max in)) for every layer, as PEFT', () => {
    const { peft } = adapted({ ...CONFIG, target_modules: ['q_proj', 'down_proj'] }); // in 64 and 172
    const q = (peft.model.getModule(Q_PROJ) as VeraLinear).projection('default');
    const down = (peft.model.getModule('model.layers.0.mlp.down_proj') as VeraLinear).projection('default');
    const bound = Math.sqrt(6 / 172);
    assert.ok(arr(down.a).every((v) => Math.abs(v) <= bound) && Math.max(...arr(down.a).map(Math.abs)) > 0.9 * bound);
    assert.ok(arr(q.a).every((v) => Math.abs(v) <= bound), 'q_proj\'s A is a corner of the same [r, 172] matrix');
    for (let i = 0; i < 16; i++) assert.deepEqual(arr(q.a).subarray(i * 64, (i + 1) * 64), arr(down.a).subarray(i * 172, i * 172 + 64));
  });

  it('init: λ_b = 0 (output = base), λ_d = d_initial; ΔW = diag(λ_b)·B·diag(λ_d)·A', () => {
    const { model, peft } = adapted(CONFIG);
    const layer = peft.model.getModule(Q_PROJ) as VeraLinear;
    const t = new Map(layer.adapterTensors('default').map(([k, v]) => [k, arr(v)]));
    assert.ok(t.get('vera_lambda_b')!.every((v) => v === 0));
    assert.ok(t.get('vera_lambda_d')!.every((v) => Math.abs(v - 0.1) < 1e-7));
    assert.deepEqual(logits(model), peft.disableAdapters(() => logits(model)));
    const lb = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const ld = Float32Array.from({ length: 16 }, (_, i) => Math.cos(i));
    (layer.adapterTensors('default').find(([k]) => k === 'vera_lambda_b')![1].data as Float32Array).set(lb);
    (layer.adapterTensors('default').find(([k]) => k === 'vera_lambda_d')![1].data as Float32Array).set(ld);
    const { a, b } = layer.projection('default');
    const [A, B] = [arr(a), arr(b)];
    const want = Float32Array.from({ length: 64 * 64 }, (_, x) => {
      const [i, j] = [Math.floor(x / 64), x % 64];
      let s = 0;
      for (let k = 0; k < 16; k++) s += B[i * 16 + k]! * ld[k]! * A[k * 64 + j]!;
      return lb[i]! * s;
    });
    assert.ok(relDiff(want, pj.noGrad(() => arr(layer.deltaWeight('default')))) < 1e-5);
  });

  standardChecks(CONFIG, { lr: 3e-2 });
});
