/**
 * CorDA (Yang et al. 2024, "Context-Oriented Decomposition Adaptation", §3.2): per target layer, C = the
 * covariance of its inputs over a few samples; SVD of W·C = U·S·V̂ᵀ, and with Vᵀ = V̂ᵀ·C⁻¹, W = U·S·Vᵀ exactly.
 * IPM (instruction-previewed mode) takes the r largest components into the adapter, KPM (knowledge-preserved mode)
 * the r smallest (the directions the preserved context uses least). Then A = diag(√(S_r/s))·V_rᵀ,
 * B = U_r·diag(√(S_r/s)) and the base keeps W − s·B·A. As in PEFT: run {@link preprocessCorda} on the plain model
 * first, then create the adapter with `init_lora_weights: "corda"`.
 */
import { svd, solve } from '../../../engine/index.js';
import type { Linear, Module } from '../../../nn/index.js';
import { is, type ConfigCheck } from '../../config.js';
import { matmul32, scaleCols32, scaleRows32 } from '../../common/linalg.js';
import { rowsOf, targetLinears, withInputHooks } from '../../common/capture.js';
import { parseLoraConfig } from '../config.js';
import { layerRank, weightOutIn32, type InitFactors, type LinearInitInput } from './index.js';

/** PEFT's `CordaConfig` fields (files are not read or written by peftjs: `cache_file` / `covariance_file` must be null). */
export interface CordaConfig {
  cache_file: string | null;
  covariance_file: string | null;
  corda_method: 'ipm' | 'kpm';
  verbose: boolean;
  use_float16_for_covariance: boolean;
  prune_temporary_fields: boolean;
}

const CORDA_DEFAULTS: CordaConfig = {
  cache_file: null,
  covariance_file: null,
  corda_method: 'ipm',
  verbose: false,
  use_float16_for_covariance: false,
  prune_temporary_fields: true,
};

const CORDA_CHECKS: Record<keyof CordaConfig, ConfigCheck> = {
  cache_file: (v) => (v === null ? null : 'is not supported by peftjs (must be null)'),
  covariance_file: (v) => (v === null ? null : 'is not supported by peftjs (must be null)'),
  corda_method: is.oneOf('ipm', 'kpm'),
  verbose: is.bool,
  use_float16_for_covariance: (v) => (v === false ? null : 'is not supported by peftjs (must be false)'),
  prune_temporary_fields: is.bool,
};

/** Fills and checks a `corda_config` object. */
export function parseCordaConfig(raw: unknown, where: string): CordaConfig {
  return parseSubConfig(raw, CORDA_DEFAULTS, CORDA_CHECKS, where);
}

/** A sub-config object: defaults overridden by the known keys of `raw`, each checked; unknown keys are errors. */
export function parseSubConfig<C extends object>(raw: unknown, defaults: C, checks: Record<keyof C, ConfigCheck>, where: string): C {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where} must be an object, got ${JSON.stringify(raw)}`);
  const out = { ...defaults } as Record<string, unknown>;
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in defaults)) throw new Error(`${where}: unknown field ${k} (known: ${Object.keys(defaults).join(', ')})`);
    const problem = checks[k as keyof C](v);
    if (problem) throw new Error(`${where}: ${k} ${problem}, got ${JSON.stringify(v)}`);
    out[k] = v;
  }
  return out as C;
}

/** The r components CorDA chose for one layer: U_r [out, r], S_r [r], V_rᵀ [r, in]. */
interface CordaEigens {
  u: Float32Array;
  s: Float32Array;
  vt: Float32Array;
  r: number;
}

/** Per base layer, set by {@link preprocessCorda} and consumed (deleted) by the init. */
const EIGENS = new WeakMap<Linear, CordaEigens>();

/**
 * PEFT `preprocess_corda`: runs `runModel` (forward passes over the context samples) with hooks that accumulate each
 * target layer's input covariance, then stores the chosen components for the init. `rawConfig` is the LoRA config
 * the adapter will be created with (its `target_modules`, `r`, `rank_pattern` and `corda_config` are read).
 */
export function preprocessCorda(model: Module, rawConfig: Record<string, unknown>, runModel: () => void): void {
  const config = parseLoraConfig({ ...rawConfig, init_lora_weights: 'corda' }, 'preprocessCorda');
  const method = (config.corda_config as CordaConfig).corda_method;
  const targets = targetLinears(model, config);
  const cov = targets.map(([, l]) => new Float32Array(l.inFeatures * l.inFeatures));
  const calls = targets.map(() => 0);
  withInputHooks(
    targets.map(([, l]) => l),
    (i, x) => {
      const n = targets[i]![1].inFeatures;
      const rows = rowsOf(x);
      // PEFT scales each call's input by its largest value before X·Xᵀ (peftjs: the largest magnitude).
      let peak = 0;
      for (const v of rows) peak = Math.max(peak, Math.abs(v));
      if (!Number.isFinite(peak)) throw new Error(`preprocessCorda: non-finite input to ${targets[i]![0]}`);
      if (peak > 0) for (let j = 0; j < rows.length; j++) rows[j]! /= peak;
      const c = matmul32(rows, rows, n, rows.length / n, n, true);
      const acc = cov[i]!;
      for (let j = 0; j < acc.length; j++) acc[j]! += c[j]!;
      calls[i]!++;
    },
    runModel,
  );
  targets.forEach(([name, l], i) => {
    if (calls[i] === 0) throw new Error(`preprocessCorda: ${name} never ran during runModel`);
    const c = cov[i]!;
    for (let j = 0; j < c.length; j++) c[j]! /= calls[i]!;
    EIGENS.set(l, cordaEigens(weightOutIn32(l), l.outFeatures, l.inFeatures, c, layerRank(config, name), method));
  });
}

/** The damped covariance inverse, the decomposition of W·C, and the r components `method` keeps. */
function cordaEigens(w: Float32Array, out: number, inF: number, cov: Float32Array, r: number, method: 'ipm' | 'kpm'): CordaEigens {
  const k = Math.min(out, inF);
  if (r > k) throw new Error(`CorDA: r=${r} exceeds min(out, in) = ${k}`);
  let meanDiag = 0;
  for (let i = 0; i < inF; i++) meanDiag += cov[i * inF + i]! / inF;
  const eye = new Float32Array(inF * inF);
  for (let i = 0; i < inF; i++) eye[i * inF + i] = 1;
  // PEFT: add damp·mean(diag C)·I, doubling damp until C·C⁻¹ is within 0.05 of I (Frobenius).
  let damp = 0.01;
  let fixed: Float32Array;
  let inv: Float32Array;
  for (;;) {
    fixed = cov.slice();
    for (let i = 0; i < inF; i++) fixed[i * inF + i]! += meanDiag * damp;
    inv = solve(fixed, eye, inF, inF);
    const prod = matmul32(fixed, inv, inF, inF, inF);
    let err = 0;
    for (let j = 0; j < prod.length; j++) err += (prod[j]! - eye[j]!) ** 2;
    if (Math.sqrt(err) < 0.05) break;
    damp *= 2;
    if (damp > 1e6) throw new Error('CorDA: the input covariance cannot be inverted (all-zero inputs?)');
  }
  const f = svd(matmul32(w, fixed, out, inF, inF), out, inF); // W·C = U·S·V̂ᵀ
  const vtAll = matmul32(f.vt, inv, k, inF, inF); // Vᵀ = V̂ᵀ·C⁻¹, so U·S·Vᵀ = W
  const first = method === 'ipm' ? 0 : k - r;
  const u = new Float32Array(out * r);
  for (let i = 0; i < out; i++) u.set(f.u.subarray(i * k + first, i * k + first + r), i * r);
  return { u, s: f.s.slice(first, first + r), vt: vtAll.slice(first * inF, (first + r) * inF), r };
}

export function cordaInit({ base, out, inF, r, scaling }: LinearInitInput): InitFactors {
  const e = EIGENS.get(base);
  if (!e) throw new Error('CorDA init: no decomposition for this layer; run preprocessCorda(model, config, runModel) on the base model before creating the adapter');
  if (e.r !== r) throw new Error(`CorDA init: preprocessCorda chose ${e.r} components but the adapter has r=${r}; use the same config for both`);
  EIGENS.delete(base);
  const root = Array.from(e.s, (x) => Math.sqrt(Math.max(x, 0) / scaling));
  return { a: scaleRows32(e.vt, r, inF, root), b: scaleCols32(e.u, out, r, root), residual: true };
}
