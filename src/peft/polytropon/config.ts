/** `PolyConfig`: HF PEFT's field names and defaults (src/peft/tuners/poly/config.py). */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';

export interface PolyConfig extends PeftConfigBase {
  peft_type: 'POLY';
  /** Rank of every skill. */
  r: number;
  /** true: B = 0; false: B Kaiming-uniform like A. */
  init_weights: boolean;
  poly_type: 'poly';
  n_tasks: number;
  /** LoRA skills in the inventory of each layer. */
  n_skills: number;
  /** Heads of Multi-Head Routing (1: Polytropon). */
  n_splits: number;
}

export const POLY_DEFAULTS = {
  r: 8,
  target_modules: null,
  exclude_modules: null,
  modules_to_save: null,
  init_weights: true,
  poly_type: 'poly',
  n_tasks: 1,
  n_skills: 4,
  n_splits: 1,
} as const;

export function parsePolyConfig(raw: Record<string, unknown>, where = 'PolyConfig'): PolyConfig {
  const c = parseConfigFields<PolyConfig>('POLY', raw, POLY_DEFAULTS, {
    ...BASE_CHECKS,
    r: is.int(1),
    init_weights: is.bool,
    poly_type: is.oneOf('poly'),
    n_tasks: is.int(1),
    n_skills: is.int(1),
    n_splits: is.int(1),
  }, where);
  if (c.target_modules === null) throw new Error(`${where}: target_modules must be set`);
  return c;
}
