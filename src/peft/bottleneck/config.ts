/**
 * `BottleneckConfig` (not in HF PEFT): Houlsby bottleneck adapters and Compacter's PHM form, with AdapterHub's field
 * names (`reduction_factor`, `non_linearity`, `init_weights`, `phm_layer`, `phm_dim`, `phm_rank`,
 * `factorized_phm_W`, `shared_phm_rule`, `phm_init_range`) in a PEFT-style config.
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';

export type NonLinearity = 'relu' | 'gelu' | 'swish' | 'silu' | 'tanh';

export interface BottleneckConfig extends PeftConfigBase {
  peft_type: 'BOTTLENECK';
  /** Bottleneck width = the wrapped layer's output width / reduction_factor (at least 1). */
  reduction_factor: number;
  non_linearity: NonLinearity;
  /** "mam_adapter": Kaiming-uniform down, zero up (the adapter starts as the identity); "bert": both N(0, 0.02²). */
  init_weights: 'mam_adapter' | 'bert';
  /** Compacter: both projections are parameterised hypercomplex multiplications (sums of Kronecker products). */
  phm_layer: boolean;
  /** n: the number of Kronecker terms and the rule size (in and out widths must be multiples of n). */
  phm_dim: number;
  /** Rank of each factorised term B_i = W_left_i · W_right_i. */
  phm_rank: number;
  factorized_phm_W: boolean;
  /** AdapterHub shares the rules A_i across layers by default; peftjs keeps them per layer (false only). */
  shared_phm_rule: boolean;
  /** Std of the normal init of the PHM factors. */
  phm_init_range: number;
}

/** Houlsby placement: after the attention output projection and after the FFN (Llama names). */
export const BOTTLENECK_DEFAULTS = {
  target_modules: ['o_proj', 'down_proj'],
  exclude_modules: null,
  layers_to_transform: null,
  layers_pattern: null,
  modules_to_save: null,
  reduction_factor: 16,
  non_linearity: 'swish',
  init_weights: 'mam_adapter',
  phm_layer: false,
  phm_dim: 4,
  phm_rank: 1,
  factorized_phm_W: true,
  shared_phm_rule: false,
  phm_init_range: 0.0001,
} as const;

const CHECKS = {
  ...BASE_CHECKS,
  reduction_factor: (v: unknown) => (typeof v === 'number' && v > 0 ? null : 'must be a positive number'),
  non_linearity: is.oneOf('relu', 'gelu', 'swish', 'silu', 'tanh'),
  init_weights: is.oneOf('mam_adapter', 'bert'),
  phm_layer: is.bool,
  phm_dim: is.int(1),
  phm_rank: is.int(1),
  factorized_phm_W: is.bool,
  shared_phm_rule: is.bool,
  phm_init_range: is.num,
};

export function parseBottleneckConfig(raw: Record<string, unknown>, where = 'BottleneckConfig'): BottleneckConfig {
  const c = parseConfigFields<BottleneckConfig>('BOTTLENECK', raw, BOTTLENECK_DEFAULTS, CHECKS, where);
  if (c.shared_phm_rule) throw new Error(`${where}: shared_phm_rule=true is not supported by peftjs (PHM rules are per layer)`);
  if (c.target_modules === null) throw new Error(`${where}: target_modules must be set (Houlsby: ["o_proj", "down_proj"])`);
  return c;
}
