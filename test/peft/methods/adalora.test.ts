// AdaLoRA: ΔW = P·diag(E)·Q·α/ranknum; a training run driven by the RankAllocator (orthogonal regulariser in the
// loss, updateAndAllocate after each optimizer step) ends with total rank ≤ target_r × #modules and lower loss;
// the saved adapter keeps only the allocated components (PEFT's resize by rank_pattern) and reloads to identical
// outputs. PEFT names checked against PEFT 0.20 src/peft/tuners/adalora/{config,layer,model}.py.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { readAdapterFiles } from '../../../src/peft/format.js';
import { AdaLoraLinear, RankAllocator, type AdaLoraConfig } from '../../../src/peft/adalora/index.js';
import type { CausalLM } from '../../../src/models/types.js';
import { adapted, logits, relDiff, standardChecks, stories, storyBatch, idsTensor, Q_PROJ } from './variant-helpers.js';

const TOTAL = 24;
const CONFIG = {
  peft_type: 'ADALORA',
  init_r: 6,
  target_r: 2,
  tinit: 3,
  tfinal: 5,
  deltaT: 2,
  total_step: TOTAL,
  lora_alpha: 12,
  target_modules: ['q_proj', 'v_proj'],
};

/** The trainer protocol: loss + orth regulariser, backward, step, updateAndAllocate(step), zero grads. */
function trainAdaLora(model: CausalLM, peft: PeftModel, steps: number): { losses: number[]; budgets: number[]; alloc: RankAllocator } {
  const alloc = new RankAllocator(peft);
  const opt = new pj.AdamW(peft.trainableParameters(), { lr: 2e-2 });
  const b = storyBatch();
  const losses: number[] = [];
  const budgets: number[] = [];
  model.train();
  for (let step = 1; step <= steps; step++) {
    losses.push(
      pj.tidy(() => {
        const task = model.loss(idsTensor(b), pj.tensor(b.targets, [b.B, b.T], 'i32'));
        pj.add(task, alloc.orthRegularization()).backward();
        return task.item();
      }),
    );
    opt.step();
    budgets.push(alloc.updateAndAllocate(step));
    opt.zeroGrad();
  }
  model.eval();
  return { losses, budgets, alloc };
}

describe('AdaLoRA', () => {
  it('the cubic budget schedule runs from Σ init_r to target_r × #modules; the final total rank respects it', () => {
    const { model, peft } = adapted(CONFIG);
    const { losses, budgets, alloc } = trainAdaLora(model, peft, TOTAL);
    const modules = 5 * 2;
    assert.equal(alloc.initBudget, 6 * modules);
    assert.equal(alloc.targetBudget, 2 * modules);
    assert.equal(budgets[0], 6 * modules, 'no pruning before tinit');
    assert.ok(budgets.every((v, i) => i === 0 || v <= budgets[i - 1]!), 'the budget never grows');
    assert.equal(budgets[TOTAL - 1], 2 * modules);
    const { total, perModule } = alloc.ranks();
    assert.ok(total <= alloc.targetBudget, `total rank ${total} > budget ${alloc.targetBudget}`);
    assert.ok(total > 0 && Object.values(perModule).some((r) => r !== 2), `ranks are allocated unevenly: ${JSON.stringify(perModule)}`);
    const pattern = (peft.peftConfig.get('default') as AdaLoraConfig).rank_pattern!;
    assert.equal(Object.keys(pattern).length, modules);
    assert.ok(`${Q_PROJ}.lora_E` in pattern);
    // Masked singular values are zero in E.
    const e = (peft.model.getModule(Q_PROJ) as AdaLoraLinear).svdFactors('default').e.toTyped() as Float32Array;
    pattern[`${Q_PROJ}.lora_E`]!.forEach((kept, i) => kept || assert.equal(e[i], 0));
    assert.ok(losses[TOTAL - 1]! < losses[0]! - 0.05, `loss ${losses[0]} → ${losses[TOTAL - 1]}`);
  });

  it('orthRegularization is weight · mean ‖PPᵀ − I‖_F and is differentiable', () => {
    const { peft } = adapted({ ...CONFIG, orth_reg_weight: 0.3 });
    const alloc = new RankAllocator(peft);
    const layer = peft.model.getModule(Q_PROJ) as AdaLoraLinear;
    const { a } = layer.svdFactors('default');
    const reg = pj.tidy(() => {
      const r = alloc.orthRegularization();
      r.backward();
      return r.item();
    });
    let want = 0;
    for (const [, l] of alloc.layers) {
      const f = l.svdFactors('default');
      for (const [m, rows, cols] of [[f.a, 6, f.a.shape[1]!], [f.b, f.b.shape[0]!, 6]] as [pj.Tensor, number, number][]) {
        const d = m.toTyped() as Float32Array;
        let s = 0;
        for (let i = 0; i < 6; i++)
          for (let j = 0; j < 6; j++) {
            let c = 0;
            if (m === f.a) for (let k = 0; k < cols; k++) c += d[i * cols + k]! * d[j * cols + k]!;
            else for (let k = 0; k < rows; k++) c += d[k * cols + i]! * d[k * cols + j]!;
            s += (c - (i === j ? 1 : 0)) ** 2;
          }
        want += Math.sqrt(s);
      }
    }
    assert.ok(Math.abs(reg - (0.3 * want) / 20) < 1e-4 * reg);
    assert.ok(a.grad && (a.grad.toTyped() as Float32Array).some((v) => v !== 0));
  });

  it('saves only the allocated components (lora_A [k, in], lora_E [k, 1], lora_B [out, k]) with rank_pattern; reload is identical', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-adalora-'));
    try {
      const { model, peft } = adapted(CONFIG);
      const { alloc } = trainAdaLora(model, peft, TOTAL);
      const before = logits(model);
      peft.save(dir);
      const files = readAdapterFiles(dir);
      const k = alloc.ranks().perModule[Q_PROJ]!;
      const p = `base_model.model.${Q_PROJ}`;
      assert.deepEqual(files.tensors.get(`${p}.lora_A`)!.shape, [k, 64]);
      assert.deepEqual(files.tensors.get(`${p}.lora_E`)!.shape, [k, 1]);
      assert.deepEqual(files.tensors.get(`${p}.lora_B`)!.shape, [64, k]);
      assert.equal(files.tensors.size, 5 * 2 * 3, 'no ranknum in the file');
      assert.equal(files.rawConfig.peft_type, 'ADALORA');
      for (const f of ['init_r', 'target_r', 'tinit', 'tfinal', 'deltaT', 'beta1', 'beta2', 'orth_reg_weight', 'total_step', 'rank_pattern']) assert.ok(f in files.rawConfig, f);
      const loaded = stories();
      PeftModel.fromPretrained(loaded, dir);
      assert.ok(relDiff(before, logits(loaded)) < 1e-6, `reload: ${relDiff(before, logits(loaded))}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('config: total_step is required and the schedule must leave a budgeting phase (PEFT\'s checks)', () => {
    assert.throws(() => adapted({ ...CONFIG, total_step: null }), /total_step/);
    assert.throws(() => adapted({ ...CONFIG, tinit: 20, tfinal: 4 }), /budgeting phase/);
  });

  standardChecks(CONFIG, { lr: 1e-2 });
});
