/** Multitask prompt tuning as a PEFT method (`peft_type` "MULTITASK_PROMPT_TUNING"). */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fromStorage, mean, noGrad, randn, type Tensor } from '../../engine/index.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { Embedding, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { asCausalLM, inputEmbeddingPath, installPrefixHook } from '../common/virtual.js';
import { parseMptConfig, type MultitaskPromptTuningConfig } from './config.js';
import { MultitaskPromptEmbedding } from './layer.js';

/** The source adapter's tensors for the *_SOURCE_* inits (f32). */
function sourceTensors(path: string): Map<string, Tensor> {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'adapter_model.safetensors') : path;
  const f = SafetensorsFile.open(file);
  try {
    const out = new Map<string, Tensor>();
    for (const k of ['prompt_embeddings', 'prefix_task_cols', 'prefix_task_rows']) {
      if (!f.names().includes(k)) throw new Error(`MULTITASK_PROMPT_TUNING: source ${file} has no tensor ${k}`);
      const info = f.info(k);
      if (info.dtype !== 'F32') throw new Error(`MULTITASK_PROMPT_TUNING: source tensor ${k} is ${info.dtype}; F32 expected`);
      out.set(k, fromStorage(f.read(k) as Float32Array, info.shape, 'f32'));
    }
    return out;
  } finally {
    f.close();
  }
}

/** `t` [n, …] with row `pick` (or the mean over rows) repeated `count` times. */
function taskRows(t: Tensor, count: number, pick: number | 'mean'): Tensor {
  const [n, ...rest] = t.shape as number[];
  const size = rest.reduce((a, b) => a * b, 1);
  if (pick !== 'mean' && pick >= n!) throw new Error(`MULTITASK_PROMPT_TUNING: prompt_tuning_init_task ${pick} but the source has ${n} tasks`);
  const row = pick === 'mean' ? (noGrad(() => mean(t, 0)).toTyped() as Float32Array) : (t.toTyped() as Float32Array).subarray(pick * size, (pick + 1) * size);
  const out = new Float32Array(count * size);
  for (let i = 0; i < count; i++) out.set(row, i * size);
  return fromStorage(out, [count, ...rest], 'f32');
}

export const mpt: PeftMethod<MultitaskPromptTuningConfig> = {
  peftType: 'MULTITASK_PROMPT_TUNING',
  prefix: 'prompt_',
  supportsMerge: false,
  bareKeys: true,
  parseConfig: parseMptConfig,
  taskCountField: 'num_tasks',
  targets: (model: Module) => [inputEmbeddingPath(model, 'MULTITASK_PROMPT_TUNING')],

  inject(target, adapterName, c, moduleName, model) {
    const lm = asCausalLM(model, 'MULTITASK_PROMPT_TUNING');
    if (!(target instanceof MultitaskPromptEmbedding || target instanceof Embedding)) return null;
    const cfg = lm.config;
    c.token_dim ??= cfg.hiddenSize;
    c.num_layers ??= cfg.numLayers;
    c.num_attention_heads ??= cfg.numHeads;
    c.num_transformer_submodules ??= 1;
    if (c.token_dim !== cfg.hiddenSize) throw new Error(`MULTITASK_PROMPT_TUNING: token_dim ${c.token_dim} differs from the model's hidden size ${cfg.hiddenSize}`);
    const P = c.num_virtual_tokens;
    const D = c.token_dim;
    let prompt: Tensor = randn([P, D]);
    let cols: Tensor = randn([c.num_tasks, P, c.num_ranks], 0.02);
    let rows: Tensor = randn([c.num_tasks, c.num_ranks, D], 0.02);
    if (c.prompt_tuning_init !== 'RANDOM' && !c.inference_mode) {
      const src = sourceTensors(c.prompt_tuning_init_state_dict_path!);
      prompt = src.get('prompt_embeddings')!;
      if (c.prompt_tuning_init !== 'ONLY_SOURCE_SHARED') {
        const pick = c.prompt_tuning_init === 'AVERAGE_SOURCE_TASKS' ? 'mean' : c.prompt_tuning_init_task;
        cols = taskRows(src.get('prefix_task_cols')!, c.num_tasks, pick);
        rows = taskRows(src.get('prefix_task_rows')!, c.num_tasks, pick);
      }
      const want = [[P, D], [c.num_tasks, P, c.num_ranks], [c.num_tasks, c.num_ranks, D]];
      [prompt, cols, rows].forEach((t, i) => {
        if (t.shape.join() !== want[i]!.join()) throw new Error(`MULTITASK_PROMPT_TUNING: source tensor ${t.describe()} does not fit [${want[i]!.join(', ')}] (num_virtual_tokens, num_ranks, token_dim)`);
      });
    }
    const layer = target instanceof MultitaskPromptEmbedding ? target : new MultitaskPromptEmbedding(target);
    layer.addAdapter(adapterName, prompt, cols, rows);
    installPrefixHook(lm, moduleName);
    return layer;
  },
};

export { parseMptConfig, MPT_DEFAULTS, type MultitaskPromptTuningConfig } from './config.js';
export { MultitaskPromptEmbedding } from './layer.js';
