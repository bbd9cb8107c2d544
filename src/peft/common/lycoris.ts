/**
 * What LoHa and LoKr share (PEFT's `LycorisConfig` / `LycorisLayer`): the config fields `r`, `alpha`,
 * `rank_dropout`, `module_dropout`, `init_weights`, `rank_pattern` / `alpha_pattern`, and a layer whose adapter is a
 * full ΔW = (α/r)·structure(factors), applied as `x·ΔWᵀ`. Training regularisers: rank dropout zeroes whole rows of
 * ΔW (rescaled by the kept fraction where the method asks), module dropout skips the adapter for a forward.
 */
import { globalGenerator, mul, scale, tensor } from '../../engine/index.js';
import type { PeftConfigBase } from '../config.js';
import { BASE_CHECKS, is } from '../config.js';
import { getPatternKey } from '../targets.js';
import { LinearAdapterLayer, type Contribution, type F32 } from './linear-adapter.js';
import { probability, TARGET_DEFAULTS } from './select-config.js';

export interface LycorisConfig extends PeftConfigBase {
  r: number;
  alpha: number;
  rank_dropout: number;
  module_dropout: number;
  use_effective_conv2d: boolean;
  init_weights: boolean | string;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  [field: string]: unknown;
}

export const LYCORIS_DEFAULTS = {
  ...TARGET_DEFAULTS,
  r: 8,
  alpha: 8,
  rank_dropout: 0.0,
  module_dropout: 0.0,
  use_effective_conv2d: false,
  init_weights: true,
  rank_pattern: {},
  alpha_pattern: {},
} as const;

export const LYCORIS_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  alpha: is.num,
  rank_dropout: probability,
  module_dropout: probability,
  use_effective_conv2d: is.bool,
  rank_pattern: is.numberMap,
  alpha_pattern: is.numberMap,
};

/** One LyCORIS adapter's settings for one module (after rank_pattern / alpha_pattern). */
export interface LycorisSpec {
  r: number;
  alpha: number;
  rankDropout: number;
  moduleDropout: number;
  /** Divide the rank-dropout mask by its mean (LoHa always; LoKr with `rank_dropout_scale`). */
  rankDropoutScale: boolean;
  init: boolean | string;
}

/** This module's spec: `rank_pattern` / `alpha_pattern` applied. */
export function lycorisSpec(c: LycorisConfig, moduleName: string, rankDropoutScale: boolean): LycorisSpec {
  const rKey = getPatternKey(Object.keys(c.rank_pattern), moduleName);
  const aKey = getPatternKey(Object.keys(c.alpha_pattern), moduleName);
  return {
    r: c.rank_pattern[rKey] ?? c.r,
    alpha: c.alpha_pattern[aKey] ?? c.alpha,
    rankDropout: c.rank_dropout,
    moduleDropout: c.module_dropout,
    rankDropoutScale,
    init: c.init_weights,
  };
}

/** A LyCORIS layer: the subclass builds the unscaled structured weight; scaling and dropouts live here. */
export abstract class LycorisLinear extends LinearAdapterLayer<LycorisSpec> {
  protected readonly specs = new Map<string, LycorisSpec>();

  /** The structured weight [out, in] before the α/r scaling (differentiable). */
  protected abstract structured(name: string): F32;

  protected override forget(name: string): void {
    this.specs.delete(name);
  }

  protected contribution(name: string, training: boolean): Contribution | null {
    const s = this.specs.get(name)!;
    if (training && s.moduleDropout > 0 && globalGenerator.uniform() <= s.moduleDropout) return null;
    let delta = scale(this.structured(name), s.alpha / s.r);
    if (training && s.rankDropout > 0) {
      const out = this.outFeatures;
      const keep = Float32Array.from({ length: out }, () => (globalGenerator.uniform() > s.rankDropout ? 1 : 0));
      const kept = keep.reduce((a, b) => a + b, 0);
      if (s.rankDropoutScale && kept > 0) keep.forEach((v, i) => (keep[i] = (v * out) / kept));
      delta = mul(delta, tensor(keep, [out, 1]));
    }
    return { kind: 'delta', delta, dropout: 0 };
  }
}
