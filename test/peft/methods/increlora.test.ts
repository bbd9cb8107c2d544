// IncreLoRA: AdaLoRA's SVD-form layer allocated at max_r with only a prefix of components active; the allocator
// activates components in the highest-scoring modules (mean triplet importance of their active components) along a
// linear budget from Σ init_r to target_r × #modules. Ranks only grow and end at the budget; the most important
// module gets the new components; activation leaves the outputs unchanged (E = 0); inactive components get no
// gradient; the saved adapter keeps only the active components and reloads to identical outputs; merge is exact;
// `train({ method: 'increlora' })` drives the allocator through the method's hooks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { readAdapterFiles } from '../../../src/peft/format.js';
import { train } from '../../../src/train/trainer.js';
import { IncreLoraAllocator, IncreLoraLinear, activePattern, type IncreLoraConfig } from '../../../src/peft/increlora/index.js';
import type { CausalLM } from '../../../src/models/types.js';
import { writeStories } from '../../train/stories.js';
import { adapted, layerOf, logits, relDiff, standardChecks, stories, storyBatch, idsTensor, Q_PROJ } from './variant-helpers.js';

const TOTAL = 20;
const MODULES = 5 * 2;
const CONFIG = {
  peft_type: 'INCRELORA',
  init_r: 1,
  target_r: 3,
  max_r: 6,
  tinit: 3,
  tfinal: 3,
  deltaT: 2,
  total_step: TOTAL,
  lora_alpha: 6,
  target_modules: ['q_proj', 'v_proj'],
};

interface Run {
  losses: number[];
  /** Total active rank after each step's allocation. */
  totals: number[];
  /** Active rank per module after each step's allocation. */
  perModule: Record<string, number>[];
  alloc: IncreLoraAllocator;
}

/**
 * The trainer protocol: loss + orth regulariser, backward, step, updateAndAllocate(step), zero grads.
 * `beforeAllocate(step)` runs between the optimizer step and the allocation (gradients still there),
 * `afterAllocate(step)` right after the allocation.
 */
function trainIncreLora(
  model: CausalLM,
  peft: PeftModel,
  steps: number,
  hooks: { beforeAllocate?: (step: number) => void; afterAllocate?: (step: number) => void } = {},
): Run {
  const alloc = new IncreLoraAllocator(peft);
  const opt = new pj.AdamW(peft.trainableParameters(), { lr: 2e-2 });
  const b = storyBatch();
  const run: Run = { losses: [], totals: [], perModule: [], alloc };
  model.train();
  for (let step = 1; step <= steps; step++) {
    run.losses.push(
      pj.tidy(() => {
        const task = model.loss(idsTensor(b), pj.tensor(b.targets, [b.B, b.T], 'i32'));
        pj.add(task, alloc.orthRegularization()).backward();
        return task.item();
      }),
    );
    opt.step();
    hooks.beforeAllocate?.(step);
    run.totals.push(alloc.updateAndAllocate(step));
    hooks.afterAllocate?.(step);
    run.perModule.push(alloc.ranks().perModule);
    opt.zeroGrad();
  }
  model.eval();
  return run;
}

const increLayer = (peft: PeftModel, path = Q_PROJ) => peft.model.getModule(path) as IncreLoraLinear;
const floats = (t: pj.Tensor) => t.toTyped() as Float32Array;
/** The storage of a contiguous f32 leaf, to write into. */
const storage = (t: pj.Tensor) => t.data as Float32Array;

describe('IncreLoRA', () => {
  it('ranks only grow, never past the linear budget, and end at target_r × #modules', () => {
    const { model, peft } = adapted(CONFIG);
    const { losses, totals, perModule, alloc } = trainIncreLora(model, peft, TOTAL);
    assert.equal(alloc.initBudget, 1 * MODULES);
    assert.equal(alloc.targetBudget, 3 * MODULES);
    for (let s = 1; s <= TOTAL; s++) {
      const { budget, grow } = alloc.budgetSchedule(s);
      const total = totals[s - 1]!;
      assert.ok(total <= budget, `step ${s}: total ${total} > budget ${budget}`);
      if (grow) assert.equal(total, budget, `step ${s} grows to its budget`);
      if (s > 1) {
        assert.ok(total >= totals[s - 2]!, `step ${s}: the total rank shrank`);
        for (const [p, k] of Object.entries(perModule[s - 1]!)) assert.ok(k >= perModule[s - 2]![p]!, `step ${s}: ${p} shrank`);
      }
    }
    assert.equal(totals[CONFIG.tinit - 1], MODULES, 'no growth before tinit');
    assert.ok(totals.some((t, i) => i > 0 && t > totals[i - 1]! && t < alloc.targetBudget), 'the budget grows in several steps');
    assert.equal(totals[TOTAL - CONFIG.tfinal - 1], alloc.targetBudget, 'the budget is reached at total_step − tfinal');
    assert.equal(totals[TOTAL - 1], alloc.targetBudget);
    const ranks = Object.values(perModule[TOTAL - 1]!);
    assert.ok(ranks.every((k) => k >= 1 && k <= 6));
    assert.ok(ranks.some((k) => k !== 3), `ranks are allocated unevenly: ${JSON.stringify(perModule[TOTAL - 1])}`);
    // The config's rank_pattern records the active prefix of every module's 6 components.
    const pattern = (peft.peftConfig.get('default') as IncreLoraConfig).rank_pattern!;
    assert.equal(Object.keys(pattern).length, MODULES);
    for (const [p, k] of Object.entries(perModule[TOTAL - 1]!)) assert.deepEqual(pattern[`${p}.lora_E`], activePattern(k, 6));
    assert.ok(losses[TOTAL - 1]! < losses[0]! - 0.05, `loss ${losses[0]} → ${losses[TOTAL - 1]}`);
  });

  it('the module with a clearly dominant gradient gets the added components first', () => {
    // One component per step from step 3 (budget 10 + (step − 2)) to step 12 (20 = 2 × 10 modules).
    const config = { ...CONFIG, init_r: 1, target_r: 2, max_r: 4, tinit: 2, tfinal: 0, deltaT: 1, total_step: 12 };
    const dominant = 'model.layers.3.self_attn.v_proj';
    const { model, peft } = adapted(config);
    const factors = Object.values(increLayer(peft, dominant).svdFactors('default'));
    const run = trainIncreLora(model, peft, 12, {
      // Scaling the gradient scales |p·∂L/∂p| and so the module's importance (the optimizer step is already done).
      beforeAllocate: () => factors.forEach((t) => storage(t.grad!).forEach((v, i, g) => (g[i] = v * 1e3))),
    });
    for (const [s, k] of [[2, 1], [3, 2], [4, 3], [5, 4]] as const) {
      assert.equal(run.perModule[s - 1]![dominant], k, `step ${s}: ${JSON.stringify(run.perModule[s - 1])}`);
      assert.equal(run.totals[s - 1], MODULES + k - 1, `step ${s}: only the dominant module grew`);
    }
    assert.equal(run.totals[11], 20);
    assert.equal(run.perModule[11]![dominant], 4, 'max_r caps the dominant module');
    const others = Object.entries(run.perModule[11]!).filter(([p]) => p !== dominant);
    assert.equal(others.reduce((s, [, k]) => s + k, 0), 16, 'the rest of the budget went to the other modules');
  });

  it('activating a component leaves the outputs unchanged (E = 0); the new component then trains', () => {
    const { model, peft } = adapted(CONFIG);
    const [before, after] = [new Map<number, Float32Array>(), new Map<number, Float32Array>()];
    const run = trainIncreLora(model, peft, 8, {
      beforeAllocate: (step) => before.set(step, logits(model)),
      afterAllocate: (step) => after.set(step, logits(model)),
    });
    const grew = [...run.totals.keys()].filter((i) => i > 0 && run.totals[i]! > run.totals[i - 1]!).map((i) => i + 1);
    assert.deepEqual(grew, [4, 6, 8], 'growth steps (every deltaT = 2 after tinit = 3)');
    for (const s of grew) assert.deepEqual(after.get(s), before.get(s), `step ${s}: activation changed the outputs`);
    // A component activated at step 4 starts at E = 0 and has trained since; inactive ones are still 0.
    const [path, k] = Object.entries(run.perModule[2]!).find(([p, k0]) => run.perModule[3]![p]! > k0)!;
    const e = floats(increLayer(peft, path).svdFactors('default').e);
    assert.notEqual(e[k], 0, `${path}: component ${k} trained after activation`);
    assert.ok(e.subarray(run.perModule[7]![path]!).every((v) => v === 0), 'inactive E entries stay 0');
  });

  it('gradcheck of the layer with 3 of 6 components active; inactive components get no gradient and change nothing', () => {
    const { peft } = adapted(CONFIG);
    const layer = increLayer(peft);
    layer.setActiveRank('default', 3);
    const { a, e, b } = layer.svdFactors('default');
    const g = new pj.Generator(3);
    storage(e).forEach((_, i, d) => (d[i] = g.uniform() - 0.5)); // inactive E entries too: they must not count
    const x = pj.keep(pj.randn([3, 64], 1, 0, new pj.Generator(11)));
    const y = floats(pj.tidy(() => pj.noGrad(() => layer.forward(x))));
    storage(e).fill(7, 3); // changing the inactive components leaves the output as it was
    storage(a).fill(7, 3 * 64);
    assert.deepEqual(floats(pj.tidy(() => pj.noGrad(() => layer.forward(x)))), y);
    pj.tidy(() => pj.sum(pj.square(layer.forward(x))).backward());
    assert.ok(floats(a.grad!).subarray(0, 3 * 64).some((v) => v !== 0), 'active rows of A get a gradient');
    assert.ok(floats(a.grad!).subarray(3 * 64).every((v) => v === 0), 'inactive rows of A get none');
    assert.ok(floats(e.grad!).subarray(3).every((v) => v === 0), 'inactive E entries get none');
    assert.ok(floats(b.grad!).every((v, i) => i % 6 < 3 || v === 0), 'inactive columns of B get none');
    for (const t of [a, e, b]) t.grad = null;
    const { trainable } = layerOf(peft);
    pj.gradcheck(() => layer.forward(x), trainable, { maxPerInput: 24 });
  });

  it('saves only the active components (lora_A [k, in], lora_E [k, 1], lora_B [out, k]) with rank_pattern; reload is identical; merge is exact', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-increlora-'));
    try {
      const { model, peft } = adapted(CONFIG);
      const { alloc } = trainIncreLora(model, peft, TOTAL);
      const before = logits(model);
      peft.save(dir);
      const files = readAdapterFiles(dir);
      const perModule = alloc.ranks().perModule;
      for (const [path, k] of Object.entries(perModule)) {
        const p = `base_model.model.${path}`;
        const { inFeatures, outFeatures } = increLayer(peft, path);
        assert.deepEqual(files.tensors.get(`${p}.lora_A`)!.shape, [k, inFeatures]);
        assert.deepEqual(files.tensors.get(`${p}.lora_E`)!.shape, [k, 1]);
        assert.deepEqual(files.tensors.get(`${p}.lora_B`)!.shape, [outFeatures, k]);
      }
      assert.equal(files.tensors.size, MODULES * 3);
      assert.equal(files.rawConfig.peft_type, 'INCRELORA');
      for (const f of ['init_r', 'target_r', 'max_r', 'tinit', 'tfinal', 'deltaT', 'total_step', 'rank_pattern']) assert.ok(f in files.rawConfig, f);
      const loaded = stories();
      const lp = PeftModel.fromPretrained(loaded, dir);
      assert.deepEqual(logits(loaded), before, 'save → load changed the outputs');
      for (const [path, k] of Object.entries(perModule)) {
        const l = increLayer(lp, path);
        assert.equal(l.allocatedRank('default'), k, 'a loaded module has exactly its active components');
        assert.equal(l.keptRank('default'), k);
      }
      peft.merge();
      assert.ok(relDiff(before, logits(model)) < 1e-5, `merged vs unmerged: ${relDiff(before, logits(model))}`);
      peft.unmerge();
      assert.ok(relDiff(before, logits(model)) < 1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('config: ranks only grow (init_r ≤ target_r ≤ max_r); total_step is required', () => {
    assert.throws(() => adapted({ ...CONFIG, init_r: 4 }), /init_r \(4\) exceeds target_r \(3\)/);
    assert.throws(() => adapted({ ...CONFIG, max_r: 2 }), /target_r \(3\) exceeds max_r \(2\)/);
    assert.throws(() => adapted({ ...CONFIG, total_step: null }), /total_step/);
    assert.throws(() => adapted({ ...CONFIG, tinit: 18 }), /budgeting phase/);
  });

  it('train({ method: "increlora" }) grows the ranks to the budget through the method hooks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-increlora-train-'));
    try {
      const data = writeStories(join(dir, 'stories.txt'), 60, 1);
      const methodConfig = { init_r: 1, target_r: 2, max_r: 4, tinit: 2, tfinal: 2, deltaT: 2 };
      const r = await train(
        {
          model: '../shared/models/stories260K',
          data,
          output: join(dir, 'out'),
          method: 'increlora',
          methodConfig,
          targetModules: ['q_proj', 'v_proj'],
          maxSteps: 10,
          batchSize: 4,
          seqLen: 32,
          evalSplit: 0,
          progress: false,
          precision: 'fp32',
        },
        { log: () => {} },
      );
      assert.equal(r.steps, 10);
      const files = readAdapterFiles(r.output);
      assert.equal(files.rawConfig.total_step, 10, 'the trainer filled total_step');
      const pattern = files.rawConfig.rank_pattern as Record<string, boolean[]>;
      const active = Object.values(pattern).map((p) => p.filter(Boolean).length);
      assert.equal(active.length, MODULES);
      assert.equal(
        active.reduce((s, k) => s + k, 0),
        2 * MODULES,
        `the budget is reached: ${JSON.stringify(active)}`,
      );
      for (const [key, p] of Object.entries(pattern)) assert.deepEqual(files.tensors.get(`base_model.model.${key}`)!.shape, [p.filter(Boolean).length, 1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  standardChecks(CONFIG, { lr: 1e-2 });
});
