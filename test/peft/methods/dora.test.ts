// DoRA: magnitude = row norms of W (the paper's column norms) at init and output = base at init; the weight norm is
// a constant in backward (memory-efficient form); merged weight = m ⊙ (W + sBA)/‖W + sBA‖; PEFT key
// `lora_magnitude_vector` (PEFT 0.20 src/peft/tuners/lora/{dora,layer}.py, model.py's key remapping).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { DoraLinear } from '../../../src/peft/dora/index.js';
import { adapted, logits, relDiff, saveLoadRoundTrip, standardChecks, stories, trainSteps, Q_PROJ } from './variant-helpers.js';

const CONFIG = { peft_type: 'DORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] };
const arr = (t: pj.Tensor) => t.toTyped() as Float32Array;

describe('DoRA', () => {
  it('at init the magnitude equals the row norms of W and the output equals the base', () => {
    const { model, peft } = adapted(CONFIG);
    const layer = peft.model.getModule(Q_PROJ) as DoraLinear;
    const w = arr(layer.weight);
    const norms = Float32Array.from({ length: 64 }, (_, i) => Math.hypot(...w.subarray(i * 64, i * 64 + 64)));
    assert.ok(relDiff(norms, arr(layer.magnitude('default'))) < 1e-6);
    assert.ok(relDiff(logits(model), peft.disableAdapters(() => logits(model))) < 1e-6);
  });

  it('the norm is detached (§4.3): with B·A ≠ 0, the gradients of A, B, m equal those of the same function with the norm held constant', () => {
    const { model, peft } = adapted(CONFIG);
    trainSteps(model, peft, 3);
    const layer = peft.model.getModule(Q_PROJ) as DoraLinear;
    const x = pj.keep(pj.randn([2, 64], 1, 0, new pj.Generator(2)));
    const [a, b, m] = layer.adapterTensors('default').map(([, t]) => t);
    // Freeze the norm at its current value: y = (m/n₀)·(xWᵀ + s·xAᵀBᵀ); autograd must agree with this function.
    const w = layer.weight;
    const n0 = pj.noGrad(() => pj.keep(pj.sqrt(pj.sum(pj.square(pj.add(w, pj.scale(pj.matmul(b!, a!), 2))), 1))));
    const frozen = () => pj.mul(pj.add(pj.matmul(x, pj.transpose(w)), pj.scale(pj.matmul(pj.matmul(x, pj.transpose(a!)), pj.transpose(b!)), 2)), pj.div(m!, n0));
    const gradsOf = (f: () => pj.Tensor) =>
      pj.tidy(() => {
        for (const t of [a!, b!, m!]) t.grad = null;
        pj.sum(f()).backward();
        return [a!, b!, m!].map((t) => arr(t.grad!));
      });
    const got = gradsOf(() => layer.forward(x));
    const want = gradsOf(frozen);
    got.forEach((g, i) => assert.ok(relDiff(want[i]!, g) < 1e-4, `gradient ${i}: ${relDiff(want[i]!, g)}`));
  });

  it('merged weight = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row', () => {
    const { model, peft } = adapted(CONFIG);
    trainSteps(model, peft, 3);
    const layer = peft.model.getModule(Q_PROJ) as DoraLinear;
    const [a, b, m] = layer.adapterTensors('default').map(([, t]) => arr(t));
    const w = arr(layer.weight).slice();
    const adapted_ = Float32Array.from({ length: 64 * 64 }, (_, x) => {
      let s = 0;
      for (let k = 0; k < 4; k++) s += b![Math.floor(x / 64) * 4 + k]! * a![k * 64 + (x % 64)]!;
      return w[x]! + 2 * s;
    });
    const want = adapted_.map((v, x) => {
      const i = Math.floor(x / 64);
      return (m![i]! * v) / Math.hypot(...adapted_.subarray(i * 64, i * 64 + 64));
    });
    peft.merge();
    assert.ok(relDiff(want, arr(layer.weight)) < 1e-5);
    peft.unmerge();
    assert.ok(relDiff(w, arr(layer.weight)) < 1e-6);
  });

  it('saves lora_A.weight, lora_B.weight and lora_magnitude_vector [out] (PEFT keys); config is LoRA\'s with use_dora', () => {
    const { keys, config } = saveLoadRoundTrip(stories, CONFIG);
    const p = `base_model.model.${Q_PROJ}`;
    assert.deepEqual(keys.get(`${p}.lora_A.weight`), [4, 64]);
    assert.deepEqual(keys.get(`${p}.lora_B.weight`), [64, 4]);
    assert.deepEqual(keys.get(`${p}.lora_magnitude_vector`), [64]);
    assert.equal(keys.size, 5 * 3 * 3);
    assert.equal(config.use_dora, true);
    assert.equal(config.peft_type, 'LORA', 'written as PEFT writes DoRA, so Python PEFT loads it');
    assert.equal(config.r, 4);
  });

  // Finite differences see the norm move, which the memory-efficient backward ignores by design: gradcheck covers
  // m (which the norm does not depend on); A and B are checked against the constant-norm function above.
  standardChecks(CONFIG, { gradcheck: (n) => n.startsWith('lora_magnitude_vector.') });
});
