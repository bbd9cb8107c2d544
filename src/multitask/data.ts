/**
 * Multi-task training data: a mixture of tasks, each a list of prompt → completion records, sampled per example
 * with per-task probabilities — explicit weights, or temperature sampling p_i ∝ n_i^(1/T) over the task sizes n_i
 * (T = 1: proportional to size; T → ∞: uniform; Arivazhagan et al. 2019). Every batch row carries its task id.
 */
import { Generator } from '../engine/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { buildRows, collate, type Batch, type Row } from '../train/data/pack.js';
import { tokenizeExample } from '../train/data/tokenize.js';

/** One prompt → completion example. */
export interface TaskRecord {
  prompt: string;
  completion: string;
}

/** A task of the mixture: its name (task id = its index) and its records. */
export interface TaskData {
  name: string;
  train: readonly TaskRecord[];
  eval: readonly TaskRecord[];
}

export interface SamplingOptions {
  /** Per-task sampling weights (normalised); overrides `temperature`. */
  weights?: readonly number[];
  /** Temperature T of p_i ∝ n_i^(1/T) (default 1: proportional to the number of training rows). */
  temperature?: number;
}

/** The per-task sampling probabilities for tasks of `sizes` training examples. */
export function samplingProbabilities(sizes: readonly number[], opts: SamplingOptions = {}): number[] {
  const T = opts.temperature ?? 1;
  if (opts.weights && opts.weights.length !== sizes.length) throw new Error(`samplingProbabilities: ${opts.weights.length} weights for ${sizes.length} tasks`);
  if (!opts.weights && !(T > 0)) throw new Error(`samplingProbabilities: temperature must be > 0, got ${T}`);
  const raw = opts.weights ? [...opts.weights] : sizes.map((n) => n ** (1 / T));
  if (raw.some((w) => !(w >= 0))) throw new Error(`samplingProbabilities: weights must be ≥ 0, got [${raw.join(', ')}]`);
  raw.forEach((w, i) => (raw[i] = sizes[i] === 0 ? 0 : w));
  const total = raw.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error('samplingProbabilities: every task has zero weight or no examples');
  return raw.map((w) => w / total);
}

/** A batch of the mixture: the rows and the task id of each. */
export interface TaskBatch extends Batch {
  taskIds: Int32Array;
}

export interface MixtureOptions extends SamplingOptions {
  /** Longest row in tokens (longer examples are truncated). Default 64. */
  seqLen?: number;
  /** Seed of the task and example draws. */
  seed?: number;
}

/** The index i with Σ_{j<i} p_j ≤ u < Σ_{j≤i} p_j (inverse CDF; rounding past the end picks the last non-zero entry). */
export function sampleIndex(probabilities: readonly number[], u: number): number {
  let last = 0;
  for (let i = 0; i < probabilities.length; i++) {
    if (probabilities[i]! > 0) last = i;
    if ((u -= probabilities[i]!) < 0) return i;
  }
  return last;
}

/** Tokenized training rows of every task and a seeded sampler of mixed batches. */
export class TaskMixture {
  /** Training rows per task. */
  readonly rows: Row[][];
  /** Sampling probability per task. */
  readonly probabilities: number[];
  readonly padId: number;
  private readonly gen: Generator;
  private readonly order: number[][];
  private readonly cursor: number[];

  constructor(
    readonly tok: Tokenizer,
    readonly tasks: readonly TaskData[],
    opts: MixtureOptions = {},
  ) {
    if (tasks.length === 0) throw new Error('TaskMixture: no tasks');
    this.padId = tok.padId ?? tok.eosId ?? 0;
    const seqLen = opts.seqLen ?? 64;
    this.rows = tasks.map((t) => buildRows(tokenize(tok, t.train, t.name), seqLen, false, this.padId).rows);
    this.probabilities = samplingProbabilities(this.rows.map((r) => r.length), opts);
    this.gen = new Generator(opts.seed ?? 0);
    this.order = this.rows.map(() => []);
    this.cursor = this.rows.map(() => 0);
  }

  /** The task names, indexed by task id. */
  get names(): string[] {
    return this.tasks.map((t) => t.name);
  }

  /** The id of task `name`; the error lists the others. */
  taskId(name: string): number {
    const i = this.tasks.findIndex((t) => t.name === name);
    if (i < 0) throw new Error(`unknown task '${name}'; tasks: ${this.names.join(', ')}`);
    return i;
  }

  /** A task drawn with the mixture's probabilities. */
  private drawTask(): number {
    return sampleIndex(this.probabilities, this.gen.uniform());
  }

  /** The next row of task `t` (each task's rows in a fresh shuffled order per pass). */
  private nextRow(t: number): Row {
    if (this.cursor[t]! >= this.order[t]!.length) {
      const o = this.rows[t]!.map((_, i) => i);
      for (let i = o.length - 1; i > 0; i--) {
        const j = Math.floor(this.gen.uniform() * (i + 1));
        [o[i], o[j]] = [o[j]!, o[i]!];
      }
      this.order[t] = o;
      this.cursor[t] = 0;
    }
    return this.rows[t]![this.order[t]![this.cursor[t]!++]!]!;
  }

  /** `size` rows, each of a task drawn independently; right-padded to the longest. */
  nextBatch(size: number): TaskBatch {
    const taskIds = Int32Array.from({ length: size }, () => this.drawTask());
    return { ...collate([...taskIds].map((t) => this.nextRow(t)), this.padId), taskIds };
  }

  /** The eval records of task `t` as rows (for the per-task eval loss). */
  evalRows(t: number, seqLen = 64): Row[] {
    return buildRows(tokenize(this.tok, this.tasks[t]!.eval, this.tasks[t]!.name), seqLen, false, this.padId).rows;
  }
}

function tokenize(tok: Tokenizer, records: readonly TaskRecord[], task: string) {
  return records.map((r, i) => tokenizeExample(tok, { kind: 'completion', prompt: r.prompt, completion: r.completion, source: { file: `task ${task}`, line: i + 1 } }));
}
