/**
 * BitFit as a PEFT method (`peft_type` "BITFIT", not in HF PEFT): the targeted modules that have a bias (all of
 * them when `target_modules` is null) train a copy of it. Models without biases (Llama, Mistral) are refused.
 */
import type { Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { findTargetModules } from '../targets.js';
import { isTunerLayer } from '../tuner.js';
import { parseBitFitConfig, type BitFitConfig } from './config.js';
import { BitFitLayer } from './layer.js';

/** Whether `m` has a bias of its own (through an existing BitFit wrapper too). */
function hasBias(m: Module): boolean {
  const own = m instanceof BitFitLayer ? m.base : m;
  return !isTunerLayer(own) && own.namedParameters().some(([k]) => k === 'bias') && typeof (own as { forward?: unknown }).forward === 'function';
}

export const bitfit: PeftMethod<BitFitConfig> = {
  peftType: 'BITFIT',
  prefix: 'bitfit_',
  supportsMerge: false,
  parseConfig: parseBitFitConfig,

  targets(model: Module, config: BitFitConfig): string[] {
    const candidates = config.target_modules === null ? model.namedModules().map(([n]) => n).filter(Boolean) : findTargetModules(model, config);
    const found = candidates.filter((n) => !n.includes('.base_layer') && hasBias(model.getModule(n)));
    if (found.length === 0)
      throw new Error(
        `BITFIT: none of the ${config.target_modules === null ? "model's modules" : `modules matched by target_modules ${JSON.stringify(config.target_modules)}`} has a bias, and BitFit trains only biases. ` +
          'Llama/Mistral checkpoints have no biases (use LN_TUNING or IA3 there); BitFit fits GPT-2, BERT or Qwen2 (q/k/v_proj biases).',
      );
    return found;
  },

  inject(target: Module, adapterName: string): BitFitLayer {
    const layer = target instanceof BitFitLayer ? target : new BitFitLayer(target as BitFitLayer['base']);
    layer.addAdapter(adapterName);
    return layer;
  },
};

export { parseBitFitConfig, BITFIT_DEFAULTS, type BitFitConfig } from './config.js';
export { BitFitLayer } from './layer.js';
