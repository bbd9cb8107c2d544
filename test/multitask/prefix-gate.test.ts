// The context-aware MeteoRA gate (gate_input token_prefix_mean): the causal prefix mean on hand-made rows (padding
// skipped), a cached decode equal to the full forward, a left-padded batch equal to its rows alone, gradcheck of the gate.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../src/engine/index.js';
import { Linear, withSequenceContext } from '../../src/nn/index.js';
import { randomModel, type CausalLM } from '../../src/models/index.js';
import { PeftModel } from '../../src/peft/model.js';
import { MoeLoraLinear } from '../../src/peft/moelora/index.js';
import { causalPrefixMean } from '../../src/multitask/prefix-mean.js';

const TINY = { model_type: 'llama', vocab_size: 32, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1 };

/** A tiny Llama with a 3-expert MeteoRA adapter whose experts and gates are random and large (routing matters). */
function gated(): { model: CausalLM; peft: PeftModel<CausalLM> } {
  pj.manualSeed(5);
  const model = randomModel(TINY, { seed: 3 }) as CausalLM;
  const peft = new PeftModel(model, {
    peft_type: 'METEORA',
    r: 2,
    expert_scalings: [1, 1, 1],
    adapter_names: ['a', 'b', 'c'],
    top_k: 1,
    gate_input: 'token_prefix_mean',
    target_modules: ['q_proj', 'v_proj', 'down_proj'],
  });
  for (const [, m] of peft.model.namedModules())
    if (m instanceof MoeLoraLinear) for (const [, t] of m.adapterTensors('default')) (t.data as Float32Array).set(pj.randn(t.shape, 3).toTyped() as Float32Array);
  return { model, peft };
}

const lastLogits = (logits: pj.Tensor, V: number) => (logits.toTyped() as Float32Array).slice(-V);

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
}

describe('context-aware gate: causal prefix mean', () => {
  it('row t is the mean of the real positions up to t (padding skipped); a cache carries the sums to the next step', () => {
    const x = pj.tensor([1, 2, 3, 4, 5, 6, 7, 8, 10, 20, 30, 40], [4, 3]); // B = 2 sequences of T = 2, in = 3
    const mask = pj.tensor([0, 1, 1, 1], [2, 2], 'u8'); // row 0 is left-padded
    const state = new Map<object, unknown>();
    const owner = {};
    const y = withSequenceContext({ keyMask: mask, past: 0, state }, () => causalPrefixMean(x, 2, owner));
    assert.deepEqual(Array.from(y.toTyped()), [0, 0, 0, 4, 5, 6, 7, 8, 10, 13.5, 19, 25]);
    // One more position per row, after the cache: means over all real positions so far.
    const next = pj.tensor([6, 6, 6, 1, 1, 1], [2, 3]);
    const mask2 = pj.tensor([0, 1, 1, 1, 1, 1], [2, 3], 'u8');
    const z = withSequenceContext({ keyMask: mask2, past: 2, state }, () => causalPrefixMean(next, 1, owner));
    assert.ok(maxDiff(z.toTyped() as Float32Array, Float32Array.from([5, 5.5, 6, 28 / 3, 13, 17])) < 1e-5);
    assert.throws(() => withSequenceContext({ keyMask: null, past: 2, state: new Map() }, () => causalPrefixMean(next, 1, owner)), /holds no prefix sums for this layer/);
  });

  it('a cached decode (prefill + one token at a time) gives the full forward\'s logits', () => {
    const { model } = gated();
    const ids = [1, 7, 3, 9, 12, 4, 30, 2];
    const full = pj.noGrad(() => model.forward(pj.tensor(ids, [1, ids.length], 'i32')).toTyped() as Float32Array);
    const cache = model.createCache(1, ids.length);
    const steps = [pj.noGrad(() => model.forward(pj.tensor(ids.slice(0, 5), [1, 5], 'i32'), { cache }).toTyped() as Float32Array)];
    for (let t = 5; t < ids.length; t++) steps.push(pj.noGrad(() => model.forward(pj.tensor([ids[t]!], [1, 1], 'i32'), { cache }).toTyped() as Float32Array));
    const cached = Float32Array.from(steps.flatMap((s) => [...s]));
    assert.ok(maxDiff(cached, full) < 1e-4, `cached decode differs by ${maxDiff(cached, full)}`);
  });

  it('a left-padded row of a batch gives the logits of the row alone', () => {
    const { model } = gated();
    const alone = pj.noGrad(() => lastLogits(model.forward(pj.tensor([5, 9, 11], [1, 3], 'i32')), 32));
    const batch = pj.tensor([0, 0, 5, 9, 11, 3, 8, 1, 2, 6], [2, 5], 'i32');
    const mask = pj.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1], [2, 5], 'u8');
    const both = pj.noGrad(() => model.forward(batch, { attentionMask: mask }).toTyped() as Float32Array);
    const row0 = both.slice(4 * 32, 5 * 32);
    assert.ok(maxDiff(row0, alone) < 1e-4, `padded row differs by ${maxDiff(row0, alone)}`);
  });

  it('first_token_expert: each sequence\'s first real position runs that expert whatever the gate says; saved and loaded back', () => {
    pj.manualSeed(6);
    const base = new Linear(pj.keep(pj.randn([3, 4])), null);
    const layer = new MoeLoraLinear(base, 'METEORA');
    layer.addAdapter('a', { r: 2, scales: [1, 0.5, 2], topK: 1, auxCoef: 0, supervisionCoef: 0, init: false, trainExperts: false, renormalize: true, router: 'meteora_gate', gateInput: 'token_prefix_mean', firstExpert: 2 });
    layer.setActiveAdapters(['a'], false);
    const x = pj.randn([2, 3, 4]);
    const mask = pj.tensor([0, 1, 1, 1, 1, 1], [2, 3], 'u8'); // row 0's first real position is 1, row 1's is 0
    const y = pj.noGrad(() => withSequenceContext({ keyMask: mask, past: 0, state: null }, () => layer.forward(x)).toTyped() as Float32Array);
    const { a, b } = layer.expert('a', 2);
    const want = pj.noGrad(() => pj.add(base.forward(x), pj.mul(pj.linear(pj.linear(x, a), b), 2)).toTyped() as Float32Array);
    for (const row of [1, 3]) assert.ok(maxDiff(y.slice(row * 3, row * 3 + 3), want.slice(row * 3, row * 3 + 3)) < 1e-6, `row ${row} runs expert 2`);
    assert.ok(maxDiff(y.slice(6, 9), want.slice(6, 9)) > 1e-4 || maxDiff(y.slice(15, 18), want.slice(15, 18)) > 1e-4, 'later positions follow the gate');
    assert.throws(() => layer.setFirstExpert('a', 3), /needs top_k 1 and an expert index in \[0, 3\)/);

    // In a MeteoRA adapter's config, and through save → load.
    const { model, peft } = gated();
    (peft.peftConfig.get('default') as unknown as { first_token_expert: number }).first_token_expert = 1;
    for (const [, m] of model.namedModules()) if (m instanceof MoeLoraLinear) m.setFirstExpert('default', 1);
    const ids = pj.tensor([1, 7, 3, 9], [1, 4], 'i32');
    const before = pj.noGrad(() => model.forward(ids).toTyped() as Float32Array);
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-meteora-'));
    try {
      peft.save(dir);
      assert.equal(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).first_token_expert, 1);
      const back = randomModel(TINY, { seed: 3 }) as CausalLM;
      PeftModel.fromPretrained(back, dir);
      assert.equal(maxDiff(pj.noGrad(() => back.forward(ids).toTyped() as Float32Array), before), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(
      () => new PeftModel(randomModel(TINY, { seed: 3 }) as CausalLM, { peft_type: 'METEORA', r: 2, expert_scalings: [1, 1], adapter_names: ['a', 'b'], top_k: 2, first_token_expert: 0, target_modules: ['q_proj'] }),
      /first_token_expert 0 needs top_k 1/,
    );
  });

  it('gradcheck of the gate through the prefix mean (the gate is [E, 2·in])', () => {
    pj.manualSeed(4);
    const layer = new MoeLoraLinear(new Linear(pj.keep(pj.randn([3, 4])), null), 'METEORA');
    layer.addAdapter('a', { r: 2, scales: [1, 1], topK: 2, auxCoef: 0, supervisionCoef: 0, init: false, trainExperts: false, router: 'meteora_gate', gateInput: 'token_prefix_mean' });
    layer.setActiveAdapters(['a'], false);
    const gate = layer.adapterTensors('a').find(([k]) => k === 'meteora_gate.weight')![1];
    assert.deepEqual(gate.shape, [2, 8]);
    const x = pj.randn([2, 3, 4]);
    x.requiresGrad = true;
    pj.gradcheck(() => layer.forward(x), [gate, x], { maxPerInput: 8 });
  });
});
