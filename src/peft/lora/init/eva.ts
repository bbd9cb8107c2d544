/**
 * EVA (Paischer et al. 2024, "One Initialization to Rule them All: Fine-tuning via Explained Variance Adaptation",
 * §3): run a few batches through the model, take the SVD of each target layer's (centred) input activations, set
 * A to the top right-singular vectors (B stays 0), and redistribute the rank budget Σ r across layers by explained
 * variance: every layer offers its first round(r·ρ) components, the budget goes to the globally largest
 * explained-variance ratios. Layers left with rank 0 lose their adapter. PEFT's `initialize_lora_eva_weights`
 * (`init_lora_weights: "eva"` + `eva_config`): create the PeftModel first, then call {@link initializeEva}.
 *
 * The activation SVD is computed from running sums (Σx, Σxxᵀ): the right-singular vectors of the centred data are
 * the eigenvectors of its scatter matrix, so batches accumulate instead of being stored. After each batch the
 * components are compared with the previous batch's (|cosine| ≥ τ counts as converged, as PEFT's early stop); the
 * batches are cycled until every layer's assigned components have converged or `maxIterations` is reached.
 */
import { noGrad, svd, tidy, type Tensor } from '../../../engine/index.js';
import type { Module } from '../../../nn/index.js';
import { is, type ConfigCheck } from '../../config.js';
import type { PeftModel } from '../../model.js';
import { peftWarn } from '../../warn.js';
import { matmul32 } from '../../common/linalg.js';
import { rowsOf, withInputHooks } from '../../common/capture.js';
import { LoraLinear } from '../layer.js';
import type { LoraConfig } from '../config.js';
import { parseSubConfig } from './corda.js';

/** PEFT's `EvaConfig`. */
export interface EvaConfig {
  /** A layer may take up to round(r·ρ) components (ρ ≥ 1; 1 = no redistribution). */
  rho: number;
  /** Cosine-similarity threshold between consecutive batches' components for convergence. */
  tau: number;
  /** Skip positions whose label equals `label_mask_value`. */
  use_label_mask: boolean;
  label_mask_value: number;
  /** Divide each component by the square root of its singular value. */
  whiten: boolean;
  /** Scale alpha with the new rank (alpha·r_new/r) so every layer keeps the same scaling. */
  adjust_scaling_factors: boolean;
}

const EVA_DEFAULTS: EvaConfig = { rho: 2, tau: 0.99, use_label_mask: true, label_mask_value: -100, whiten: false, adjust_scaling_factors: true };
const EVA_CHECKS: Record<keyof EvaConfig, ConfigCheck> = {
  rho: (v) => (typeof v === 'number' && v >= 1 ? null : 'must be a number ≥ 1'),
  tau: (v) => (typeof v === 'number' && v >= 0 && v <= 1 ? null : 'must be a number in [0, 1]'),
  use_label_mask: is.bool,
  label_mask_value: is.int(-(2 ** 31)),
  whiten: is.bool,
  adjust_scaling_factors: is.bool,
};

export function parseEvaConfig(raw: unknown, where: string): EvaConfig {
  return parseSubConfig(raw, EVA_DEFAULTS, EVA_CHECKS, where);
}

/** One batch for EVA: token ids [B, T], and optionally labels (same shape; masked positions are skipped) and an attention mask. */
export interface EvaBatch {
  inputIds: Tensor;
  labels?: Tensor | null;
  attentionMask?: Tensor | null;
}

export interface InitializeEvaOptions {
  adapterName?: string;
  /** Runs the model on a batch (default: `model.forward(batch.inputIds)`). */
  forward?: (model: Module, batch: EvaBatch) => void;
  /** Most forward passes before giving up on convergence (default 100). */
  maxIterations?: number;
}

/** Running statistics of one distinct layer input, and its current components. */
class ActivationStats {
  n = 0;
  readonly sum: Float64Array;
  readonly scatter: Float32Array;
  /** Rows: right-singular vectors of the centred activations, by decreasing singular value. */
  components: Float32Array | null = null;
  singular: Float32Array | null = null;
  ratio: Float32Array | null = null;
  /** How many leading components have converged. */
  converged = 0;

  constructor(readonly dim: number) {
    this.sum = new Float64Array(dim);
    this.scatter = new Float32Array(dim * dim);
  }

  add(rows: Float32Array, count: number): void {
    const d = this.dim;
    for (let i = 0; i < count; i++) for (let j = 0; j < d; j++) this.sum[j]! += rows[i * d + j]!;
    const g = matmul32(rows, rows, d, count, d, true);
    for (let j = 0; j < g.length; j++) this.scatter[j]! += g[j]!;
    this.n += count;
  }

  /** Recomputes the components; returns how many leading ones stayed within τ of the previous batch's. */
  update(tau: number): void {
    const d = this.dim;
    const c = this.scatter.slice();
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) c[i * d + j]! -= (this.sum[i]! * this.sum[j]!) / this.n;
    const f = svd(c, d, d); // symmetric PSD: Vᵀ rows are the eigenvectors, S the eigenvalues (= singular values²)
    let total = 0;
    for (const x of f.s) total += x;
    const prev = this.components;
    this.components = f.vt;
    this.singular = Float32Array.from(f.s, (x) => Math.sqrt(Math.max(x, 0)));
    this.ratio = Float32Array.from(f.s, (x) => (total > 0 ? x / total : 0));
    this.converged = 0;
    if (!prev) return;
    while (this.converged < d) {
      const i = this.converged;
      let dot = 0;
      for (let j = 0; j < d; j++) dot += prev[i * d + j]! * f.vt[i * d + j]!;
      if (Math.abs(dot) < tau) break;
      this.converged++;
    }
  }
}

/** Which rows of a [B, T] batch enter the SVD (attention mask and, with `use_label_mask`, the labels). */
function rowMask(batch: EvaBatch, cfg: EvaConfig): Uint8Array {
  const n = batch.inputIds.size;
  const keep = new Uint8Array(n).fill(1);
  const apply = (t: Tensor | null | undefined, drop: (v: number) => boolean, what: string) => {
    if (!t) return;
    if (t.size !== n) throw new Error(`initializeEva: ${what} ${t.describe()} must match inputIds ${batch.inputIds.describe()}`);
    t.toArray().forEach((v, i) => {
      if (drop(Number(v))) keep[i] = 0;
    });
  };
  apply(batch.attentionMask, (v) => v === 0, 'attentionMask');
  if (cfg.use_label_mask) apply(batch.labels, (v) => v === cfg.label_mask_value, 'labels');
  return keep;
}

/**
 * PEFT `initialize_lora_eva_weights`: sets adapter `adapterName`'s A matrices from the activation SVD over
 * `batches` and redistributes its ranks (rewriting the adapter's `rank_pattern`, `alpha_pattern` and
 * `target_modules`). `config` overrides the adapter's `eva_config`.
 */
export function initializeEva(peft: PeftModel, batches: Iterable<EvaBatch>, config: Partial<EvaConfig> = {}, opts: InitializeEvaOptions = {}): void {
  const name = opts.adapterName ?? 'default';
  const lc = peft.peftConfig.get(name) as LoraConfig | undefined;
  if (!lc || lc.peft_type !== 'LORA') throw new Error(`initializeEva: no LoRA adapter '${name}'`);
  const cfg = parseEvaConfig({ ...((lc.eva_config as EvaConfig | null) ?? {}), ...config }, 'initializeEva: eva_config');
  const data = [...batches];
  if (data.length === 0) throw new Error('initializeEva: no batches');
  const forward = opts.forward ?? ((m: Module, b: EvaBatch) => void (m as unknown as { forward(ids: Tensor): Tensor }).forward(b.inputIds));
  const layers = peft.model.namedModules().filter((e): e is [string, LoraLinear] => e[1] instanceof LoraLinear && e[1].adapterNames().includes(name));
  if (layers.length === 0) throw new Error(`initializeEva: adapter '${name}' has no Linear layers`);
  const ranks = layers.map(([, l]) => l.r.get(name)!);
  const maxComponents = layers.map(([, l], i) => Math.min(Math.round(ranks[i]! * cfg.rho), l.base.inFeatures));
  const budget = ranks.reduce((x, y) => x + y, 0);

  // Layers fed the same tensor in a forward pass (q/k/v) share one set of statistics.
  const statsOf: (ActivationStats | null)[] = layers.map(() => null);
  const all: ActivationStats[] = [];
  const needed = (i: number, assigned: number[]) => statsOf[i]!.converged >= assigned[i]!;
  let assigned = maxComponents.slice();
  let iterations = 0;
  const maxIterations = opts.maxIterations ?? 100;
  let done = false;
  while (!done && iterations < maxIterations) {
    const batch = data[iterations % data.length]!;
    const keep = rowMask(batch, cfg);
    const seen = new Map<Tensor, ActivationStats>();
    const fed = new Set<ActivationStats>();
    withInputHooks(
      layers.map(([, l]) => l),
      (i, x) => {
        const dim = layers[i]![1].base.inFeatures;
        let st = seen.get(x) ?? statsOf[i];
        if (!st) {
          st = new ActivationStats(dim);
          all.push(st);
        }
        statsOf[i] = st;
        if (seen.has(x) || fed.has(st)) return;
        seen.set(x, st);
        fed.add(st);
        const rows = rowsOf(x);
        const total = rows.length / dim;
        if (total !== keep.length) throw new Error(`initializeEva: ${layers[i]![0]} saw ${total} positions, the batch has ${keep.length}`);
        let count = 0;
        for (let r = 0; r < total; r++) if (keep[r]) rows.copyWithin(count++ * dim, r * dim, (r + 1) * dim);
        st.add(rows, count);
      },
      () => peft.disableAdapters(() => tidy(() => noGrad(() => forward(peft.model, batch)))),
    );
    iterations++;
    for (const st of fed) if (st.n >= Math.max(...maxComponents)) st.update(cfg.tau);
    if (statsOf.some((s) => !s?.ratio)) continue;
    assigned = distributeRanks(statsOf.map((s, i) => s!.ratio!.subarray(0, maxComponents[i])), budget);
    done = layers.every((_, i) => needed(i, assigned));
  }
  if (statsOf.some((s) => !s?.components)) throw new Error(`initializeEva: too few positions in the batches for ${Math.max(...maxComponents)} components`);
  if (!done) peftWarn(`initializeEva: components did not converge (tau=${cfg.tau}) within ${maxIterations} forward passes; using the current estimates`);

  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const kept: string[] = [];
  layers.forEach(([path, layer], i) => {
    const st = statsOf[i]!;
    const r = ranks[i]!;
    const newRank = assigned[i]!;
    let alpha = layer.loraAlpha.get(name)!;
    if (newRank === 0) {
      layer.deleteAdapter(name);
      if (layer.adapterNames().length === 0) peft.model.setModule(path, layer.baseLayer);
      return;
    }
    if (newRank !== r) {
      if (cfg.adjust_scaling_factors) alpha *= newRank / r;
      layer.addAdapter(name, { r: newRank, alpha, dropout: layer.loraDropout.get(name)!, useRslora: lc.use_rslora, init: 'eva', config: lc });
    }
    const a = layer.adapterTensors(name).find(([k]) => k === 'lora_A.weight')![1];
    const d = st.dim;
    const comp = a.data as Float32Array;
    comp.set(st.components!.subarray(0, newRank * d));
    if (cfg.whiten) for (let k = 0; k < newRank; k++) for (let j = 0; j < d; j++) comp[k * d + j]! /= Math.sqrt(st.singular![k]!);
    if (newRank !== lc.r) rankPattern[path] = newRank;
    if (alpha !== lc.lora_alpha) alphaPattern[path] = alpha;
    kept.push(path);
  });
  lc.rank_pattern = rankPattern;
  lc.alpha_pattern = alphaPattern;
  lc.target_modules = kept;
  peft.setAdapter(peft.activeAdapters.length ? peft.activeAdapters : [name]); // refreshes requiresGrad of the new tensors
}

/** The number of components each layer gets: the `budget` largest explained-variance ratios over all layers. */
export function distributeRanks(ratios: readonly ArrayLike<number>[], budget: number): number[] {
  const all: [number, number][] = [];
  ratios.forEach((r, i) => {
    for (let k = 0; k < r.length; k++) all.push([r[k]!, i]);
  });
  all.sort((x, y) => y[0] - x[0] || x[1] - y[1]);
  const counts = ratios.map(() => 0);
  for (const [, i] of all.slice(0, budget)) counts[i]!++;
  return counts;
}
