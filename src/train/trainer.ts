/**
 * `train(config)`: LoRA (any registered PEFT method) fine-tuning of a causal language model.
 *
 * One optimizer step = `gradAccum` micro-batches; the loss is the mean cross-entropy over every target token of the
 * step (each micro-batch's summed loss is divided by the step's total target count before its backward, so
 * accumulation changes nothing but memory). Every micro-batch runs inside `tidy()`, so no activation outlives it.
 * Then: global-norm clipping, AdamW with per-group learning rates (LoRA+ gives B matrices `lr·loraplusLrRatio`)
 * and the warmup/decay schedule. Same config and seed → same loss curve; a resumed run continues it exactly.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  AdamW,
  add,
  clipGradNorm,
  keep,
  crossEntropy,
  fromStorage,
  globalGenerator,
  manualSeed,
  noGrad,
  scale,
  setNumThreads,
  tensor,
  tidy,
  type Tensor,
} from '../engine/index.js';
import { loadTokenizer, type Tokenizer } from '../io/tokenizer.js';
import { generate, loadCausalLM, type CausalLM } from '../models/index.js';
import { taskEvalLoss } from '../multitask/eval.js';
import { withTaskIds } from '../multitask/routing.js';
import { PeftModel } from '../peft/model.js';
import { peftMethod } from '../peft/registry.js';
import { calibrateAdapter, calibrateBase, needsCalibration, type CalibrationBatch } from '../peft/calibrate.js';
import { fillAdapterTensors, readAdapterFiles, savePeftModel } from '../peft/format.js';
import { CheckpointTape, enableCheckpointing } from './checkpointing.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint, METHOD_STATE_NAME, type TrainerState } from './checkpoint.js';
import { validateConfig, type TrainConfig, type TrainConfigInput } from './config.js';
import { IGNORE_INDEX, type Batch, type Row } from './data/pack.js';
import { prepareData, type DataReport, type PreparedData } from './data/prepare.js';
import { BatchLoader } from './data/split.js';
import { TaskBatchLoader } from './data/tasks.js';
import type { Reference } from './data/tokenize.js';
import { MetricsLog, peakRssBytes, type MetricsRecord } from './metrics.js';
import { lossCurveSvg } from './plot.js';
import { ProgressBar } from './progress.js';
import { learningRate } from './schedule.js';

export const METRICS_NAME = 'metrics.jsonl';
export const CURVE_NAME = 'loss_curve.svg';
/** The task names of a multi-task run, in task-id order (JSON array), written next to the adapter. */
export const TASKS_NAME = 'tasks.json';

export interface TrainHooks {
  /** Called with every metrics record (training steps and evaluations) as it is written. */
  onMetrics?: (rec: MetricsRecord) => void;
  /** Informational lines (data report, resume, checkpoints); default: stderr. */
  log?: (line: string) => void;
  /** Stop (saving a checkpoint) after the current step when this fires — the CLI wires Ctrl-C to it. */
  signal?: AbortSignal;
}

export interface EvalResult {
  loss: number;
  perplexity: number;
  /**
   * Exact-match accuracy (when the eval data has prompt/completion records): the share of prompts whose greedy
   * continuation reproduces the completion's tokens exactly.
   */
  exactMatch?: number;
  /** Multi-task runs: the same numbers per task (each task's rows and prompts under its task id), in task-id order. */
  tasks?: TaskEval[];
}

export interface TaskEval {
  task: string;
  loss: number;
  exactMatch?: number;
}

export interface TrainResult {
  config: TrainConfig;
  /** Optimizer steps completed (including those before a resume). */
  steps: number;
  totalSteps: number;
  /** Mean training loss of the last step. */
  finalLoss: number;
  firstLoss: number;
  /** The first and last evaluation of this run (no eval set: undefined). */
  firstEval?: EvalResult;
  finalEval?: EvalResult;
  stoppedEarly: boolean;
  interrupted: boolean;
  tokensPerSecond: number;
  seconds: number;
  peakRssBytes: number;
  precision: 'fp32' | 'bf16';
  trainableParameters: number;
  allParameters: number;
  data: DataReport;
  /** Where the adapter, the metrics and the curve were written. */
  output: string;
  checkpoint: string;
  metricsPath: string;
  curvePath: string;
}

/** Whether this CPU multiplies bf16 natively (AVX512-BF16), from /proc/cpuinfo. */
export function cpuHasBf16(): boolean {
  try {
    return /\bavx512_bf16\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/** The tokenizer of a checkpoint folder, or of the folder holding a llama2.c `.bin`. */
function tokenizerFor(model: string): Tokenizer {
  return loadTokenizer(existsSync(model) && model.endsWith('.bin') ? dirname(model) : model);
}

/** Paths of the decoder layers (children of every `layers` / `h` module list) for gradient checkpointing. */
function decoderLayerPaths(model: CausalLM): string[] {
  return model
    .namedModules()
    .map(([p]) => p)
    .filter((p) => /(^|\.)(layers|h)\.\d+$/.test(p));
}

/**
 * Mean loss (and perplexity) over the eval rows (the first `evalBatches` batches when set); exact match over up to
 * `evalGenerate` references. Multi-task runs evaluate each task on its own under its task id (the limits apply per
 * task); the overall numbers pool the tasks' target tokens and references.
 */
export function evaluate(model: CausalLM, tok: Tokenizer, data: PreparedData, cfg: TrainConfig): EvalResult {
  const was = model.training;
  model.eval();
  try {
    const padId = tok.padId ?? tok.eosId ?? 0;
    const limit = cfg.evalBatches > 0 ? cfg.evalBatches * cfg.batchSize : undefined;
    const groups = (data.tasks ?? [null]).map((task, t) => {
      const of = <T extends { task?: number }>(xs: readonly T[]) => (task === null ? xs : xs.filter((x) => x.task === t));
      const rows = of(data.eval).slice(0, limit);
      const refs = of(data.references).slice(0, cfg.evalGenerate);
      const id = task === null ? null : t;
      return {
        task,
        targets: targetCount(rows),
        loss: taskEvalLoss(model, rows, id, padId, cfg.batchSize),
        hits: refs.length ? withTaskIds(id === null ? null : new Array<number>(refs.length).fill(id), () => exactMatchHits(model, tok, refs, cfg.maxNewTokens)) : 0,
        refs: refs.length,
      };
    });
    const targets = groups.reduce((s, g) => s + g.targets, 0);
    const loss = groups.length === 1 ? groups[0]!.loss : targets > 0 ? groups.reduce((s, g) => s + (g.targets ? g.loss * g.targets : 0), 0) / targets : NaN;
    const refs = groups.reduce((s, g) => s + g.refs, 0);
    const result: EvalResult = { loss, perplexity: Math.exp(loss), ...(refs ? { exactMatch: groups.reduce((s, g) => s + g.hits, 0) / refs } : {}) };
    if (data.tasks) result.tasks = groups.map((g) => ({ task: g.task!, loss: g.loss, ...(g.refs ? { exactMatch: g.hits / g.refs } : {}) }));
    return result;
  } finally {
    model.train(was);
  }
}

/** Target tokens (not −100) of `rows`. */
function targetCount(rows: readonly Row[]): number {
  let n = 0;
  for (const r of rows) for (const t of r.targets) if (t !== IGNORE_INDEX) n++;
  return n;
}

/** How many references greedy decoding reproduces exactly (the completion's tokens; EOS not required: the length is known). */
function exactMatchHits(model: CausalLM, tok: Tokenizer, refs: readonly Reference[], maxNewTokens: number): number {
  const n = Math.min(maxNewTokens, Math.max(...refs.map((r) => r.completionIds.length)));
  const gens = noGrad(() => generate(model, tok, refs.map((r) => r.promptIds), { maxNewTokens: n }));
  return gens.filter((g, i) => refs[i]!.completionIds.every((id, j) => g.ids[j] === id)).length;
}

// Batches are copied into pooled tensors (not wrapped): a disposed wrapper would hand its array to the pool, which
// would then grow by one batch every step. A batch with task ids runs its forward with them in effect.
function forwardLogits(model: CausalLM, b: Batch): Tensor<'f32'> {
  const run = () => model.forward(tensor(b.ids, [b.B, b.T], 'i32'));
  return b.taskIds ? withTaskIds(b.taskIds, run) : run();
}

function batchTargets(b: Batch): Tensor {
  return tensor(b.targets, [b.B, b.T], 'i32');
}

/** Writes the adapter into `output` itself: into a temporary folder first, then each file renamed into place. */
function writeFinalAdapter(output: string, write: (dir: string) => void): void {
  const tmp = join(output, `.tmp-adapter-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  write(tmp);
  for (const f of readdirSync(tmp)) renameSync(join(tmp, f), join(output, f));
  rmSync(tmp, { recursive: true, force: true });
}

/** Which checkpoint `resume` names: a folder, or (true) the newest in `output`; null for a fresh run. */
function resumeFrom(cfg: TrainConfig): string | null {
  if (cfg.resume === false) return null;
  if (typeof cfg.resume === 'string') return cfg.resume;
  const all = listCheckpoints(cfg.output);
  return all.length ? all[all.length - 1]!.path : null;
}

/**
 * Fine-tunes `config.model` on `config.data` and writes the adapter (HF PEFT format), checkpoints, `metrics.jsonl`
 * and the loss curve into `config.output`.
 *
 * @example
 * ```ts
 * import { train } from 'peftjs';
 * const result = await train({ model: 'models/stories260K', data: 'stories.txt', output: 'out', r: 8, maxSteps: 200 });
 * console.log(result.finalEval?.loss);
 * ```
 */
export async function train(input: TrainConfigInput, hooks: TrainHooks = {}): Promise<TrainResult> {
  const cfg = validateConfig(input as Record<string, unknown>);
  const log = hooks.log ?? ((line: string) => process.stderr.write(line + '\n'));
  if (cfg.threads) setNumThreads(cfg.threads);
  const precision = cfg.precision === 'auto' ? (cpuHasBf16() ? 'bf16' : 'fp32') : cfg.precision;
  const started = performance.now();

  const tok = tokenizerFor(cfg.model);
  // chatTemplate: a Jinja template, or the path of a file holding one.
  const chatTemplate = cfg.chatTemplate && existsSync(cfg.chatTemplate) ? readFileSync(cfg.chatTemplate, 'utf8') : cfg.chatTemplate;
  const data = prepareData(tok, { ...cfg, chatTemplate });
  const r = data.report;
  log(
    `data: ${r.trainExamples} train / ${r.evalExamples} eval examples → ${r.trainRows} / ${r.evalRows} rows of ≤${cfg.seqLen} tokens` +
      (r.skipped.length ? `; skipped ${r.skipped.length} malformed record(s)` : '') +
      (r.truncated.examples ? `; truncated ${r.truncated.examples} example(s) (${r.truncated.tokens} tokens cut)` : '') +
      (r.dropped ? `; dropped ${r.dropped} example(s) with no target tokens` : '') +
      (r.tasks ? `; ${r.tasks.length} tasks (${r.tasks.map((t) => `${t.name}: ${t.trainRows}/${t.evalRows}`).join(', ')} rows)` : ''),
  );

  // LoRA init draws from the global generator: seed it first so the same seed gives the same adapter.
  manualSeed(cfg.seed);
  const model = loadCausalLM(cfg.model, { dtype: precision === 'bf16' ? 'bf16' : 'f32', onWarning: log });
  const padId = tok.padId ?? tok.eosId ?? 0;
  const loader = data.tasks
    ? new TaskBatchLoader(data.train, data.tasks.length, cfg.batchSize, cfg.seed, cfg.taskTemperature, padId)
    : new BatchLoader(data.train, cfg.batchSize, cfg.seed, true, padId);
  const totalSteps = cfg.maxSteps ?? Math.max(1, Math.ceil((cfg.epochs * loader.batchesPerEpoch) / cfg.gradAccum));
  const methodConfig = peftConfig(cfg);
  const method = peftMethod(methodConfig.peft_type);
  if (method.totalStepsField) methodConfig[method.totalStepsField] ??= totalSteps;
  if (method.taskCountField) fillTaskCount(methodConfig, method.taskCountField, data.tasks);
  // Data-driven initialisations (CorDA, LoRA-GA, LoRA-SB, EVA) read the first few training batches.
  const calibration = needsCalibration(methodConfig) ? calibrationBatches(data, cfg, padId) : [];
  if (calibration.length) calibrateBase(model, methodConfig, calibration);
  const peft = new PeftModel(model, methodConfig);
  if (calibration.length) calibrateAdapter(peft, methodConfig, calibration);
  const methodHooks = method.trainingHooks?.(peft, 'default');
  for (const b of calibration) [b.ids, b.targets].forEach((t) => t.dispose());
  const named = peft.namedParameters().filter(([, p]) => p.requiresGrad) as [string, Tensor<'f32'>][];
  const counts = peft.parameterCounts();
  const isB = (name: string) => /\.lora_B\.|\.lora_embedding_B\./.test(name);
  const groups = [
    { params: named.filter(([n]) => !isB(n)).map(([, p]) => p), options: { lr: cfg.lr } },
    { params: named.filter(([n]) => isB(n)).map(([, p]) => p), options: { lr: cfg.lr * cfg.loraplusLrRatio } },
  ].filter((g) => g.params.length > 0);
  const opt = new AdamW(groups, { beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weightDecay: cfg.weightDecay });
  const ratios = groups.map((g) => g.options.lr / cfg.lr);
  const tape = cfg.gradientCheckpointing ? new CheckpointTape() : null;
  if (tape) enableCheckpointing(model, decoderLayerPaths(model), tape);

  const warmupSteps = cfg.warmupSteps || Math.round(cfg.warmupRatio * totalSteps);
  mkdirSync(cfg.output, { recursive: true });
  const metrics = new MetricsLog(join(cfg.output, METRICS_NAME));

  let state: TrainerState = { step: 0, position: loader.position, rng: [], tokensSeen: 0, best: null, badEvals: 0, config: cfg, ...(data.tasks ? { tasks: data.tasks } : {}) };
  const from = resumeFrom(cfg);
  // Temporary folders of a killed run are incomplete by construction.
  for (const f of readdirSync(cfg.output)) if (f.startsWith('.tmp-')) rmSync(join(cfg.output, f), { recursive: true, force: true });
  if (from) {
    const ck = loadCheckpoint(from);
    if (JSON.stringify(ck.state.tasks ?? null) !== JSON.stringify(data.tasks ?? null))
      throw new Error(`resume: ${from} was trained on ${ck.state.tasks ? `tasks [${ck.state.tasks.join(', ')}]` : 'no tasks'}, this run's data has ${data.tasks ? `tasks [${data.tasks.join(', ')}]` : 'no tasks (taskField unset)'}`);
    // The method's state goes first: restoring AdaLoRA's rank masks zeroes the masked E entries, which the optimizer
    // may have revived since the last pruning step — the parameters below overwrite them with their saved values.
    if (methodHooks?.restore) {
      if (!ck.method) throw new Error(`resume: ${from} has no ${METHOD_STATE_NAME} (the ${cfg.method} hooks' state)`);
      methodHooks.restore(ck.method);
    }
    // A checkpoint from before parameters were saved: its adapter export holds them.
    if (!ck.parameters) fillAdapterTensors(peft, 'default', readAdapterFiles(from), from);
    for (const [name, p] of named) {
      const mv = ck.moments.get(name);
      if (!mv) throw new Error(`resume: ${from} has no optimizer state for ${name} (was it trained with the same targets?)`);
      opt.state.set(p, { m: keep(fromStorage(mv.m, p.shape, 'f32')), v: keep(fromStorage(mv.v, p.shape, 'f32')) });
      if (ck.parameters) {
        const w = ck.parameters.get(name);
        if (w?.length !== p.size) throw new Error(`resume: ${from} holds ${w ? `${w.length} values` : 'no values'} for parameter ${name} [${p.shape.join(', ')}]`);
        p.data.set(w);
      }
    }
    opt.stepCount = ck.state.step;
    state = { ...ck.state, config: cfg };
    loader.position = structuredClone(state.position);
    globalGenerator.setState(state.rng);
    metrics.truncateAfter(state.step);
    log(`resumed from ${from} at step ${state.step}`);
  } else {
    rmSync(metrics.path, { force: true });
    const pct = ((100 * counts.trainable) / counts.all).toFixed(3);
    log(`model: ${cfg.model} (${precision}); trainable params ${counts.trainable.toLocaleString('en-US')} of ${counts.all.toLocaleString('en-US')} (${pct}%)`);
  }

  const snapshot = (): TrainerState => ({ ...state, position: structuredClone(loader.position), rng: globalGenerator.getState() });
  const writeAdapter = (dir: string) => {
    savePeftModel(peft, dir, ['default']);
    if (data.tasks) writeFileSync(join(dir, TASKS_NAME), JSON.stringify(data.tasks) + '\n');
  };
  let lastCheckpoint = from ?? '';
  const checkpoint = () => {
    const contents = { state: snapshot(), moments: new Map(named.map(([n, p]) => [n, opt.state.get(p)!])), parameters: named, method: methodHooks?.state?.() };
    lastCheckpoint = saveCheckpoint(cfg.output, contents, writeAdapter, cfg.saveTotalLimit);
    log(`saved ${lastCheckpoint}`);
  };

  const bar = cfg.progress ? new ProgressBar(totalSteps, state.step) : null;
  const emit = (rec: MetricsRecord) => {
    metrics.append(rec);
    hooks.onMetrics?.(rec);
  };
  let firstLoss = NaN;
  let lastLoss = NaN;
  let firstEval: EvalResult | undefined;
  let lastEval: EvalResult | undefined;
  let stoppedEarly = false;
  let interrupted = false;
  let runTokens = 0;
  const runStart = performance.now();
  const hasEval = data.eval.length > 0;

  let evaluatedAt = -1;
  const runEval = () => {
    const e = evaluate(model, tok, data, cfg);
    evaluatedAt = state.step;
    firstEval ??= e;
    lastEval = e;
    const rec: MetricsRecord = { step: state.step, eval_loss: e.loss, eval_perplexity: e.perplexity, ...(e.exactMatch === undefined ? {} : { eval_exact_match: e.exactMatch }) };
    for (const t of e.tasks ?? []) {
      rec[`eval_${t.task}_loss`] = t.loss;
      if (t.exactMatch !== undefined) rec[`eval_${t.task}_exact_match`] = t.exactMatch;
    }
    emit(rec);
    if (cfg.earlyStoppingMetric !== 'none') {
      const value = cfg.earlyStoppingMetric === 'eval_loss' ? e.loss : (e.exactMatch ?? NaN);
      const better = cfg.earlyStoppingMetric === 'eval_loss' ? (a: number, b: number) => a < b - cfg.earlyStoppingMinDelta : (a: number, b: number) => a > b + cfg.earlyStoppingMinDelta;
      if (state.best === null || better(value, state.best)) {
        state.best = value;
        state.badEvals = 0;
      } else if (++state.badEvals >= cfg.earlyStoppingPatience) stoppedEarly = true;
    }
  };

  model.train();
  try {
    if (hasEval && !from) runEval();
    while (state.step < totalSteps && !stoppedEarly) {
      const stepStart = performance.now();
      const lr = learningRate(state.step, { lr: cfg.lr, kind: cfg.schedule, warmupSteps, totalSteps, minLrRatio: cfg.minLrRatio });
      opt.groups.forEach((g, i) => (g.options.lr = lr * ratios[i]!));
      const batches = Array.from({ length: cfg.gradAccum }, () => loader.next());
      const targets = batches.reduce((s, b) => s + b.targetTokens, 0);
      let lossSum = 0;
      for (const [i, b] of batches.entries()) {
        lossSum += tidy(() => {
          const sum = crossEntropy(forwardLogits(model, b), batchTargets(b), { reduction: 'sum' });
          const loss = scale(sum, targets > 0 ? 1 / targets : 0);
          // A method's regulariser joins the loss once per optimizer step.
          (i === 0 && methodHooks?.regularizer ? add(loss, methodHooks.regularizer()) : loss).backward();
          tape?.backward();
          return sum.item();
        });
      }
      const gradNorm = clipGradNorm(opt.groups.flatMap((g) => g.params), cfg.maxGradNorm > 0 ? cfg.maxGradNorm : Infinity);
      opt.step();
      methodHooks?.afterStep?.(state.step + 1);
      opt.zeroGrad();
      state.step++;
      const loss = targets > 0 ? lossSum / targets : NaN;
      const tokens = batches.reduce((s, b) => s + b.B * b.T, 0);
      state.tokensSeen += targets;
      runTokens += tokens;
      if (Number.isNaN(firstLoss)) firstLoss = loss;
      lastLoss = loss;
      const seconds = (performance.now() - stepStart) / 1000;
      const tps = runTokens / ((performance.now() - runStart) / 1000);
      if (state.step % cfg.logEvery === 0 || state.step === totalSteps)
        emit({ step: state.step, loss, lr, grad_norm: gradNorm, tokens_per_second: tokens / seconds, epoch: loader.position.epoch + loader.position.batch / loader.batchesPerEpoch });
      if (hasEval && cfg.evalEvery > 0 && state.step % cfg.evalEvery === 0) runEval();
      bar?.update({ step: state.step, loss, tokensPerSecond: tps, evalLoss: lastEval?.loss, evalTasks: lastEval?.tasks });
      if (hooks.signal?.aborted) {
        interrupted = true;
        break;
      }
      if (cfg.saveEvery > 0 && state.step % cfg.saveEvery === 0 && state.step < totalSteps) checkpoint();
      // Let signal handlers (Ctrl-C) run between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (hasEval && !interrupted && evaluatedAt !== state.step) runEval();
  } finally {
    bar?.stop();
    tape?.clear();
  }
  checkpoint();
  writeFinalAdapter(cfg.output, writeAdapter);
  const curvePath = join(cfg.output, CURVE_NAME);
  writeFileSync(curvePath, lossCurveSvg(metrics.read(), `${cfg.method} on ${cfg.model}`));
  const seconds = (performance.now() - started) / 1000;
  return {
    config: cfg,
    steps: state.step,
    totalSteps,
    firstLoss,
    finalLoss: lastLoss,
    firstEval,
    finalEval: lastEval,
    stoppedEarly,
    interrupted,
    tokensPerSecond: runTokens / ((performance.now() - runStart) / 1000),
    seconds,
    peakRssBytes: peakRssBytes(),
    precision,
    trainableParameters: counts.trainable,
    allParameters: counts.all,
    data: r,
    output: cfg.output,
    checkpoint: lastCheckpoint,
    metricsPath: metrics.path,
    curvePath,
  };
}

/**
 * Fills the method's task-count field (MTLoRA's `n_tasks`) with the run's number of tasks when unset; a method that
 * routes by task needs `taskField`, and a count below the data's tasks cannot route them all.
 */
function fillTaskCount(methodConfig: Record<string, unknown>, field: string, tasks: readonly string[] | undefined): void {
  const peftType = String(methodConfig.peft_type);
  if (!tasks) throw new Error(`${peftType} routes every example by its task: set taskField (the record field naming each example's task)`);
  const n = (methodConfig[field] ??= tasks.length);
  if (typeof n === 'number' && n < tasks.length)
    throw new Error(`${peftType}: methodConfig.${field} is ${n} but the data has ${tasks.length} tasks (${tasks.join(', ')}); leave it unset to use ${tasks.length}`);
}

/**
 * The HF PEFT config for `cfg.method`: the rank/alpha/dropout flags apply to LoRA; every method gets the target
 * modules (unless it chooses its own targets, as prompt learning does) and `methodConfig` fields override all.
 */
export function peftConfig(cfg: TrainConfig): Record<string, unknown> {
  const peftType = cfg.method.toUpperCase().replace(/-/g, '_');
  const method = peftMethod(peftType);
  return {
    peft_type: peftType,
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: cfg.model,
    ...(peftType === 'LORA' ? { r: cfg.r, lora_alpha: cfg.alpha, lora_dropout: cfg.loraDropout } : {}),
    ...(method.targets ? {} : { target_modules: cfg.targetModules.length === 1 && cfg.targetModules[0] === 'all-linear' ? 'all-linear' : cfg.targetModules }),
    ...cfg.methodConfig,
  };
}

/** The first few training batches (in a separate loader, so training's data order is unchanged) as tensors. */
function calibrationBatches(data: PreparedData, cfg: TrainConfig, padId: number, count = 4): CalibrationBatch[] {
  const loader = new BatchLoader(data.train, cfg.batchSize, cfg.seed, true, padId);
  return Array.from({ length: Math.min(count, loader.batchesPerEpoch) }, () => {
    const b = loader.next();
    return { ids: keep(fromStorage(b.ids.slice(), [b.B, b.T], 'i32')), targets: keep(fromStorage(b.targets.slice(), [b.B, b.T], 'i32')) };
  });
}
