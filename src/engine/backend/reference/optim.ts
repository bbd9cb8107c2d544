/** Fused optimizer steps: AdamW and SGD with momentum (PyTorch semantics). */

/**
 * One AdamW step: `p −= lr·wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr·(m/bc1)/(√(v/bc2) + eps)`,
 * with the bias corrections bc1 = 1 − β1^t, bc2 = 1 − β2^t passed in.
 */
export function adamw(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  n: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  bc1: number,
  bc2: number,
): void {
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = beta1 * m[i] + (1 - beta1) * gi;
    const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i] - lr * weightDecay * p[i];
    p[i] = pi - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
  }
}

/**
 * SGD with momentum: `g' = g + wd·p; buf = first ? g' : μ·buf + (1 − dampening)·g'; d = nesterov ? g' + μ·buf : buf;
 * p −= lr·d`. With μ = 0, d = g' and `buf` is left untouched (PyTorch keeps no buffer then).
 */
export function sgd(
  p: Float32Array,
  g: Float32Array,
  buf: Float32Array,
  n: number,
  lr: number,
  momentum: number,
  dampening: number,
  weightDecay: number,
  nesterov: boolean,
  first: boolean,
): void {
  for (let i = 0; i < n; i++) {
    const gi = g[i] + weightDecay * p[i];
    let d = gi;
    if (momentum !== 0) {
      const b = first ? gi : momentum * buf[i] + (1 - dampening) * gi;
      buf[i] = b;
      d = nesterov ? gi + momentum * b : b;
    }
    p[i] -= lr * d;
  }
}
