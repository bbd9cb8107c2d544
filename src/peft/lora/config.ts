/** `LoraConfig`: HF PEFT's field names, defaults and checks (src/peft/tuners/lora/config.py). */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { parseInitFields } from './init/index.js';

export interface LoraConfig extends PeftConfigBase {
  peft_type: 'LORA';
  /** Rank. */
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** The base weight is stored [in, out] (GPT-2 `Conv1D`); fixed up per layer as PEFT does. */
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  /** Scaling α/√r instead of α/r. */
  use_rslora: boolean;
  /**
   * true: Kaiming-uniform A (a = √5), zero B; "gaussian": A ~ N(0, std 1/r), zero B; false: both random; or a
   * weight/data-driven init from ./init/ ("pissa", "pissa_niter_N", "olora", "eva", "corda", "lora_ga").
   */
  init_lora_weights: boolean | string;
  /** Module-name regex (matched as a dotted-name suffix) → rank. */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  [field: string]: unknown;
}

/**
 * Every field of PEFT's LoraConfig with its default. Fields for LoRA variants peftjs does not implement are
 * known (so configs carrying their defaults load and re-save unchanged) and rejected when set — see
 * {@link UNSUPPORTED}.
 */
export const LORA_DEFAULTS = {
  r: 8,
  target_modules: null,
  exclude_modules: null,
  lora_alpha: 8,
  lora_dropout: 0.0,
  fan_in_fan_out: false,
  bias: 'none',
  use_rslora: false,
  modules_to_save: null,
  init_lora_weights: true,
  layers_to_transform: null,
  layers_pattern: null,
  rank_pattern: {},
  alpha_pattern: {},
  megatron_config: null,
  megatron_core: 'megatron.core',
  trainable_token_indices: null,
  loftq_config: {},
  eva_config: null,
  corda_config: null,
  lora_ga_config: null,
  use_dora: false,
  alora_invocation_tokens: null,
  use_qalora: false,
  qalora_group_size: 16,
  layer_replication: null,
  lora_bias: false,
  target_parameters: null,
  ensure_weight_tying: false,
} as const;

const LORA_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  lora_alpha: is.num,
  lora_dropout: (v: unknown) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'must be a number in [0, 1)'),
  fan_in_fan_out: is.bool,
  bias: is.oneOf('none', 'all', 'lora_only'),
  use_rslora: is.bool,
  rank_pattern: is.numberMap,
  alpha_pattern: is.numberMap,
};

/** Fields whose non-default values select features peftjs does not implement (yet): value → why it is refused. */
const UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  use_dora: (v) => v === true,
  use_qalora: (v) => v === true,
  lora_bias: (v) => v === true,
  layer_replication: (v) => v != null,
  target_parameters: (v) => v != null && !(Array.isArray(v) && v.length === 0),
  trainable_token_indices: (v) => v != null,
  alora_invocation_tokens: (v) => v != null,
  megatron_config: (v) => v != null,
  ensure_weight_tying: (v) => v === true,
};

/** Parses and validates a LoRA config (from `adapter_config.json` or code); see {@link parseConfigFields}. */
export function parseLoraConfig(raw: Record<string, unknown>, where = 'LoraConfig'): LoraConfig {
  const c = parseConfigFields<LoraConfig>('LORA', raw, LORA_DEFAULTS, LORA_CHECKS, where);
  for (const [field, refused] of Object.entries(UNSUPPORTED))
    if (refused(c[field])) throw new Error(`${where}: ${field}=${JSON.stringify(c[field])} is not supported by peftjs`);
  parseInitFields(c, where);
  // PEFT's __post_init__ checks.
  if (typeof c.target_modules === 'string' && c.layers_to_transform !== null)
    throw new Error(`${where}: layers_to_transform cannot be used when target_modules is a string (regex)`);
  if (typeof c.target_modules === 'string' && c.layers_pattern !== null)
    throw new Error(`${where}: layers_pattern cannot be used when target_modules is a string (regex)`);
  if (c.layers_pattern && c.layers_to_transform === null)
    throw new Error(`${where}: when layers_pattern is specified, layers_to_transform must also be specified`);
  if (c.target_modules === null) throw new Error(`${where}: target_modules must be set (a list of module names, a regex, or "all-linear")`);
  return c;
}

/** The LoRA scaling factor for rank `r` and `alpha`. */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}
