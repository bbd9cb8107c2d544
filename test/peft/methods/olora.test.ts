// OLoRA (init_lora_weights "olora"): B = Q_r, A = R_r of W's thin QR; the base keeps W − s·B·A. Checked against
// PEFT 0.20 src/peft/tuners/lora/layer.py (olora_init).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { matmul32, qr } from '../../../src/peft/common/linalg.js';
import { loadStories, logits, relErr, tokenBatch, train, weightOf } from './init-helpers.js';

const R = 4;
const CFG = { target_modules: ['q_proj', 'v_proj', 'down_proj'], r: R, lora_alpha: 8, init_lora_weights: 'olora' } as const;
const TARGET = 'model.layers.1.mlp.down_proj'; // [64, 172]: a wide weight

describe('OLoRA', () => {
  it('Householder QR: Q orthonormal, R upper triangular, Q·R = A (tall and wide)', () => {
    const gen = new pj.Generator(1);
    for (const [m, n] of [[9, 5], [5, 9]] as const) {
      const a = pj.randn([m, n], 1, 0, gen).toTyped() as Float32Array;
      const { q, r, k } = qr(a, m, n);
      assert.ok(relErr(matmul32(q, r, m, k, n), a) < 1e-6);
      const qtq = matmul32(q, q, k, m, k, true);
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) assert.ok(Math.abs(qtq[i * k + j]! - (i === j ? 1 : 0)) < 1e-6);
      for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) assert.equal(r[i * n + j], 0);
    }
  });

  it('base + ΔW equals the original weight; B has orthonormal columns; B·A = the first r columns of Q times R', () => {
    const model = loadStories();
    const w0 = weightOf(model, TARGET);
    const { ids } = tokenBatch();
    const before = logits(model, ids);
    const peft = new pj.PeftModel(model, CFG);
    const layer = peft.model.getModule(TARGET) as pj.LoraLinear;
    const t = new Map(layer.adapterTensors('default'));
    const a = t.get('lora_A.weight')!.toTyped() as Float32Array;
    const b = t.get('lora_B.weight')!.toTyped() as Float32Array;
    const [out, inF] = [64, 172];
    const s = layer.scaling.get('default')!;
    const d = matmul32(b, a, out, R, inF);
    const res = weightOf(peft.model, TARGET);
    assert.ok(relErr(res.map((v, i) => v + s * d[i]!), w0) < 1e-5);
    const btb = matmul32(b, b, R, out, R, true);
    for (let i = 0; i < R; i++) for (let j = 0; j < R; j++) assert.ok(Math.abs(btb[i * R + j]! - (i === j ? 1 : 0)) < 1e-5);
    for (let i = 0; i < R; i++) for (let j = 0; j < i; j++) assert.equal(a[i * inF + j], 0, 'A = R_r is upper triangular');
    assert.ok(relErr(logits(peft.model as pj.CausalLM, ids), before) < 1e-5);
  });

  it('gradcheck of an OLoRA-initialised layer (f32)', () => {
    const peft = new pj.PeftModel(loadStories(), { ...CFG, target_modules: ['down_proj'] });
    const layer = peft.model.getModule(TARGET) as pj.LoraLinear;
    const x = pj.keep(pj.randn([2, 3, 172], 1, 0, new pj.Generator(4)));
    pj.gradcheck(() => layer.forward(x), layer.adapterTensors('default').map(([, t]) => t));
  });

  it('trains; save → load → identical outputs; merge = unmerged; converts to plain LoRA on the original base', () => {
    const dir = mkdtempSync(join(tmpdir(), 'olora-'));
    try {
      const batch = tokenBatch(2);
      const peft = new pj.PeftModel(loadStories(), CFG);
      peft.save(join(dir, 'init'));
      const { first, last } = train(peft, batch, 15);
      assert.ok(last < first * 0.8, `loss ${first} → ${last}`);
      const trained = logits(peft.model, batch.ids);
      peft.save(join(dir, 'olora'));
      const loaded = pj.PeftModel.fromPretrained(loadStories(), join(dir, 'olora'));
      assert.ok(relErr(logits(loaded.model as pj.CausalLM, batch.ids), trained) < 1e-5);
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
