/**
 * DoRA's config is PEFT's `LoraConfig` with `use_dora: true` (PEFT has no separate DoRA type: its adapters say
 * `peft_type: "LORA"`). peftjs registers DoRA as its own method, `peft_type` "DORA", with LoRA's fields.
 */
import type { PeftConfigBase } from '../config.js';
import { parseLoraConfig, type LoraConfig } from '../lora/config.js';

/** LoRA's fields (see {@link LoraConfig}) under `peft_type` "DORA". */
export interface DoraConfig extends PeftConfigBase {
  peft_type: 'DORA';
  use_dora: true;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  fan_in_fan_out: boolean;
  bias: LoraConfig['bias'];
  use_rslora: boolean;
  init_lora_weights: LoraConfig['init_lora_weights'];
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  [field: string]: unknown;
}

/** Parses a DoRA config: LoRA's fields and checks, `use_dora` forced true. */
export function parseDoraConfig(raw: Record<string, unknown>, where = 'DoraConfig'): DoraConfig {
  if (raw.use_dora === false) throw new Error(`${where}: use_dora is false; a DoRA adapter needs use_dora true`);
  if (raw.init_lora_weights !== undefined && typeof raw.init_lora_weights === 'string' && raw.init_lora_weights.toLowerCase() !== 'gaussian')
    throw new Error(`${where}: init_lora_weights=${JSON.stringify(raw.init_lora_weights)} is not supported with DoRA by peftjs`);
  const c = parseLoraConfig({ ...raw, peft_type: 'LORA', use_dora: false }, where);
  return { ...c, peft_type: 'DORA', use_dora: true } as unknown as DoraConfig;
}
