/**
 * LoRA adapters merged in LoRA space, on the true deltas ΔWᵢ = sᵢ·Bᵢ·Aᵢ (sᵢ = α/r, or α/√r with rsLoRA, per
 * module after rank_pattern / alpha_pattern):
 * - `cat`: A = [A₁; A₂; …], B = [w₁s₁B₁ | w₂s₂B₂ | …] — rank Σ rᵢ and B·A = Σ wᵢΔWᵢ exactly;
 * - `svd`: the best rank-k approximation (Eckart–Young) of Σ wᵢΔWᵢ, computed from the factors without forming
 *   the full matrix;
 * - `linear_svd`, `ties_svd`, `dare_linear_svd`, `dare_ties_svd`, `magnitude_prune_svd`: combine the full ΔWᵢ as
 *   the model-merging method would, then factorise at rank k.
 * Unlike PEFT's `add_weighted_adapter(combination_type="linear")`, factors are never summed separately (which adds
 * cross terms, PEFT #3004), scalings are taken per source (rsLoRA, PEFT #3449) and per-module ranks are kept in
 * the merged config's rank_pattern (PEFT #3737 / #3744). The merged adapter has scale 1 in every module
 * (lora_alpha = r), so it loads in PEFT and peftjs alike.
 */
import { getPatternKey, readAdapterFiles, writeAdapterFiles, loraScaling, type LoraConfig } from '../peft/index.js';
import type { TensorData } from '../io/safetensors.js';
import { fromF32, isFloatDType, toF32, type FloatDType } from './dtype.js';
import { svd } from '../engine/index.js';
import { matmul, transpose } from './matrix.js';
import { breadcrumbsMask } from './methods/breadcrumbs.js';
import { dareDrop } from './methods/dare.js';
import { combineTaskVectors, type Consensus } from './methods/task-arithmetic.js';
import { trimByMagnitude } from './methods/ties.js';
import { openCheckpointTensors } from '../io/sharded.js';
import { mergeCheckpoints, type MergeReport } from './stream.js';

/** One module's LoRA: A [r, in], B [out, r] and scale s; ΔW = s·B·A [out, in]. */
export interface LoraPair {
  a: Float32Array;
  b: Float32Array;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scale: number;
}

/** s·B·A as a fresh [out, in] array. */
export function loraDelta(p: LoraPair): Float32Array {
  return matmul(p.b, p.a, p.outFeatures, p.r, p.inFeatures, { alpha: p.scale });
}

function checkShapes(op: string, pairs: readonly LoraPair[], weights: readonly number[]): void {
  if (pairs.length === 0) throw new Error(`${op}: no adapters`);
  if (weights.length !== pairs.length) throw new Error(`${op}: ${pairs.length} adapters but ${weights.length} weights`);
  for (const p of pairs) {
    if (p.inFeatures !== pairs[0].inFeatures || p.outFeatures !== pairs[0].outFeatures) {
      throw new Error(`${op}: adapters of shapes [${p.outFeatures}, ${p.inFeatures}] and [${pairs[0].outFeatures}, ${pairs[0].inFeatures}] cannot be merged`);
    }
  }
}

/** Exact concatenation: rank Σ rᵢ, scale 1, B·A = Σ wᵢ·sᵢ·Bᵢ·Aᵢ. */
export function catLora(pairs: readonly LoraPair[], weights: readonly number[]): LoraPair {
  checkShapes('catLora', pairs, weights);
  const { inFeatures, outFeatures } = pairs[0];
  const r = pairs.reduce((acc, p) => acc + p.r, 0);
  const a = new Float32Array(r * inFeatures), b = new Float32Array(outFeatures * r);
  let offset = 0;
  pairs.forEach((p, i) => {
    a.set(p.a.subarray(0, p.r * inFeatures), offset * inFeatures);
    const f = weights[i] * p.scale;
    for (let o = 0; o < outFeatures; o++) for (let j = 0; j < p.r; j++) b[o * r + offset + j] = f * p.b[o * p.r + j];
    offset += p.r;
  });
  return { a, b, r, inFeatures, outFeatures, scale: 1 };
}

/** Keeps the first `rank` singular triplets of u [m, k] s vt [k, n] as a LoRA pair, √σ on each side. */
function truncate(u: Float32Array, s: Float32Array, vt: Float32Array, k: number, m: number, n: number, rank: number): LoraPair {
  const r = Math.min(rank, k);
  const b = new Float32Array(m * r), a = new Float32Array(r * n);
  for (let j = 0; j < r; j++) {
    const root = Math.sqrt(s[j]);
    for (let i = 0; i < m; i++) b[i * r + j] = u[i * k + j] * root;
    for (let i = 0; i < n; i++) a[j * n + i] = vt[j * n + i] * root;
  }
  return { a, b, r, inFeatures: n, outFeatures: m, scale: 1 };
}

/** The best rank-`rank` LoRA pair (scale 1) for a full ΔW [out, in]. */
export function factorize(delta: Float32Array, outFeatures: number, inFeatures: number, rank: number): LoraPair {
  const d = svd(delta, outFeatures, inFeatures);
  return truncate(d.u, d.s, d.vt, d.k, outFeatures, inFeatures, rank);
}

/**
 * The best rank-`rank` approximation of Σ wᵢ·sᵢ·Bᵢ·Aᵢ without forming it: with the concatenation B·A (rank R),
 * B = U₁S₁V₁ᵀ (thin SVD, [out, R]); then B·A = U₁·(S₁V₁ᵀA) and the SVD of the small C = S₁V₁ᵀA = U₂S₂V₂ᵀ gives
 * B·A = (U₁U₂)·S₂·V₂ᵀ exactly. Cost O((out + in)·R²) instead of O(out·in·min(out, in)).
 */
export function svdLora(pairs: readonly LoraPair[], weights: readonly number[], rank: number): LoraPair {
  const cat = catLora(pairs, weights);
  const { outFeatures: m, inFeatures: n, r: R } = cat;
  const b = svd(cat.b, m, R); // U₁ [m, k1], S₁, V₁ᵀ [k1, R]
  const sv = b.vt.map((x, i) => x * b.s[Math.floor(i / R)]); // S₁V₁ᵀ [k1, R]
  const c = matmul(sv, cat.a, b.k, R, n); // [k1, n]
  const d = svd(c, b.k, n); // U₂ [k1, k2], S₂, V₂ᵀ [k2, n]
  const u = matmul(b.u, d.u, m, b.k, d.k); // [m, k2]
  return truncate(u, d.s, d.vt, d.k, m, n, rank);
}

/** How full ΔWs are combined before re-factorising (PEFT's combination types without the `_svd` suffix). */
export type DeltaCombination = 'linear' | 'ties' | 'dare_linear' | 'dare_ties' | 'magnitude_prune' | 'breadcrumbs';

/** Options of {@link combineLoraDeltas}. */
export interface DeltaCombineOptions {
  /** Fraction kept (ties, dare_*, magnitude_prune, breadcrumbs). */
  density?: number;
  /** Fraction of largest entries dropped (breadcrumbs; default 0.01). */
  gamma?: number;
  /** Seed of DARE's masks (adapter i uses seed + i). */
  seed?: number;
  /** TIES sign election (default `sum`). */
  consensus?: Consensus;
}

/**
 * Σ over adapters of the full deltas combined by `method`, as a fresh [out, in] array: the task-vector machinery
 * with a zero base (PEFT's semantics: TIES takes the disjoint mean of the weighted deltas, DARE rescales by
 * 1/density, magnitude_prune trims then sums).
 */
export function combineLoraDeltas(pairs: readonly LoraPair[], weights: readonly number[], method: DeltaCombination, opts: DeltaCombineOptions = {}): Float32Array {
  checkShapes('combineLoraDeltas', pairs, weights);
  const density = opts.density ?? 1;
  const deltas = pairs.map((p, i) => {
    const d = loraDelta(p);
    if (method === 'ties' || method === 'magnitude_prune') trimByMagnitude(d, density);
    else if (method === 'dare_linear' || method === 'dare_ties') dareDrop(d, density, (opts.seed ?? 0) + i);
    else if (method === 'breadcrumbs') breadcrumbsMask(d, density, opts.gamma ?? 0.01);
    return d;
  });
  const zero = new Float32Array(deltas[0].length);
  const sign = method === 'ties' || method === 'dare_ties';
  return combineTaskVectors(zero, deltas, { weights, consensus: sign ? (opts.consensus ?? 'sum') : null, normalize: method === 'ties' }, zero);
}

// ------------------------------------------------------------------------------------------------ adapter folders

/** A LoRA adapter folder as pairs by module path, with its config. */
export interface LoadedAdapter {
  config: LoraConfig;
  modules: Map<string, LoraPair>;
  dtype: FloatDType;
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/** Reads a PEFT LoRA folder into per-module pairs with their scales (rank_pattern / alpha_pattern / rsLoRA applied). */
export function readLoraAdapter(dir: string): LoadedAdapter {
  const files = readAdapterFiles(dir);
  if (files.config.peft_type !== 'LORA') throw new Error(`${dir}: adapter merges need LoRA adapters, this one is ${files.config.peft_type}`);
  const config = files.config as LoraConfig;
  const parts = new Map<string, { A?: TensorData; B?: TensorData }>();
  let dtype: FloatDType = 'F32';
  for (const [key, t] of files.tensors) {
    const m = KEY.exec(key);
    if (!m) throw new Error(`${dir}: tensor ${JSON.stringify(key)} is not a LoRA linear factor (embedding LoRA, modules_to_save and bias tensors cannot be merged in LoRA space)`);
    if (!isFloatDType(t.dtype)) throw new Error(`${dir}: tensor ${key} is ${t.dtype}`);
    dtype = t.dtype;
    const entry = parts.get(m[1]) ?? {};
    entry[m[2] as 'A' | 'B'] = t;
    parts.set(m[1], entry);
  }
  const modules = new Map<string, LoraPair>();
  for (const [name, { A, B }] of parts) {
    if (!A || !B) throw new Error(`${dir}: module ${name} has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`);
    const [r, inFeatures] = A.shape, [outFeatures, rB] = B.shape;
    if (rB !== r) throw new Error(`${dir}: module ${name}: lora_A is [${A.shape}] but lora_B is [${B.shape}]`);
    const rankKey = getPatternKey(Object.keys(config.rank_pattern), name);
    const alphaKey = getPatternKey(Object.keys(config.alpha_pattern), name);
    const declared = config.rank_pattern[rankKey] ?? config.r;
    if (declared !== r) throw new Error(`${dir}: module ${name} has rank ${r} but the config (r / rank_pattern) says ${declared}`);
    const alpha = config.alpha_pattern[alphaKey] ?? config.lora_alpha;
    modules.set(name, {
      a: toF32(A.data, A.dtype as FloatDType),
      b: toF32(B.data, B.dtype as FloatDType),
      r,
      inFeatures,
      outFeatures,
      scale: loraScaling(alpha, r, config.use_rslora),
    });
  }
  return { config, modules, dtype };
}

/** How {@link mergeLoraAdapters} combines. */
export type AdapterCombination = 'cat' | 'svd' | `${DeltaCombination}_svd`;

/** Options of {@link mergeLoraAdapters}. */
export interface AdapterMergeOptions extends DeltaCombineOptions {
  /** Target rank of the `*svd` combinations (default: the largest source rank of each module). */
  rank?: number;
  /** Output dtype (default: the first adapter's). */
  dtype?: FloatDType;
}

/** Merges the adapters in `dirs` with `weights` into a new PEFT LoRA folder `out`. */
export function mergeLoraAdapters(dirs: readonly string[], weights: readonly number[], combination: AdapterCombination, out: string, opts: AdapterMergeOptions = {}): void {
  if (dirs.length !== weights.length) throw new Error(`mergeLoraAdapters: ${dirs.length} adapters but ${weights.length} weights`);
  const adapters = dirs.map(readLoraAdapter);
  const names = [...new Set(adapters.flatMap((a) => [...a.modules.keys()]))].sort();
  const merged = new Map<string, LoraPair>();
  for (const name of names) {
    // A module only some adapters target contributes only their deltas.
    const present = adapters.map((a, i) => [a.modules.get(name), weights[i]] as const).filter(([p]) => p !== undefined) as [LoraPair, number][];
    const pairs = present.map(([p]) => p), w = present.map(([, x]) => x);
    const rank = opts.rank ?? Math.max(...pairs.map((p) => p.r));
    if (combination === 'cat') merged.set(name, catLora(pairs, w));
    else if (combination === 'svd') merged.set(name, svdLora(pairs, w, rank));
    else {
      const method = combination.slice(0, -'_svd'.length) as DeltaCombination;
      merged.set(name, factorize(combineLoraDeltas(pairs, w, method, opts), pairs[0].outFeatures, pairs[0].inFeatures, rank));
    }
  }
  const ranks = [...merged.values()].map((p) => p.r);
  const r = mostCommon(ranks);
  const rankPattern: Record<string, number> = {};
  for (const [name, p] of merged) if (p.r !== r) rankPattern[name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')] = p.r; // the exact module path as a regex
  const first = adapters[0].config;
  const config: LoraConfig = {
    ...first,
    r,
    lora_alpha: r,
    use_rslora: false,
    rank_pattern: rankPattern,
    // Scale 1 everywhere: α = r per module.
    alpha_pattern: { ...rankPattern },
    target_modules: [...new Set(names.map((n) => n.split('.').pop()!))].sort(),
    init_lora_weights: true,
  };
  const dtype = opts.dtype ?? adapters[0].dtype;
  const tensors: [string, TensorData][] = [];
  for (const [name, p] of merged) {
    tensors.push([`base_model.model.${name}.lora_A.weight`, { dtype, shape: [p.r, p.inFeatures], data: fromF32(p.a, dtype) }]);
    tensors.push([`base_model.model.${name}.lora_B.weight`, { dtype, shape: [p.outFeatures, p.r], data: fromF32(p.b, dtype) }]);
  }
  writeAdapterFiles(out, config, tensors);
}

function mostCommon(xs: readonly number[]): number {
  const count = new Map<number, number>();
  for (const x of xs) count.set(x, (count.get(x) ?? 0) + 1);
  return [...count].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0]?.[0] ?? 8;
}

/**
 * Merges adapters into their base checkpoint, streamed: W' = W + Σ wᵢ·sᵢ·Bᵢ·Aᵢ for every targeted linear weight
 * (transposed for fan_in_fan_out / Conv1D layouts), every other tensor copied. Writes a full model folder.
 */
export function mergeAdaptersIntoBase(base: string, dirs: readonly string[], weights: readonly number[], out: string, opts: { maxShardBytes?: number; dtype?: FloatDType } = {}): MergeReport {
  const adapters = dirs.map(readLoraAdapter);
  const src = openCheckpointTensors(base);
  const names = new Set(src.names());
  src.close();
  adapters.forEach((a, i) => {
    const missing = [...a.modules.keys()].filter((m) => !names.has(`${m}.weight`));
    if (missing.length) throw new Error(`mergeAdaptersIntoBase: ${dirs[i]} targets ${missing[0]}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}, which ${base} has no weight for`);
  });
  return mergeCheckpoints({
    inputs: [base],
    out,
    outDtype: opts.dtype,
    maxShardBytes: opts.maxShardBytes,
    merge(ctx, [w]) {
      if (!ctx.name.endsWith('.weight')) return w;
      const module = ctx.name.slice(0, -'.weight'.length);
      adapters.forEach((a, i) => {
        const p = a.modules.get(module);
        if (!p) return;
        const delta = loraDelta({ ...p, scale: p.scale * weights[i] });
        const stored = a.config.fan_in_fan_out ? transpose(delta, p.outFeatures, p.inFeatures) : delta;
        if (stored.length !== w.length) throw new Error(`mergeAdaptersIntoBase: ${dirs[i]} module ${module} is [${p.outFeatures}, ${p.inFeatures}] but ${ctx.name} is [${ctx.shape}]`);
        for (let j = 0; j < w.length; j++) w[j] += stored[j];
      });
      return w;
    },
  });
}
