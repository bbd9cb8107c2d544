/**
 * Rotary position embedding tables (inverse frequencies and the per-position cos/sin the `rope` op reads), with
 * the config.json `rope_scaling` variants of transformers' `modeling_rope_utils`:
 * - `linear` (position interpolation): θ_i / factor;
 * - `dynamic` (NTK-aware): for sequences longer than `max_position_embeddings` the base grows to
 *   base·(factor·L/max − (factor − 1))^(D/(D−2)), L = the largest position + 1 of the call (stateless: HF keeps the
 *   largest L seen, which gives the same tables for one forward or a growing generation);
 * - `llama3`: low frequencies divided by `factor`, high ones kept, a smooth ramp between;
 * - `yarn`: per-frequency blend of interpolation and extrapolation, and cos/sin scaled by the attention factor
 *   (0.1·ln(factor) + 1 unless given).
 * Arithmetic follows PyTorch's float32 (inverse frequencies and angles rounded to f32) so logits match HF closely.
 */
import { empty, type Tensor } from '../engine/index.js';
import type { ConfigReader } from './config.js';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: 'yarn'; factor: number; originalMaxPositions: number; attentionFactor: number; betaFast: number; betaSlow: number; truncate: boolean };

/** The supported `rope_scaling` types. */
export const ROPE_SCALING_TYPES = ['linear', 'dynamic', 'llama3', 'yarn'] as const;

/** Parses config.json `rope_scaling` (null when absent or `default`); unknown types are an error naming them. */
export function parseRopeScaling(cfg: ConfigReader, maxPositions: number): RopeScaling | null {
  const r = cfg.nested('rope_scaling');
  if (!r) return null;
  const type = r.has('rope_type') ? r.string('rope_type') : r.has('type') ? r.string('type') : 'default';
  if (type === 'default') return null;
  const factor = r.number('factor');
  switch (type) {
    case 'linear':
    case 'dynamic':
      return { type, factor };
    case 'llama3':
      return {
        type,
        factor,
        lowFreqFactor: r.number('low_freq_factor'),
        highFreqFactor: r.number('high_freq_factor'),
        originalMaxPositions: r.int('original_max_position_embeddings'),
      };
    case 'yarn': {
      const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      const m = r.number('mscale', 0);
      const mAll = r.number('mscale_all_dim', 0);
      const attentionFactor = r.has('attention_factor')
        ? r.number('attention_factor')
        : m && mAll
          ? mscale(factor, m) / mscale(factor, mAll)
          : mscale(factor);
      return {
        type,
        factor,
        originalMaxPositions: r.int('original_max_position_embeddings', maxPositions),
        attentionFactor,
        betaFast: r.number('beta_fast', 32),
        betaSlow: r.number('beta_slow', 1),
        truncate: r.bool('truncate', true),
      };
    }
    default:
      throw new Error(`${r.source}: rope type "${type}" is not supported (supported: default, ${ROPE_SCALING_TYPES.join(', ')})`);
  }
}

const f32 = Math.fround;

/** 1 / base^(2i/D) for i < D/2, in f32 as torch computes it. */
function baseInvFreq(base: number, dim: number): Float64Array {
  return Float64Array.from({ length: dim / 2 }, (_, i) => f32(1 / f32(base ** f32((2 * i) / dim))));
}

/** Rotary tables for one model: inverse frequencies (possibly depending on the sequence length) and a cos/sin scale. */
export class RotaryEmbedding {
  private readonly invFreq: Float64Array;
  private readonly scale: number;

  constructor(
    readonly headDim: number,
    readonly theta: number,
    readonly scaling: RopeScaling | null,
    readonly maxPositions: number,
  ) {
    this.invFreq = this.frequencies(maxPositions);
    this.scale = scaling?.type === 'yarn' ? scaling.attentionFactor : 1;
  }

  /** Inverse frequencies for a call whose largest position is `seqLen − 1`. */
  private frequencies(seqLen: number): Float64Array {
    const D = this.headDim;
    const s = this.scaling;
    if (!s) return baseInvFreq(this.theta, D);
    switch (s.type) {
      case 'linear':
        return baseInvFreq(this.theta, D).map((f) => f32(f / s.factor));
      case 'dynamic': {
        const L = Math.max(seqLen, this.maxPositions);
        const base = this.theta * ((s.factor * L) / this.maxPositions - (s.factor - 1)) ** (D / (D - 2));
        return baseInvFreq(base, D);
      }
      case 'llama3': {
        const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
        const highWavelen = s.originalMaxPositions / s.highFreqFactor;
        return baseInvFreq(this.theta, D).map((f) => {
          const wavelen = (2 * Math.PI) / f;
          if (wavelen < highWavelen) return f;
          if (wavelen > lowWavelen) return f32(f / s.factor);
          const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
          return f32((1 - smooth) * (f / s.factor) + smooth * f);
        });
      }
      case 'yarn': {
        const correctionDim = (rotations: number) =>
          (D * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(this.theta));
        let low = correctionDim(s.betaFast);
        let high = correctionDim(s.betaSlow);
        if (s.truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
        low = Math.max(low, 0);
        high = Math.min(high, D - 1);
        if (low === high) high += 0.001;
        return baseInvFreq(this.theta, D).map((extrapolation, i) => {
          const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
          const keep = 1 - ramp; // share of the extrapolated (original) frequency
          return f32((extrapolation / s.factor) * (1 - keep) + extrapolation * keep);
        });
      }
    }
  }

  /**
   * cos and sin tables for `positions` (B·T values, row-major): [T, D/2] when `shared` (every row has the same
   * positions, only the first T are read), else [B, T, D/2].
   */
  tables(positions: Int32Array, B: number, T: number, shared: boolean): { cos: Tensor<'f32'>; sin: Tensor<'f32'> } {
    const half = this.headDim / 2;
    const rows = shared ? T : B * T;
    let maxPos = 0;
    for (let i = 0; i < rows; i++) maxPos = Math.max(maxPos, positions[i]!);
    const inv = this.scaling?.type === 'dynamic' ? this.frequencies(maxPos + 1) : this.invFreq;
    const shape = shared ? [T, half] : [B, T, half];
    const cosT = empty(shape);
    const sinT = empty(shape);
    const cos = cosT.data;
    const sin = sinT.data;
    for (let r = 0; r < rows; r++) {
      const p = positions[r]!;
      for (let i = 0; i < half; i++) {
        const angle = f32(p * inv[i]!);
        cos[r * half + i] = Math.cos(angle) * this.scale;
        sin[r * half + i] = Math.sin(angle) * this.scale;
      }
    }
    return { cos: cosT, sin: sinT };
  }
}
