/** Prefix tuning as a PEFT method (`peft_type` "PREFIX_TUNING"): learned per-layer key / value prefixes. */
import { Embedding, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { asCausalLM, inputEmbeddingPath, installPrefixHook } from '../common/virtual.js';
import { parsePrefixTuningConfig, type PrefixTuningConfig } from './config.js';
import { PrefixTuningEncoder } from './layer.js';

export const prefixTuning: PeftMethod<PrefixTuningConfig> = {
  peftType: 'PREFIX_TUNING',
  prefix: 'prompt_',
  supportsMerge: false,
  bareKeys: true,
  parseConfig: parsePrefixTuningConfig,

  targets: (model: Module) => [inputEmbeddingPath(model, 'PREFIX_TUNING')],

  inject(target: Module, adapterName: string, c: PrefixTuningConfig, moduleName: string, model: Module): PrefixTuningEncoder | null {
    const lm = asCausalLM(model, 'PREFIX_TUNING');
    if (!(target instanceof PrefixTuningEncoder || target instanceof Embedding)) return null;
    const { numLayers, numKvHeads, headDim } = lm.config;
    // PEFT (_prepare_prompt_learning_config, grouped-query attention): token_dim = head_dim · KV heads.
    c.num_layers ??= numLayers;
    c.token_dim ??= headDim * numKvHeads;
    c.num_attention_heads ??= numKvHeads;
    c.num_transformer_submodules ??= 1;
    c.encoder_hidden_size ??= c.token_dim;
    if (c.num_layers !== numLayers || c.token_dim !== headDim * numKvHeads)
      throw new Error(`PREFIX_TUNING: the config's num_layers ${c.num_layers} / token_dim ${c.token_dim} do not fit the model (${numLayers} layers, ${numKvHeads} KV heads × ${headDim})`);
    const layer = target instanceof PrefixTuningEncoder ? target : new PrefixTuningEncoder(target);
    layer.addAdapter(adapterName, {
      tokens: c.num_virtual_tokens,
      layers: numLayers,
      kvHeads: numKvHeads,
      headDim,
      // PEFT builds the MLP only for training; a loaded (inference) adapter is the plain saved table.
      projection: c.prefix_projection && !c.inference_mode ? c.encoder_hidden_size : null,
      zeroInit: c.init_weights === 'zero',
    });
    installPrefixHook(lm, moduleName);
    return layer;
  },
};

export { parsePrefixTuningConfig, PREFIX_TUNING_DEFAULTS, type PrefixTuningConfig } from './config.js';
export { PrefixTuningEncoder } from './layer.js';
