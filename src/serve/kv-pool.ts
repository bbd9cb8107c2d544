/**
 * The serving KV cache: a pool of `slots` sequence slots, each with its own length, behind the models' KVCache
 * interface so an unmodified `CausalLM.forward` reads and writes it. Running sequences occupy slots [0, active)
 * (kept compact: when one leaves, the last one moves into its slot), so a decode step over all of them passes
 * the first `active` rows of the buffers to attention directly. A forward covers the consecutive slots
 * [first, first + B): decoding (every active slot, T = 1, each row written at its own length; the key mask hides
 * each row's unused tail) or prefilling one new sequence (B = 1 at slot `active`).
 */
import { backend, narrow, type Tensor } from '../engine/index.js';
import { KVCache } from '../models/index.js';

/** Bytes one slot takes: keys and values of every layer for `capacity` positions. */
export function slotBytes(numLayers: number, capacity: number, numKvHeads: number, headDim: number): number {
  return 2 * numLayers * capacity * numKvHeads * headDim * 4;
}

export class SlotKVCache extends KVCache {
  /** Positions filled in each slot. */
  readonly lengths: Int32Array;
  private first = 0;
  private rows = 0;

  constructor(numLayers: number, slots: number, capacity: number, numKvHeads: number, headDim: number) {
    super(numLayers, slots, capacity, numKvHeads, headDim);
    this.lengths = new Int32Array(slots);
  }

  get slots(): number {
    return this.batch;
  }

  /**
   * Selects slots [first, first + rows) for the next forward; sets `length` to their longest length (the "past"
   * the model sees) and returns each row's length.
   */
  select(first: number, rows: number): Int32Array {
    if (first < 0 || rows < 1 || first + rows > this.batch) throw new Error(`SlotKVCache.select: slots [${first}, ${first + rows}) outside [0, ${this.batch})`);
    this.first = first;
    this.rows = rows;
    const lens = this.lengths.subarray(first, first + rows);
    this.length = Math.max(...lens);
    return lens;
  }

  /** Writes row b's T new positions at that row's own length, and returns the selected rows' buffers. */
  override write(layer: number, k: Tensor, v: Tensor): { k: Tensor<'f32'>; v: Tensor<'f32'>; length: number } {
    const [B, T] = k.shape as [number, number];
    if (B !== this.rows || k.shape[2] !== this.numKvHeads || k.shape[3] !== this.headDim || v.shape.join() !== k.shape.join())
      throw new Error(`SlotKVCache.write: layer ${layer} got k ${k.describe()}, v ${v.describe()} for ${this.rows} selected slots`);
    for (let b = 0; b < B; b++) {
      const at = this.lengths[this.first + b]!;
      if (at + T > this.capacity) throw new Error(`SlotKVCache.write: slot ${this.first + b} holds ${at} positions, ${T} more exceed the capacity ${this.capacity}`);
      for (const [src, buf] of [
        [k, this.keys[layer]!],
        [v, this.values[layer]!],
      ] as const) {
        const from = narrow(src, 0, b, 1);
        const to = narrow(narrow(buf, 0, this.first + b, 1), 1, at, T);
        backend().copyStrided(from.data, [...from.strides], to.data, [...to.strides], [...from.shape]);
        from.dispose();
        to.dispose();
      }
    }
    return {
      k: narrow(this.keys[layer]!, 0, this.first, B),
      v: narrow(this.values[layer]!, 0, this.first, B),
      length: this.length + T,
    };
  }

  override advance(T: number): void {
    for (let b = 0; b < this.rows; b++) this.lengths[this.first + b] += T;
    this.length += T;
  }

  /**
   * The key mask [rows, length + T] of the selected rows for a step of T new positions: row b sees its own
   * lengths[b] + T positions. Null when every row has the same length (nothing to hide).
   */
  keyMask(T: number): Uint8Array | null {
    const lens = this.lengths.subarray(this.first, this.first + this.rows);
    if (lens.every((l) => l === this.length)) return null;
    const S = this.length + T;
    const m = new Uint8Array(this.rows * S);
    for (let b = 0; b < this.rows; b++) m.fill(1, b * S, b * S + lens[b]! + T);
    return m;
  }

  /** Empties slot `slot` and moves slot `last` (the last occupied one) into it, so occupied slots stay compact. */
  release(slot: number, last: number): void {
    if (slot !== last) {
      const n = this.lengths[last]!;
      for (const bufs of [this.keys, this.values])
        for (const buf of bufs) {
          const from = narrow(narrow(buf, 0, last, 1), 1, 0, n);
          const to = narrow(narrow(buf, 0, slot, 1), 1, 0, n);
          backend().copyStrided(from.data, [...from.strides], to.data, [...to.strides], [...from.shape]);
          from.dispose();
          to.dispose();
        }
      this.lengths[slot] = n;
    }
    this.lengths[last] = 0;
  }
}
