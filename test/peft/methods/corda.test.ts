// CorDA (init_lora_weights "corda" + corda_config, after preprocessCorda): W = U·S·Vᵀ from the SVD of W·C; IPM
// adapts the largest components, KPM the smallest; the base keeps W − s·B·A. Checked against PEFT 0.20
// src/peft/tuners/lora/{corda,layer,config}.py.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { matmul32 } from '../../../src/peft/common/linalg.js';
import { loadStories, logits, relErr, tokenBatch, train, weightOf } from './init-helpers.js';

const R = 4;
const TARGET = 'model.layers.2.self_attn.v_proj';
const cfg = (method: 'ipm' | 'kpm') => ({ target_modules: ['q_proj', 'v_proj', 'up_proj'], r: R, lora_alpha: 8, init_lora_weights: 'corda', corda_config: { corda_method: method } });

function cordaModel(method: 'ipm' | 'kpm'): { peft: pj.PeftModel<pj.CausalLM>; w0: Float32Array; before: Float32Array; ids: pj.Tensor } {
  const model = loadStories();
  const { ids } = tokenBatch(3);
  const w0 = weightOf(model, TARGET);
  const before = logits(model, ids);
  pj.preprocessCorda(model, cfg(method), () => void logits(model, ids));
  return { peft: new pj.PeftModel(model, cfg(method)), w0, before, ids };
}

describe('CorDA', () => {
  for (const method of ['ipm', 'kpm'] as const)
    it(`${method}: base + ΔW equals the original weight and the outputs are unchanged at init`, () => {
      const { peft, w0, before, ids } = cordaModel(method);
      const layer = peft.model.getModule(TARGET) as pj.LoraLinear;
      const t = new Map(layer.adapterTensors('default'));
      const d = matmul32(t.get('lora_B.weight')!.toTyped() as Float32Array, t.get('lora_A.weight')!.toTyped() as Float32Array, 32, R, 64);
      const s = layer.scaling.get('default')!;
      assert.ok(relErr(weightOf(peft.model, TARGET).map((v, i) => v + s * d[i]!), w0) < 1e-5);
      assert.ok(relErr(logits(peft.model, ids), before) < 1e-5);
    });

  it('KPM leaves the context behaviour in the frozen base, IPM moves it into the adapter', () => {
    // Dropping the adapter (base = residual alone) barely changes the context outputs under KPM (the smallest
    // context-weighted components were removed) and changes them much more under IPM (the largest were).
    const gap = (method: 'ipm' | 'kpm') => {
      const { peft, before, ids } = cordaModel(method);
      return relErr(peft.disableAdapters(() => logits(peft.model, ids)), before);
    };
    const [ipm, kpm] = [gap('ipm'), gap('kpm')];
    assert.ok(kpm * 20 < ipm, `kpm ${kpm} vs ipm ${ipm}`);
  });

  it('gradcheck (f32); trains; save → load (CorDA re-run) → identical outputs; merge = unmerged; converts to plain LoRA', () => {
    const dir = mkdtempSync(join(tmpdir(), 'corda-'));
    try {
      const { peft, ids } = cordaModel('ipm');
      const layer = peft.model.getModule(TARGET) as pj.LoraLinear;
      const x = pj.keep(pj.randn([2, 3, 64], 1, 0, new pj.Generator(4)));
      pj.gradcheck(() => layer.forward(x), layer.adapterTensors('default').map(([, t]) => t));
      peft.save(join(dir, 'init'));
      const batch = tokenBatch(3);
      const { first, last } = train(peft, batch, 15);
      assert.ok(last < first * 0.8, `loss ${first} → ${last}`);
      const trained = logits(peft.model, ids);
      peft.save(join(dir, 'corda'));
      const saved = JSON.parse(readFileSync(join(dir, 'corda', 'adapter_config.json'), 'utf8'));
      assert.equal(saved.init_lora_weights, 'corda');
      assert.deepEqual(Object.keys(saved.corda_config).sort(), ['cache_file', 'corda_method', 'covariance_file', 'prune_temporary_fields', 'use_float16_for_covariance', 'verbose']);
      const base = loadStories();
      pj.preprocessCorda(base, cfg('ipm'), () => void logits(base, ids));
      const loaded = pj.PeftModel.fromPretrained(base, join(dir, 'corda'));
      assert.ok(relErr(logits(loaded.model as pj.CausalLM, ids), trained) < 1e-5);
      peft.merge();
      assert.ok(relErr(logits(peft.model, ids), trained) < 1e-5);
      peft.unmerge();
      pj.saveAsLora(peft, join(dir, 'lora'), { pathInitialModelForWeightConversion: join(dir, 'init') });
      const plain = pj.PeftModel.fromPretrained(loadStories(), join(dir, 'lora'));
      assert.ok(relErr(logits(plain.model as pj.CausalLM, ids), trained) < 1e-4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without preprocessCorda the init fails with a clear message', () => {
    assert.throws(() => new pj.PeftModel(loadStories(), cfg('ipm')), /run preprocessCorda/);
  });
});
