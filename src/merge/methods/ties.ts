/**
 * TIES-Merging (Yadav et al., 2023): trim each task vector to its top-`density` fraction by magnitude, elect the
 * sign of every entry by the summed (weighted) magnitude, and average only the values that agree with it.
 */
import { keepMagnitudeRanks } from '../select.js';
import { combineTaskVectors, taskVectors, type Consensus } from './task-arithmetic.js';

/** The ascending magnitude ranks TIES keeps of n entries: the top ⌊density·n⌋ (all for density ≥ 1, none for ≤ 0). */
export function trimRanks(n: number, density: number): [number, number] {
  return [density >= 1 ? 0 : n - Math.floor(Math.max(0, density) * n), n];
}

/**
 * Keeps, in place, the ⌊density·n⌋ largest-magnitude entries of `delta` (ties broken by index) and zeroes the
 * rest; returns `delta`. density ≥ 1 keeps all, density ≤ 0 none.
 */
export function trimByMagnitude(delta: Float32Array, density: number): Float32Array {
  return keepMagnitudeRanks(delta, ...trimRanks(delta.length, density));
}

/** Options of {@link ties}. */
export interface TiesOptions {
  /** One weight per model (default 1 each). */
  weights?: readonly number[];
  /** Fraction of each task vector kept, one per model or one for all (default 1). */
  density?: number | readonly number[];
  /** Scale of the merged task vector (default 1). */
  lambda?: number;
  /** Divide by the weight that agreed with the elected sign (default true: the paper's disjoint mean). */
  normalize?: boolean;
  /** Sign election (default `sum`, the paper's). */
  consensus?: Consensus;
}

/** The value of a per-model option given as one number or one per model. */
export function perModel(value: number | readonly number[] | undefined, i: number, fallback: number): number {
  return value === undefined ? fallback : typeof value === 'number' ? value : value[i];
}

/** TIES merge of `models` onto `base`, as a fresh array; the inputs are not modified. */
export function ties(base: Float32Array, models: readonly Float32Array[], opts: TiesOptions = {}): Float32Array {
  const deltas = taskVectors(base, models).map((d, i) => trimByMagnitude(d, perModel(opts.density, i, 1)));
  return combineTaskVectors(base, deltas, {
    weights: opts.weights,
    consensus: opts.consensus ?? 'sum',
    normalize: opts.normalize ?? true,
    lambda: opts.lambda,
  });
}
