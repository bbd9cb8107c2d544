// Multi-task training through `train()` from a task field in the data: MTLoRA on stories260K with three tasks —
// n_tasks filled in, every row the forward sees is one task's and carries that task's id (train and eval),
// per-task eval metrics, tasks.json, resume; the task sampler's frequencies; the data errors; `generate --task NAME`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGradEnabled, type Tensor } from '../../src/engine/index.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { loadCausalLM } from '../../src/models/index.js';
import { currentTaskIds } from '../../src/multitask/index.js';
import { resolveTaskId } from '../../src/cli/generate.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { train, type TrainHooks } from '../../src/train/trainer.js';
import type { TrainConfigInput } from '../../src/train/config.js';
import { IGNORE_INDEX, type Row } from '../../src/train/data/pack.js';
import { TaskBatchLoader } from '../../src/train/data/tasks.js';
import { UsageError } from '../../src/cli/command.js';

const MODEL = '../shared/models/stories260K-hf';
const quiet: TrainHooks = { log: () => {} };
const dir = mkdtempSync(join(tmpdir(), 'peftjs-mtdata-'));

// Three tasks written with disjoint characters (digits, capitals, lower case), so a row's tokens tell its task:
// "3 4 5" → " 6 7" (the next two symbols, cyclically).
const ALPHABETS: Record<string, string> = { lower: 'abcdefghij', digits: '0123456789', caps: 'ABCDEFGHIJ' };
function record(task: string, i: number) {
  const a = ALPHABETS[task]!;
  const at = (k: number) => a[(i + k) % a.length]!;
  return { task, prompt: `${at(0)} ${at(1)} ${at(2)}`, completion: ` ${at(3)} ${at(4)}` };
}
// First appearances: lower, digits, caps (not sorted); sizes 12 / 48 / 24 records.
const trainRecords = [
  record('lower', 0),
  record('digits', 0),
  record('caps', 0),
  ...Array.from({ length: 47 }, (_, i) => record('digits', i + 1)),
  ...Array.from({ length: 23 }, (_, i) => record('caps', i + 1)),
  ...Array.from({ length: 11 }, (_, i) => record('lower', i + 1)),
];
const jsonl = (recs: object[]) => recs.map((r) => JSON.stringify(r)).join('\n') + '\n';
const dataFile = join(dir, 'train.jsonl');
writeFileSync(dataFile, jsonl(trainRecords));
const evalFile = join(dir, 'eval.jsonl');
writeFileSync(evalFile, jsonl(['caps', 'lower', 'digits'].flatMap((t) => [3, 5, 7].map((i) => record(t, i)))));

const base = {
  model: MODEL,
  data: dataFile,
  evalData: evalFile,
  taskField: 'task',
  method: 'mtlora',
  methodConfig: { r: 4, task_r: 4, init_lora_weights: false },
  seqLen: 32,
  batchSize: 8,
  lr: 1e-2,
  schedule: 'constant' as const,
  evalEvery: 10,
  evalGenerate: 3,
  maxNewTokens: 4,
  maxSteps: 20,
  progress: false,
  precision: 'fp32' as const,
} satisfies Partial<TrainConfigInput>;

interface Seen {
  ids: Int32Array;
  B: number;
  T: number;
  tasks: Int32Array | null;
  grad: boolean;
  generating: boolean;
}

/** Runs `fn` while recording every forward of the causal LM: its input ids and the task ids in effect. */
async function observeForwards<T>(fn: () => Promise<T>): Promise<{ result: T; seen: Seen[] }> {
  const proto = Object.getPrototypeOf(loadCausalLM(MODEL)) as { forward: (ids: Tensor, opts?: unknown) => Tensor };
  const original = proto.forward;
  const seen: Seen[] = [];
  proto.forward = function (this: unknown, ids: Tensor, opts?: unknown) {
    const [B, T] = ids.shape as [number, number];
    seen.push({ ids: Int32Array.from(ids.toTyped() as Int32Array), B, T, tasks: currentTaskIds()?.slice() ?? null, grad: isGradEnabled(), generating: opts !== undefined });
    return original.call(this, ids, opts);
  };
  try {
    return { result: await fn(), seen };
  } finally {
    proto.forward = original;
  }
}

describe('multi-task training from a task field', () => {
  const tok = loadTokenizer(MODEL);
  const names = ['lower', 'digits', 'caps'];
  // The tokens each task's records use; the pad id joins every set (it is EOS, which ends every example anyway).
  const vocab = names.map((t) => {
    const s = new Set<number>([tok.padId ?? tok.eosId ?? 0]);
    for (const r of trainRecords.filter((x) => x.task === t)) for (const id of [...tok.encode(r.prompt), ...tok.encode(r.completion, { addSpecialTokens: false }), tok.eosId!]) s.add(id);
    return s;
  });
  const own = vocab.map((v, t) => new Set([...v].filter((id) => vocab.every((w, s) => s === t || !w.has(id)))));

  it('trains MTLoRA: n_tasks filled, rows of one task routed to it, per-task eval, tasks.json, loss falls', async () => {
    const output = join(dir, 'run');
    const { result: r, seen } = await observeForwards(() => train({ ...base, output }, quiet));
    assert.equal(JSON.parse(readFileSync(join(output, 'adapter_config.json'), 'utf8')).n_tasks, 3);
    assert.deepEqual(JSON.parse(readFileSync(join(output, 'tasks.json'), 'utf8')), names);
    assert.deepEqual(JSON.parse(readFileSync(join(r.checkpoint, 'tasks.json'), 'utf8')), names);

    // Training and eval-loss forwards: every row's tokens belong to its task id's records only, with at least one
    // token no other task uses — a row mixing tasks, or routed to another task, fails.
    const rowForwards = seen.filter((s) => !s.generating);
    assert.equal(rowForwards.filter((s) => s.grad).length, 20);
    assert.ok(rowForwards.some((s) => !s.grad), 'eval-loss forwards were observed');
    let rows = 0;
    for (const s of rowForwards) {
      assert.ok(s.tasks, 'the forward runs with task ids');
      assert.equal(s.tasks.length, s.B);
      for (let b = 0; b < s.B; b++) {
        const t = s.tasks[b]!;
        const row = [...s.ids.subarray(b * s.T, (b + 1) * s.T)];
        assert.ok(row.every((id) => vocab[t]!.has(id)), `row ${b} routed to ${names[t]} holds tokens of another task: ${tok.decode(row)}`);
        assert.ok(row.some((id) => own[t]!.has(id)), `row ${b} has no token of its task ${names[t]}: ${tok.decode(row)}`);
        rows++;
      }
    }
    assert.ok(rows > 160);
    // Exact-match generation runs per task, under that task's id.
    const gens = seen.filter((s) => s.generating);
    assert.ok(gens.length > 0 && gens.every((s) => s.tasks !== null && s.tasks.length === s.B && s.tasks.every((t) => t === s.tasks![0])));
    assert.deepEqual([...new Set(gens.map((s) => s.tasks![0]))].sort(), [0, 1, 2]);

    const evals = new MetricsLog(r.metricsPath).read().filter((x) => x.eval_loss !== undefined);
    assert.deepEqual(evals.map((x) => x.step), [0, 10, 20]);
    for (const e of evals)
      for (const t of names) {
        assert.equal(typeof e[`eval_${t}_loss`], 'number', `eval_${t}_loss at step ${e.step}`);
        assert.equal(typeof e[`eval_${t}_exact_match`], 'number', `eval_${t}_exact_match at step ${e.step}`);
      }
    // The overall eval loss pools the tasks' target tokens: each eval record's completion tokens and its EOS.
    const evalRecords = readFileSync(evalFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { task: string; completion: string });
    const targets = names.map((t) => evalRecords.filter((x) => x.task === t).reduce((s, x) => s + tok.encode(x.completion, { addSpecialTokens: false }).length + 1, 0));
    const last = evals.at(-1)!;
    const pooled = names.reduce((s, t, i) => s + (last[`eval_${t}_loss`] as number) * targets[i]!, 0) / (targets[0]! + targets[1]! + targets[2]!);
    assert.ok(Math.abs((last.eval_loss as number) - pooled) < 1e-5, `${last.eval_loss} vs ${pooled}`);
    assert.deepEqual(r.finalEval!.tasks!.map((t) => t.task), names);
    assert.ok(r.finalEval!.loss < r.firstEval!.loss * 0.8, `eval loss ${r.firstEval!.loss} → ${r.finalEval!.loss}`);
    assert.ok(r.finalLoss < r.firstLoss, `train loss ${r.firstLoss} → ${r.finalLoss}`);
  });

  it('an interrupted run resumed from its checkpoint matches the uninterrupted one', async () => {
    const straight = join(dir, 'run');
    const cut = join(dir, 'cut');
    const stop = new AbortController();
    const first = await train({ ...base, output: cut }, { ...quiet, signal: stop.signal, onMetrics: (m) => m.step === 7 && m.loss !== undefined && stop.abort() });
    assert.ok(first.interrupted);
    assert.equal(first.steps, 7);
    const lines: string[] = [];
    const resumed = await train({ ...base, output: cut, resume: true }, { log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /resumed from .*checkpoint-7 at step 7/.test(l)), lines.join('\n'));
    assert.equal(resumed.steps, 20);
    const curve = (o: string) => new MetricsLog(join(o, 'metrics.jsonl')).read().flatMap((x) => (x.loss === undefined ? [] : [[x.step, x.loss]]));
    assert.deepEqual(curve(cut), curve(straight));
    assert.deepEqual(readFileSync(join(cut, 'adapter_model.safetensors')), readFileSync(join(straight, 'adapter_model.safetensors')));
    // A checkpoint of a multi-task run does not resume a run without tasks.
    await assert.rejects(train({ ...base, output: cut, resume: true, maxSteps: 30, taskField: undefined, method: 'lora', methodConfig: {} }, quiet), /resume: .* was trained on tasks \[lower, digits, caps\], this run's data has no tasks/);
  });

  it('samples tasks with the temperature: proportional at 1, uniform as it grows; resumable from its position', () => {
    const sizes = [60, 30, 10];
    const rows: Row[] = sizes.flatMap((n, t) => Array.from({ length: n }, (_, i) => ({ ids: Int32Array.of(t, i), targets: Int32Array.of(1, IGNORE_INDEX), task: t })));
    const frequencies = (temperature: number, batches = 500) => {
      const loader = new TaskBatchLoader(rows, 3, 10, 7, temperature, 0);
      const counts = [0, 0, 0];
      for (let k = 0; k < batches; k++) {
        const b = loader.next();
        // Every row is its task's (ids[0] holds the task it was built for).
        b.taskIds!.forEach((t, i) => {
          assert.equal(b.ids[i * b.T], t);
          counts[t]!++;
        });
      }
      return counts.map((c) => c / (batches * 10));
    };
    const near = (got: number[], want: number[]) => got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) < 0.025, `task ${i}: ${g.toFixed(3)} vs ${want[i]!.toFixed(3)}`));
    near(frequencies(1), [0.6, 0.3, 0.1]);
    const sq = sizes.map(Math.sqrt);
    near(frequencies(2), sq.map((x) => x / (sq[0]! + sq[1]! + sq[2]!)));
    near(frequencies(1e6), [1 / 3, 1 / 3, 1 / 3]);

    // Each pass over a task visits every row of it once.
    const loader = new TaskBatchLoader(rows, 3, 10, 1, 1e6, 0);
    const seenSmall: number[] = [];
    while (seenSmall.length < 10) {
      const b = loader.next();
      b.taskIds!.forEach((t, i) => t === 2 && seenSmall.length < 10 && seenSmall.push(b.ids[i * b.T + 1]!));
    }
    assert.deepEqual(seenSmall.sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // A loader set to a saved position continues with the same batches.
    const saved = loader.position;
    const expected = Array.from({ length: 5 }, () => loader.next());
    const again = new TaskBatchLoader(rows, 3, 10, 1, 1e6, 0);
    again.position = saved;
    for (const e of expected) assert.deepEqual(again.next(), e);
    assert.throws(() => (again.position = { epoch: 0, batch: 0 }), /no per-task state/);
  });

  it('a record without the task field, or an unknown task in the eval data, is an error naming file, record and field', async () => {
    const bad = join(dir, 'missing.jsonl');
    writeFileSync(bad, jsonl([record('caps', 0), record('lower', 1), { prompt: 'a b c', completion: ' d e' }, record('caps', 2)]));
    await assert.rejects(train({ ...base, data: bad, evalData: undefined, output: join(dir, 'bad') }, quiet), (e: Error) => {
      assert.match(e.message, /missing\.jsonl:3: field "task": missing in record 3/);
      return true;
    });
    const unknown = join(dir, 'unknown.jsonl');
    writeFileSync(unknown, jsonl([record('caps', 0), { ...record('lower', 1), task: 'upper' }]));
    await assert.rejects(train({ ...base, evalData: unknown, output: join(dir, 'bad2') }, quiet), (e: Error) => {
      assert.match(e.message, /unknown\.jsonl:2: field "task": record 2: unknown task "upper" \(the training data's tasks: lower, digits, caps\)/);
      return true;
    });
    // A method that routes by task needs taskField.
    await assert.rejects(train({ ...base, taskField: undefined, output: join(dir, 'bad3') }, quiet), /MTLORA routes every example by its task: set taskField/);
  });

  it('generate --task accepts the names of the adapter\'s tasks.json, and ids', () => {
    const adapter = join(dir, 'run');
    assert.equal(resolveTaskId('lower', adapter), 0);
    assert.equal(resolveTaskId('caps', adapter), 2);
    assert.equal(resolveTaskId('1', adapter), 1);
    assert.throws(() => resolveTaskId('upper', adapter), (e: Error) => e instanceof UsageError && /unknown task 'upper'.*lower, digits, caps/.test(e.message));
    assert.equal(resolveTaskId('2', dir), 2); // no tasks.json: ids only
    assert.throws(() => resolveTaskId('caps', dir), UsageError);
    assert.equal(resolveTaskId('0', undefined), 0);
  });
});
