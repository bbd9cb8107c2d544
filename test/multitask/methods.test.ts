// The multi-task PEFT methods on a tiny random Llama: gradcheck of each new layer; an expert (MoE-LoRA) or rank
// (SMoRA) that receives no token gets no gradient; task-specific modules (MTLoRA, Poly) get gradient only from their
// task's rows and change only their task's outputs; save → load gives identical outputs; MHR-μ equals Poly with
// uniform routing; MHR-z trains only the router; the trainer's regulariser hook returns the balancing loss.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as pj from '../../src/engine/index.js';
import { Linear } from '../../src/nn/index.js';
import { randomModel, type CausalLM } from '../../src/models/index.js';
import { PeftModel } from '../../src/peft/model.js';
import { peftMethod } from '../../src/peft/registry.js';
import { writeAdapterFiles } from '../../src/peft/format.js';
import { MoeLoraLinear } from '../../src/peft/moelora/index.js';
import { SmoraLinear } from '../../src/peft/smora/index.js';
import { MtloraLinear } from '../../src/peft/mtlora/index.js';
import { PolyLinear, averageSkillsAsLora, tuneRouterOnly } from '../../src/peft/polytropon/index.js';
import { meteoraFromLoras } from '../../src/peft/meteora/index.js';
import { withAuxLosses, withTaskIds } from '../../src/multitask/index.js';

const TINY = { model_type: 'llama', vocab_size: 32, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1 };
const tiny = (seed = 3) => randomModel(TINY, { seed }) as CausalLM;
const IDS = () => pj.tensor([1, 5, 9, 3, 7, 2, 4, 4, 8], [3, 3], 'i32');
const TASKS = [0, 2, 1];

function linearLayer(inF = 4, outF = 3): Linear {
  return new Linear(pj.randn([outF, inF]));
}

function logitsOf(model: CausalLM, tasks: number[] | null = TASKS): Float32Array {
  return pj.noGrad(() => pj.tidy(() => withTaskIds(tasks, () => model.forward(IDS()).toTyped() as Float32Array)));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'peftjs-mt-'));
}

/** Every method's config with non-trivial initial adapters (B random) on all linear layers of the tiny model. */
const CONFIGS: Record<string, Record<string, unknown>> = {
  MTLORA: { peft_type: 'MTLORA', r: 2, task_r: 2, n_tasks: 3, init_lora_weights: false, target_modules: 'all-linear' },
  MOELORA: { peft_type: 'MOELORA', r: 2, num_experts: 3, top_k: 2, init_lora_weights: false, target_modules: 'all-linear' },
  SMORA: { peft_type: 'SMORA', r: 4, top_k: 2, init_lora_weights: false, target_modules: 'all-linear' },
  POLY: { peft_type: 'POLY', r: 2, n_tasks: 3, n_skills: 3, n_splits: 2, init_weights: false, target_modules: ['q_proj', 'v_proj', 'down_proj'] },
  MULTITASK_PROMPT_TUNING: { peft_type: 'MULTITASK_PROMPT_TUNING', num_virtual_tokens: 2, num_tasks: 3, num_ranks: 2 },
};

describe('multi-task methods: gradcheck of each layer', () => {
  it('MoE-LoRA (all experts routed, so the check does not cross a routing boundary), SMoRA, MTLoRA, Poly', () => {
    pj.manualSeed(5);
    const x = pj.randn([2, 3, 4]).requiresGrad_();
    const cases: [string, pj.Tensor[], () => pj.Tensor][] = [];
    const moe = new MoeLoraLinear(linearLayer());
    moe.addAdapter('a', { r: 2, scales: [0.5, 1, 2], topK: 3, auxCoef: 0, supervisionCoef: 0, init: false, trainExperts: true, router: 'lora_router' });
    const smora = new SmoraLinear(linearLayer());
    smora.addAdapter('a', { r: 3, scale: 1, topK: 3, auxCoef: 0, init: false });
    const mt = new MtloraLinear(linearLayer());
    mt.addAdapter('a', { r: 2, scale: 1, taskR: 2, taskScale: 2, nTasks: 2, dropout: 0, init: false });
    const poly = new PolyLinear(linearLayer(4, 6));
    poly.addAdapter('a', { r: 2, nTasks: 2, nSkills: 3, nSplits: 2, init: false });
    for (const [name, layer] of [['MOELORA', moe], ['SMORA', smora], ['MTLORA', mt], ['POLY', poly]] as const) {
      layer.setActiveAdapters(['a'], false);
      layer.eval();
      cases.push([name, [x, ...layer.adapterTensors('a').map(([, t]) => t)], () => withTaskIds([1, 0], () => layer.forward(x))]);
    }
    for (const [name, inputs, fn] of cases) assert.doesNotThrow(() => pj.gradcheck(fn, inputs, { maxPerInput: 24 }), name);
  });

  it('MeteoRA gate and multitask prompt tuning through the tiny Llama', () => {
    pj.manualSeed(2);
    const model = tiny();
    const peft = new PeftModel(model, CONFIGS.MULTITASK_PROMPT_TUNING!);
    const ids = pj.tensor([1, 5, 9, 3, 7, 2], [2, 3], 'i32');
    // PEFT's N(0, 0.02) task factors make ~1e-3 prompts, where RMSNorm is too curved for a finite-difference step.
    for (const p of peft.trainableParameters()) (p.data as Float32Array).set(pj.randn(p.shape).toTyped() as Float32Array);
    pj.gradcheck(() => withTaskIds([2, 0], () => model.forward(ids)), peft.trainableParameters(), { maxPerInput: 12 });
    const layer = new MoeLoraLinear(linearLayer(), 'METEORA');
    layer.addAdapter('a', { r: 2, scales: [1, 1], topK: 2, auxCoef: 0, supervisionCoef: 0, init: false, trainExperts: false, router: 'meteora_gate' });
    layer.setActiveAdapters(['a'], false);
    const trainable = layer.adapterTensors('a').filter(([, t]) => t.requiresGrad);
    assert.deepEqual(trainable.map(([k]) => k), ['meteora_gate.weight']);
    const x = pj.randn([3, 4]);
    pj.gradcheck(() => layer.forward(x), [trainable[0]![1]], { maxPerInput: 8 });
  });
});

describe('multi-task methods: routing and gradient isolation', () => {
  it('MoE-LoRA: experts that receive no token receive no gradient; balancing loss joins the aux losses', () => {
    const layer = new MoeLoraLinear(linearLayer());
    layer.addAdapter('a', { r: 2, scales: [1, 1, 1, 1], topK: 2, auxCoef: 0.5, supervisionCoef: 0, init: false, trainExperts: true, router: 'lora_router' });
    layer.setActiveAdapters(['a'], false);
    layer.train();
    // Router rows +1, +0.5, +0.25, −1 over positive inputs: every token picks experts 0 and 1.
    const router = layer.adapterTensors('a').find(([k]) => k === 'lora_router.weight')![1];
    (router.data as Float32Array).set([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, -1, -1, -1, -1]);
    const x = pj.rand([6, 4], 0.1, 1);
    const { result, aux } = withAuxLosses(() => layer.forward(x));
    assert.ok(aux, 'the balancing loss was added');
    // f = [0.5, 0.5, 0, 0]: aux = 0.5 · 4 · (0.5·P0 + 0.5·P1).
    pj.add(pj.sum(result), aux).backward();
    for (const e of [0, 1]) assert.ok(layer.expert('a', e).a.grad && layer.expert('a', e).b.grad, `expert ${e} has gradients`);
    for (const e of [2, 3]) assert.equal(layer.expert('a', e).a.grad, null, `expert ${e} A got a gradient`);
    for (const e of [2, 3]) assert.equal(layer.expert('a', e).b.grad, null, `expert ${e} B got a gradient`);
    assert.ok(router.grad, 'the router learns');
  });

  it('SMoRA: a rank no token chooses gets exactly zero gradient in its row of A and column of B', () => {
    const layer = new SmoraLinear(linearLayer());
    layer.addAdapter('a', { r: 4, scale: 1, topK: 2, auxCoef: 0, init: false });
    layer.setActiveAdapters(['a'], false);
    const t = (k: string) => layer.adapterTensors('a').find(([n]) => n === k)![1];
    (t('lora_router.weight').data as Float32Array).set([1, 1, 1, 1, -1, -1, -1, -1, 0.5, 0.5, 0.5, 0.5, -2, -2, -2, -2]);
    const x = pj.rand([5, 4], 0.1, 1);
    pj.sum(layer.forward(x)).backward();
    const gA = t('lora_A.weight').grad!.toTyped();
    const gB = t('lora_B.weight').grad!.toTyped();
    const rowNorm = (k: number) => Math.hypot(...gA.subarray(k * 4, k * 4 + 4));
    const colNorm = (k: number) => Math.hypot(...[0, 1, 2].map((o) => gB[o * 4 + k]!));
    for (const k of [0, 2]) assert.ok(rowNorm(k) > 0 && colNorm(k) > 0, `rank ${k} learns`);
    for (const k of [1, 3]) assert.equal(rowNorm(k) + colNorm(k), 0, `rank ${k} got gradient`);
  });

  it('MTLoRA: a task-specific module gets gradient only from its task rows and changes only their outputs', () => {
    const model = tiny();
    const peft = new PeftModel(model, CONFIGS.MTLORA!);
    const layer = model.getModule('model.layers.0.self_attn.q_proj') as MtloraLinear;
    const get = (k: string) => layer.adapterTensors('default').find(([n]) => n === k)![1];
    pj.tidy(() => withTaskIds([0, 2, 0], () => pj.sum(model.forward(IDS())).backward()));
    assert.ok(get('task_lora_A.0.weight').grad && get('task_lora_A.2.weight').grad && get('lora_A.weight').grad);
    assert.equal(get('task_lora_A.1.weight').grad, null, 'task 1 has no example in the batch');
    assert.equal(get('task_lora_B.1.weight').grad, null);
    // Changing task 1's module changes only the rows routed to task 1.
    const before = logitsOf(model);
    (get('task_lora_B.1.weight').data as Float32Array).fill(0.3);
    const after = logitsOf(model);
    const V = 32 * 3;
    for (const [row, task] of TASKS.entries()) {
      const d = maxDiff(before.subarray(row * V, (row + 1) * V), after.subarray(row * V, (row + 1) * V));
      if (task === 1) assert.ok(d > 1e-4, `row ${row} should change`);
      else assert.equal(d, 0, `row ${row} (task ${task}) changed by ${d}`);
    }
    assert.throws(() => pj.noGrad(() => model.forward(IDS())), /MTLORA: this adapter routes by task: run the forward \/ generate inside withTaskIds/);
    assert.equal(peft.activeAdapters[0], 'default');
  });

  it('Poly: routing logits of tasks absent from the batch get zero gradient; MHR-z trains only the router', () => {
    const model = tiny();
    const peft = new PeftModel(model, CONFIGS.POLY!);
    model.train();
    pj.tidy(() => withTaskIds([0, 0, 2], () => pj.sum(model.forward(IDS())).backward()));
    const layer = model.getModule('model.layers.1.mlp.down_proj') as PolyLinear;
    const z = layer.adapterTensors('default').find(([k]) => k === 'poly_router.module_logits')![1];
    const g = z.grad!.toTyped();
    const norm = (t: number) => Math.hypot(...g.subarray(t * 6, t * 6 + 6));
    assert.ok(norm(0) > 0 && norm(2) > 0);
    assert.equal(norm(1), 0);
    const routerOnly = tuneRouterOnly(peft, 'default');
    const trainable = peft.trainableParameters();
    assert.equal(trainable.reduce((s, p) => s + p.size, 0), routerOnly);
    assert.equal(routerOnly, 6 * 3 * 2 * 3); // 6 layers (q, v, down × 2) · n_tasks · n_splits · n_skills
  });
});

describe('multi-task methods: files', () => {
  for (const [type, config] of Object.entries(CONFIGS))
    it(`${type}: save → load gives identical outputs`, () => {
      pj.manualSeed(7);
      const model = tiny();
      const peft = new PeftModel(model, config);
      const want = logitsOf(model);
      const dir = tmp();
      try {
        peft.save(dir);
        const loaded = tiny();
        PeftModel.fromPretrained(loaded, dir);
        assert.equal(maxDiff(want, logitsOf(loaded)), 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

  it('METEORA: built from two LoRA folders, saved and loaded back; top-1 gate output equals the chosen LoRA', () => {
    pj.manualSeed(8);
    const dir = tmp();
    try {
      const dirs = [0, 1].map((i) => {
        const p = new PeftModel(tiny(), { peft_type: 'LORA', r: 2, lora_alpha: 4, init_lora_weights: false, target_modules: ['q_proj', 'v_proj'] });
        const d = join(dir, `lora${i}`);
        p.save(d);
        return d;
      });
      const model = tiny();
      const met = meteoraFromLoras(model, dirs, { topK: 1 });
      assert.deepEqual((met.peftConfig.get('default') as unknown as { adapter_names: string[] }).adapter_names, ['lora0', 'lora1']);
      assert.equal(met.trainableParameters().length, 4, 'only the 4 gates train');
      // Gate weights 0 → uniform probabilities → top-1 picks expert 0 everywhere, with gate 1 (renormalised).
      for (const [, m] of model.namedModules()) if (m instanceof MoeLoraLinear) for (const [k, t] of m.adapterTensors('default')) if (k.startsWith('meteora_gate')) (t.data as Float32Array).fill(0);
      const got = logitsOf(model, null);
      const lora0 = PeftModel.fromPretrained(tiny(), dirs[0]!);
      assert.ok(maxDiff(got, logitsOf(lora0.model, null)) < 1e-5, `differs from LoRA 0 by ${maxDiff(got, logitsOf(lora0.model, null))}`);
      const saved = join(dir, 'met');
      met.save(saved);
      const back = tiny();
      PeftModel.fromPretrained(back, saved);
      assert.equal(maxDiff(got, logitsOf(back, null)), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('MHR-μ: the skill average saved as a plain LoRA equals Poly with uniform routing', () => {
    pj.manualSeed(9);
    const model = tiny();
    const peft = new PeftModel(model, CONFIGS.POLY!);
    for (const [, m] of model.namedModules())
      if (m instanceof PolyLinear) (m.adapterTensors('default').find(([k]) => k === 'poly_router.module_logits')![1].data as Float32Array).fill(0);
    const want = logitsOf(model);
    const { config, tensors } = averageSkillsAsLora(peft, 'default');
    assert.equal((config as unknown as { r: number }).r, 2);
    assert.equal(peftMethod(config.peft_type).peftType, 'LORA');
    const dir = tmp();
    try {
      writeAdapterFiles(dir, config, tensors);
      const lora = PeftModel.fromPretrained(tiny(), dir);
      assert.ok(maxDiff(want, logitsOf(lora.model, null)) < 1e-5, `max diff ${maxDiff(want, logitsOf(lora.model, null))}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the trainer regulariser hook returns the balancing loss of the last training forward', () => {
    const model = tiny();
    const peft = new PeftModel(model, CONFIGS.MOELORA!);
    const hooks = peftMethod('MOELORA').trainingHooks!(peft, 'default');
    model.train();
    pj.tidy(() => {
      model.forward(IDS());
      const reg = hooks.regularizer!();
      // 14 MoE layers × 0.01 × (≈1 when balanced, ≥ 1 in general).
      assert.ok(reg.item() > 0.1 && reg.requiresGrad, `regulariser ${reg.item()}`);
      assert.equal(hooks.regularizer!().item(), 0, 'drained');
    });
  });
});
