/** Reductions, accumulated in double precision. */

/** `out[o·inner + i] = Σ_r x[(o·red + r)·inner + i]` for o < outer, i < inner (overwrites `out`). */
export function sum(x: Float32Array, out: Float32Array, outer: number, red: number, inner: number): void {
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    for (let r = 0; r < red; r++) {
      const row = (o * red + r) * inner;
      for (let i = 0; i < inner; i++) acc[i] += x[row + i];
    }
    out.set(acc, o * inner);
  }
}

/** Σ x[i]² over i < n, in double precision. */
export function sumSquares(x: Float32Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * x[i];
  return s;
}
