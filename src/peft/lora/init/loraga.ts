/**
 * LoRA-GA (Wang et al. 2024, "LoRA-GA: Low-Rank Adaptation with Gradient Approximation", §3.2–3.3): with the SVD
 * of one batch's full-weight gradient G = ∂L/∂W = U·S·Vᵀ, A and B take distinct slices of the top-2r singular
 * vectors so that the first LoRA step, ΔW ∝ −(B·Bᵀ·G + G·Aᵀ·A), is the best rank-2r approximation of −G's
 * direction; the base keeps W − s·B·A so the output is unchanged at init. Follows PEFT's `lora_ga` init
 * (`init_lora_weights: "lora_ga"` + `lora_ga_config`): run {@link preprocessLoraGa} on the plain model first.
 */
import { globalGenerator } from '../../../engine/index.js';
import type { Linear, Module } from '../../../nn/index.js';
import { is, type ConfigCheck } from '../../config.js';
import { rows32, scaleCols32 } from '../../common/linalg.js';
import { randomizedSvd } from '../../common/rsvd.js';
import { targetLinears, weightGradients } from '../../common/capture.js';
import { peftWarn } from '../../warn.js';
import { parseLoraConfig } from '../config.js';
import { parseSubConfig } from './corda.js';
import type { InitFactors, LinearInitInput } from './index.js';

/** PEFT's `LoraGAConfig`. */
export interface LoraGaConfig {
  /** Which top-2r gradient components go to A and which to B: "ArB2r" (A: 0..r, B: r..2r; PEFT's default), "A2rBr", "ArBr" (alternating), "random". */
  direction: 'ArBr' | 'A2rBr' | 'ArB2r' | 'random';
  /** "stable": B·(out^¼/√γ) (the paper's scale-stable init); "weight_svd": B·σ₁(W)/σ₁(B); "gd_scale": A, B / s; "unit": none. */
  scale: 'stable' | 'weight_svd' | 'gd_scale' | 'unit';
  stable_gamma: number;
}

const LORA_GA_DEFAULTS: LoraGaConfig = { direction: 'ArB2r', scale: 'stable', stable_gamma: 16 };
const LORA_GA_CHECKS: Record<keyof LoraGaConfig, ConfigCheck> = {
  direction: is.oneOf('ArBr', 'A2rBr', 'ArB2r', 'random'),
  scale: is.oneOf('stable', 'weight_svd', 'gd_scale', 'unit'),
  stable_gamma: (v) => (typeof v === 'number' && v > 0 ? null : 'must be a positive number'),
};

export function parseLoraGaConfig(raw: unknown, where: string): LoraGaConfig {
  return parseSubConfig(raw, LORA_GA_DEFAULTS, LORA_GA_CHECKS, where);
}

/** Per base layer, set by {@link preprocessLoraGa} and consumed by the init. */
const GRADS = new WeakMap<Linear, Float32Array>();

/**
 * PEFT `preprocess_loraga`: runs `trainStep` (forward + `backward()` of the loss on a batch or a few) with only
 * the target weights requiring grad, and keeps each one's averaged gradient for the init.
 */
export function preprocessLoraGa(model: Module, rawConfig: Record<string, unknown>, trainStep: () => void): void {
  const config = parseLoraConfig({ ...rawConfig, init_lora_weights: 'lora_ga' }, 'preprocessLoraGa');
  const linears = targetLinears(model, config).map(([, l]) => l);
  weightGradients(model, linears, trainStep).forEach((g, i) => GRADS.set(linears[i]!, g));
}

export function loraGaInit({ base, w, out, inF, r, scaling, config }: LinearInitInput): InitFactors | null {
  const g = GRADS.get(base);
  if (!g) {
    // PEFT falls back to the default init (a saved adapter's tensors replace it on load).
    if (!config?.inference_mode) peftWarn('LoRA-GA: no gradient for a target layer (run preprocessLoraGa first); using the default init there');
    return null;
  }
  GRADS.delete(base);
  if (2 * r > Math.min(out, inF)) throw new Error(`LoRA-GA: 2r=${2 * r} exceeds min(out, in) = ${Math.min(out, inF)}`);
  const { direction, scale, stable_gamma } = (config?.lora_ga_config as LoraGaConfig | null) ?? LORA_GA_DEFAULTS;
  const f = randomizedSvd(g, out, inF, 2 * r, { oversample: Math.min(4 * r, out, inF) - 2 * r, niter: 4 });
  const k = f.k;
  const pick: Record<LoraGaConfig['direction'], () => [number[], number[]]> = {
    ArBr: () => [range(r).map((i) => 2 * i + 1), range(r).map((i) => 2 * i)],
    A2rBr: () => [range(r).map((i) => r + i), range(r)],
    ArB2r: () => [range(r), range(r).map((i) => r + i)],
    random: () => {
      const p = range(2 * r);
      for (let i = p.length - 1; i > 0; i--) {
        const j = globalGenerator.nextU32() % (i + 1);
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      return [p.slice(0, r), p.slice(0, r)];
    },
  };
  const [ia, ib] = pick[direction]();
  const a = new Float32Array(r * inF);
  ia.forEach((src, i) => a.set(rows32(f.vt, inF, src, src + 1), i * inF));
  const b = new Float32Array(out * r);
  for (let row = 0; row < out; row++) ib.forEach((src, j) => (b[row * r + j] = f.u[row * k + src]! * f.s[src]!));
  let sa = 1;
  let sb = 1;
  if (scale === 'stable') sb = out ** 0.25 / Math.sqrt(stable_gamma);
  else if (scale === 'weight_svd') {
    const top = randomizedSvd(w, out, inF, 1, { niter: 4 }).s[0]!;
    const sB = f.s[ib[0]!]!;
    if (sB > 0) sb = top / sB;
  } else if (scale === 'gd_scale') sa = sb = 1 / scaling;
  if (sa !== 1) for (let i = 0; i < a.length; i++) a[i]! *= sa;
  scaleCols32(b, out, r, new Array<number>(r).fill(sb));
  return { a, b, residual: true };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
