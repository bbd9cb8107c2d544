// Dense linear algebra, the reference twin of native/linalg.cc: thin SVD by one-sided Jacobi (Hestenes) and a
// linear solve by LU with partial pivoting, both in double precision.

/** Largest number of Jacobi sweeps before {@link svd} gives up (convergence is quadratic; 10–15 is typical). */
const MAX_SWEEPS = 60;

/**
 * Thin SVD of row-major `a` [m, n] = `u` [m, k] · diag(`s` [k]) · `vt` [k, n], k = min(m, n), `s` descending and
 * non-negative; `a` is not modified. Columns of `u` (rows of `vt`) for zero singular values are completed to an
 * orthonormal set.
 */
export function svd(a: Float32Array, m: number, n: number, u: Float32Array, s: Float32Array, vt: Float32Array): void {
  const k = Math.min(m, n);
  if (a.length < m * n || u.length < m * k || s.length < k || vt.length < k * n) {
    throw new Error(`svd: buffers too small for [${m}, ${n}] (a ${a.length}, u ${u.length}, s ${s.length}, vt ${vt.length})`);
  }
  if (k === 0) return;
  // Jacobi orthogonalises the columns of a tall matrix; for a wide one, work on aᵀ and swap the roles of u and v.
  const tall = m >= n;
  const rows = tall ? m : n;
  // cols[j] is column j of the tall matrix G (G = a or aᵀ), stored contiguously; v accumulates the rotations.
  const cols = Array.from({ length: k }, (_, j) => {
    const c = new Float64Array(rows);
    for (let i = 0; i < rows; i++) c[i] = tall ? a[i * n + j] : a[j * n + i];
    return c;
  });
  const v = Array.from({ length: k }, (_, j) => {
    const c = new Float64Array(k);
    c[j] = 1;
    return c;
  });
  for (let sweep = 0; ; sweep++) {
    if (sweep === MAX_SWEEPS) throw new Error(`svd: Jacobi did not converge on the [${m}, ${n}] matrix in ${MAX_SWEEPS} sweeps (NaN or inf in it?)`);
    let rotated = false;
    for (let p = 0; p < k - 1; p++) {
      for (let q = p + 1; q < k; q++) {
        const cp = cols[p], cq = cols[q];
        let alpha = 0, beta = 0, gamma = 0;
        for (let i = 0; i < rows; i++) {
          alpha += cp[i] * cp[i];
          beta += cq[i] * cq[i];
          gamma += cp[i] * cq[i];
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta) || gamma === 0) continue;
        rotated = true;
        // The rotation that zeroes the (p, q) entry of GᵀG.
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t), sn = c * t;
        for (let i = 0; i < rows; i++) {
          const x = cp[i], y = cq[i];
          cp[i] = c * x - sn * y;
          cq[i] = sn * x + c * y;
        }
        const vp = v[p], vq = v[q];
        for (let i = 0; i < k; i++) {
          const x = vp[i], y = vq[i];
          vp[i] = c * x - sn * y;
          vq[i] = sn * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  // Singular values are the column norms; the left vectors are the normalised columns.
  const sigma = cols.map((c) => Math.sqrt(c.reduce((acc, x) => acc + x * x, 0)));
  const order = sigma.map((_, j) => j).sort((x, y) => sigma[y] - sigma[x]);
  const tol = (sigma[order[0]] || 1) * Math.max(m, n) * 1e-15;
  const left: Float64Array[] = [];
  for (const j of order) {
    const c = cols[j];
    if (sigma[j] > tol) {
      left.push(c.map((x) => x / sigma[j]));
      continue;
    }
    // A zero singular value: complete with the first standard basis vector independent of the vectors so far.
    for (let e = 0; e < rows; e++) {
      const w = new Float64Array(rows);
      w[e] = 1;
      for (const b of left) {
        const d = b[e];
        for (let i = 0; i < rows; i++) w[i] -= d * b[i];
      }
      const norm = Math.sqrt(w.reduce((acc, x) => acc + x * x, 0));
      if (norm > 1e-6) {
        left.push(w.map((x) => x / norm));
        break;
      }
    }
  }
  // G = L·S·Vᵀ. Tall: a = G, u = L, vt = Vᵀ. Wide: a = Gᵀ = V·S·Lᵀ, u = V, vt = Lᵀ.
  order.forEach((j, r) => {
    s[r] = sigma[j] > tol ? sigma[j] : 0;
    const l = left[r], w = v[j];
    for (let i = 0; i < rows; i++) {
      if (tall) u[i * k + r] = l[i];
      else vt[r * n + i] = l[i];
    }
    for (let i = 0; i < k; i++) {
      if (tall) vt[r * n + i] = w[i];
      else u[i * k + r] = w[i];
    }
  });
}

/**
 * `x` [n, nrhs] = `a`⁻¹ · `b` for row-major `a` [n, n] and `b` [n, nrhs], by LU with partial pivoting in double
 * precision. Throws when `a` is singular.
 */
export function solve(a: Float32Array, b: Float32Array, n: number, nrhs: number, x: Float32Array): void {
  if (a.length < n * n || b.length < n * nrhs || x.length < n * nrhs) {
    throw new Error(`solve: buffers too small for n=${n}, nrhs=${nrhs} (a ${a.length}, b ${b.length}, x ${x.length})`);
  }
  const lu = Float64Array.from(a.subarray(0, n * n));
  const rhs = Float64Array.from(b.subarray(0, n * nrhs));
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(lu[r * n + col]) > Math.abs(lu[piv * n + col])) piv = r;
    if (lu[piv * n + col] === 0) throw new Error(`solve: the [${n}, ${n}] matrix is singular (zero pivot at ${col + 1})`);
    if (piv !== col) {
      for (let j = 0; j < n; j++) [lu[col * n + j], lu[piv * n + j]] = [lu[piv * n + j], lu[col * n + j]];
      for (let j = 0; j < nrhs; j++) [rhs[col * nrhs + j], rhs[piv * nrhs + j]] = [rhs[piv * nrhs + j], rhs[col * nrhs + j]];
    }
    const d = lu[col * n + col];
    for (let r = col + 1; r < n; r++) {
      const f = lu[r * n + col] / d;
      if (f === 0) continue;
      for (let j = col; j < n; j++) lu[r * n + j] -= f * lu[col * n + j];
      for (let j = 0; j < nrhs; j++) rhs[r * nrhs + j] -= f * rhs[col * nrhs + j];
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    for (let j = 0; j < nrhs; j++) {
      let acc = rhs[r * nrhs + j];
      for (let c = r + 1; c < n; c++) acc -= lu[r * n + c] * rhs[c * nrhs + j];
      rhs[r * nrhs + j] = acc / lu[r * n + r];
    }
  }
  x.set(rhs);
}
