// LoRA-GA (init_lora_weights "lora_ga" + lora_ga_config, after preprocessLoraGa): A, B from the SVD of the full
// gradient so the first step's ΔW follows −∂L/∂W; the base keeps W − s·B·A. Checked against PEFT 0.20
// src/peft/tuners/lora/{loraga,layer,config}.py.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { matmul32 } from '../../../src/peft/common/linalg.js';
import { weightGradients } from '../../../src/peft/common/capture.js';
import { loadStories, logits, relErr, tokenBatch, train, weightOf } from './init-helpers.js';

const R = 4;
const TARGET = 'model.layers.1.self_attn.q_proj';
const CFG = { target_modules: ['q_proj', 'v_proj', 'gate_proj'], r: R, lora_alpha: 8, init_lora_weights: 'lora_ga' } as const;

const step = (model: pj.CausalLM, batch: { ids: pj.Tensor; targets: pj.Tensor }) => () => pj.tidy(() => pj.backward(model.loss(batch.ids, batch.targets)));

/** s·B·A of the adapter at TARGET. */
function delta(peft: pj.PeftModel): Float32Array {
  const layer = peft.model.getModule(TARGET) as pj.LoraLinear;
  const t = new Map(layer.adapterTensors('default'));
  const s = layer.scaling.get('default')!;
  return matmul32(t.get('lora_B.weight')!.toTyped() as Float32Array, t.get('lora_A.weight')!.toTyped() as Float32Array, 64, R, 64).map((v) => v * s);
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! ** 2;
    bb += b[i]! ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

/** cos(ΔW of one SGD step, −G) for a fresh adapter made with `init`. */
function firstStepAlignment(init: true | 'lora_ga', batch: { ids: pj.Tensor; targets: pj.Tensor }, g: Float32Array): number {
  pj.manualSeed(11);
  const model = loadStories();
  if (init === 'lora_ga') pj.preprocessLoraGa(model, CFG, step(model, batch));
  const peft = new pj.PeftModel(model, { ...CFG, init_lora_weights: init });
  const d0 = delta(peft);
  const opt = new pj.SGD(peft.trainableParameters(), { lr: 1e-3 });
  step(peft.model, batch)();
  opt.step();
  const d1 = delta(peft);
  return cosine(d1.map((v, i) => v - d0[i]!), g.map((v) => -v));
}

describe('LoRA-GA', () => {
  it('base + ΔW equals the original weight at init; outputs unchanged', () => {
    const batch = tokenBatch(4);
    const model = loadStories();
    const w0 = weightOf(model, TARGET);
    const before = logits(model, batch.ids);
    pj.preprocessLoraGa(model, CFG, step(model, batch));
    const peft = new pj.PeftModel(model, CFG);
    const d = delta(peft);
    assert.ok(relErr(weightOf(peft.model, TARGET).map((v, i) => v + d[i]!), w0) < 1e-5);
    assert.ok(relErr(logits(peft.model, batch.ids), before) < 1e-5);
  });

  it("the first step's ΔW aligns with the full-gradient direction far better than the default init", () => {
    const batch = tokenBatch(4);
    const base = loadStories();
    const g = weightGradients(base, [base.getModule(TARGET) as pj.Linear], step(base, batch))[0]!;
    const ga = firstStepAlignment('lora_ga', batch, g);
    const rnd = firstStepAlignment(true, batch, g);
    console.log(`# first-step cos(ΔW, −G): LoRA-GA ${ga.toFixed(3)}, default init ${rnd.toFixed(3)}`);
    assert.ok(ga > 0.5 && ga > 2 * rnd, `cos LoRA-GA ${ga.toFixed(3)} vs default ${rnd.toFixed(3)}`);
  });

  it('gradcheck (f32); trains; merge = unmerged; save → converted plain LoRA loads on the original base', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loraga-'));
    try {
      const batch = tokenBatch(4);
      const model = loadStories();
      pj.preprocessLoraGa(model, { ...CFG, lora_ga_config: { direction: 'A2rBr', scale: 'stable', stable_gamma: 8 } }, step(model, batch));
      const peft = new pj.PeftModel(model, { ...CFG, lora_ga_config: { direction: 'A2rBr', scale: 'stable', stable_gamma: 8 } });
      const layer = peft.model.getModule(TARGET) as pj.LoraLinear;
      const x = pj.keep(pj.randn([2, 3, 64], 1, 0, new pj.Generator(4)));
      pj.gradcheck(() => layer.forward(x), layer.adapterTensors('default').map(([, t]) => t));
      peft.save(join(dir, 'init'));
      const { first, last } = train(peft, batch, 15);
      assert.ok(last < first * 0.8, `loss ${first} → ${last}`);
      const trained = logits(peft.model, batch.ids);
      peft.save(join(dir, 'ga'));
      const saved = JSON.parse(readFileSync(join(dir, 'ga', 'adapter_config.json'), 'utf8'));
      assert.deepEqual(saved.lora_ga_config, { direction: 'A2rBr', scale: 'stable', stable_gamma: 8 });
      peft.merge();
      assert.ok(relErr(logits(peft.model, batch.ids), trained) < 1e-5);
      peft.unmerge();
      pj.saveAsLora(peft, join(dir, 'lora'), { pathInitialModelForWeightConversion: join(dir, 'init') });
      const plain = pj.PeftModel.fromPretrained(loadStories(), join(dir, 'lora'));
      assert.ok(relErr(logits(plain.model as pj.CausalLM, batch.ids), trained) < 1e-4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
