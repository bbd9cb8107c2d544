/** `LoHaConfig`: HF PEFT's field names and defaults (PEFT 0.20 src/peft/tuners/loha/config.py, via LycorisConfig). */
import { parseConfigFields } from '../config.js';
import { LYCORIS_CHECKS, LYCORIS_DEFAULTS, type LycorisConfig } from '../common/lycoris.js';
import { checkTargets } from '../common/select-config.js';

export interface LohaConfig extends LycorisConfig {
  peft_type: 'LOHA';
}

export const LOHA_DEFAULTS = LYCORIS_DEFAULTS;

/** Parses and validates a LoHa config; `use_effective_conv2d` only concerns conv layers, which peftjs has none of. */
export function parseLohaConfig(raw: Record<string, unknown>, where = 'LoHaConfig'): LohaConfig {
  const c = parseConfigFields<LohaConfig>('LOHA', raw, LOHA_DEFAULTS, { ...LYCORIS_CHECKS, init_weights: (v) => (typeof v === 'boolean' ? null : 'must be true or false') }, where);
  checkTargets(c, where);
  return c;
}
