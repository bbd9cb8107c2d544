/**
 * Saving a residual-init adapter (PiSSA, OLoRA, CorDA, LoRA-GA) as a plain LoRA on the ORIGINAL base — PEFT's
 * `save_pretrained(..., path_initial_model_for_weight_conversion=DIR)` (`LoraModel.subtract_mutated_init`). With the
 * base W = W_res + s·B₀·A₀ and the trained W_res + s·B·A, the update is ΔW = s·(B·A − B₀·A₀) = s·[B | −B₀]·[A ; A₀]:
 * a rank-2r LoRA with A' = cat(A, A₀) (rows) and B' = cat(B, −B₀) (columns), saved with r and alpha doubled (alpha
 * ×√2 under rsLoRA, so s is unchanged) and `init_lora_weights: true`.
 */
import { join } from 'node:path';
import type { PeftModel } from '../../model.js';
import { ADAPTER_CONFIG_NAME, adapterStateDict, readAdapterFiles, tensorData, writeAdapterFiles } from '../../format.js';
import { writeFileAtomic } from '../../../io/safetensors.js';
import { configToJson } from '../../config.js';
import { writeSync } from 'node:fs';
import type { TensorData } from '../../../io/safetensors.js';
import type { LoraConfig } from '../config.js';

export interface SaveAsLoraOptions {
  /** The adapter as saved right after initialisation, before any training (`peft.save(dir)` then). */
  pathInitialModelForWeightConversion: string;
  /** Adapters to save (default: all). */
  adapters?: readonly string[];
}

/** Saves adapters converted to plain LoRA (see the file comment); `initial` for a non-default adapter is `DIR/<name>`. */
export function saveAsLora(peft: PeftModel, dir: string, opts: SaveAsLoraOptions): void {
  for (const name of opts.adapters ?? [...peft.peftConfig.keys()]) {
    const config = peft.peftConfig.get(name) as LoraConfig | undefined;
    if (!config || config.peft_type !== 'LORA') throw new Error(`saveAsLora: '${name}' is not a LoRA adapter`);
    const hasPatterns = Object.keys(config.rank_pattern).length > 0 || Object.keys(config.alpha_pattern).length > 0;
    if (config.use_rslora && hasPatterns) throw new Error('saveAsLora: conversion with use_rslora and rank_pattern / alpha_pattern is not supported (as in PEFT)');
    const initialDir = name === 'default' ? opts.pathInitialModelForWeightConversion : join(opts.pathInitialModelForWeightConversion, name);
    const initial = readAdapterFiles(initialDir);
    const plain = { ...config, init_lora_weights: true, inference_mode: true };
    // PEFT rewrites the initial adapter's config with init_lora_weights=True, so loading it needs no re-init.
    const text = new TextEncoder().encode(configToJson(plain));
    writeFileAtomic(join(initialDir, ADAPTER_CONFIG_NAME), (fd) => void writeSync(fd, text));
    const tensors: [string, TensorData][] = [];
    for (const [key, t] of adapterStateDict(peft, name)) {
      const now = tensorData(t, 'F32');
      const isA = /\.lora_A\.weight$/.test(key);
      const isB = /\.lora_B\.weight$/.test(key);
      if (!isA && !isB) {
        tensors.push([key, now]);
        continue;
      }
      const init = initial.tensors.get(key);
      if (!init) throw new Error(`saveAsLora: ${initialDir} lacks ${key}`);
      const i32 = toF32(init, key);
      const [rows, cols] = now.shape as [number, number];
      const cur = now.data as Float32Array;
      if (isA) {
        // [r, in] rows of A, then rows of A₀.
        tensors.push([key, { dtype: 'F32', shape: [2 * rows, cols], data: Float32Array.from([...cur, ...i32]) }]);
      } else {
        // [out, r] columns of B, then columns of −B₀.
        const out = new Float32Array(rows * 2 * cols);
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) {
            out[i * 2 * cols + j] = cur[i * cols + j]!;
            out[i * 2 * cols + cols + j] = -i32[i * cols + j]!;
          }
        tensors.push([key, { dtype: 'F32', shape: [rows, 2 * cols], data: out }]);
      }
    }
    const doubled = (p: Record<string, number>) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, 2 * v]));
    const converted = {
      ...plain,
      r: 2 * config.r,
      lora_alpha: config.use_rslora ? config.lora_alpha * Math.SQRT2 : 2 * config.lora_alpha,
      rank_pattern: doubled(config.rank_pattern),
      alpha_pattern: doubled(config.alpha_pattern),
    };
    writeAdapterFiles(name === 'default' ? dir : join(dir, name), converted, tensors);
  }
}

function toF32(d: TensorData, key: string): Float32Array {
  if (d.dtype === 'F32') return d.data as Float32Array;
  if (d.dtype === 'BF16') {
    const bits = d.data as Uint16Array;
    const out = new Float32Array(bits.length);
    const words = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) words[i] = bits[i]! << 16;
    return out;
  }
  throw new Error(`saveAsLora: ${key} is ${d.dtype} (F32 or BF16 expected)`);
}
