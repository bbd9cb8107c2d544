/**
 * Task arithmetic (Ilharco et al., 2023) and the generalised form TIES, DARE and Breadcrumbs share (as in
 * mergekit's generalized_task_arithmetic): task vectors τᵢ = θᵢ − θ_base, optionally sparsified, weighted by wᵢ,
 * optionally filtered by a sign consensus, summed, optionally divided by the weight that contributed, scaled by λ
 * and added to the base.
 */
import { backend } from '../../engine/index.js';
import { CastDType, SignElection } from '../../engine/backend/kernels.js';
import type { TypedRange } from '../dtype.js';
import type { MagnitudeBand } from '../select.js';
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
 * base + λ · merge(wᵢτᵢ), entry by entry: with a consensus, the elected sign is that of Σ wᵢτᵢ (`sum`) or of
 * Σ sign(wᵢτᵢ) (`count`), ties going to +; only the wᵢτᵢ of that sign (zeros never agree) are summed (the TIES
 * "disjoint merge"), and when normalising divided by the Σ wᵢ of those that were (1 when none was). Without a
 * consensus every vector contributes and normalising divides by Σ wᵢ. Weights are used in f32. Written into `out`
 * (default a fresh array; may be `base`); the task vectors are not modified.
 */
export function combineTaskVectors(
  base: Float32Array,
  deltas: readonly Float32Array[],
  opts: CombineOptions = {},
  out: Float32Array = new Float32Array(base.length),
): Float32Array {
  checkSameLength('combineTaskVectors', [base, ...deltas]);
  const w = opts.weights ?? deltas.map(() => 1);
  if (w.length !== deltas.length) throw new Error(`combineTaskVectors: ${deltas.length} task vectors but ${w.length} weights`);
  const f32 = (data: Float32Array): TypedRange => ({ data, dtype: CastDType.F32 });
  rowCombiner(Float32Array.from(w), opts)([base, ...deltas].map(f32), false, f32(out));
  return out;
}

const ELECTION: Record<Consensus, SignElection> = { sum: SignElection.Sum, count: SignElection.Count };

/**
 * {@link combineTaskVectors} on one range, by the fused kernel (tiesCombine): `combine(inputs, models, out, bands,
 * offset)` with `inputs` the base's range and then one per task vector — the task vectors themselves, or, when
 * `models`, the models' ranges, from which the kernel subtracts the base as it reads — each trimmed to its magnitude
 * band in `bands` (none: kept whole; `offset` is the range's index in the whole tensor), written to `out` in its
 * dtype. `out` may be the base's data when it has the output dtype.
 */
export function rowCombiner(
  w: Float32Array,
  opts: CombineOptions,
): (inputs: readonly TypedRange[], models: boolean, out: TypedRange, bands?: readonly MagnitudeBand[], offset?: number) => void {
  const election = opts.consensus ? ELECTION[opts.consensus] : SignElection.None;
  const lambda = opts.lambda ?? 1, normalize = opts.normalize ?? false;
  return (inputs, models, out, bands = [], offset = 0) => {
    const packed = Float64Array.from(bands.flatMap((b) => [b.low, b.lowCut, b.high, b.highCut]));
    backend().tiesCombine(Int32Array.from(inputs, (x) => x.dtype), inputs.map((x) => x.data), out.data.length, w, packed, offset, out.dtype, out.data, lambda, normalize, election, models);
  };
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
