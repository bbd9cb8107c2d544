/** RMSNorm and LayerNorm over the rows of a [rows, cols] matrix, forward and backward; row statistics in double. */

/** RMSNorm: `rstd = 1/√(mean(x²) + eps)`, `out = x·rstd·w` (w null = 1); writes `rstd` [rows]. */
export function rmsNorm(x: Float32Array, w: Float32Array | null, out: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let j = 0; j < cols; j++) ss += x[o + j] * x[o + j];
    const rs = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) out[o + j] = x[o + j] * rs * (w ? w[j] : 1);
  }
}

/**
 * Backward of {@link rmsNorm}. With g = gy·w and r = rstd: `gx = r·(g − x·r²·mean(g·x))`; `gw += Σ_rows gy·x·r`.
 */
export function rmsNormBackward(
  x: Float32Array,
  w: Float32Array | null,
  rstd: Float32Array,
  gy: Float32Array,
  gx: Float32Array,
  gw: Float32Array | null,
  rows: number,
  cols: number,
): void {
  const gwAcc = gw ? new Float64Array(cols) : null;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const rs = rstd[r];
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += gy[o + j] * (w ? w[j] : 1) * x[o + j];
    const c = (rs * rs * dot) / cols;
    for (let j = 0; j < cols; j++) {
      gx[o + j] = rs * (gy[o + j] * (w ? w[j] : 1) - x[o + j] * c);
      if (gwAcc) gwAcc[j] += gy[o + j] * x[o + j] * rs;
    }
  }
  if (gw && gwAcc) for (let j = 0; j < cols; j++) gw[j] += gwAcc[j];
}

/** LayerNorm: `out = (x − mean)·rstd·w + b` (w, b null = 1, 0), population variance; writes `mean`, `rstd` [rows]. */
export function layerNorm(
  x: Float32Array,
  w: Float32Array | null,
  b: Float32Array | null,
  out: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  rows: number,
  cols: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[o + j];
    const mu = s / cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[o + j] - mu) * (x[o + j] - mu);
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) out[o + j] = (x[o + j] - mu) * rs * (w ? w[j] : 1) + (b ? b[j] : 0);
  }
}

/**
 * Backward of {@link layerNorm}. With x̂ = (x − mean)·rstd and g = gy·w:
 * `gx = rstd·(g − mean(g) − x̂·mean(g·x̂))`; `gw += Σ_rows gy·x̂`, `gb += Σ_rows gy`.
 */
export function layerNormBackward(
  x: Float32Array,
  w: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  gy: Float32Array,
  gx: Float32Array,
  gw: Float32Array | null,
  gb: Float32Array | null,
  rows: number,
  cols: number,
): void {
  const gwAcc = gw ? new Float64Array(cols) : null;
  const gbAcc = gb ? new Float64Array(cols) : null;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const mu = mean[r];
    const rs = rstd[r];
    let gSum = 0;
    let gxhSum = 0;
    for (let j = 0; j < cols; j++) {
      const g = gy[o + j] * (w ? w[j] : 1);
      gSum += g;
      gxhSum += g * (x[o + j] - mu) * rs;
    }
    for (let j = 0; j < cols; j++) {
      const xh = (x[o + j] - mu) * rs;
      gx[o + j] = rs * (gy[o + j] * (w ? w[j] : 1) - gSum / cols - (xh * gxhSum) / cols);
      if (gwAcc) gwAcc[j] += gy[o + j] * xh;
      if (gbAcc) gbAcc[j] += gy[o + j];
    }
  }
  if (gw && gwAcc) for (let j = 0; j < cols; j++) gw[j] += gwAcc[j];
  if (gb && gbAcc) for (let j = 0; j < cols; j++) gb[j] += gbAcc[j];
}
