/**
 * LoRA initialisations beyond random (PEFT `init_lora_weights` strings): each lives in its own file and turns the
 * base weight (PiSSA, OLoRA) or data gathered beforehand (CorDA, LoRA-GA; EVA runs after creation, see eva.ts)
 * into A [r, in] and B [out, r]. Those that make B·A ≠ 0 set `residual`, and the layer then keeps W − s·B·A as its
 * base weight so the model's output is unchanged at init.
 */
import { castTo, contiguousCopy } from '../../../engine/index.js';
import type { Linear } from '../../../nn/index.js';
import { getPatternKey } from '../../targets.js';
import type { LoraConfig } from '../config.js';
import { pissaInit } from './pissa.js';
import { oloraInit } from './olora.js';
import { cordaInit, parseCordaConfig } from './corda.js';
import { loraGaInit, parseLoraGaConfig } from './loraga.js';
import { parseEvaConfig } from './eva.js';

/** What an initialisation reads: the base weight as [out, in] f32, the rank and the scaling s. */
export interface LinearInitInput {
  base: Linear;
  /** The base weight as a fresh row-major [out, in] f32 array. */
  w: Float32Array;
  out: number;
  inF: number;
  r: number;
  scaling: number;
  /** The `init_lora_weights` string. */
  init: string;
  config: LoraConfig | undefined;
}

/** A [r, in] and B [out, r]; `residual`: the base must keep W − s·B·A. */
export interface InitFactors {
  a: Float32Array;
  b: Float32Array;
  residual: boolean;
}

const PISSA = /^pissa(_niter_(\d+))?$/;

/** Whether `v` is an `init_lora_weights` value peftjs implements. */
export function isSupportedInit(v: unknown): boolean {
  return v === true || v === false || (typeof v === 'string' && (v.toLowerCase() === 'gaussian' || PISSA.test(v) || ['olora', 'eva', 'corda', 'lora_ga'].includes(v)));
}

/** `pissa_niter_N` → N; plain `pissa` → null (exact SVD). */
export function pissaNiter(init: string): number | null {
  const m = PISSA.exec(init);
  return m?.[2] === undefined ? null : Number(m[2]);
}

/**
 * Validates `init_lora_weights` and fills the sub-config its init reads (`eva_config`, `corda_config`,
 * `lora_ga_config`) with PEFT's defaults when unset, as PEFT's `LoraConfig.__post_init__` does.
 */
export function parseInitFields(c: LoraConfig, where: string): void {
  const init = c.init_lora_weights as unknown;
  if (!isSupportedInit(init))
    throw new Error(
      `${where}: init_lora_weights=${JSON.stringify(init)} is not supported by peftjs (true, false, "gaussian", "pissa", "pissa_niter_N", "olora", "eva", "corda" or "lora_ga")`,
    );
  if (init === 'eva') c.eva_config = parseEvaConfig(c.eva_config ?? {}, `${where}: eva_config`);
  if (init === 'corda') c.corda_config = parseCordaConfig(c.corda_config ?? {}, `${where}: corda_config`);
  if (init === 'lora_ga') c.lora_ga_config = parseLoraGaConfig(c.lora_ga_config ?? {}, `${where}: lora_ga_config`);
}

/** The rank `config` gives module `name` (after `rank_pattern`). */
export function layerRank(config: Pick<LoraConfig, 'r' | 'rank_pattern'>, name: string): number {
  return config.rank_pattern[getPatternKey(Object.keys(config.rank_pattern), name)] ?? config.r;
}

/** `linear`'s weight as a fresh [out, in] f32 array. */
export function weightOutIn32(linear: Linear): Float32Array {
  const view = linear.weightOutIn();
  const c = view.dtype === 'f32' ? contiguousCopy(view) : castTo(view, 'f32');
  const out = (c.data as Float32Array).slice(0, c.size);
  c.dispose();
  if (view !== linear.weight) view.dispose();
  return out;
}

/**
 * The factors of a weight- or data-based init for a LoRA Linear, or null for the random ones (true, false,
 * "gaussian") and for "eva" (B = 0 here; A is set by `initializeEva`).
 */
export function linearInitFactors(base: Linear, init: LoraConfig['init_lora_weights'], r: number, scaling: number, config?: LoraConfig): InitFactors | null {
  if (typeof init !== 'string' || init.toLowerCase() === 'gaussian' || init === 'eva') return null;
  const input: LinearInitInput = { base, w: weightOutIn32(base), out: base.outFeatures, inF: base.inFeatures, r, scaling, init, config };
  if (r > Math.min(input.out, input.inF))
    throw new Error(`LoRA ${init} init: r=${r} exceeds min(out, in) = ${Math.min(input.out, input.inF)} of a ${base.weight.describe()} weight`);
  if (PISSA.test(init)) return pissaInit(input);
  if (init === 'olora') return oloraInit(input);
  if (init === 'corda') return cordaInit(input);
  if (init === 'lora_ga') return loraGaInit(input);
  throw new Error(`LoRA: init_lora_weights=${JSON.stringify(init)} is not supported by peftjs`);
}
