/**
 * `trainMultitask`: training a PEFT model on a task mixture. Each step draws a batch of mixed tasks
 * ({@link TaskMixture}), runs the forward with every row's task id in effect (so task-routed adapters pick their
 * modules), and minimises mean token cross-entropy plus the auxiliary losses the routers add (load balancing, gate
 * supervision). Every `evalEvery` steps and at the end, each task is evaluated on its own (exact match and eval
 * loss under its task id); the numbers go to the progress lines and to `metrics.jsonl` as `eval_<task>_exact_match`
 * / `eval_<task>_loss`. AdamW, global-norm clipping and the warmup/decay schedule are the trainer's.
 *
 * This loop takes tasks already in memory (`TaskData`); `train()` / `peftjs train` train the same methods from data
 * files whose records name their task (`taskField`).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, add, clipGradNorm, crossEntropy, scale, tensor, tidy, type Tensor } from '../engine/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/index.js';
import type { PeftModel } from '../peft/model.js';
import { MetricsLog, type MetricsRecord } from '../train/metrics.js';
import { learningRate, type ScheduleKind } from '../train/schedule.js';
import type { TaskMixture } from './data.js';
import { taskEvalLoss, taskExactMatch } from './eval.js';
import { withAuxLosses, withTaskIds } from './routing.js';

export interface MultitaskTrainOptions {
  steps: number;
  /** Rows per step (default 16). */
  batchSize?: number;
  /** Peak learning rate (default 4e-3), warmup steps (default 10), schedule (default cosine). */
  lr?: number;
  warmupSteps?: number;
  schedule?: ScheduleKind;
  weightDecay?: number;
  /** Global gradient-norm clip (default 1; 0 = none). */
  maxGradNorm?: number;
  /** Evaluate every N steps (0: only at the end). */
  evalEvery?: number;
  /** Eval records per task for exact match (default 50). */
  evalExamples?: number;
  /**
   * Route rows by task id (default true). False for methods that must not be told the task (MeteoRA's gate is
   * trained and evaluated without ids; with `gate_supervision_coef` the ids are still given to training steps).
   */
  taskIds?: boolean | 'train-only';
  /** Folder for `metrics.jsonl` (none when absent). */
  output?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  onMetrics?: (rec: MetricsRecord) => void;
  /** Log a training line every N steps (default 25). */
  logEvery?: number;
}

export interface TaskScore {
  task: string;
  exactMatch: number;
  loss: number;
}

export interface MultitaskTrainResult {
  steps: number;
  firstLoss: number;
  finalLoss: number;
  /** Training tokens (padding included) per second of step time. */
  tokensPerSecond: number;
  seconds: number;
  trainableParameters: number;
  /** The final per-task evaluation. */
  scores: TaskScore[];
}

/** Evaluates every task of `mixture` on its own; `routed`: rows carry their task id. */
export function evaluateTasks(model: CausalLM, tok: Tokenizer, mixture: TaskMixture, routed: boolean, evalExamples = 50): TaskScore[] {
  const was = model.training;
  model.eval();
  try {
    return mixture.tasks.map((t, i) => ({
      task: t.name,
      exactMatch: taskExactMatch(model, tok, t.eval.slice(0, evalExamples), routed ? i : null).accuracy,
      loss: taskEvalLoss(model, mixture.evalRows(i), routed ? i : null, mixture.padId),
    }));
  } finally {
    model.train(was);
  }
}

/** Trains the trainable parameters of `peft` on `mixture`; see the module comment. */
export function trainMultitask(peft: PeftModel<CausalLM>, tok: Tokenizer, mixture: TaskMixture, opts: MultitaskTrainOptions): MultitaskTrainResult {
  const model = peft.model;
  const o = { batchSize: 16, lr: 4e-3, warmupSteps: 10, schedule: 'cosine' as ScheduleKind, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, evalExamples: 50, taskIds: true, logEvery: 25, ...opts };
  const params = peft.trainableParameters();
  if (params.length === 0) throw new Error('trainMultitask: the model has no trainable parameters');
  const opt = new AdamW(params, { weightDecay: o.weightDecay });
  let metrics: MetricsLog | null = null;
  if (o.output) {
    mkdirSync(o.output, { recursive: true });
    rmSync(join(o.output, 'metrics.jsonl'), { force: true });
    metrics = new MetricsLog(join(o.output, 'metrics.jsonl'));
  }
  const emit = (rec: MetricsRecord) => {
    metrics?.append(rec);
    o.onMetrics?.(rec);
  };
  const routedEval = o.taskIds === true;
  const evaluate = (step: number): TaskScore[] => {
    const scores = evaluateTasks(model, tok, mixture, routedEval, o.evalExamples);
    const rec: MetricsRecord = { step };
    for (const s of scores) {
      rec[`eval_${s.task}_exact_match`] = s.exactMatch;
      rec[`eval_${s.task}_loss`] = s.loss;
    }
    emit(rec);
    o.log?.(`step ${step}/${o.steps} eval | ${scores.map((s) => `${s.task} ${(100 * s.exactMatch).toFixed(0)}% (loss ${s.loss.toFixed(3)})`).join('  ')}`);
    return scores;
  };

  model.train();
  let firstLoss = NaN;
  let finalLoss = NaN;
  let tokens = 0;
  let stepMs = 0;
  const started = performance.now();
  for (let step = 0; step < o.steps; step++) {
    const t0 = performance.now();
    const lr = learningRate(step, { lr: o.lr, kind: o.schedule, warmupSteps: o.warmupSteps, totalSteps: o.steps });
    for (const g of opt.groups) g.options.lr = lr;
    const b = mixture.nextBatch(o.batchSize);
    const [loss, aux] = tidy(() => {
      const { result: ce, aux } = withTaskIds(o.taskIds === false ? null : b.taskIds, () =>
        withAuxLosses(() => crossEntropy(model.forward(tensor(b.ids, [b.B, b.T], 'i32')), tensor(b.targets, [b.B, b.T], 'i32'))),
      );
      (aux ? add(ce, aux) : ce).backward();
      return [ce.item(), aux ? aux.item() : 0];
    });
    const gradNorm = clipGradNorm(params as Tensor[], o.maxGradNorm > 0 ? o.maxGradNorm : Infinity);
    opt.step();
    opt.zeroGrad();
    stepMs += performance.now() - t0;
    tokens += b.B * b.T;
    if (Number.isNaN(firstLoss)) firstLoss = loss;
    finalLoss = loss;
    const done = step + 1;
    if (done % o.logEvery === 0 || done === o.steps) {
      const tps = tokens / (stepMs / 1000);
      emit({ step: done, loss, aux_loss: aux, lr, grad_norm: gradNorm, tokens_per_second: tps });
      o.log?.(`step ${done}/${o.steps} | loss ${loss.toFixed(4)}${aux ? ` | aux ${aux.toFixed(4)}` : ''} | ${Math.round(tps)} tok/s`);
    }
    if (o.evalEvery > 0 && done % o.evalEvery === 0 && done < o.steps) evaluate(done);
  }
  const scores = evaluate(o.steps);
  model.eval();
  return {
    steps: o.steps,
    firstLoss,
    finalLoss,
    tokensPerSecond: tokens / (stepMs / 1000),
    seconds: (performance.now() - started) / 1000,
    trainableParameters: params.reduce((s, p) => s + p.size, 0),
    scores,
  };
}
