/**
 * RegMean (Jin et al., "Dataless Knowledge Fusion by Merging Weights of Language Models", 2023): for a linear
 * layer y = x·Wᵀ shared by K models, the W minimising Σᵢ ‖Xᵢ Wᵀ − Xᵢ Wᵢᵀ‖² has the closed form
 * Wᵀ = (Σ Gᵢ)⁻¹ Σ Gᵢ Wᵢᵀ with the input Gram matrices Gᵢ = XᵢᵀXᵢ. The paper shrinks the off-diagonal of each
 * Gᵢ by α (G̃ = α·G + (1 − α)·diag(G)), which regularises toward plain averaging (α = 0 is the diag-weighted mean).
 * Other parameters (biases, norms, embeddings) are averaged.
 */
import { backend } from '../../engine/index.js';
import { solve } from '../../engine/index.js';
import { matmul } from '../matrix.js';

/** Gram matrix XᵀX [in, in] of inputs `x` [rows, in]; with `into`, accumulates into it. */
export function gram(x: Float32Array, rows: number, inFeatures: number, into?: Float32Array): Float32Array {
  return matmul(x, x, inFeatures, rows, inFeatures, { transA: true, into });
}

/** Options of {@link regmean}. */
export interface RegMeanOptions {
  /** Off-diagonal scaling α ∈ [0, 1] of every Gram matrix (default 1: the exact least-squares merge). */
  alpha?: number;
}

/**
 * RegMean merge of one linear layer's weights `weights` (each [out, in], HF layout) given the Gram matrices
 * `grams` (each [in, in]) of that layer's inputs in each model; a fresh [out, in] array.
 */
export function regmean(
  weights: readonly Float32Array[],
  grams: readonly Float32Array[],
  outFeatures: number,
  inFeatures: number,
  opts: RegMeanOptions = {},
): Float32Array {
  const k = weights.length;
  if (k === 0 || grams.length !== k) throw new Error(`regmean: ${k} weight matrices but ${grams.length} Gram matrices`);
  const alpha = opts.alpha ?? 1;
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`regmean: alpha must be in [0, 1], got ${alpha}`);
  weights.forEach((w, i) => {
    if (w.length !== outFeatures * inFeatures) throw new Error(`regmean: weight ${i} has ${w.length} elements, expected [${outFeatures}, ${inFeatures}]`);
    if (grams[i].length !== inFeatures * inFeatures) throw new Error(`regmean: Gram ${i} has ${grams[i].length} elements, expected [${inFeatures}, ${inFeatures}]`);
  });
  const sumG = new Float32Array(inFeatures * inFeatures);
  const rhs = new Float32Array(inFeatures * outFeatures); // Σ G̃ᵢ Wᵢᵀ, [in, out]
  for (let i = 0; i < k; i++) {
    const g = grams[i].slice();
    if (alpha !== 1) for (let r = 0; r < inFeatures; r++) for (let c = 0; c < inFeatures; c++) if (r !== c) g[r * inFeatures + c] *= alpha;
    backend().axpy(g, sumG, g.length, 1);
    matmul(g, weights[i], inFeatures, inFeatures, outFeatures, { transB: true, into: rhs });
  }
  const mergedT = solve(sumG, rhs, inFeatures, outFeatures); // [in, out]
  const out = new Float32Array(outFeatures * inFeatures);
  for (let r = 0; r < inFeatures; r++) for (let c = 0; c < outFeatures; c++) out[c * inFeatures + r] = mergedT[r * outFeatures + c];
  return out;
}
