/**
 * Model Breadcrumbs (Davari & Belilovsky, 2024): mask each task vector so that both its largest-magnitude
 * outliers and its smallest entries are dropped, then sum. Parameterised as mergekit does: `density` is the
 * fraction kept and `gamma` the fraction of largest entries removed; the smallest 1 − density − gamma go too
 * (when density + gamma > 1, fewer outliers are removed so that `density` is still met).
 */
import { keepMagnitudeRanks } from '../select.js';
import { combineTaskVectors, taskVectors } from './task-arithmetic.js';
import { perModel } from './ties.js';

/**
 * The ascending magnitude ranks Breadcrumbs keeps of n entries: [n_bot, n − n_top) with n_top = ⌊gamma·n⌋ and
 * n_bot = n − ⌊density·n⌋ − n_top (fewer outliers dropped when that is negative); everything for density ≥ 1.
 */
export function breadcrumbsRanks(n: number, density: number, gamma: number): [number, number] {
  if (density >= 1) return [0, n];
  const kept = Math.floor(Math.max(0, density) * n);
  let top = Math.floor(Math.max(0, gamma) * n);
  let bottom = n - kept - top;
  if (bottom < 0) {
    top += bottom;
    bottom = 0;
  }
  return [bottom, n - top];
}

/** Keeps, in place, the entries of `delta` whose ascending magnitude rank is in {@link breadcrumbsRanks} (ties by index); returns `delta`. */
export function breadcrumbsMask(delta: Float32Array, density: number, gamma: number): Float32Array {
  return keepMagnitudeRanks(delta, ...breadcrumbsRanks(delta.length, density, gamma));
}

/** Options of {@link breadcrumbs}. */
export interface BreadcrumbsOptions {
  /** One weight per model (default 1 each). */
  weights?: readonly number[];
  /** Fraction of each task vector kept, one per model or one for all (default 1). */
  density?: number | readonly number[];
  /** Fraction of largest-magnitude entries removed, one per model or one for all (default 0.01, as mergekit). */
  gamma?: number | readonly number[];
  /** Elect signs as TIES does (mergekit's `breadcrumbs_ties`; default false). */
  ties?: boolean;
  /** Scale of the merged task vector (default 1). */
  lambda?: number;
  /** Divide by the contributing weight (default false). */
  normalize?: boolean;
}

/** Breadcrumbs merge of `models` onto `base`, as a fresh array; the inputs are not modified. */
export function breadcrumbs(base: Float32Array, models: readonly Float32Array[], opts: BreadcrumbsOptions = {}): Float32Array {
  const deltas = taskVectors(base, models).map((d, i) => breadcrumbsMask(d, perModel(opts.density, i, 1), perModel(opts.gamma, i, 0.01)));
  return combineTaskVectors(base, deltas, {
    weights: opts.weights,
    consensus: opts.ties ? 'sum' : null,
    normalize: opts.normalize ?? false,
    lambda: opts.lambda,
  });
}
