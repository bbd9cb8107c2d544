/**
 * `LoraSbConfig`. LoRA-SB is not in HF PEFT; the fields follow PEFT's LoraConfig names where they mean the same
 * (r, target_modules, lora_dropout, fan_in_fan_out, bias, init_lora_weights), and `peft_type` is "LORASB". There is
 * no lora_alpha: the paper's init fixes the scale, so s = 1.
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';

export interface LoraSbConfig extends PeftConfigBase {
  peft_type: 'LORASB';
  r: number;
  lora_dropout: number;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  /** "lora_sb": B, R, A from the approximated first update (needs `preprocessLoraSb`); true: random orthonormal B, A and R = 0. */
  init_lora_weights: 'lora_sb' | true;
  /** How the first full fine-tuning update is approximated from the gradient G: "sign" = −lr·sign(G) (an Adam first step, the paper's choice), "gradient" = −lr·G (SGD). */
  init_update: 'sign' | 'gradient';
  /** The learning rate of that approximated update. */
  init_lr: number;
  [field: string]: unknown;
}

export const LORASB_DEFAULTS = {
  r: 8,
  target_modules: null,
  exclude_modules: null,
  lora_dropout: 0,
  fan_in_fan_out: false,
  bias: 'none',
  modules_to_save: null,
  init_lora_weights: 'lora_sb',
  init_update: 'sign',
  init_lr: 1e-3,
  layers_to_transform: null,
  layers_pattern: null,
} as const;

const LORASB_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  lora_dropout: (v: unknown) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'must be a number in [0, 1)'),
  fan_in_fan_out: is.bool,
  bias: is.oneOf('none', 'all', 'lora_only'),
  init_lora_weights: is.oneOf('lora_sb', true),
  init_update: is.oneOf('sign', 'gradient'),
  init_lr: (v: unknown) => (typeof v === 'number' && v > 0 ? null : 'must be a positive number'),
};

export function parseLoraSbConfig(raw: Record<string, unknown>, where = 'LoraSbConfig'): LoraSbConfig {
  const c = parseConfigFields<LoraSbConfig>('LORASB', raw, LORASB_DEFAULTS, LORASB_CHECKS, where);
  if (c.target_modules === null) throw new Error(`${where}: target_modules must be set (a list of module names, a regex, or "all-linear")`);
  return c;
}
