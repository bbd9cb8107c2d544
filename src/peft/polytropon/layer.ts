/**
 * Polytropon / Multi-Head Routing (PEFT `POLY`; Ponti et al. 2022, Caccia et al. 2023): an inventory of S LoRA
 * "skills" per layer and a per-task routing matrix over them. With n_splits = q > 1 (MHR) the input and output
 * dimensions are cut into q blocks, each routed separately:
 *
 *   w_t = normalise(σ(Z[t]))  [q, S]   (training: a relaxed-Bernoulli sample instead of σ, temperature 1)
 *   A_t[q] = Σ_s w_t[q, s]·A[q, s]  [in/q, r],   B_t[q] = Σ_s w_t[q, s]·B[q, s]  [r, out/q]
 *   y = x·Wᵀ + b + x·A_t·B_t / r        (A_t, B_t assembled block-wise to [in, r] and [r, out], as PEFT)
 *
 * Tensors as PEFT: `poly_lora_A` [q, S, in/q, r], `poly_lora_B` [q, S, r, out/q], `poly_router.module_logits`
 * [n_tasks, q·S] (Z). The task of each batch row comes from `withTaskIds`.
 */
import { add, affine, div, embedding, log, matmul, permute, rand, reshape, sigmoid, sub, sum, tensor, zeros, type Tensor } from '../../engine/index.js';
import { requireTaskIds } from '../../multitask/routing.js';
import { AdaptedLinear } from '../common/adapter-layer.js';
import { kaimingUniform } from '../common/linear-adapter.js';

type F32 = Tensor<'f32'>;

export interface PolySpec {
  r: number;
  nTasks: number;
  nSkills: number;
  nSplits: number;
  init: boolean;
}

/** PEFT's EPS in the mixing-weight normalisation. */
const EPS = 1e-12;

export class PolyLinear extends AdaptedLinear {
  protected readonly method = 'POLY';
  private readonly specs = new Map<string, PolySpec>();

  /** Adapter `name`'s settings. */
  spec(name: string): PolySpec {
    const s = this.specs.get(name);
    if (!s) throw new Error(`POLY: no adapter '${name}'`);
    return s;
  }

  addAdapter(name: string, spec: PolySpec): void {
    const { inFeatures: inF, outFeatures: outF } = this.base;
    const q = spec.nSplits;
    if (inF % q || outF % q) throw new Error(`POLY: n_splits ${q} must divide the layer's in (${inF}) and out (${outF}) features`);
    // Each [in/q, r] block of A is a Kaiming-uniform [r, in/q] matrix transposed (PEFT); B likewise or zero.
    const blocks = (rows: number, cols: number) => {
      const t = kaimingUniform([q * spec.nSkills * rows, cols]).reshape([q, spec.nSkills, rows, cols]);
      return t.transpose(2, 3).contiguous() as F32;
    };
    this.setAdapterTensors(name, [
      ['poly_lora_A', blocks(spec.r, inF / q)],
      ['poly_lora_B', spec.init ? zeros([q, spec.nSkills, spec.r, outF / q]) : blocks(outF / q, spec.r)],
      ['poly_router.module_logits', rand([spec.nTasks, q * spec.nSkills], -1e-3, 1e-3)],
    ]);
    this.specs.set(name, spec);
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.specs.delete(name);
  }

  protected fold(name: string): void {
    throw new Error(`POLY: adapter '${name}' cannot be merged (its mixture depends on each example's task)`);
  }

  /** Mixing weights [B, q, S] for tasks `ids` (a relaxed-Bernoulli sample when `sample`). */
  mixingWeights(name: string, ids: Int32Array, sample: boolean): F32 {
    const s = this.spec(name);
    const z = reshape(embedding(this.tensor(name, 'poly_router.module_logits'), tensor(ids, [ids.length], 'i32')), [ids.length, s.nSplits, s.nSkills]);
    let w: F32;
    if (sample) {
      // RelaxedBernoulli(temperature 1).rsample(): σ(z + log u − log(1 − u)).
      const u = rand(z.shape, 1e-6, 1 - 1e-6);
      w = sigmoid(add(z, sub(log(u), log(affine(u, -1, 1)))));
    } else w = sigmoid(z);
    return div(w, add(sum(w, -1, true), EPS));
  }

  /** The per-row mixed factors A [B, in, r] and B [B, r, out] for mixing weights `w` [B, q, S]. */
  mixedFactors(name: string, w: Tensor): { a: F32; b: F32 } {
    const s = this.spec(name);
    const { inFeatures: inF, outFeatures: outF } = this.base;
    const q = s.nSplits;
    const rows = w.shape[0]!;
    const wq = permute(w, [1, 0, 2]); // [q, B, S]
    const a = matmul(wq, reshape(this.tensor(name, 'poly_lora_A'), [q, s.nSkills, (inF / q) * s.r])); // [q, B, in/q·r]
    const b = matmul(wq, reshape(this.tensor(name, 'poly_lora_B'), [q, s.nSkills, s.r * (outF / q)])); // [q, B, r·out/q]
    return {
      a: reshape(permute(reshape(a, [q, rows, inF / q, s.r]), [1, 0, 2, 3]), [rows, inF, s.r]) as F32,
      b: reshape(permute(reshape(b, [q, rows, s.r, outF / q]), [1, 2, 0, 3]), [rows, s.r, outF]) as F32,
    };
  }

  forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    let y = this.base.forward(x);
    if (!names?.length) return y;
    const inF = this.base.inFeatures;
    const T = x.rank >= 2 ? x.shape[x.rank - 2]! : 1;
    const rows = x.size / inF / T;
    const x3 = reshape(x, [rows, T, inF]);
    for (const n of names) {
      const s = this.spec(n);
      const { a, b } = this.mixedFactors(n, this.mixingWeights(n, requireTaskIds('POLY', rows, s.nTasks), this.training));
      y = add(y, reshape(div(matmul(matmul(x3, a), b), s.r), y.shape));
    }
    return y;
  }
}
