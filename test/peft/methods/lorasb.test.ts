// LoRA-SB (peft_type "LORASB", not in HF PEFT): frozen B and A around a trainable r×r core R, all three from the
// truncated SVD of the approximated first full fine-tuning update; only R trains.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { preprocessLoraSb, LoraSbLinear } from '../../../src/peft/lorasb/index.js';
import { matmul32 } from '../../../src/peft/common/linalg.js';
import { weightGradients } from '../../../src/peft/common/capture.js';
import { loadStories, logits, relErr, tokenBatch, train } from './init-helpers.js';

const R = 4;
const CFG = { peft_type: 'LORASB', target_modules: ['q_proj', 'v_proj', 'up_proj'], r: R, init_lr: 1e-3 } as const;
const TARGET = 'model.layers.2.self_attn.q_proj';
const step = (model: pj.CausalLM, batch: { ids: pj.Tensor; targets: pj.Tensor }) => () => pj.tidy(() => pj.backward(model.loss(batch.ids, batch.targets)));

function sbModel(batch = tokenBatch(7)): pj.PeftModel<pj.CausalLM> {
  const model = loadStories();
  preprocessLoraSb(model, CFG, step(model, batch));
  return new pj.PeftModel(model, CFG);
}

describe('LoRA-SB', () => {
  it('only the r×r cores are trainable; A and B are frozen', () => {
    const peft = sbModel();
    const names = peft.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
    assert.equal(names.length, 3 * 5);
    for (const n of names) assert.match(n, /\.lora_latent_mapping\.default\.weight$/);
    assert.equal(peft.parameterCounts().trainable, 3 * 5 * R * R);
  });

  it('init: s·B·R·A is the rank-r truncated SVD of −lr·sign(∂L/∂W); B, A orthonormal', () => {
    const batch = tokenBatch(7);
    const base = loadStories();
    const g = weightGradients(base, [base.getModule(TARGET) as pj.Linear], step(base, batch))[0]!;
    const update = g.map((v) => -1e-3 * Math.sign(v));
    const f = pj.svd(update, 64, 64);
    const us = new Float32Array(64 * R);
    for (let i = 0; i < 64; i++) for (let j = 0; j < R; j++) us[i * R + j] = f.u[i * f.k + j]! * f.s[j]!;
    const best = matmul32(us, f.vt, 64, R, 64);
    const peft = sbModel(batch);
    const layer = peft.model.getModule(TARGET) as LoraSbLinear;
    const t = new Map(layer.adapterTensors('default'));
    const [a, b, core] = ['lora_A.weight', 'lora_B.weight', 'lora_latent_mapping.weight'].map((k) => t.get(k)!.toTyped() as Float32Array);
    const d = matmul32(matmul32(b!, core!, 64, R, R), a!, 64, R, 64);
    assert.ok(relErr(d, best) < 1e-4, `${relErr(d, best)}`);
    const btb = matmul32(b!, b!, R, 64, R, true);
    const aat = matmul32(a!, a!, R, 64, R, false, true);
    for (let i = 0; i < R; i++)
      for (let j = 0; j < R; j++) {
        assert.ok(Math.abs(btb[i * R + j]! - (i === j ? 1 : 0)) < 1e-5);
        assert.ok(Math.abs(aat[i * R + j]! - (i === j ? 1 : 0)) < 1e-5);
      }
  });

  it('gradcheck of the layer with respect to R (f32)', () => {
    const layer = sbModel().model.getModule(TARGET) as LoraSbLinear;
    const x = pj.keep(pj.randn([2, 3, 64], 1, 0, new pj.Generator(4)));
    pj.gradcheck(() => layer.forward(x), [layer.coreOf('default')!]);
  });

  it('trains (A, B unchanged); saves only R as trainable state plus the frozen bases; save → load → identical; merge = unmerged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lorasb-'));
    try {
      const batch = tokenBatch(7);
      const peft = sbModel(batch);
      const layer = peft.model.getModule(TARGET) as LoraSbLinear;
      const frozen = layer.adapterTensors('default').slice(0, 2).map(([, t]) => t.toTyped() as Float32Array);
      const { first, last } = train(peft, batch, 20, 5e-2);
      assert.ok(last < first * 0.9, `loss ${first} → ${last}`);
      layer.adapterTensors('default').slice(0, 2).forEach(([k, t], i) => assert.deepEqual(t.toTyped(), frozen[i], `${k} frozen`));
      const trained = logits(peft.model, batch.ids);
      peft.save(dir);
      const keys = pj.readAdapterFiles(dir).tensors;
      const key = `base_model.model.${TARGET}.lora_latent_mapping.weight`;
      assert.deepEqual(keys.get(key)!.shape, [R, R]);
      assert.equal(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).peft_type, 'LORASB');
      const loaded = pj.PeftModel.fromPretrained(loadStories(), dir);
      assert.equal(loaded.parameterCounts().trainable, 0);
      assert.ok(relErr(logits(loaded.model as pj.CausalLM, batch.ids), trained) < 1e-6);
      peft.merge();
      assert.ok(relErr(logits(peft.model, batch.ids), trained) < 1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
