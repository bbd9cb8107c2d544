/**
 * Few-shot transfer with a trained Poly / MHR inventory (Caccia et al. 2023, §5):
 * - **MHR-z**: tune only the routing logits for a new task — the skills stay frozen ({@link tuneRouterOnly});
 *   give the new task a spare row of the routing matrix (train with `n_tasks` counting it).
 * - **MHR-μ**: drop the routing, average the skills, and fine-tune that single adapter. The heads route blocks of
 *   A's rows and B's columns separately, but the assembled A [in, r] and B [r, out] still form one rank-r product,
 *   so the average is a plain LoRA of rank r ({@link averageSkillsAsLora}), saved in the PEFT LoRA format
 *   (α = 1: LoRA's α/r equals Poly's 1/r).
 */
import { mean, noGrad, tidy } from '../../engine/index.js';
import type { PeftModel } from '../model.js';
import { peftMethod } from '../registry.js';
import { KEY_PREFIX } from '../format.js';
import type { TensorData } from '../../io/safetensors.js';
import type { PeftConfigBase } from '../config.js';
import { PolyLinear } from './layer.js';

/** Freezes the skill inventory of Poly adapter `name` (only `poly_router.module_logits` trains); returns the trainable count. */
export function tuneRouterOnly(peft: PeftModel, name: string): number {
  let n = 0;
  for (const [, m] of peft.model.namedModules())
    if (m instanceof PolyLinear && m.adapterNames().includes(name))
      for (const [k, t] of m.adapterTensors(name)) {
        t.requiresGrad = k === 'poly_router.module_logits';
        if (t.requiresGrad) n += t.size;
      }
  return n;
}

/** MHR-μ: Poly adapter `name` with its skills averaged, as a PEFT LoRA config and state dict (write with `writeAdapterFiles`). */
export function averageSkillsAsLora(peft: PeftModel, name: string): { config: PeftConfigBase; tensors: [string, TensorData][] } {
  const tensors: [string, TensorData][] = [];
  const targets: string[] = [];
  let rank: number | null = null;
  for (const [path, m] of peft.model.namedModules()) {
    if (!(m instanceof PolyLinear) || !m.adapterNames().includes(name)) continue;
    const s = m.spec(name);
    rank = s.r;
    const { inFeatures: inF, outFeatures: outF } = m.base;
    const [a, b] = noGrad(() =>
      tidy(() => {
        const get = (k: string) => m.adapterTensors(name).find(([key]) => key === k)![1];
        return [mean(get('poly_lora_A'), 1).toTyped(), mean(get('poly_lora_B'), 1).toTyped()] as Float32Array[]; // [q, in/q, r], [q, r, out/q]
      }),
    );
    // lora_A [r, in]: column q·in/q + i is A_avg[q, i, :]; lora_B [out, r]: row q·out/q + o is B_avg[q, :, o].
    const loraA = new Float32Array(s.r * inF);
    const loraB = new Float32Array(outF * s.r);
    const di = inF / s.nSplits;
    const dout = outF / s.nSplits;
    for (let q = 0; q < s.nSplits; q++)
      for (let k = 0; k < s.r; k++) {
        for (let i = 0; i < di; i++) loraA[k * inF + q * di + i] = a![(q * di + i) * s.r + k]!;
        for (let o = 0; o < dout; o++) loraB[(q * dout + o) * s.r + k] = b![(q * s.r + k) * dout + o]!;
      }
    tensors.push([`${KEY_PREFIX}${path}.lora_A.weight`, { dtype: 'F32', shape: [s.r, inF], data: loraA }]);
    tensors.push([`${KEY_PREFIX}${path}.lora_B.weight`, { dtype: 'F32', shape: [outF, s.r], data: loraB }]);
    targets.push(path);
  }
  if (rank === null) throw new Error(`averageSkillsAsLora: no POLY adapter '${name}' in the model`);
  const poly = peft.peftConfig.get(name)!;
  const config = peftMethod('LORA').parseConfig({
    peft_type: 'LORA',
    task_type: poly.task_type,
    base_model_name_or_path: poly.base_model_name_or_path,
    r: rank,
    lora_alpha: 1,
    target_modules: targets,
  });
  return { config, tensors };
}

