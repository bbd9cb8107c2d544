/**
 * IncreLoRA's layer: AdaLoRA's SVD-form ΔW = B·diag(E)·A · α/(target_r + 1e-5) over the *active* components only.
 * Every module is allocated at its largest rank up front (max_r components, so the parameter set never changes size
 * during training); the first k are active and the forward, merge and orthogonal regulariser use
 * A[:k], E[:k], B[:, :k] (narrowed views: the inactive rows get zero gradient and stay as initialised, E = 0).
 * Adding a component activates the next one with E = 0, so the output does not change at that step. The divisor is
 * fixed (target_r, not the current rank) for the same reason: each component's scale lives in its own E entry.
 */
import { narrow, type Tensor } from '../../engine/index.js';
import { AdaLoraLinear, type AdaLoraSpec } from '../adalora/index.js';

type F32 = Tensor<'f32'>;

export interface IncreLoraSpec extends AdaLoraSpec {
  /** Components active at creation (init_r; all r for a loaded adapter). */
  active: number;
}

export class IncreLoraLinear extends AdaLoraLinear<IncreLoraSpec> {
  protected override readonly method: string = 'IncreLoRA';
  private readonly activeRanks = new Map<string, number>();

  protected override create(name: string, spec: IncreLoraSpec): void {
    if (spec.active > spec.r) throw new Error(`IncreLoRA: adapter '${name}' would start with ${spec.active} active components of ${spec.r} allocated`);
    super.create(name, spec);
    this.activeRanks.set(name, spec.active);
  }

  protected override forget(name: string): void {
    super.forget(name);
    this.activeRanks.delete(name);
  }

  /** Components of adapter `name` allocated (active or not). */
  allocatedRank(name: string): number {
    return this.svdFactors(name).e.shape[0]!;
  }

  /** Active components of adapter `name`. */
  override keptRank(name: string): number {
    return this.activeRanks.get(name)!;
  }

  override activeFactors(name: string): { a: F32; e: F32; b: F32 } {
    const f = this.svdFactors(name);
    const k = this.keptRank(name);
    if (k === f.e.shape[0]) return f;
    return { a: narrow(f.a, 0, 0, k), e: narrow(f.e, 0, 0, k), b: narrow(f.b, 1, 0, k) };
  }

  /**
   * Makes the first `k` components of adapter `name` active (ranks only grow): the newly active ones start with
   * E = 0, and from now on a saved adapter keeps exactly the active ones.
   */
  setActiveRank(name: string, k: number): void {
    const [old, r] = [this.keptRank(name), this.allocatedRank(name)];
    if (!Number.isInteger(k) || k < old || k > r) throw new Error(`IncreLoRA: cannot set the active rank of adapter '${name}' from ${old} to ${k} (allocated ${r})`);
    this.svdFactors(name).e.data.fill(0, old, k);
    this.activeRanks.set(name, k);
    this.applyRankMask(name, activePattern(k, r));
  }
}

/** `[true × k, false × (r − k)]`: the rank_pattern entry of a module with k of r components active. */
export function activePattern(k: number, r: number): boolean[] {
  return Array.from({ length: r }, (_, i) => i < k);
}
