/**
 * Index walking shared by the strided kernels (copyStrided, binary, where): visits every row of a shape of rank ≤ 8
 * and hands the caller each operand's element offset at the start of that row; the caller loops the last axis.
 */

/** The most axes a strided kernel accepts. */
export const MAX_RANK = 8;

/**
 * Calls `row(offsets)` once per index of `shape` without its last axis, where `offsets[k]` is operand k's element
 * offset Σ strides[k][d]·idx[d] at column 0 of that row. Returns the length of the last axis (1 for rank 0) and
 * each operand's stride along it, so the caller can walk the row. Throws on rank > 8 or a stride list whose length
 * differs from the shape's.
 */
export function forEachRow(
  kernel: string,
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  row: (offsets: readonly number[], cols: number, colStrides: readonly number[]) => void,
): void {
  const rank = shape.length;
  if (rank > MAX_RANK) throw new RangeError(`${kernel}: rank ${rank} exceeds ${MAX_RANK} (shape [${shape}])`);
  strides.forEach((s, k) => {
    if (s.length !== rank) throw new RangeError(`${kernel}: stride list ${k} [${s}] does not match shape [${shape}]`);
  });
  if (shape.some((d) => d === 0)) return;
  const cols = rank === 0 ? 1 : shape[rank - 1];
  const colStrides = strides.map((s) => (rank === 0 ? 0 : s[rank - 1]));
  const outer = rank === 0 ? 0 : rank - 1; // axes walked by the odometer
  const idx = new Array<number>(outer).fill(0);
  const offsets = strides.map(() => 0);
  for (;;) {
    row(offsets, cols, colStrides);
    // Advance the odometer over axes outer-1 … 0, updating offsets incrementally.
    let d = outer - 1;
    for (; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < strides.length; k++) offsets[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < strides.length; k++) offsets[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}
