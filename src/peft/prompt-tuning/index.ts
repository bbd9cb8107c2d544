/** Prompt tuning as a PEFT method (`peft_type` "PROMPT_TUNING"): trainable virtual tokens in front of the input. */
import { castTo, contiguousCopy, embedding, globalGenerator, noGrad, randn, tensor, type Tensor } from '../../engine/index.js';
import { loadTokenizer } from '../../io/tokenizer.js';
import { Embedding, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { asCausalLM, inputEmbeddingPath, installPrefixHook } from '../common/virtual.js';
import { parsePromptTuningConfig, type PromptTuningConfig } from './config.js';
import { PromptTuningEmbedding } from './layer.js';

/** Rows `ids` of the embedding table as a fresh f32 [n, D] tensor. */
function rowsOf(table: Tensor, ids: number[]): Tensor {
  return noGrad(() => {
    const f = table.dtype === 'f32' ? table : castTo(table, 'f32');
    return contiguousCopy(embedding(f, tensor(ids, [ids.length], 'i32')));
  });
}

/** The initial table [P, D] per `prompt_tuning_init` (PEFT's PromptEmbedding). */
function initialTable(c: PromptTuningConfig, table: Tensor): Tensor {
  const P = c.num_virtual_tokens;
  const [vocab, D] = table.shape as [number, number];
  if (c.inference_mode || c.prompt_tuning_init === 'RANDOM') return randn([P, D]);
  if (c.prompt_tuning_init === 'SAMPLE_VOCAB') return rowsOf(table, Array.from({ length: P }, () => Math.floor(globalGenerator.uniform() * vocab)));
  const ids = loadTokenizer(c.tokenizer_name_or_path!).encode(c.prompt_tuning_init_text!);
  if (ids.length === 0) throw new Error(`PROMPT_TUNING: prompt_tuning_init_text ${JSON.stringify(c.prompt_tuning_init_text)} encodes to no tokens`);
  // Cut, or repeat until P tokens (PEFT: ceil(P / n) copies, then cut).
  return rowsOf(table, Array.from({ length: P }, (_, i) => ids[i % ids.length]!));
}

export const promptTuning: PeftMethod<PromptTuningConfig> = {
  peftType: 'PROMPT_TUNING',
  prefix: 'prompt_',
  supportsMerge: false,
  bareKeys: true,
  parseConfig: parsePromptTuningConfig,

  targets: (model: Module) => [inputEmbeddingPath(model, 'PROMPT_TUNING')],

  inject(target: Module, adapterName: string, c: PromptTuningConfig, moduleName: string, model: Module): PromptTuningEmbedding | null {
    const lm = asCausalLM(model, 'PROMPT_TUNING');
    if (!(target instanceof PromptTuningEmbedding || target instanceof Embedding)) return null;
    const cfg = lm.config;
    c.token_dim ??= cfg.hiddenSize;
    c.num_layers ??= cfg.numLayers;
    c.num_attention_heads ??= cfg.numHeads;
    c.num_transformer_submodules ??= 1;
    if (c.token_dim !== cfg.hiddenSize) throw new Error(`PROMPT_TUNING: token_dim ${c.token_dim} differs from the model's hidden size ${cfg.hiddenSize}`);
    const layer = target instanceof PromptTuningEmbedding ? target : new PromptTuningEmbedding(target);
    layer.addAdapter(adapterName, initialTable(c, layer.weight));
    installPrefixHook(lm, moduleName);
    return layer;
  },
};

export { parsePromptTuningConfig, PROMPT_TUNING_DEFAULTS, type PromptTuningConfig } from './config.js';
export { PromptTuningEmbedding } from './layer.js';
