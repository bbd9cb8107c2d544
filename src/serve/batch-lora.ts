/**
 * Heterogeneous-batch LoRA for serving (Punica's BGMV, S-LoRA's unified pool). Every target Linear of the base
 * model is wrapped once by a {@link BatchLoraLinear}; each holds one {@link LoraPool} with the factors of every
 * loaded adapter at rank granularity, and reads the adapter of each token row from a {@link LoraRouting} shared by
 * the whole model. One forward then serves rows with different adapters, different ranks and no adapter, and
 * costs about one adapter's worth of extra work whatever the number of distinct adapters.
 */
import { backend, type Tensor } from '../engine/index.js';
import { Linear, Module } from '../nn/index.js';

/** Which adapter slot each token row of the current forward uses (−1: none); set before every forward. */
export class LoraRouting {
  rowAdapter = new Int32Array(0);
  /** Whether any row uses an adapter (lets layers skip the kernel for base-only batches). */
  any = false;

  /** Row r of a [B, T] batch uses `perSequence[⌊r / T⌋]`. */
  set(perSequence: ArrayLike<number>, T: number): void {
    const rows = perSequence.length * T;
    if (this.rowAdapter.length !== rows) this.rowAdapter = new Int32Array(rows);
    this.any = false;
    for (let b = 0; b < perSequence.length; b++) {
      const a = perSequence[b]!;
      this.rowAdapter.fill(a, b * T, (b + 1) * T);
      if (a >= 0) this.any = true;
    }
  }
}

/**
 * One target layer's adapter factors for up to `slots` adapters within `capacityRanks` rank rows. The pools are
 * allocated on the first adapter that targets the layer. Slot s uses rows [offset[s], offset[s] + rank[s]);
 * rank 0 means the adapter does not target this layer.
 */
export class LoraPool {
  a: Float32Array | null = null;
  bT: Float32Array | null = null;
  readonly offset: Int32Array;
  readonly rank: Int32Array;
  readonly scale: Float32Array;

  constructor(
    readonly inF: number,
    readonly outF: number,
    readonly slots: number,
    readonly capacityRanks: number,
  ) {
    this.offset = new Int32Array(slots);
    this.rank = new Int32Array(slots);
    this.scale = new Float32Array(slots);
  }

  /** Bytes the pools take once allocated. */
  get bytes(): number {
    return 4 * this.capacityRanks * (this.inF + this.outF);
  }

  /** Installs adapter factors A [r, inF] and B [outF, r] (row-major) with `scale` in slot `slot` at rank row `offset`. */
  set(slot: number, offset: number, A: Float32Array, B: Float32Array, r: number, scale: number): void {
    const { inF, outF } = this;
    if (A.length !== r * inF || B.length !== outF * r)
      throw new Error(`LoraPool.set: factors of ${A.length} and ${B.length} elements do not fit rank ${r} for [${outF}, ${inF}]`);
    if (offset < 0 || offset + r > this.capacityRanks)
      throw new Error(`LoraPool.set: rank rows [${offset}, ${offset + r}) exceed the pool's ${this.capacityRanks}`);
    this.a ??= new Float32Array(this.capacityRanks * inF);
    this.bT ??= new Float32Array(this.capacityRanks * outF);
    this.a.set(A, offset * inF);
    for (let j = 0; j < r; j++) for (let o = 0; o < outF; o++) this.bT[(offset + j) * outF + o] = B[o * r + j]!;
    this.offset[slot] = offset;
    this.rank[slot] = r;
    this.scale[slot] = scale;
  }

  /** Frees slot `slot` in this layer (rows of a running request that still names it are no longer adapted). */
  clear(slot: number): void {
    this.rank[slot] = 0;
  }
}

/** A Linear plus the gathered LoRA of whichever adapter each row routes to. */
export class BatchLoraLinear extends Module {
  declare readonly base_layer: Linear;

  constructor(
    base: Linear,
    readonly pool: LoraPool,
    private readonly routing: LoraRouting,
  ) {
    super();
    this.addModule('base_layer', base);
  }

  forward(x: Tensor): Tensor<'f32'> {
    const y = this.base_layer.forward(x);
    const { pool, routing } = this;
    if (!routing.any || !pool.a) return y;
    const rows = x.size / pool.inF;
    if (rows !== routing.rowAdapter.length)
      throw new Error(`BatchLoraLinear: input ${x.describe()} has ${rows} rows but the routing names ${routing.rowAdapter.length}`);
    if (!x.isContiguous() || !y.isContiguous()) throw new Error(`BatchLoraLinear: input ${x.describe()} must be contiguous`);
    backend().loraGather(x.data as Float32Array, y.data, routing.rowAdapter, pool.a, pool.bT!, pool.offset, pool.rank, pool.scale, rows, pool.inF, pool.outF, pool.slots);
    return y;
  }
}

/** The Linears of `model` that can take adapters: every one but the output head (`lm_head`), by dotted name. */
export function batchLoraTargets(model: Module): [string, Linear][] {
  return model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear && e[0] !== 'lm_head' && !e[0].endsWith('.lm_head'));
}

/**
 * Wraps every {@link batchLoraTargets} Linear of `model` in a {@link BatchLoraLinear} sharing `routing`, with pools
 * of `slots` adapters and `capacityRanks` rank rows; returns the pools by module name.
 */
export function injectBatchLora(model: Module, routing: LoraRouting, slots: number, capacityRanks: number): Map<string, LoraPool> {
  const pools = new Map<string, LoraPool>();
  for (const [name, m] of batchLoraTargets(model)) {
    const pool = new LoraPool(m.inFeatures, m.outFeatures, slots, capacityRanks);
    model.setModule(name, new BatchLoraLinear(m, pool, routing));
    pools.set(name, pool);
  }
  return pools;
}
