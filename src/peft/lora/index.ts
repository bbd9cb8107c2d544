/** LoRA as a PEFT method: its registry entry (config parser, layer injection, state-dict prefix). */
import { Embedding, Linear, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { getPatternKey } from '../targets.js';
import { peftWarn } from '../warn.js';
import { parseLoraConfig, type LoraConfig } from './config.js';
import { LoraEmbedding, LoraLayer, LoraLinear, type LoraAdapterSpec } from './layer.js';

/** This module's rank / alpha after `rank_pattern` / `alpha_pattern`, and the rest of the adapter's settings. */
function adapterSpec(config: LoraConfig, moduleName: string): LoraAdapterSpec {
  const rKey = getPatternKey(Object.keys(config.rank_pattern), moduleName);
  const alphaKey = getPatternKey(Object.keys(config.alpha_pattern), moduleName);
  return {
    r: config.rank_pattern[rKey] ?? config.r,
    alpha: config.alpha_pattern[alphaKey] ?? config.lora_alpha,
    dropout: config.lora_dropout,
    useRslora: config.use_rslora,
    init: config.init_lora_weights,
    config,
  };
}

export const lora: PeftMethod<LoraConfig> = {
  peftType: 'LORA',
  prefix: 'lora_',
  supportsMerge: true,
  parseConfig: parseLoraConfig,

  inject(target: Module, adapterName: string, config: LoraConfig, moduleName: string): LoraLayer | null {
    const spec = adapterSpec(config, moduleName);
    if (target instanceof LoraLayer) {
      target.addAdapter(adapterName, spec);
      return target;
    }
    let layer: LoraLayer;
    if (target instanceof Linear) {
      // PEFT fixes a fan_in_fan_out that contradicts the layer type, with a warning, and keeps the fix in the config.
      if (config.fan_in_fan_out !== target.fanInFanOut) {
        peftWarn(
          target.fanInFanOut
            ? `fan_in_fan_out is false but ${moduleName} is a Conv1D layer (weight stored [in, out]); setting fan_in_fan_out to true`
            : `fan_in_fan_out is true but ${moduleName} is a Linear layer; setting fan_in_fan_out to false`,
        );
        config.fan_in_fan_out = target.fanInFanOut;
      }
      layer = new LoraLinear(target);
    } else if (target instanceof Embedding) layer = new LoraEmbedding(target);
    else return null;
    layer.addAdapter(adapterName, spec);
    return layer;
  },
};

export { parseLoraConfig, loraScaling, LORA_DEFAULTS, type LoraConfig } from './config.js';
export { LoraLayer, LoraLinear, LoraEmbedding, type LoraAdapterSpec } from './layer.js';
export { loraLinear, type LoraFactors } from './op.js';
export { preprocessCorda, type CordaConfig } from './init/corda.js';
export { preprocessLoraGa, type LoraGaConfig } from './init/loraga.js';
export { initializeEva, type EvaConfig, type EvaBatch, type InitializeEvaOptions } from './init/eva.js';
export { saveAsLora, type SaveAsLoraOptions } from './init/convert.js';
