/**
 * Multi-task batches for `train()` with `taskField`: every training row belongs to one task (rows are packed
 * within a task), and each batch row's task is drawn independently with the mixture probabilities of
 * {@link samplingProbabilities} (temperature T: p_i ∝ rows_i^(1/T); 1 = by task size, T → ∞ = uniform). Within a
 * task the rows come in a fresh seeded order every pass over that task.
 *
 * The loader is resumable from its position alone: the draws of batch k come from a generator seeded by
 * (seed, epoch, batch), and each task's row order by (seed, task, pass), so a checkpointed position continues
 * exactly the batches an uninterrupted run would have seen.
 */
import { Generator as Rng } from '../../engine/index.js';
import { sampleIndex, samplingProbabilities } from '../../multitask/data.js';
import { collate, type Batch, type Row } from './pack.js';
import { permutation, type LoaderPosition } from './split.js';

/** A task loader's position: the global batch position, and per task its pass over the task's rows and the next row in it. */
export interface TaskLoaderPosition extends LoaderPosition {
  tasks: { pass: number; row: number }[];
}

/** A 32-bit seed mixed from several integers (FNV-1a over the words, then a murmur3 finaliser). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) h = Math.imul(h ^ (p >>> 0), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Batches of `batchSize` rows mixed across tasks (see the module comment). An epoch is `⌊rows / batchSize⌋`
 * batches, as for {@link BatchLoader}, so `epochs` means passes over the training rows on average.
 */
export class TaskBatchLoader {
  /** Training rows by task id. */
  readonly byTask: Row[][];
  /** Sampling probability per task. */
  readonly probabilities: number[];
  private pos: TaskLoaderPosition;
  private readonly orders: { pass: number; order: number[] }[];

  constructor(
    rows: readonly Row[],
    nTasks: number,
    readonly batchSize: number,
    readonly seed: number,
    temperature: number,
    readonly padId: number,
  ) {
    if (rows.length < batchSize)
      throw new Error(`TaskBatchLoader: ${rows.length} training rows cannot fill one batch of ${batchSize}; lower batchSize or add data`);
    this.byTask = Array.from({ length: nTasks }, () => []);
    for (const r of rows) {
      if (r.task === undefined || !(r.task >= 0 && r.task < nTasks)) throw new Error(`TaskBatchLoader: a row has task ${r.task} (expected an id in [0, ${nTasks}))`);
      this.byTask[r.task]!.push(r);
    }
    this.probabilities = samplingProbabilities(this.byTask.map((r) => r.length), { temperature });
    this.orders = this.byTask.map(() => ({ pass: -1, order: [] }));
    this.pos = { epoch: 0, batch: 0, tasks: this.byTask.map(() => ({ pass: 0, row: 0 })) };
  }

  get batchesPerEpoch(): number {
    return Math.floor(this.byTask.reduce((s, r) => s + r.length, 0) / this.batchSize);
  }

  /** A copy of the position (a checkpoint's). */
  get position(): TaskLoaderPosition {
    return structuredClone(this.pos);
  }

  /** Continues from `p` (a checkpoint's position); one without per-task state comes from a run without tasks. */
  set position(p: LoaderPosition) {
    const tasks = (p as Partial<TaskLoaderPosition>).tasks;
    if (!Array.isArray(tasks) || tasks.length !== this.byTask.length)
      throw new Error(`TaskBatchLoader: the saved loader position has ${Array.isArray(tasks) ? `${tasks.length} tasks` : 'no per-task state'}; this run has ${this.byTask.length} tasks`);
    this.pos = structuredClone({ epoch: p.epoch, batch: p.batch, tasks });
  }

  /** The next batch (its `taskIds` give each row's task); advances the position. */
  next(): Batch {
    const { epoch, batch } = this.pos;
    const gen = new Rng(mixSeed(this.seed, epoch, batch));
    const rows = Array.from({ length: this.batchSize }, () => this.nextRow(sampleIndex(this.probabilities, gen.uniform())));
    this.pos.epoch = batch + 1 >= this.batchesPerEpoch ? epoch + 1 : epoch;
    this.pos.batch = batch + 1 >= this.batchesPerEpoch ? 0 : batch + 1;
    return collate(rows, this.padId);
  }

  /** The next row of task `t` in its current pass's order. */
  private nextRow(t: number): Row {
    const rows = this.byTask[t]!;
    const p = this.pos.tasks[t]!;
    const cached = this.orders[t]!;
    if (cached.pass !== p.pass) this.orders[t] = { pass: p.pass, order: permutation(rows.length, mixSeed(this.seed, t, p.pass)) };
    const row = rows[this.orders[t]!.order[p.row]!]!;
    this.pos.tasks[t] = p.row + 1 >= rows.length ? { pass: p.pass + 1, row: 0 } : { pass: p.pass, row: p.row + 1 };
    return row;
  }
}
