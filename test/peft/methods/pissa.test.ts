// PiSSA (init_lora_weights "pissa" / "pissa_niter_N"): the base keeps W − s·B·A, A and B span the top-r singular
// subspace, and a trained PiSSA adapter converts to a plain LoRA on the original base (PEFT 0.20
// path_initial_model_for_weight_conversion). Checked against PEFT src/peft/tuners/lora/{layer,config}.py.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { randomizedSvd } from '../../../src/peft/common/rsvd.js';
import { matmul32 } from '../../../src/peft/common/linalg.js';
import { loadStories, logits, relErr, tokenBatch, train, weightOf } from './init-helpers.js';

const R = 4;
const CFG = { target_modules: ['q_proj', 'v_proj', 'down_proj'], r: R, lora_alpha: 8, init_lora_weights: 'pissa' } as const;
const TARGET = 'model.layers.0.self_attn.q_proj';

/** s·B·A of adapter "default" at `path`, [out, in]. */
function delta(peft: pj.PeftModel, path: string): { d: Float32Array; a: Float32Array; b: Float32Array; out: number; inF: number } {
  const layer = peft.model.getModule(path) as pj.LoraLinear;
  const t = new Map(layer.adapterTensors('default'));
  const a = t.get('lora_A.weight')!.toTyped() as Float32Array;
  const b = t.get('lora_B.weight')!.toTyped() as Float32Array;
  const { outFeatures: out, inFeatures: inF } = layer.base;
  const d = matmul32(b, a, out, R, inF).map((v) => v * layer.scaling.get('default')!);
  return { d, a, b, out, inF };
}

describe('PiSSA', () => {
  it('base + ΔW equals the original weight at init, and the outputs are unchanged', () => {
    const model = loadStories();
    const w0 = weightOf(model, TARGET);
    const { ids } = tokenBatch();
    const before = logits(model, ids);
    const peft = new pj.PeftModel(model, CFG);
    const { d } = delta(peft, TARGET);
    const res = weightOf(peft.model, TARGET);
    assert.ok(relErr(res.map((v, i) => v + d[i]!), w0) < 1e-5);
    assert.ok(relErr(res, w0) > 0.1, 'the base really holds a residual');
    assert.ok(relErr(logits(peft.model as pj.CausalLM, ids), before) < 1e-5);
  });

  it('A and B span the top-r singular subspace: s·B·A is the rank-r truncated SVD of W', () => {
    const model = loadStories();
    const w0 = weightOf(model, TARGET);
    const peft = new pj.PeftModel(model, CFG);
    const { d, out, inF } = delta(peft, TARGET);
    const f = pj.svd(w0, out, inF);
    const k = f.k;
    const us = new Float32Array(out * R);
    for (let i = 0; i < out; i++) for (let j = 0; j < R; j++) us[i * R + j] = f.u[i * k + j]! * f.s[j]!;
    const trunc = matmul32(us, f.vt, out, R, inF);
    assert.ok(relErr(d, trunc) < 1e-4, `rel err ${relErr(d, trunc)}`);
  });

  it('pissa_niter_N (randomized SVD) keeps base + ΔW = W and captures nearly the top-r energy', () => {
    const model = loadStories();
    const w0 = weightOf(model, TARGET);
    const peft = new pj.PeftModel(model, { ...CFG, init_lora_weights: 'pissa_niter_4' });
    const { d, out, inF } = delta(peft, TARGET);
    const res = weightOf(peft.model, TARGET);
    assert.ok(relErr(res.map((v, i) => v + d[i]!), w0) < 1e-5);
    const exact = pj.svd(w0, out, inF).s.slice(0, R).reduce((x, s) => x + s * s, 0);
    const got = d.reduce((x, v) => x + v * v, 0);
    assert.ok(got > 0.97 * exact && got < 1.0001 * exact, `energy ${got} vs ${exact}`);
  });

  it('randomized SVD (Halko) matches the exact top singular values of a low-rank-plus-noise matrix', () => {
    const gen = new pj.Generator(5);
    const [m, n, k] = [120, 80, 5];
    const x = pj.randn([m, k], 1, 0, gen).toTyped() as Float32Array;
    const y = pj.randn([k, n], 1, 0, gen).toTyped() as Float32Array;
    const a = matmul32(x, y, m, k, n).map((v) => v + 0.01 * gen.normal());
    const exact = pj.svd(a, m, n);
    const approx = randomizedSvd(a, m, n, k, { oversample: 5, niter: 2, gen });
    for (let i = 0; i < k; i++) assert.ok(Math.abs(approx.s[i]! - exact.s[i]!) / exact.s[i]! < 1e-3, `σ${i}`);
  });

  it('Conv1D layout (fan_in_fan_out): the residual is taken in the stored [in, out] layout', () => {
    const gen = new pj.Generator(2);
    class Toy extends pj.Module {
      constructor() {
        super();
        this.addModule('c_attn', new pj.Linear(pj.keep(pj.randn([6, 10], 0.5, 0, gen)), null, true));
      }
      forward(x: pj.Tensor): pj.Tensor<'f32'> {
        return (this.getModule('c_attn') as pj.Linear).forward(x);
      }
    }
    const toy = new Toy();
    const x = pj.keep(pj.randn([3, 6], 1, 0, gen));
    const before = pj.noGrad(() => toy.forward(x).toTyped());
    const peft = new pj.PeftModel(toy, { target_modules: ['c_attn'], r: 2, lora_alpha: 2, init_lora_weights: 'pissa', fan_in_fan_out: true });
    assert.ok(relErr(pj.noGrad(() => (peft.model as Toy).forward(x).toTyped()), before) < 1e-5);
  });

  it('gradcheck of a PiSSA-initialised LoRA layer (f32)', () => {
    const peft = new pj.PeftModel(loadStories(), { ...CFG, target_modules: ['q_proj'], lora_dropout: 0 });
    const layer = peft.model.getModule(TARGET) as pj.LoraLinear;
    const x = pj.keep(pj.randn([2, 3, 64], 1, 0, new pj.Generator(4)));
    pj.gradcheck(() => layer.forward(x), layer.adapterTensors('default').map(([, t]) => t));
  });

  it('trains on stories260K-hf; save → load (PiSSA re-run on the original base) → identical outputs; merge = unmerged; converts to plain LoRA', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pissa-'));
    try {
      const batch = tokenBatch();
      const peft = new pj.PeftModel(loadStories(), CFG);
      peft.save(join(dir, 'init'));
      const { first, last } = train(peft, batch, 15);
      assert.ok(last < first * 0.8, `loss ${first} → ${last}`);
      const trained = logits(peft.model, batch.ids);
      peft.save(join(dir, 'pissa'));
      const saved = JSON.parse(readFileSync(join(dir, 'pissa', 'adapter_config.json'), 'utf8'));
      assert.equal(saved.init_lora_weights, 'pissa');
      assert.equal(saved.peft_type, 'LORA');

      const loaded = pj.PeftModel.fromPretrained(loadStories(), join(dir, 'pissa'));
      assert.ok(relErr(logits(loaded.model as pj.CausalLM, batch.ids), trained) < 1e-5);

      peft.merge();
      assert.ok(relErr(logits(peft.model, batch.ids), trained) < 1e-5);
      peft.unmerge();

      pj.saveAsLora(peft, join(dir, 'lora'), { pathInitialModelForWeightConversion: join(dir, 'init') });
      const conv = JSON.parse(readFileSync(join(dir, 'lora', 'adapter_config.json'), 'utf8'));
      assert.deepEqual([conv.r, conv.lora_alpha, conv.init_lora_weights], [2 * R, 16, true]);
      assert.equal(JSON.parse(readFileSync(join(dir, 'init', 'adapter_config.json'), 'utf8')).init_lora_weights, true);
      const plain = pj.PeftModel.fromPretrained(loadStories(), join(dir, 'lora'));
      assert.ok(relErr(logits(plain.model as pj.CausalLM, batch.ids), trained) < 1e-4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
