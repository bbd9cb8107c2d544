// EVA (init_lora_weights "eva" + eva_config, then initializeEva): A rows = top right-singular vectors of the
// layer's input activations, ranks redistributed within the budget Σr by explained variance. Checked against
// PEFT 0.20 src/peft/tuners/lora/{eva,config}.py (EvaConfig fields, rank_pattern / alpha_pattern rewrite).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { rowsOf, withInputHooks } from '../../../src/peft/common/capture.js';
import { distributeRanks } from '../../../src/peft/lora/init/eva.js';
import { loadStories, logits, relErr, tokenBatch, train } from './init-helpers.js';

const R = 4;
const CFG = { target_modules: ['q_proj', 'v_proj', 'down_proj'], r: R, lora_alpha: 8, init_lora_weights: 'eva', eva_config: { rho: 2 } } as const;

describe('EVA', () => {
  it('distributeRanks gives the budget to the largest explained-variance ratios', () => {
    assert.deepEqual(distributeRanks([[0.5, 0.2, 0.1], [0.4, 0.3, 0.01], [0.05, 0.01, 0]], 4), [2, 2, 0]);
  });

  it('ranks respect the budget (Σ = Σr, each ≤ r·ρ) and A rows are the top right-singular vectors of the centred activations', () => {
    const batch = tokenBatch(5);
    const peft = new pj.PeftModel(loadStories(), CFG);
    const layers = peft.model.namedModules().filter(([, m]) => m instanceof pj.LoraLinear) as [string, pj.LoraLinear][];
    const budget = layers.length * R;
    // The input of layer 3's v_proj, captured the same way.
    const probe = 'model.layers.3.self_attn.v_proj';
    let acts: Float32Array | null = null;
    withInputHooks([peft.model.getModule(probe)], (_, x) => void (acts ??= rowsOf(x)), () => logits(peft.model, batch.ids));
    pj.initializeEva(peft, [{ inputIds: batch.ids }]);
    const config = peft.peftConfig.get('default') as pj.LoraConfig;
    const ranks = peft.model
      .namedModules()
      .filter(([, m]) => m instanceof pj.LoraLinear)
      .map(([n, m]) => [n, (m as pj.LoraLinear).r.get('default')!] as const);
    assert.equal(ranks.reduce((x, [, r]) => x + r, 0), budget);
    for (const [n, r] of ranks) {
      assert.ok(r <= 2 * R, `${n}: ${r}`);
      assert.equal(config.rank_pattern[n] ?? config.r, r);
      assert.equal(config.alpha_pattern[n] ?? config.lora_alpha, (8 * r) / R, 'adjust_scaling_factors keeps s');
    }
    assert.ok(new Set(ranks.map(([, r]) => r)).size > 1, 'ranks were redistributed');

    const layer = peft.model.getModule(probe) as pj.LoraLinear;
    const r = layer.r.get('default')!;
    assert.ok(r > 0);
    const a = layer.adapterTensors('default')[0]![1].toTyped() as Float32Array;
    const n = acts!.length / 64;
    const mean = new Float32Array(64);
    for (let i = 0; i < n; i++) for (let j = 0; j < 64; j++) mean[j]! += acts![i * 64 + j]! / n;
    const centred = acts!.map((v, i) => v - mean[i % 64]!);
    const f = pj.svd(centred, n, 64);
    for (let k = 0; k < r; k++) {
      let dot = 0;
      for (let j = 0; j < 64; j++) dot += a[k * 64 + j]! * f.vt[k * 64 + j]!;
      assert.ok(Math.abs(dot) > 0.999, `component ${k}: |cos| ${Math.abs(dot)}`);
    }
    // B stays 0: the model is unchanged.
    assert.ok(layer.adapterTensors('default')[1]![1].toArray().every((v) => v === 0));
  });

  it('label mask: positions labelled −100 do not enter the SVD', () => {
    const batch = tokenBatch(6);
    const masked = pj.keep(pj.tensor(batch.targets.toArray().map((v, i) => (i % 32 < 16 ? -100 : v)), [4, 32], 'i32'));
    const peft = new pj.PeftModel(loadStories(), { ...CFG, target_modules: ['q_proj'], eva_config: { rho: 1 } });
    const probe = 'model.layers.0.self_attn.q_proj';
    let acts: Float32Array | null = null;
    withInputHooks([peft.model.getModule(probe)], (_, x) => void (acts ??= rowsOf(x)), () => logits(peft.model, batch.ids));
    pj.initializeEva(peft, [{ inputIds: batch.ids, labels: masked }]);
    const kept = Array.from({ length: 4 * 16 }, (_, i) => Math.floor(i / 16) * 32 + 16 + (i % 16));
    const x = Float32Array.from(kept.flatMap((row) => Array.from(acts!.subarray(row * 64, row * 64 + 64))));
    const mean = new Float32Array(64);
    for (let i = 0; i < kept.length; i++) for (let j = 0; j < 64; j++) mean[j]! += x[i * 64 + j]! / kept.length;
    const f = pj.svd(x.map((v, i) => v - mean[i % 64]!), kept.length, 64);
    const a = (peft.model.getModule(probe) as pj.LoraLinear).adapterTensors('default')[0]![1].toTyped() as Float32Array;
    let dot = 0;
    for (let j = 0; j < 64; j++) dot += a[j]! * f.vt[j]!;
    assert.ok(Math.abs(dot) > 0.999);
  });

  it('gradcheck (f32); trains; save → load → identical outputs (ranks from rank_pattern); merge = unmerged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eva-'));
    try {
      const batch = tokenBatch(5);
      const peft = new pj.PeftModel(loadStories(), CFG);
      pj.initializeEva(peft, [{ inputIds: batch.ids }]);
      const path = peft.model.namedModules().find(([, m]) => m instanceof pj.LoraLinear)![0];
      const layer = peft.model.getModule(path) as pj.LoraLinear;
      const x = pj.keep(pj.randn([2, 3, layer.base.inFeatures], 1, 0, new pj.Generator(4)));
      pj.gradcheck(() => layer.forward(x), layer.adapterTensors('default').map(([, t]) => t));
      const { first, last } = train(peft, batch, 15);
      assert.ok(last < first * 0.8, `loss ${first} → ${last}`);
      const trained = logits(peft.model, batch.ids);
      peft.save(dir);
      const saved = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
      assert.equal(saved.init_lora_weights, 'eva');
      assert.deepEqual(Object.keys(saved.eva_config).sort(), ['adjust_scaling_factors', 'label_mask_value', 'rho', 'tau', 'use_label_mask', 'whiten']);
      assert.ok(Object.keys(saved.rank_pattern).length > 0);
      const loaded = pj.PeftModel.fromPretrained(loadStories(), dir);
      assert.ok(relErr(logits(loaded.model as pj.CausalLM, batch.ids), trained) < 1e-6);
      peft.merge();
      assert.ok(relErr(logits(peft.model, batch.ids), trained) < 1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
