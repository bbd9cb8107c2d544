/** Embedding LoRA adapter folders (HF PEFT files, trained separately) into one MeteoRA adapter. */
import type { Module } from '../../nn/index.js';
import { readAdapterFiles, KEY_PREFIX } from '../format.js';
import { PeftModel } from '../model.js';
import type { LoraConfig } from '../lora/config.js';
import { MoeLoraLinear, type GateInput } from '../moelora/layer.js';

export interface MeteoraOptions {
  /** Adapter name in the PeftModel (default "default"). */
  adapterName?: string;
  /** Expert names (default: the folders' last path segments). */
  names?: string[];
  topK?: number;
  routerAuxLossCoef?: number;
  gateSupervisionCoef?: number;
  /** What the gates read (default `token_prefix_mean`: the token and the causal mean of the tokens up to it). */
  gateInput?: GateInput;
}

/**
 * Wraps `model` with a MeteoRA adapter whose experts are the LoRAs in `dirs` (same rank and target modules; plain
 * LoRA, no DoRA / rank patterns), copied in and frozen; only the per-layer gates train. Expert i is `dirs[i]`.
 */
export function meteoraFromLoras<M extends Module>(model: M, dirs: readonly string[], opts: MeteoraOptions = {}): PeftModel<M> {
  if (dirs.length < 2) throw new Error(`meteoraFromLoras: needs at least 2 LoRA folders, got ${dirs.length}`);
  const files = dirs.map((d) => readAdapterFiles(d));
  const configs = files.map((f, i) => {
    if (f.config.peft_type !== 'LORA') throw new Error(`meteoraFromLoras: ${dirs[i]} is a ${f.config.peft_type} adapter, not LORA`);
    return f.config as LoraConfig;
  });
  const modulesOf = (i: number) =>
    [...files[i]!.tensors.keys()].filter((k) => k.endsWith('.lora_A.weight')).map((k) => k.slice(KEY_PREFIX.length, -'.lora_A.weight'.length)).sort();
  const modules = modulesOf(0);
  configs.forEach((c, i) => {
    if (c.r !== configs[0]!.r || Object.keys(c.rank_pattern ?? {}).length)
      throw new Error(`meteoraFromLoras: ${dirs[i]} has rank ${c.r} (or a rank_pattern); every expert needs rank ${configs[0]!.r}`);
    if (modulesOf(i).join() !== modules.join()) throw new Error(`meteoraFromLoras: ${dirs[i]} adapts other modules than ${dirs[0]}`);
    if ((c as { use_dora?: boolean }).use_dora) throw new Error(`meteoraFromLoras: ${dirs[i]} is a DoRA adapter`);
  });
  const name = opts.adapterName ?? 'default';
  const peft = new PeftModel(
    model,
    {
      peft_type: 'METEORA',
      task_type: configs[0]!.task_type,
      base_model_name_or_path: configs[0]!.base_model_name_or_path,
      r: configs[0]!.r,
      expert_scalings: configs.map((c) => (c.use_rslora ? c.lora_alpha / Math.sqrt(c.r) : c.lora_alpha / c.r)),
      adapter_names: opts.names ?? dirs.map((d) => d.replace(/\/+$/, '').split('/').pop()!),
      top_k: opts.topK ?? 1,
      router_aux_loss_coef: opts.routerAuxLossCoef ?? 0,
      gate_supervision_coef: opts.gateSupervisionCoef ?? 0,
      gate_input: opts.gateInput ?? 'token_prefix_mean',
      target_modules: modules,
    },
    name,
  );
  for (const path of modules) {
    const layer = model.getModule(path) as MoeLoraLinear;
    files.forEach((f, e) => {
      const { a, b } = layer.expert(name, e);
      for (const [t, suffix] of [
        [a, 'lora_A.weight'],
        [b, 'lora_B.weight'],
      ] as const) {
        const data = f.tensors.get(`${KEY_PREFIX}${path}.${suffix}`)!;
        if (data.dtype !== 'F32') throw new Error(`meteoraFromLoras: ${dirs[e]} stores ${path}.${suffix} as ${data.dtype}; F32 expected`);
        (t.data as Float32Array).set(data.data as Float32Array);
      }
    });
  }
  return peft;
}
