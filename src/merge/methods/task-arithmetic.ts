/**
 * Task arithmetic (Ilharco et al., 2023) and the generalised form TIES, DARE and Breadcrumbs share (as in
 * mergekit's generalized_task_arithmetic): task vectors τᵢ = θᵢ − θ_base, optionally sparsified, weighted by wᵢ,
 * optionally filtered by a sign consensus, summed, optionally divided by the weight that contributed, scaled by λ
 * and added to the base.
 */
import { backend } from '../../engine/index.js';
import { CastDType } from '../../engine/backend/kernels.js';
import { applyBand, type MagnitudeBand } from '../select.js';
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
  const n = checkSameLength('combineTaskVectors', [base, ...deltas]);
  const k = deltas.length;
  const w = opts.weights ?? deltas.map(() => 1);
  if (w.length !== k) throw new Error(`combineTaskVectors: ${k} task vectors but ${w.length} weights`);
  const combine = rowCombiner(Float32Array.from(w), opts);
  // The deltas are packed chunk by chunk into the [k, chunk] layout the kernel reads.
  const chunk = Math.min(n, COMBINE_CHUNK);
  const packed = new Float32Array(k * chunk);
  for (let s = 0; s < n; s += chunk) {
    const len = Math.min(chunk, n - s);
    const rows = packed.subarray(0, k * len);
    deltas.forEach((d, j) => rows.set(d.subarray(s, s + len), j * len));
    combine({ data: base.subarray(s, s + len), dtype: CastDType.F32 }, rows, len, { data: out.subarray(s, s + len), dtype: CastDType.F32 });
  }
  return out;
}

const COMBINE_CHUNK = 1 << 18;

/** A range of values in a checkpoint dtype: one of the base as its checkpoint stores it, or of the output. */
export interface TypedRange {
  data: Float32Array | Uint16Array;
  dtype: CastDType;
}

/**
 * {@link combineTaskVectors} on one range: `combine(base, deltas, stride, out, bands, offset)` with the range's task
 * vectors as rows of `deltas`, row j at [j·stride, j·stride + len) for len = out.data.length, each trimmed to its
 * magnitude band in `bands` (none: kept whole; `offset` is the range's index in the whole tensor), written to `out` in
 * its dtype. With a consensus the TIES kernel applies the bands as it reads (into f32, then cast); without one they
 * zero the rows in place and one weighted sum writes the output. `out` may be the base's data.
 */
export function rowCombiner(
  w: Float32Array,
  opts: CombineOptions,
): (base: TypedRange, deltas: Float32Array, stride: number, out: TypedRange, bands?: readonly MagnitudeBand[], offset?: number) => void {
  const k = w.length, lambda = opts.lambda ?? 1, normalize = opts.normalize ?? false, consensus = opts.consensus ?? null;
  const total = w.reduce((a, x) => a + x, 0);
  const scale = lambda / (normalize && Math.abs(total) >= 1e-8 ? total : 1);
  // out = base + Σ scale·wⱼ·τⱼ: the base first, then the rows, as one weighted sum.
  const sumWeights = Float32Array.from([1, ...Array.from(w, (x) => scale * x)]);
  let wide = new Float32Array(0);
  return (base, deltas, stride, out, bands = [], offset = 0) => {
    const len = out.data.length;
    if (consensus !== null) {
      const packed = Float64Array.from(bands.flatMap((b) => [b.low, b.lowCut, b.high, b.highCut]));
      if (out.dtype !== CastDType.F32 && wide.length < len) wide = new Float32Array(len);
      const f32 = out.dtype === CastDType.F32 ? (out.data as Float32Array) : wide.subarray(0, len);
      backend().tiesCombine(deltas, k, len, stride, w, packed, offset, base.dtype, base.data, f32, lambda, normalize, consensus === 'count');
      // The cast to the output dtype: a weighted sum of one f32 term of weight 1.
      if (out.dtype !== CastDType.F32) backend().weightedSum(Int32Array.of(CastDType.F32), [f32], Float32Array.of(1), len, out.dtype, out.data);
      return;
    }
    bands.forEach((b, j) => applyBand(deltas.subarray(j * stride, j * stride + len), b, offset));
    const rows = Array.from({ length: k }, (_, j) => deltas.subarray(j * stride, j * stride + len));
    const dtypes = Int32Array.from([base.dtype, ...rows.map(() => CastDType.F32)]);
    backend().weightedSum(dtypes, [base.data, ...rows], sumWeights, len, out.dtype, out.data);
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
