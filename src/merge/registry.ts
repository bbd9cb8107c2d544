/**
 * The merge methods a config can name (`merge_method:`), with mergekit's parameter names and defaults, each as a
 * per-tensor merger over owned f32 buffers (working in place, so a streamed merge holds no extra copies). The
 * math lives in methods/*.ts; this file only wires parameters to it.
 */
import { backend } from '../engine/index.js';
import { breadcrumbsRanks } from './methods/breadcrumbs.js';
import { dareDrop } from './methods/dare.js';
import { fisherMerge } from './methods/fisher.js';
import { linearInto, linearScale } from './methods/linear.js';
import { regmean } from './methods/regmean.js';
import { slerp } from './methods/slerp.js';
import { combineTaskVectors, rowCombiner, subtractInPlace, type Consensus } from './methods/task-arithmetic.js';
import { trimRanks } from './methods/ties.js';
import { keepMagnitudeRanks, magnitudeBands, type VectorChunk } from './select.js';
import type { TypedRange } from './dtype.js';
import type { ChunkMerge, TensorContext, TensorScan } from './stream.js';

/** A parameter value after filters and gradients are applied. */
export type ParamValue = number | boolean;

/** A parameter a method reads: global (`parameters:`) or per model (`models[i].parameters:`, falling back to global). */
export interface ParamDef {
  name: string;
  perModel: boolean;
  /** undefined = required. */
  default?: ParamValue;
}

/** Data-dependent statistics per model, tensor by tensor (Fisher diagonals, Gram matrices); null when absent. */
export type SideTensor = (model: number, name: string) => Float32Array | null;

/** Everything a method's per-tensor merge receives besides the tensors. */
export interface MethodParams {
  ctx: TensorContext;
  /** Global parameters, resolved for this tensor. */
  global: Record<string, ParamValue>;
  /** Per-model parameters (one record per model, base excluded), resolved for this tensor. */
  perModel: Record<string, ParamValue>[];
  /** A seed for this tensor (random methods). */
  seed: number;
  fisher: SideTensor;
  gram: SideTensor;
}

/** A whole-tensor merge call. */
export interface MethodCall extends MethodParams {
  /** f32 tensors: the base first when the method takes one (`needsBase`), then the models, in config order. */
  tensors: Float32Array[];
}

/** One merge method. */
export interface MethodDef {
  /** Whether `base_model` is required and passed first. */
  needsBase: boolean;
  /** Exact number of models besides the base, if fixed. */
  models?: number;
  /** Which per-model statistics files it needs. */
  needs?: 'fisher' | 'gram';
  params: ParamDef[];
  merge(call: MethodCall): Float32Array;
  /**
   * The range-by-range form, for element-wise methods: the merge of one range from the inputs' chunks (in the
   * order of `tensors`), after any passes over `scan` it needs. Absent (or null for a tensor): `merge` runs.
   */
  chunked?(call: MethodParams, scan: TensorScan): ChunkMerge | null;
}

const num = (v: ParamValue | undefined) => Number(v);
const weights = (c: MethodParams) => c.perModel.map((p) => num(p.weight));

const weight = (fallback?: number): ParamDef => ({ name: 'weight', perModel: true, default: fallback });
const density: ParamDef = { name: 'density', perModel: true, default: 1 };
const lambda: ParamDef = { name: 'lambda', perModel: false, default: 1 };
// Accepted for mergekit compatibility; it only changes how mergekit stores masks in memory.
const int8Mask: ParamDef = { name: 'int8_mask', perModel: false, default: false };

/**
 * How the task-arithmetic family sparsifies each task vector: keep a band of magnitude ranks (TIES, Breadcrumbs:
 * streamable once the band's thresholds are found), or a random drop (DARE: whole tensors only).
 */
type Sparsify =
  | { band: (n: number, p: Record<string, ParamValue>) => [number, number] }
  | { drop: (delta: Float32Array, p: Record<string, ParamValue>, call: MethodCall, i: number) => void };

/**
 * The generalised task arithmetic family (task_arithmetic, ties, dare_*, breadcrumbs*): τᵢ = θᵢ − θ_base,
 * sparsified, then combined into the base — in place on whole tensors, or range by range from the inputs' own
 * dtypes. Streamed, the task vectors are never stored: the selection's passes (select.ts) and the final pass read
 * them straight from the base's and the models' ranges (the kernels subtract as they read), so memory is the ranges
 * and both forms give the same bits.
 */
function taskFamily(sparsify: Sparsify | null, consensus: Consensus | null, normalize: boolean, extra: ParamDef[]): MethodDef {
  const options = (c: MethodParams) => ({ consensus, normalize: Boolean(c.global.normalize), lambda: num(c.global.lambda) });
  return {
    needsBase: true,
    params: [weight(), lambda, { name: 'normalize', perModel: false, default: normalize }, int8Mask, ...extra],
    merge(call) {
      const [base, ...models] = call.tensors;
      const deltas = models.map((m, i) => {
        subtractInPlace(m, base);
        if (sparsify && 'band' in sparsify) keepMagnitudeRanks(m, ...sparsify.band(m.length, call.perModel[i]));
        if (sparsify && 'drop' in sparsify) sparsify.drop(m, call.perModel[i], call, i);
        return m;
      });
      return combineTaskVectors(base, deltas, { weights: weights(call), ...options(call) }, base);
    },
    chunked(call, scan) {
      if (sparsify && 'drop' in sparsify) return null;
      const n = call.ctx.shape.reduce((a, d) => a * d, 1);
      const combine = rowCombiner(Float32Array.from(weights(call)), options(call));
      // Task vector j of a range: model j + 1 minus the base (input 0), read as they are stored.
      const taskVectors = (chunks: readonly TypedRange[]): VectorChunk => ({ dtypes: Int32Array.from(chunks, (x) => x.dtype), inputs: chunks.map((x) => x.data), based: true });
      const bands = sparsify
        ? magnitudeBands(
            (visit, from) => scan((chunks, offset, length) => visit(taskVectors(chunks), offset, length), from),
            n,
            call.perModel.map((p) => sparsify.band(n, p)),
          )
        : [];
      return (chunks, offset, out) => combine(chunks, true, out, bands, offset);
    },
  };
}

const trim: Sparsify = { band: (n, p) => trimRanks(n, num(p.density)) };
const crumbs: Sparsify = { band: (n, p) => breadcrumbsRanks(n, num(p.density), num(p.gamma)) };
const drop: Sparsify = {
  drop(d, p, call, i) {
    const keep = num(p.density);
    dareDrop(d, keep, call.seed + i);
    if (!call.global.rescale && keep > 0 && keep < 1) for (let j = 0; j < d.length; j++) d[j] *= keep;
  },
};
const gamma: ParamDef = { name: 'gamma', perModel: true, default: 0.01 };
const rescale: ParamDef = { name: 'rescale', perModel: false, default: true };

/** Every merge method by its config name. */
export const METHODS: Record<string, MethodDef> = {
  linear: {
    needsBase: false,
    params: [weight(), { name: 'normalize', perModel: false, default: true }],
    merge: (c) => linearInto(c.tensors[0], c.tensors, weights(c), { normalize: Boolean(c.global.normalize) }),
    chunked(c) {
      const scale = linearScale(weights(c), { normalize: Boolean(c.global.normalize) });
      const w = Float32Array.from(weights(c), (x) => x * scale);
      return (chunks, _offset, out) => backend().weightedSum(Int32Array.from(chunks, (x) => x.dtype), chunks.map((x) => x.data), w, out.data.length, out.dtype, out.data);
    },
  },
  task_arithmetic: taskFamily(null, null, false, []),
  ties: taskFamily(trim, 'sum', true, [density]),
  dare_linear: taskFamily(drop, null, false, [density, rescale]),
  dare_ties: taskFamily(drop, 'sum', false, [density, rescale]),
  breadcrumbs: taskFamily(crumbs, null, false, [density, gamma]),
  breadcrumbs_ties: taskFamily(crumbs, 'sum', false, [density, gamma]),
  slerp: {
    needsBase: true,
    models: 1,
    params: [{ name: 't', perModel: false }],
    merge: (c) => slerp(num(c.global.t), c.tensors[0], c.tensors[1]),
  },
  fisher: {
    needsBase: false,
    needs: 'fisher',
    params: [weight(1), { name: 'epsilon', perModel: false, default: 1e-6 }],
    merge(c) {
      const fishers = c.tensors.map((_, i) => {
        const f = c.fisher(i, c.ctx.name);
        if (f === null) throw new Error(`fisher: model ${i} has no Fisher tensor for ${JSON.stringify(c.ctx.name)}`);
        return f;
      });
      return fisherMerge(c.tensors, fishers, { weights: weights(c), epsilon: num(c.global.epsilon) });
    },
  },
  regmean: {
    needsBase: false,
    needs: 'gram',
    params: [weight(1), { name: 'alpha', perModel: false, default: 0.9 }],
    merge(c) {
      const grams = c.tensors.map((_, i) => c.gram(i, c.ctx.name));
      const { shape } = c.ctx;
      if (grams.every((g) => g !== null) && shape.length === 2) {
        return regmean(c.tensors, grams as Float32Array[], shape[0], shape[1], { alpha: num(c.global.alpha) });
      }
      if (grams.some((g) => g !== null)) throw new Error(`regmean: only some models have a Gram matrix for ${JSON.stringify(c.ctx.name)}`);
      // Not a linear layer with statistics (embeddings, norms, biases): the weighted average, as in the paper.
      return linearInto(c.tensors[0], c.tensors, weights(c), { normalize: true });
    },
  },
};
