/**
 * Reference twin of the native `loraGather` (native/lora_gather.cc): heterogeneous-batch LoRA, Punica's BGMV.
 * For every row r with a = rowAdapter[r] ≥ 0: `y[r, :] += scale[a] · B_a · (A_a · x[r, :])`, where adapter a owns
 * rows [offset[a], offset[a] + rank[a]) of the pools `a` (rows of length inF) and `bT` (Bᵀ, rows of length outF).
 * Rows with a = −1 are left untouched.
 */
export function loraGather(
  x: Float32Array,
  y: Float32Array,
  rowAdapter: Int32Array,
  a: Float32Array,
  bT: Float32Array,
  offset: Int32Array,
  rank: Int32Array,
  scale: Float32Array,
  rows: number,
  inF: number,
  outF: number,
  nAdapters: number,
): void {
  const need = (arr: ArrayLike<number>, name: string, n: number) => {
    if (arr.length < n) throw new RangeError(`loraGather: ${name} has ${arr.length} elements, needs ${n}`);
  };
  need(x, 'x', rows * inF);
  need(y, 'y', rows * outF);
  need(rowAdapter, 'rowAdapter', rows);
  need(offset, 'offset', nAdapters);
  need(rank, 'rank', nAdapters);
  need(scale, 'scale', nAdapters);
  const poolA = inF ? Math.floor(a.length / inF) : 0;
  const poolB = outF ? Math.floor(bT.length / outF) : 0;
  for (let r = 0; r < rows; r++) {
    const id = rowAdapter[r]!;
    if (id === -1) continue;
    if (id < -1 || id >= nAdapters) throw new RangeError(`loraGather: rowAdapter[${r}] = ${id} is outside [-1, ${nAdapters})`);
    const o = offset[id]!;
    const k = rank[id]!;
    if (o < 0 || k < 0 || o + k > poolA || o + k > poolB)
      throw new RangeError(`loraGather: adapter ${id} (offset ${o}, rank ${k}) lies outside the pools (${poolA} rows of A, ${poolB} rows of bT)`);
  }
  for (let r = 0; r < rows; r++) {
    const id = rowAdapter[r]!;
    if (id < 0) continue;
    const o = offset[id]!;
    const k = rank[id]!;
    for (let j = 0; j < k; j++) {
      let h = 0;
      for (let i = 0; i < inF; i++) h += a[(o + j) * inF + i]! * x[r * inF + i]!;
      h *= scale[id]!;
      for (let i = 0; i < outF; i++) y[r * outF + i] += h * bT[(o + j) * outF + i]!;
    }
  }
}
