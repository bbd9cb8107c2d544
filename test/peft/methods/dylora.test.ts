// DyLoRA: after training with a rank sampled per forward, every rank prefix k is a valid adapter whose outputs
// equal a plain LoRA holding the first k components (scaling α/k); frozen_lower trains only component b; keys are
// LoRA's. PEFT has no DyLoRA (peftjs config).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { DyloraLinear } from '../../../src/peft/dylora/index.js';
import { adapted, logits, quietly, relDiff, saveLoadRoundTrip, standardChecks, stories, trainSteps, Q_PROJ } from './variant-helpers.js';

const TARGETS = ['q_proj', 'v_proj'];
const CONFIG = { peft_type: 'DYLORA', r: 6, lora_alpha: 12, target_modules: TARGETS };

describe('DyLoRA', () => {
  it('every rank prefix k = 1..r equals a LoRA with the first k components and scaling α/k', () => {
    const { model, peft } = adapted(CONFIG);
    trainSteps(model, peft, 8, 2e-2);
    const layers = peft.model.namedModules().filter((e): e is [string, DyloraLinear] => e[1] instanceof DyloraLinear);
    const full = logits(model);
    const outputs: Float32Array[] = [];
    for (let k = 1; k <= 6; k++) {
      for (const [, l] of layers) l.setRank(k);
      const dy = logits(model);
      outputs.push(dy);
      const lora = quietly(() => new PeftModel(stories(), { peft_type: 'LORA', r: k, lora_alpha: 12, target_modules: TARGETS }));
      for (const [path, l] of layers) {
        const [[, a], [, b]] = l.adapterTensors('default') as [string, pj.Tensor][];
        const [[, la], [, lb]] = (lora.model.getModule(path) as pj.LoraLinear).adapterTensors('default') as [string, pj.Tensor][];
        (la!.data as Float32Array).set((a!.toTyped() as Float32Array).subarray(0, k * a!.shape[1]!));
        const B = b!.toTyped() as Float32Array;
        (lb!.data as Float32Array).set(Float32Array.from({ length: b!.shape[0]! * k }, (_, x) => B[Math.floor(x / k) * 6 + (x % k)]!));
      }
      assert.ok(relDiff(logits(lora.model as never), dy) < 1e-5, `rank ${k}: ${relDiff(logits(lora.model as never), dy)}`);
    }
    assert.deepEqual(outputs[5], full, 'rank r is the default');
    assert.ok(relDiff(outputs[0]!, outputs[5]!) > 1e-4, 'ranks differ');
  });

  it('training samples ranks in [min_r, r]; frozen_lower gives gradient to component b only', () => {
    const { model, peft } = adapted({ ...CONFIG, min_r: 3, frozen_lower: true });
    const layer = peft.model.getModule(Q_PROJ) as DyloraLinear;
    const [, b] = layer.adapterTensors('default').map(([, t]) => t);
    const x = pj.keep(pj.randn([2, 64], 1, 0, new pj.Generator(1)));
    model.train();
    const seen = new Set<number>();
    for (let s = 0; s < 30; s++) {
      b!.grad = null;
      pj.tidy(() => pj.sum(layer.forward(x)).backward());
      const g = b!.grad!.toTyped() as Float32Array; // [out, r]: column c is component c
      const cols = [...Array(6).keys()].filter((c) => g.some((v, i) => i % 6 === c && v !== 0));
      assert.equal(cols.length, 1, `one component trained per step, got ${cols}`);
      seen.add(cols[0]!);
    }
    model.eval();
    assert.deepEqual([...seen].sort(), [2, 3, 4, 5], 'b is sampled over [min_r, r] (0-based components 2..5)');
  });

  it('saves LoRA keys lora_A.weight [r, in], lora_B.weight [out, r]', () => {
    const { keys, config } = saveLoadRoundTrip(stories, CONFIG);
    assert.deepEqual(keys.get(`base_model.model.${Q_PROJ}.lora_A.weight`), [6, 64]);
    assert.deepEqual(keys.get(`base_model.model.${Q_PROJ}.lora_B.weight`), [64, 6]);
    assert.equal(config.peft_type, 'DYLORA');
  });

  standardChecks(CONFIG);
});
