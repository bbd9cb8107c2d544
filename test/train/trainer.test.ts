// End-to-end LoRA training on stories260K: eval loss falls, the saved adapter loads back and changes generation;
// seed determinism; gradient checkpointing gives the same curve; exact-match eval and early stopping.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearPool, freshAllocatedBytes } from '../../src/engine/index.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { generate, loadCausalLM } from '../../src/models/index.js';
import { fillAdapterTensors, readAdapterFiles } from '../../src/peft/format.js';
import { PeftModel } from '../../src/peft/model.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { evaluate, train, type TrainHooks } from '../../src/train/trainer.js';
import { validateConfig } from '../../src/train/config.js';
import { buildRows } from '../../src/train/data/pack.js';
import type { TrainConfigInput } from '../../src/train/config.js';
import { qaPairs, writeStories } from './stories.js';

const MODEL = '../shared/models/stories260K';
const quiet: TrainHooks = { log: () => {} };
const dir = mkdtempSync(join(tmpdir(), 'peftjs-train-'));
const storiesFile = writeStories(join(dir, 'stories.txt'), 300, 1);
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function run(name: string, over: Partial<TrainConfigInput>) {
  return train({ model: MODEL, data: storiesFile, output: join(dir, name), batchSize: 8, seqLen: 64, lr: 3e-3, progress: false, precision: 'fp32', ...over }, quiet);
}

function losses(path: string): number[] {
  return new MetricsLog(path).read().flatMap((r) => (typeof r.loss === 'number' ? [r.loss] : []));
}

describe('LoRA training on stories260K', () => {
  it('lowers eval loss; the saved adapter loads back and changes greedy generation', async () => {
    const r = await run('real', { maxSteps: 200, evalEvery: 50, targetModules: ALL, schedule: 'cosine', warmupSteps: 10 });
    assert.equal(r.steps, 200);
    assert.ok(r.finalEval!.loss < r.firstEval!.loss * 0.5, `eval loss ${r.firstEval!.loss} → ${r.finalEval!.loss}`);
    const evals = new MetricsLog(r.metricsPath).read().filter((x) => typeof x.eval_loss === 'number');
    assert.deepEqual(evals.map((x) => x.step), [0, 50, 100, 150, 200]);
    assert.match(readFileSync(r.curvePath, 'utf8'), /^<svg/);
    assert.ok(r.peakRssBytes > 0 && r.tokensPerSecond > 0);

    const tok = loadTokenizer(MODEL);
    const prompt = tok.encode('Zuzu went to the');
    const base = loadCausalLM(MODEL);
    const before = generate(base, tok, [prompt], { maxNewTokens: 24 })[0]!.text;
    const files = readAdapterFiles(r.output);
    const peft = new PeftModel(base, files.config);
    fillAdapterTensors(peft, 'default', files, r.output);
    const after = generate(base, tok, [prompt], { maxNewTokens: 24 })[0]!.text;
    assert.notEqual(after, before);
    // The adapted model continues in the training data's style: "<place>. Zuzu found a <thing> in the <place>."
    assert.match(after, /^ (park|garden|beach|forest|house|pond)\. Zuzu found a /, `generated: ${JSON.stringify(after)} (base: ${JSON.stringify(before)})`);
  });

  it('same config and seed → same loss curve; another seed → another', async () => {
    const over = { maxSteps: 8, loraDropout: 0.1, evalSplit: 0 };
    const a = losses((await run('seed-a', over)).metricsPath);
    const b = losses((await run('seed-b', over)).metricsPath);
    const c = losses((await run('seed-c', { ...over, seed: 43 })).metricsPath);
    assert.equal(a.length, 8);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('gradient checkpointing (with dropout replayed) gives the same losses', async () => {
    const over = { maxSteps: 6, loraDropout: 0.1, evalSplit: 0, targetModules: ALL, gradAccum: 2 };
    const plain = losses((await run('gc-off', over)).metricsPath);
    const ckpt = losses((await run('gc-on', { ...over, gradientCheckpointing: true })).metricsPath);
    plain.forEach((l, i) => assert.ok(Math.abs(l - ckpt[i]!) <= 1e-6 * l, `step ${i + 1}: ${l} vs ${ckpt[i]}`));
  });

  it('evaluate: loss/perplexity over eval rows, exact match = greedy decoding reproduces the reference tokens', () => {
    const golden = (JSON.parse(readFileSync(join(MODEL, 'golden_greedy_64.json'), 'utf8')) as { generated_ids: number[] }).generated_ids;
    const tok = loadTokenizer(MODEL);
    const model = loadCausalLM(MODEL);
    const ids = [1, ...golden];
    const rows = buildRows([{ ids, mask: new Uint8Array(ids.length).fill(1), source: { file: 'g', line: 1 } }], 64, false, 0).rows;
    const wrong = [...golden.slice(0, 19), golden[19] === 5 ? 6 : 5];
    const references = [
      { promptIds: [1], completionIds: golden.slice(0, 20) },
      { promptIds: [1], completionIds: wrong },
      { promptIds: [1, ...golden.slice(0, 30)], completionIds: golden.slice(30, 40) },
    ];
    const cfg = validateConfig({ model: MODEL, data: 'unused', output: 'unused', batchSize: 1 });
    const report = { trainExamples: 0, evalExamples: 1, skipped: [], truncated: { examples: 0, tokens: 0 }, dropped: 0, trainRows: 0, evalRows: 1, trainTargetTokens: 0 };
    const e = evaluate(model, tok, { train: [], eval: rows, references, report }, cfg);
    assert.ok(Math.abs(e.exactMatch! - 2 / 3) < 1e-12, `exact match ${e.exactMatch}`);
    // Its own greedy continuation is the model's most likely text: a low loss, perplexity = exp(loss).
    assert.ok(e.loss > 0 && e.loss < 1, `loss ${e.loss}`);
    assert.ok(Math.abs(e.perplexity - Math.exp(e.loss)) < 1e-9);
  });

  it('allocates nothing after the first steps (activations die with their step)', async () => {
    const fresh: number[] = [];
    await train(
      { model: MODEL, data: storiesFile, output: join(dir, 'flat'), maxSteps: 12, batchSize: 8, seqLen: 64, evalSplit: 0, progress: false, precision: 'fp32', targetModules: ALL },
      { ...quiet, onMetrics: () => fresh.push(freshAllocatedBytes()) },
    );
    assert.equal(fresh.length, 12);
    assert.equal(fresh[11], fresh[2], `fresh bytes per step: ${fresh.map((b, i) => (i ? b - fresh[i - 1]! : 0)).join(', ')}`);
  });

  it('gradient checkpointing lowers the memory a step needs', async () => {
    const need = async (gradientCheckpointing: boolean) => {
      clearPool();
      const before = freshAllocatedBytes();
      await run(`mem-${gradientCheckpointing}`, { maxSteps: 2, evalSplit: 0, targetModules: ALL, gradientCheckpointing });
      return freshAllocatedBytes() - before;
    };
    const plain = await need(false);
    const ckpt = await need(true);
    assert.ok(ckpt < plain * 0.75, `bytes allocated: ${ckpt} with checkpointing vs ${plain} without`);
  });

  it('reports exact match on prompt/completion data and stops early on a stalled metric', async () => {
    const qa = join(dir, 'qa.jsonl');
    writeFileSync(qa, qaPairs(120, 2).map((x) => JSON.stringify(x)).join('\n'));
    const r = await run('qa', {
      data: qa,
      maxSteps: 100,
      evalEvery: 5,
      evalSplit: 8,
      packing: false,
      maxNewTokens: 12,
      earlyStoppingMetric: 'eval_loss',
      earlyStoppingPatience: 2,
      earlyStoppingMinDelta: 10, // no improvement is ever large enough
    });
    assert.equal(r.stoppedEarly, true);
    assert.equal(r.steps, 10, 'evals at 0 (best), 5 (1 bad), 10 (2 bad → stop)');
    assert.ok(r.finalEval!.exactMatch !== undefined && r.finalEval!.exactMatch >= 0 && r.finalEval!.exactMatch <= 1);
    assert.ok(existsSync(join(r.output, 'adapter_model.safetensors')));
  });
});
