/** `LoKrConfig`: HF PEFT's field names and defaults (PEFT 0.20 src/peft/tuners/lokr/config.py, via LycorisConfig). */
import { is, parseConfigFields } from '../config.js';
import { LYCORIS_CHECKS, LYCORIS_DEFAULTS, type LycorisConfig } from '../common/lycoris.js';
import { checkTargets } from '../common/select-config.js';

export interface LokrConfig extends LycorisConfig {
  peft_type: 'LOKR';
  /** Also factor the left Kronecker factor W1 into W1a·W1b (when r is small enough). */
  decompose_both: boolean;
  /** Preferred size of the first factor of each dimension (−1: as square as possible). */
  decompose_factor: number;
  /** Rescale the rank-dropout mask by the kept fraction. */
  rank_dropout_scale: boolean;
  init_weights: boolean | 'lycoris';
}

export const LOKR_DEFAULTS = { ...LYCORIS_DEFAULTS, decompose_both: false, decompose_factor: -1, rank_dropout_scale: false } as const;

/** Parses and validates a LoKr config; `use_effective_conv2d` only concerns conv layers, which peftjs has none of. */
export function parseLokrConfig(raw: Record<string, unknown>, where = 'LoKrConfig'): LokrConfig {
  const checks = {
    ...LYCORIS_CHECKS,
    decompose_both: is.bool,
    decompose_factor: (v: unknown) => (Number.isInteger(v) && ((v as number) === -1 || (v as number) > 0) ? null : 'must be -1 or a positive integer'),
    rank_dropout_scale: is.bool,
    init_weights: (v: unknown) => (v === true || v === false || v === 'lycoris' ? null : 'must be true, false or "lycoris"'),
  };
  const c = parseConfigFields<LokrConfig>('LOKR', raw, LOKR_DEFAULTS, checks, where);
  checkTargets(c, where);
  return c;
}
