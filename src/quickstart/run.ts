/**
 * `runQuickstart()`: the whole tour on the embedded default model — the base model failing the built-in tasks,
 * one LoRA adapter trained per task with the trainer (`peftjs train`'s engine), each adapter's exact-match
 * accuracy, the adapters saved in the HF PEFT format, reloaded into one multi-adapter model for a sample answer
 * per task, and a summary table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { noGrad } from '../engine/index.js';
import { loadTokenizer, type Tokenizer } from '../io/tokenizer.js';
import { generate, loadCausalLM, type CausalLM } from '../models/index.js';
import { fillAdapterTensors, loadAdapterInto, readAdapterFiles } from '../peft/format.js';
import { PeftModel } from '../peft/model.js';
import { train } from '../train/trainer.js';
import { DEFAULT_MODEL_DIR } from './default-model.js';
import { makeSplit, TASKS, taskByName, type Task, type TaskRecord } from './tasks.js';

export interface QuickstartOptions {
  /** Output folder (default `./peftjs-quickstart`). */
  out?: string;
  /** LoRA optimizer steps per task (default 200). */
  steps?: number;
  /** Task names (default: all). */
  tasks?: readonly string[];
  /** Seed of the data, the LoRA init and the batch order (default 0). */
  seed?: number;
  /** Training examples per task (default 400; fewer when a task has fewer distinct inputs). */
  nTrain?: number;
  /** Held-out examples per task for exact match (default 50). */
  nEval?: number;
  /** Base model folder (default: the embedded model). */
  model?: string;
  /** LoRA rank (default 8) and peak learning rate (default 4e-3). */
  r?: number;
  lr?: number;
  /** Training progress bars on stderr (default true). */
  progress?: boolean;
  /** Where the report goes, line by line (default console.log). */
  print?: (line: string) => void;
}

/** An exact-match evaluation: accuracy and every generated answer. */
export interface ExactMatch {
  correct: number;
  total: number;
  accuracy: number;
  outputs: string[];
}

export interface TaskResult {
  task: string;
  base: ExactMatch;
  adapter: ExactMatch;
  trainableParameters: number;
  /** Training loss of the first and last step. */
  firstLoss: number;
  finalLoss: number;
  /** Seconds spent training (data, steps, saving). */
  seconds: number;
  adapterDir: string;
  sample: { prompt: string; reference: string; base: string; adapter: string };
}

export interface QuickstartResult {
  out: string;
  tasks: TaskResult[];
  seconds: number;
}

const DEFAULTS = { out: 'peftjs-quickstart', steps: 200, seed: 0, nTrain: 400, nEval: 50, r: 8, lr: 4e-3 };

/** Greedy answers of `model` to the records' prompts, compared exactly (trimmed) with their completions. */
export function exactMatch(model: CausalLM, tok: Tokenizer, records: readonly TaskRecord[]): ExactMatch {
  const longest = Math.max(...records.map((r) => tok.encode(r.completion, { addSpecialTokens: false }).length));
  const gens = noGrad(() => generate(model, tok, records.map((r) => r.prompt), { maxNewTokens: longest + 1 }));
  const outputs = gens.map((g) => g.text.trim());
  const correct = outputs.filter((o, i) => o === records[i]!.completion.trim()).length;
  return { correct, total: records.length, accuracy: correct / records.length, outputs };
}

/** `path` relative to the working directory when it lies inside it, else absolute. */
function show(path: string): string {
  const r = relative(process.cwd(), path);
  return r === '' ? '.' : r.startsWith('..') ? path : r;
}

const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const quote = (s: string, max = 28) => JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);

function writeJsonl(path: string, records: readonly TaskRecord[]): void {
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** A text table with left-aligned first column and right-aligned others. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)];
}

/** Runs the quickstart; see the module comment. Resolves with every number it printed. */
export async function runQuickstart(opts: QuickstartOptions = {}): Promise<QuickstartResult> {
  const o = { ...DEFAULTS, ...opts };
  const print = opts.print ?? ((line: string) => console.log(line));
  const modelDir = opts.model ?? DEFAULT_MODEL_DIR;
  const tasks: Task[] = (opts.tasks ?? TASKS.map((t) => t.name)).map(taskByName);
  if (tasks.length === 0) throw new Error('quickstart: no tasks selected');
  const out = resolve(o.out);
  const started = performance.now();

  const tok = loadTokenizer(modelDir);
  const base = loadCausalLM(modelDir);
  const c = base.config;
  const nParams = base.parameters().reduce((s, p) => s + p.size, 0);
  print(`peftjs quickstart: one LoRA adapter per task on a tiny base model`);
  print(`base model  ${show(modelDir)}: ${c.modelType}, ${c.numLayers} layers, width ${c.hiddenSize}, ${c.numHeads}/${c.numKvHeads} heads, ${nParams.toLocaleString('en-US')} params (pretrained by peftjs, see its README.md)`);

  // Data: generated per task, written as the JSONL files the trainer reads.
  const splits = tasks.map((t) => makeSplit(t, { nTrain: Math.min(o.nTrain, t.inputCount - o.nEval), nEval: o.nEval, seed: o.seed }));
  const files = tasks.map((t, i) => {
    const dir = join(out, 'data', t.name);
    mkdirSync(dir, { recursive: true });
    const f = { train: join(dir, 'train.jsonl'), eval: join(dir, 'eval.jsonl') };
    writeJsonl(f.train, splits[i]!.train);
    writeJsonl(f.eval, splits[i]!.eval);
    return f;
  });
  print(`tasks       ${tasks.map((t, i) => `${t.name} (${t.description}; ${splits[i]!.train.length} train / ${splits[i]!.eval.length} eval)`).join(', ')}`);
  print('');

  print(`1. The base model on each task (greedy generation, exact match on held-out examples)`);
  const baseScores = tasks.map((t, i) => {
    const m = exactMatch(base, tok, splits[i]!.eval);
    const ex = splits[i]!.eval[0]!;
    print(`   ${t.name.padEnd(6)} ${String(m.correct).padStart(3)}/${m.total}  ${pct(m.accuracy).padStart(4)}   e.g. ${ex.prompt} → ${quote(m.outputs[0]!)}  (want ${quote(ex.completion)})`);
    return m;
  });
  base.dispose();
  print('');

  print(`2. Training one LoRA adapter per task (r=${o.r}, all linear layers, ${o.steps} steps, lr ${o.lr})`);
  const trained = [];
  for (const [i, t] of tasks.entries()) {
    const adapterDir = join(out, 'adapters', t.name);
    const r = await train(
      {
        model: modelDir,
        data: files[i]!.train,
        evalData: files[i]!.eval,
        output: adapterDir,
        r: o.r,
        alpha: 2 * o.r,
        targetModules: ['all-linear'],
        lr: o.lr,
        schedule: 'cosine',
        warmupSteps: Math.min(10, Math.floor(o.steps / 10)),
        maxSteps: o.steps,
        batchSize: 16,
        seqLen: 64,
        packing: false,
        seed: o.seed,
        evalGenerate: 0,
        saveTotalLimit: 1,
        precision: 'fp32',
        progress: o.progress ?? true,
      },
      { log: () => {} },
    );
    print(`   ${t.name.padEnd(6)} loss ${r.firstLoss.toFixed(3)} → ${r.finalLoss.toFixed(3)}   ${r.trainableParameters.toLocaleString('en-US')} trainable params   ${r.seconds.toFixed(1)} s   → ${show(adapterDir)}`);
    trained.push({ task: t, dir: adapterDir, r });
  }
  print('');

  // The saved adapters, reloaded from their HF PEFT files into one model, switched per task.
  print(`3. The adapters, reloaded from disk into one model and switched per task`);
  const model = loadCausalLM(modelDir);
  const first = readAdapterFiles(trained[0]!.dir);
  const peft = new PeftModel(model, first.config, tasks[0]!.name);
  fillAdapterTensors(peft, tasks[0]!.name, first, trained[0]!.dir);
  for (const { task, dir } of trained.slice(1)) loadAdapterInto(peft, dir, task.name);
  const results: TaskResult[] = trained.map(({ task, dir, r }, i) => {
    peft.setAdapter(task.name);
    const m = exactMatch(model, tok, splits[i]!.eval);
    const ex = splits[i]!.eval[0]!;
    print(`   ${task.name.padEnd(6)} ${String(m.correct).padStart(3)}/${m.total}  ${pct(m.accuracy).padStart(4)}   e.g. ${ex.prompt} → ${quote(m.outputs[0]!)}`);
    return {
      task: task.name,
      base: baseScores[i]!,
      adapter: m,
      trainableParameters: r.trainableParameters,
      firstLoss: r.firstLoss,
      finalLoss: r.finalLoss,
      seconds: r.seconds,
      adapterDir: dir,
      sample: { prompt: ex.prompt, reference: ex.completion, base: baseScores[i]!.outputs[0]!, adapter: m.outputs[0]! },
    };
  });
  model.dispose();
  print('');

  const seconds = (performance.now() - started) / 1000;
  print('Summary');
  for (const line of table(
    ['task', 'base acc', 'adapter acc', 'trainable params', 'train time'],
    results.map((r) => [r.task, pct(r.base.accuracy), pct(r.adapter.accuracy), r.trainableParameters.toLocaleString('en-US'), `${r.seconds.toFixed(1)} s`]),
  ))
    print(`   ${line}`);
  writeFileSync(join(out, 'summary.json'), JSON.stringify({ model: modelDir, seconds, tasks: results.map(({ base, adapter, ...r }) => ({ ...r, baseAccuracy: base.accuracy, adapterAccuracy: adapter.accuracy })) }, null, 2) + '\n');
  print('');
  print(`Done in ${seconds.toFixed(0)} s. Files in ${show(out)}/:`);
  print(`   adapters/<task>/   adapter_config.json + adapter_model.safetensors (HF PEFT format), metrics.jsonl, loss_curve.svg`);
  print(`   data/<task>/       train.jsonl, eval.jsonl (prompt/completion records)`);
  print(`   summary.json`);
  print(`Next: peftjs train --model ${show(modelDir)} --data ${show(files[0]!.train)} --output my-adapter`);
  return { out, tasks: results, seconds };
}
