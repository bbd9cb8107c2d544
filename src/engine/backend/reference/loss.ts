/** Cross-entropy fused with log-softmax, forward and backward. */

/** Throws unless target `t` of row i is in [0, V) or equals `ignoreIndex`; returns whether the row counts. */
function counts(kernel: string, t: number, i: number, V: number, ignoreIndex: number): boolean {
  if (t === ignoreIndex) return false;
  if (t < 0 || t >= V) throw new RangeError(`${kernel}: targets[${i}] = ${t} is outside [0, ${V}) and is not ignoreIndex (${ignoreIndex})`);
  return true;
}

/**
 * Per row of logits [N, V]: `lse[i]` = log Σ_j exp(logits[i, j]) (written for every row) and
 * `losses[i] = lse[i] − logits[i, t_i]` (0 for rows whose target is `ignoreIndex`). Returns the rows not ignored.
 */
export function crossEntropy(logits: Float32Array, targets: Int32Array, losses: Float32Array, lse: Float32Array, N: number, V: number, ignoreIndex: number): number {
  let kept = 0;
  for (let i = 0; i < N; i++) {
    const o = i * V;
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[o + j]);
    let den = 0;
    for (let j = 0; j < V; j++) den += Math.exp(logits[o + j] - max);
    const l = max + Math.log(den);
    lse[i] = l;
    const keep = counts('crossEntropy', targets[i], i, V, ignoreIndex);
    losses[i] = keep ? l - logits[o + targets[i]] : 0;
    if (keep) kept++;
  }
  return kept;
}

/** `gl[i, :] = gy[i]·(softmax(logits_i) − onehot(t_i))` from the saved `lse`; zero rows for ignored targets. */
export function crossEntropyBackward(
  logits: Float32Array,
  targets: Int32Array,
  lse: Float32Array,
  gy: Float32Array,
  gl: Float32Array,
  N: number,
  V: number,
  ignoreIndex: number,
): void {
  for (let i = 0; i < N; i++) {
    const o = i * V;
    const t = targets[i];
    if (!counts('crossEntropyBackward', t, i, V, ignoreIndex)) {
      gl.fill(0, o, o + V);
      continue;
    }
    for (let j = 0; j < V; j++) gl[o + j] = gy[i] * (Math.exp(logits[o + j] - lse[i]) - (j === t ? 1 : 0));
  }
}
