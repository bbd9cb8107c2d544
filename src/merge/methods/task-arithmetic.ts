/**
 * Task arithmetic (Ilharco et al., 2023) and the generalised form TIES, DARE and Breadcrumbs share (as in
 * mergekit's generalized_task_arithmetic): task vectors τᵢ = θᵢ − θ_base, optionally sparsified, weighted by wᵢ,
 * optionally filtered by a sign consensus, summed, optionally divided by the weight that contributed, scaled by λ
 * and added to the base.
 */
import { backend } from '../../engine/index.js';
import { checkSameLength } from './linear.js';

/** How to elect the sign of each entry (TIES "elect"): by the sign of Σ wᵢτᵢ (`sum`, the paper's) or by majority count. */
export type Consensus = 'sum' | 'count';

/** Options of {@link combineTaskVectors}. */
export interface CombineOptions {
  /** One weight per task vector (default 1 each). */
  weights?: readonly number[];
  /** Keep only the contributions whose sign agrees with the elected sign (default: none, keep all). */
  consensus?: Consensus | null;
  /** Divide each entry by the total weight of the vectors that contributed to it (default false). */
  normalize?: boolean;
  /** Scale of the merged task vector (default 1). */
  lambda?: number;
}

/** The task vectors θᵢ − θ_base as fresh arrays. */
export function taskVectors(base: Float32Array, models: readonly Float32Array[]): Float32Array[] {
  checkSameLength('taskVectors', [base, ...models]);
  return models.map((m) => m.map((x, i) => x - base[i]));
}

/** θ − θ_base written over θ (`model`); returns it. */
export function subtractInPlace(model: Float32Array, base: Float32Array): Float32Array {
  backend().axpy(base, model, model.length, -1);
  return model;
}

/**
 * base + λ · merge(wᵢτᵢ), entry by entry in one pass: with a consensus, the elected sign is that of Σ wᵢτᵢ (`sum`)
 * or of Σ sign(wᵢτᵢ) (`count`), ties going to +; only the wᵢτᵢ of that sign (zeros never agree) are summed (the
 * TIES "disjoint merge"), and when normalising divided by the Σ wᵢ of those that were (1 when none was). Without a
 * consensus every vector contributes and normalising divides by Σ wᵢ. Written into `out` (default a fresh array;
 * may be `base`); the task vectors are not modified.
 */
export function combineTaskVectors(
  base: Float32Array,
  deltas: readonly Float32Array[],
  opts: CombineOptions = {},
  out: Float32Array = new Float32Array(base.length),
): Float32Array {
  const n = checkSameLength('combineTaskVectors', [base, ...deltas]);
  const k = deltas.length;
  const w = opts.weights ?? deltas.map(() => 1);
  if (w.length !== k) throw new Error(`combineTaskVectors: ${k} task vectors but ${w.length} weights`);
  const lambda = opts.lambda ?? 1;
  const normalize = opts.normalize ?? false;
  const consensus = opts.consensus ?? null;
  const total = w.reduce((a, x) => a + x, 0);
  if (consensus === null) {
    // A plain weighted sum: the backend's vectorised, threaded axpy.
    const scale = lambda / (normalize && Math.abs(total) >= 1e-8 ? total : 1);
    if (out !== base) out.set(base);
    deltas.forEach((d, j) => backend().axpy(d, out, n, scale * w[j]));
    return out;
  }
  const wj = Float64Array.from(w);
  const bySum = consensus === 'sum';
  for (let i = 0; i < n; i++) {
    let vote = 0;
    for (let j = 0; j < k; j++) {
      const v = wj[j] * deltas[j][i];
      vote += bySum ? v : v > 0 ? 1 : v < 0 ? -1 : 0;
    }
    const positive = vote >= 0;
    let acc = 0, agreeing = 0;
    for (let j = 0; j < k; j++) {
      const v = wj[j] * deltas[j][i];
      if (positive ? v > 0 : v < 0) {
        acc += v;
        agreeing += wj[j];
      }
    }
    out[i] = base[i] + (lambda * acc) / (normalize && agreeing !== 0 ? agreeing : 1);
  }
  return out;
}

/** Options of {@link taskArithmetic}. */
export interface TaskArithmeticOptions {
  /** One weight per model (default 1 each). */
  weights?: readonly number[];
  /** Scale of the summed task vector (default 1). */
  lambda?: number;
  /** Divide by Σ wᵢ (default false, as mergekit). */
  normalize?: boolean;
}

/** Task arithmetic: θ_base + λ · Σ wᵢ(θᵢ − θ_base), as a fresh array. */
export function taskArithmetic(base: Float32Array, models: readonly Float32Array[], opts: TaskArithmeticOptions = {}): Float32Array {
  return combineTaskVectors(base, taskVectors(base, models), opts);
}
