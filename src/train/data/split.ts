/** Seeded shuffling, the train/eval split, and the resumable batch order. */
import { Generator as Rng } from '../../engine/index.js';
import { collate, type Batch, type Row } from './pack.js';

/** A Fisher–Yates permutation of 0..n-1 drawn from a generator seeded with `seed`. */
export function permutation(n: number, seed: number): number[] {
  const gen = new Rng(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(gen.uniform() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/**
 * Splits `items` into train and eval sets after a seeded shuffle: `evalSplit` < 1 is a fraction, ≥ 1 a count.
 * At least one item stays in train.
 */
export function trainEvalSplit<T>(items: readonly T[], evalSplit: number, seed: number): { train: T[]; eval: T[] } {
  const order = permutation(items.length, seed).map((i) => items[i]!);
  const n = evalSplit >= 1 ? Math.floor(evalSplit) : Math.round(items.length * evalSplit);
  const nEval = Math.min(n, items.length - 1);
  return { eval: order.slice(0, nEval), train: order.slice(nEval) };
}

/** Where a loader is: the epoch and the index of the next batch within it. */
export interface LoaderPosition {
  epoch: number;
  batch: number;
}

/**
 * Batches of `batchSize` rows in an order reshuffled every epoch (permutation seeded by `seed + epoch`), so the
 * position alone determines everything that follows — a resumed run sees exactly the batches it would have.
 * The last partial batch of an epoch is dropped (every step has the same shape).
 */
export class BatchLoader {
  private order: number[] = [];
  private orderEpoch = -1;
  position: LoaderPosition = { epoch: 0, batch: 0 };

  constructor(
    readonly rows: readonly Row[],
    readonly batchSize: number,
    readonly seed: number,
    readonly shuffle: boolean,
    readonly padId: number,
  ) {
    if (rows.length < batchSize)
      throw new Error(`BatchLoader: ${rows.length} training rows cannot fill one batch of ${batchSize}; lower batchSize or add data`);
  }

  get batchesPerEpoch(): number {
    return Math.floor(this.rows.length / this.batchSize);
  }

  /** The next batch; advances the position (to the next epoch after the last batch). */
  next(): Batch {
    const { epoch, batch } = this.position;
    if (this.orderEpoch !== epoch) {
      this.order = this.shuffle ? permutation(this.rows.length, this.seed + epoch) : this.rows.map((_, i) => i);
      this.orderEpoch = epoch;
    }
    const picked = this.order.slice(batch * this.batchSize, (batch + 1) * this.batchSize).map((i) => this.rows[i]!);
    this.position = batch + 1 >= this.batchesPerEpoch ? { epoch: epoch + 1, batch: 0 } : { epoch, batch: batch + 1 };
    return collate(picked, this.padId);
  }
}

/** Consecutive batches over all of `rows` (the last may be smaller), in order: for evaluation. */
export function* inOrder(rows: readonly Row[], batchSize: number, padId: number): IterableIterator<Batch> {
  for (let i = 0; i < rows.length; i += batchSize) yield collate(rows.slice(i, i + batchSize), padId);
}
