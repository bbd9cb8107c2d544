/**
 * The merge methods a config can name (`merge_method:`), with mergekit's parameter names and defaults, each as a
 * per-tensor merger over owned f32 buffers (working in place, so a streamed merge holds no extra copies). The
 * math lives in methods/*.ts; this file only wires parameters to it.
 */
import { breadcrumbsMask } from './methods/breadcrumbs.js';
import { dareDrop } from './methods/dare.js';
import { fisherMerge } from './methods/fisher.js';
import { linearInto } from './methods/linear.js';
import { regmean } from './methods/regmean.js';
import { slerp } from './methods/slerp.js';
import { combineTaskVectors, subtractInPlace, type Consensus } from './methods/task-arithmetic.js';
import { trimByMagnitude } from './methods/ties.js';
import type { TensorContext } from './stream.js';

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

/** Everything a method's per-tensor merge receives. */
export interface MethodCall {
  ctx: TensorContext;
  /** f32 tensors: the base first when the method takes one (`needsBase`), then the models, in config order. */
  tensors: Float32Array[];
  /** Global parameters, resolved for this tensor. */
  global: Record<string, ParamValue>;
  /** Per-model parameters (one record per model, base excluded), resolved for this tensor. */
  perModel: Record<string, ParamValue>[];
  /** A seed for this tensor (random methods). */
  seed: number;
  fisher: SideTensor;
  gram: SideTensor;
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
}

const num = (v: ParamValue | undefined) => Number(v);
const weights = (c: MethodCall) => c.perModel.map((p) => num(p.weight));

const weight = (fallback?: number): ParamDef => ({ name: 'weight', perModel: true, default: fallback });
const density: ParamDef = { name: 'density', perModel: true, default: 1 };
const lambda: ParamDef = { name: 'lambda', perModel: false, default: 1 };
// Accepted for mergekit compatibility; it only changes how mergekit stores masks in memory.
const int8Mask: ParamDef = { name: 'int8_mask', perModel: false, default: false };

/**
 * The generalised task arithmetic family (task_arithmetic, ties, dare_*, breadcrumbs*): τᵢ = θᵢ − θ_base in place,
 * `sparsify` each, then combine into the base buffer.
 */
function taskFamily(
  sparsify: ((delta: Float32Array, p: Record<string, ParamValue>, call: MethodCall, i: number) => void) | null,
  consensus: Consensus | null,
  normalize: boolean,
  extra: ParamDef[],
): MethodDef {
  return {
    needsBase: true,
    params: [weight(), lambda, { name: 'normalize', perModel: false, default: normalize }, int8Mask, ...extra],
    merge(call) {
      const [base, ...models] = call.tensors;
      const deltas = models.map((m, i) => {
        subtractInPlace(m, base);
        sparsify?.(m, call.perModel[i], call, i);
        return m;
      });
      return combineTaskVectors(base, deltas, { weights: weights(call), consensus, normalize: Boolean(call.global.normalize), lambda: num(call.global.lambda) }, base);
    },
  };
}

const trim = (d: Float32Array, p: Record<string, ParamValue>) => void trimByMagnitude(d, num(p.density));
const crumbs = (d: Float32Array, p: Record<string, ParamValue>) => void breadcrumbsMask(d, num(p.density), num(p.gamma));
const drop = (d: Float32Array, p: Record<string, ParamValue>, call: MethodCall, i: number) => {
  const keep = num(p.density);
  dareDrop(d, keep, call.seed + i);
  if (!call.global.rescale && keep > 0 && keep < 1) for (let j = 0; j < d.length; j++) d[j] *= keep;
};
const gamma: ParamDef = { name: 'gamma', perModel: true, default: 0.01 };
const rescale: ParamDef = { name: 'rescale', perModel: false, default: true };

/** Every merge method by its config name. */
export const METHODS: Record<string, MethodDef> = {
  linear: {
    needsBase: false,
    params: [weight(), { name: 'normalize', perModel: false, default: true }],
    merge: (c) => linearInto(c.tensors[0], c.tensors, weights(c), { normalize: Boolean(c.global.normalize) }),
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
