/**
 * Scaled-dot-product attention with grouped-query heads, causal offset and key padding mask. As the oracle this
 * materialises one query row of scores at a time, in double precision; the native kernel is the block-wise one.
 */

/** Shapes and flags shared by the forward and backward pass. */
interface Dims {
  B: number;
  T: number;
  S: number;
  sCap: number;
  H: number;
  KVH: number;
  D: number;
  causal: boolean;
}

/**
 * Calls `row(b, h, t, kvh, keys)` for every query, where `keys` lists the key positions it attends: j < S, j ≤ S − T + t
 * when causal, keyMask[b·S + j] ≠ 0 when a mask is given.
 */
function forEachQuery(
  kernel: string,
  keyMask: Uint8Array | null,
  d: Dims,
  row: (b: number, h: number, t: number, kvh: number, keys: number[]) => void,
): void {
  const { B, T, S, sCap, H, KVH, causal } = d;
  if (KVH < 1 || H % KVH !== 0) throw new RangeError(`${kernel}: H (${H}) must be a multiple of KVH (${KVH})`);
  if (causal && T > S) throw new RangeError(`${kernel}: causal attention needs T (${T}) ≤ S (${S})`);
  if (sCap < S) throw new RangeError(`${kernel}: sCap (${sCap}) must be ≥ S (${S})`);
  const group = H / KVH;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const last = causal ? Math.min(S - 1, S - T + t) : S - 1;
      const keys: number[] = [];
      for (let j = 0; j <= last; j++) if (!keyMask || keyMask[b * S + j] !== 0) keys.push(j);
      for (let h = 0; h < H; h++) row(b, h, t, Math.floor(h / group), keys);
    }
}

/** scale · q_(b,t,h) · k_(b,j,kvh) in double precision. */
function score(q: Float32Array, k: Float32Array, qo: number, ko: number, D: number, scale: number): number {
  let s = 0;
  for (let i = 0; i < D; i++) s += q[qo + i] * k[ko + i];
  return s * scale;
}

/**
 * Attention forward: `out = softmax(scale·q·kᵀ)·v` over the visible keys and `lse` [B, H, T], the log-sum-exp of
 * the scaled scores. A query that sees no key gets out = 0 and lse = −∞ (the log-sum-exp of nothing).
 */
export function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  lse: Float32Array,
  keyMask: Uint8Array | null,
  B: number,
  T: number,
  S: number,
  sCap: number,
  H: number,
  KVH: number,
  D: number,
  scale: number,
  causal: boolean,
): void {
  const acc = new Float64Array(D);
  forEachQuery('attention', keyMask, { B, T, S, sCap, H, KVH, D, causal }, (b, h, t, kvh, keys) => {
    const qo = ((b * T + t) * H + h) * D;
    const kvo = (j: number): number => ((b * sCap + j) * KVH + kvh) * D;
    const scores = keys.map((j) => score(q, k, qo, kvo(j), D, scale));
    const max = scores.reduce((m, x) => Math.max(m, x), -Infinity); // −∞ when no key is visible
    acc.fill(0);
    let den = 0;
    keys.forEach((j, n) => {
      const p = Math.exp(scores[n] - max);
      den += p;
      for (let i = 0; i < D; i++) acc[i] += p * v[kvo(j) + i];
    });
    for (let i = 0; i < D; i++) out[qo + i] = den > 0 ? acc[i] / den : 0;
    lse[(b * H + h) * T + t] = den > 0 ? max + Math.log(den) : -Infinity;
  });
}

/**
 * Attention backward from the saved `lse`: with p_j = exp(s_j − lse), dp_j = gout·v_j and δ = gout·out,
 * `gv_j += p_j·gout`, `ds_j = p_j(dp_j − δ)`, `gq += scale·Σ ds_j·k_j`, `gk_j += scale·ds_j·q`.
 * Writes gq [B,T,H,D] and gk, gv [B,S,KVH,D] (overwritten).
 */
export function attentionBackward(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  lse: Float32Array,
  keyMask: Uint8Array | null,
  gout: Float32Array,
  gq: Float32Array,
  gk: Float32Array,
  gv: Float32Array,
  B: number,
  T: number,
  S: number,
  sCap: number,
  H: number,
  KVH: number,
  D: number,
  scale: number,
  causal: boolean,
): void {
  const gqAcc = new Float64Array(B * T * H * D);
  const gkAcc = new Float64Array(B * S * KVH * D);
  const gvAcc = new Float64Array(B * S * KVH * D);
  forEachQuery('attentionBackward', keyMask, { B, T, S, sCap, H, KVH, D, causal }, (b, h, t, kvh, keys) => {
    const qo = ((b * T + t) * H + h) * D;
    const l = lse[(b * H + h) * T + t];
    let delta = 0;
    for (let i = 0; i < D; i++) delta += gout[qo + i] * out[qo + i];
    for (const j of keys) {
      const ko = ((b * sCap + j) * KVH + kvh) * D; // k, v rows (capacity sCap)
      const go = ((b * S + j) * KVH + kvh) * D; // gk, gv rows (dense, S)
      const p = Math.exp(score(q, k, qo, ko, D, scale) - l);
      let dp = 0;
      for (let i = 0; i < D; i++) dp += gout[qo + i] * v[ko + i];
      const ds = p * (dp - delta) * scale;
      for (let i = 0; i < D; i++) {
        gvAcc[go + i] += p * gout[qo + i];
        gqAcc[qo + i] += ds * k[ko + i];
        gkAcc[go + i] += ds * q[qo + i];
      }
    }
  });
  gq.set(gqAcc);
  gk.set(gkAcc);
  gv.set(gvAcc);
}
