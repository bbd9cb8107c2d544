/**
 * The leading r steps of an LU factorisation with partial pivoting, in LDU form: for W [m, n],
 *   P·W = L·D·U  →  W ≈ (Pᵀ·L)[:, :r]·diag(d[:r])·U[:r, :]
 * with L unit lower-triangular, U unit upper-triangular (rows scaled by their pivots d). Only r elimination steps
 * run (r·m·n work), in f64. Deterministic: the same weight gives the same factors, so they are recomputed from
 * the base weight rather than stored.
 */
export interface Ldu {
  /** (Pᵀ·L)[:, :r], row-major [m, r]: the pivoted lower factor in the weight's original row order. */
  l: Float32Array;
  /** The pivots d[:r]. */
  d: Float32Array;
  /** U[:r, :], row-major [r, n], unit diagonal. */
  u: Float32Array;
}

/** The leading-r LDU factors of the row-major [m, n] matrix `w` (r ≤ min(m, n)). */
export function leadingLdu(w: ArrayLike<number>, m: number, n: number, r: number): Ldu {
  if (!(Number.isInteger(r) && r >= 1 && r <= Math.min(m, n))) throw new Error(`leadingLdu: r must be in [1, ${Math.min(m, n)}], got ${r}`);
  const a = Float64Array.from(w);
  const perm = Array.from({ length: m }, (_, i) => i);
  const l = new Float32Array(m * r);
  const d = new Float32Array(r);
  const u = new Float32Array(r * n);
  for (let k = 0; k < r; k++) {
    let p = k;
    for (let i = k + 1; i < m; i++) if (Math.abs(a[i * n + k]!) > Math.abs(a[p * n + k]!)) p = i;
    if (p !== k) {
      // Rows of l are kept by original row index, so a swap only moves the working rows and the permutation.
      for (let j = 0; j < n; j++) [a[k * n + j], a[p * n + j]] = [a[p * n + j]!, a[k * n + j]!];
      [perm[k], perm[p]] = [perm[p]!, perm[k]!];
    }
    const pivot = a[k * n + k]!;
    if (pivot === 0) throw new Error(`leadingLdu: the weight has rank ${k} < r = ${r}; lower r`);
    d[k] = pivot;
    for (let j = k; j < n; j++) u[k * n + j] = a[k * n + j]! / pivot;
    l[perm[k]! * r + k] = 1;
    for (let i = k + 1; i < m; i++) {
      const f = a[i * n + k]! / pivot;
      l[perm[i]! * r + k] = f;
      if (f !== 0) for (let j = k; j < n; j++) a[i * n + j]! -= f * a[k * n + j]!;
    }
  }
  return { l, d, u };
}
