// Parity with PyTorch: the first 50 training losses of a LoRA run on stories260K (same base, data order, LoRA init
// and hyper-parameters: LoRA+ groups, warmup + cosine, gradient accumulation, clipping, weight decay) match a plain
// PyTorch implementation (test/fixtures/train/torch_lora_parity.py) within 1%.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '../../src/engine/index.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { loadCausalLM } from '../../src/models/index.js';
import { savePeftModel } from '../../src/peft/format.js';
import { PeftModel } from '../../src/peft/model.js';
import { validateConfig } from '../../src/train/config.js';
import { prepareData } from '../../src/train/data/prepare.js';
import { BatchLoader } from '../../src/train/data/split.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { train } from '../../src/train/trainer.js';
import { writeStories } from './stories.js';

const PYTHON = '/usr/bin/python3';
const torchAvailable = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;

describe('training parity with PyTorch', { skip: !torchAvailable && 'needs /usr/bin/python3 with torch' }, () => {
  it('first 50 losses within 1% of the PyTorch anchor', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-parity-'));
    const input = {
      model: '../shared/models/stories260K-hf',
      data: writeStories(join(dir, 'stories.txt'), 200, 3),
      output: join(dir, 'out'),
      maxSteps: 50,
      batchSize: 4,
      gradAccum: 2,
      seqLen: 32,
      lr: 4e-3,
      warmupSteps: 5,
      schedule: 'cosine' as const,
      loraplusLrRatio: 4,
      weightDecay: 0.01,
      maxGradNorm: 0.5,
      r: 4,
      alpha: 8,
      targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      precision: 'fp32' as const,
      evalSplit: 0,
      seed: 7,
      progress: false,
    };
    const result = await train(input, { log: () => {} });
    const cfg = validateConfig(input);

    // The same initial adapter and batches, rebuilt the way the trainer builds them.
    manualSeed(cfg.seed);
    const peft = new PeftModel(loadCausalLM(cfg.model), { r: cfg.r, lora_alpha: cfg.alpha, target_modules: cfg.targetModules, task_type: 'CAUSAL_LM' });
    savePeftModel(peft, join(dir, 'init'));
    const tok = loadTokenizer(cfg.model);
    const data = prepareData(tok, cfg);
    const loader = new BatchLoader(data.train, cfg.batchSize, cfg.seed, true, tok.padId ?? tok.eosId ?? 0);
    const records = new MetricsLog(result.metricsPath).read().filter((r) => typeof r.loss === 'number');
    const steps = records.map((r) => ({
      lr: r.lr,
      micro: Array.from({ length: cfg.gradAccum }, () => {
        const b = loader.next();
        return { B: b.B, T: b.T, ids: [...b.ids], targets: [...b.targets] };
      }),
    }));
    const spec = join(dir, 'spec.json');
    writeFileSync(
      spec,
      JSON.stringify({ model_dir: cfg.model, adapter_dir: join(dir, 'init'), steps, lora_plus: cfg.loraplusLrRatio, beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weight_decay: cfg.weightDecay, max_grad_norm: cfg.maxGradNorm }),
    );
    const py = spawnSync(PYTHON, ['test/fixtures/train/torch_lora_parity.py', spec], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
    assert.equal(py.status, 0, py.stderr);
    const torchLosses = JSON.parse(py.stdout) as number[];
    const ours = records.map((r) => r.loss as number);
    assert.equal(ours.length, 50);
    assert.equal(torchLosses.length, 50);
    const rel = ours.map((l, i) => Math.abs(l - torchLosses[i]!) / torchLosses[i]!);
    const worst = Math.max(...rel);
    assert.ok(worst < 0.01, `worst relative difference ${worst} at step ${rel.indexOf(worst) + 1}: ${ours[rel.indexOf(worst)]} vs ${torchLosses[rel.indexOf(worst)]}`);
    t.diagnostic(`worst relative loss difference vs PyTorch over 50 steps: ${worst.toExponential(2)}`);
    // The run must actually learn, or matching losses would say little.
    assert.ok(ours[49]! < ours[0]! * 0.7, `loss ${ours[0]} → ${ours[49]}`);
  });
});
