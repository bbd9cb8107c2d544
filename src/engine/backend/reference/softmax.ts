/** Row-wise softmax / log-softmax over the last axis, with the max subtracted and the denominator summed in double. */

/** Softmax (or log-softmax when `log`) of each row of x [rows, cols] into `out`. */
export function softmax(x: Float32Array, out: Float32Array, rows: number, cols: number, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, x[o + j]);
    let den = 0;
    for (let j = 0; j < cols; j++) den += Math.exp(x[o + j] - max);
    const logDen = Math.log(den);
    for (let j = 0; j < cols; j++) out[o + j] = log ? x[o + j] - max - logDen : Math.exp(x[o + j] - max) / den;
  }
}

/**
 * Backward of {@link softmax} from its output y:
 * softmax: `gx = y ⊙ (gy − Σ gy·y)`; log-softmax: `gx = gy − exp(y)·Σ gy`.
 */
export function softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, cols: number, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += log ? gy[o + j] : gy[o + j] * y[o + j];
    for (let j = 0; j < cols; j++) gx[o + j] = log ? gy[o + j] - Math.exp(y[o + j]) * dot : y[o + j] * (gy[o + j] - dot);
  }
}
