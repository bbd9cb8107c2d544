// The native addon's fused kernels (softmax, norms, RoPE, attention, embedding, cross-entropy, optimizers)
// against plain float64 JavaScript written here: materialised-softmax attention, naive norms, and central
// finite differences of those float64 forwards for every backward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Rng } from '../helpers/random.js';
import type { Kernels } from '../../src/engine/backend/kernels.js';

const k = createRequire(import.meta.url)('../../build/Release/peftjs.node') as Kernels;

/** Deterministic uniform values in [lo, hi). */
const rand = (n: number, seed: number, lo = -1, hi = 1): Float32Array => new Rng(seed).f32Uniform(n, lo, hi);

/** Asserts |got − want| ≤ tol·(1 + |want|) element-wise. */
function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (w === -Infinity && g === -Infinity) continue;
    assert.ok(Math.abs(g - w) <= tol * (1 + Math.abs(w)), `${what}[${i}]: got ${g}, want ${w}`);
  }
}

/**
 * d/dx_i of f at x by central differences in float64, for each index in `at` (all when omitted).
 * `f` reads x as float64.
 */
function numGrad(f: (x: Float64Array) => number, x: ArrayLike<number>, at?: number[], h = 1e-5): Map<number, number> {
  const xd = Float64Array.from(x);
  const g = new Map<number, number>();
  for (const i of at ?? [...xd.keys()]) {
    const x0 = xd[i];
    xd[i] = x0 + h;
    const fp = f(xd);
    xd[i] = x0 - h;
    const fm = f(xd);
    xd[i] = x0;
    g.set(i, (fp - fm) / (2 * h));
  }
  return g;
}

/** Asserts the kernel gradient `got` matches the numeric gradient at the sampled indices. */
function closeAt(got: ArrayLike<number>, want: Map<number, number>, tol: number, what: string): void {
  for (const [i, w] of want) assert.ok(Math.abs(got[i] - w) <= tol * (1 + Math.abs(w)), `${what}[${i}]: got ${got[i]}, want ${w}`);
}

/** `count` distinct-ish sample indices in [0, n) (all of them when n ≤ count). */
function sample(n: number, count: number, seed: number): number[] {
  if (n <= count) return [...Array(n).keys()];
  return [...rand(count, seed, 0, n)].map(Math.floor);
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

// ------------------------------------------------------------------------------------------------ softmax

function softmaxRef(x: ArrayLike<number>, rows: number, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let j = 0; j < cols; j++) mx = Math.max(mx, x[r * cols + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j] - mx);
    for (let j = 0; j < cols; j++) {
      const z = x[r * cols + j] - mx - Math.log(s);
      out[r * cols + j] = log ? z : Math.exp(z);
    }
  }
  return out;
}

for (const [rows, cols] of [[1, 1], [7, 13], [300, 129]] as const) {
  for (const log of [false, true]) {
    test(`softmax ${rows}×${cols} log=${log}: forward and backward match float64`, () => {
      const x = rand(rows * cols, 1, -6, 6);
      const y = new Float32Array(rows * cols);
      k.softmax(x, y, rows, cols, log);
      close(y, softmaxRef(x, rows, cols, log), 2e-6, 'y');
      const gy = rand(rows * cols, 2);
      const gx = new Float32Array(rows * cols).fill(NaN);
      k.softmaxBackward(y, gy, gx, rows, cols, log);
      const at = sample(rows * cols, 40, 3);
      closeAt(gx, numGrad((xd) => dot(softmaxRef(xd, rows, cols, log), gy), x, at), 1e-4, 'gx');
    });
  }
}

// ------------------------------------------------------------------------------------------------ norms

/** LayerNorm (centered) or RMSNorm in float64; null w/b mean 1/0. */
function normRef(x: ArrayLike<number>, w: ArrayLike<number> | null, b: ArrayLike<number> | null, rows: number, cols: number, eps: number, centered: boolean) {
  const out = new Float64Array(rows * cols), mean = new Float64Array(rows), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    if (centered) {
      for (let j = 0; j < cols; j++) mu += x[r * cols + j];
      mu /= cols;
    }
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[r * cols + j] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) out[r * cols + j] = (x[r * cols + j] - mu) * rs * (w ? w[j] : 1) + (b ? b[j] : 0);
  }
  return { out, mean, rstd };
}

for (const centered of [false, true]) {
  const name = centered ? 'layerNorm' : 'rmsNorm';
  for (const [rows, cols, affine] of [[1, 5, true], [9, 33, false], [300, 130, true]] as const) {
    test(`${name} ${rows}×${cols} affine=${affine}: forward, gx and accumulated gw/gb match float64`, () => {
      const eps = 1e-5;
      const x = rand(rows * cols, 10, -2, 3);
      const w = affine ? rand(cols, 11, 0.5, 1.5) : null;
      const b = affine && centered ? rand(cols, 12) : null;
      const ref = normRef(x, w, b, rows, cols, eps, centered);
      const out = new Float32Array(rows * cols), mean = new Float32Array(rows), rstd = new Float32Array(rows);
      if (centered) k.layerNorm(x, w, b, out, mean, rstd, rows, cols, eps);
      else k.rmsNorm(x, w, out, rstd, rows, cols, eps);
      close(out, ref.out, 1e-5, 'out');
      close(rstd, ref.rstd, 1e-5, 'rstd');
      if (centered) close(mean, ref.mean, 1e-6, 'mean');

      const gy = rand(rows * cols, 13);
      const gx = new Float32Array(rows * cols).fill(NaN);
      const gw = affine ? new Float32Array(cols).fill(1) : null; // accumulates onto 1
      const gb = affine && centered ? new Float32Array(cols).fill(-2) : null; // accumulates onto −2
      if (centered) k.layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, cols);
      else k.rmsNormBackward(x, w, rstd, gy, gx, gw, rows, cols);
      const loss = (xd: ArrayLike<number>, wd: ArrayLike<number> | null, bd: ArrayLike<number> | null) =>
        dot(normRef(xd, wd, bd, rows, cols, eps, centered).out, gy);
      closeAt(gx, numGrad((xd) => loss(xd, w, b), x, sample(rows * cols, 40, 14)), 1e-3, 'gx');
      if (gw && w) {
        const num = numGrad((wd) => loss(x, wd, b), w);
        closeAt(gw.map((v) => v - 1), num, 1e-3, 'gw');
      }
      if (gb && b) closeAt(gb.map((v) => v + 2), numGrad((bd) => loss(x, w, bd), b), 1e-3, 'gb');
    });
  }
}

// ------------------------------------------------------------------------------------------------ rope

function ropeRef(x: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, H: number, D: number, cbs: number, interleaved: boolean, inverse: boolean): Float64Array {
  const out = new Float64Array(x.length), half = D / 2;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < half; i++) {
          const base = ((b * T + t) * H + h) * D;
          const [i0, i1] = interleaved ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + half];
          const c = cos[b * cbs + t * half + i], s = (inverse ? -1 : 1) * sin[b * cbs + t * half + i];
          out[i0] = x[i0] * c - x[i1] * s;
          out[i1] = x[i0] * s + x[i1] * c;
        }
  return out;
}

for (const interleaved of [false, true]) {
  test(`rope interleaved=${interleaved}: matches float64, per-batch tables, inverse undoes it in place`, () => {
    const [B, T, H, D] = [2, 5, 3, 8];
    const half = D / 2;
    for (const cbs of [0, T * half]) {
      const angles = rand((cbs ? B : 1) * T * half, 20, -3, 3);
      const cos = angles.map(Math.cos), sin = angles.map(Math.sin);
      const x = rand(B * T * H * D, 21);
      const out = new Float32Array(x.length);
      k.rope(x, out, cos, sin, B, T, H, D, cbs, interleaved, false);
      close(out, ropeRef(x, cos, sin, B, T, H, D, cbs, interleaved, false), 1e-6, 'out');
      k.rope(out, out, cos, sin, B, T, H, D, cbs, interleaved, true);
      close(out, x, 1e-6, 'inverse(rope(x))');
    }
  });
}

// ------------------------------------------------------------------------------------------------ attention

interface AttnCase {
  B: number; T: number; S: number; sCap: number; H: number; KVH: number; D: number; causal: boolean;
  /** Keys masked out per batch entry (nullable mask when absent). */
  masked?: (b: number, j: number) => boolean;
  /** Whether some query rows see no key at all. */
  emptyRows?: boolean;
}

/** Materialised-softmax attention in float64: out [B,T,H,D] and lse [B,H,T] (−inf and zeros for rows that see nothing). */
function attentionRef(c: AttnCase, q: ArrayLike<number>, kk: ArrayLike<number>, v: ArrayLike<number>, mask: Uint8Array | null, scale: number) {
  const { B, T, S, sCap, H, KVH, D, causal } = c;
  const out = new Float64Array(B * T * H * D), lse = new Float64Array(B * H * T);
  const s = new Float64Array(S);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / KVH));
      for (let t = 0; t < T; t++) {
        let mx = -Infinity;
        for (let j = 0; j < S; j++) {
          const visible = (!causal || j <= S - T + t) && (!mask || mask[b * S + j] !== 0);
          let d = 0;
          for (let e = 0; e < D; e++) d += q[((b * T + t) * H + h) * D + e] * kk[((b * sCap + j) * KVH + kvh) * D + e];
          s[j] = visible ? d * scale : -Infinity;
          mx = Math.max(mx, s[j]);
        }
        lse[(b * H + h) * T + t] = -Infinity;
        if (mx === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < S; j++) sum += Math.exp(s[j] - mx);
        lse[(b * H + h) * T + t] = mx + Math.log(sum);
        for (let j = 0; j < S; j++) {
          const p = Math.exp(s[j] - mx) / sum;
          for (let e = 0; e < D; e++) out[((b * T + t) * H + h) * D + e] += p * v[((b * sCap + j) * KVH + kvh) * D + e];
        }
      }
    }
  return { out, lse };
}

/** Rebuilds [B, sCap, KVH, D] from a dense [B, S, KVH, D] perturbation point (FD runs on the dense layout). */
function toCap(c: AttnCase, dense: ArrayLike<number>, cap: Float32Array): Float64Array {
  const r = Float64Array.from(cap);
  const row = c.KVH * c.D;
  for (let b = 0; b < c.B; b++)
    for (let j = 0; j < c.S; j++)
      for (let e = 0; e < row; e++) r[(b * c.sCap + j) * row + e] = dense[(b * c.S + j) * row + e];
  return r;
}

const attnCases: [string, AttnCase][] = [
  ['T=1 decode step, D=64, causal', { B: 2, T: 1, S: 20, sCap: 24, H: 4, KVH: 2, D: 64, causal: true }],
  ['T=13 S=20 causal offset, H=8/KVH=2, D=8, padding mask, fully masked rows', {
    B: 2, T: 13, S: 20, sCap: 20, H: 8, KVH: 2, D: 8, causal: true, masked: (b, j) => (b === 1 ? j < 10 : j >= 18), emptyRows: true,
  }],
  ['T=13 S=20 non-causal, D=64, H=KVH', { B: 1, T: 13, S: 20, sCap: 32, H: 3, KVH: 3, D: 64, causal: false, masked: (_b, j) => j % 5 === 2 }],
  ['several query and key blocks, D=24 (generic head size)', { B: 1, T: 150, S: 150, sCap: 150, H: 6, KVH: 2, D: 24, causal: true }],
  ['T > S-window: key blocks beyond 64, D=16, non-causal', { B: 1, T: 70, S: 131, sCap: 140, H: 2, KVH: 1, D: 16, causal: false }],
];

for (const [name, c] of attnCases) {
  test(`attention ${name}: forward matches materialised softmax, backward matches finite differences`, () => {
    const { B, T, S, sCap, H, KVH, D } = c;
    const scale = 1 / Math.sqrt(D);
    const q = rand(B * T * H * D, 30, -2, 2), kk = rand(B * sCap * KVH * D, 31, -2, 2), v = rand(B * sCap * KVH * D, 32);
    let mask: Uint8Array | null = null;
    if (c.masked) {
      mask = new Uint8Array(B * S);
      for (let b = 0; b < B; b++) for (let j = 0; j < S; j++) mask[b * S + j] = c.masked(b, j) ? 0 : 1;
    }
    const ref = attentionRef(c, q, kk, v, mask, scale);
    const out = new Float32Array(B * T * H * D).fill(NaN), lse = new Float32Array(B * H * T).fill(NaN);
    k.attention(q, kk, v, out, lse, mask, B, T, S, sCap, H, KVH, D, scale, c.causal);
    close(out, ref.out, 2e-5, 'out');
    close(lse, ref.lse, 2e-5, 'lse');
    assert.equal([...lse].some((x) => x === -Infinity), c.emptyRows ?? false, 'rows that see no key have lse −inf');

    const gout = rand(B * T * H * D, 33);
    const gq = new Float32Array(q.length).fill(NaN);
    const gk = new Float32Array(B * S * KVH * D).fill(NaN), gv = new Float32Array(B * S * KVH * D).fill(NaN); // overwritten
    k.attentionBackward(q, kk, v, out, lse, mask, gout, gq, gk, gv, B, T, S, sCap, H, KVH, D, scale, c.causal);
    const loss = (qd: ArrayLike<number>, kd: ArrayLike<number>, vd: ArrayLike<number>) => dot(attentionRef(c, qd, kd, vd, mask, scale).out, gout);
    const dense = (x: Float32Array) => {
      const r = new Float64Array(B * S * KVH * D), row = KVH * D;
      for (let b = 0; b < B; b++) for (let j = 0; j < S; j++) for (let e = 0; e < row; e++) r[(b * S + j) * row + e] = x[(b * sCap + j) * row + e];
      return r;
    };
    const n = B * S * KVH * D;
    closeAt(gq, numGrad((qd) => loss(qd, kk, v), q, sample(q.length, 25, 34)), 2e-3, 'gq');
    closeAt(gk, numGrad((kd) => loss(q, toCap(c, kd, kk), v), dense(kk), sample(n, 25, 35)), 2e-3, 'gk');
    closeAt(gv, numGrad((vd) => loss(q, kk, toCap(c, vd, v)), dense(v), sample(n, 25, 36)), 2e-3, 'gv');
    for (const [g, what] of [[gq, 'gq'], [gk, 'gk'], [gv, 'gv']] as const) assert.ok(g.every(Number.isFinite), `${what} is finite everywhere`);
    if (mask) {
      // Masked keys get exactly zero gradient.
      for (let b = 0; b < B; b++)
        for (let j = 0; j < S; j++)
          if (!mask[b * S + j]) for (let e = 0; e < KVH * D; e++) assert.equal(gk[(b * S + j) * KVH * D + e], 0);
    }
  });
}

test('attention rejects H not a multiple of KVH and short arrays, naming the kernel', () => {
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => k.attention(f(48), f(32), f(32), f(48), f(6), null, 1, 2, 2, 2, 3, 2, 8, 1, true), /attention: H \(3\) must be a positive multiple of KVH \(2\)/);
  assert.throws(() => k.attention(f(64), f(31), f(32), f(64), f(8), null, 1, 2, 2, 2, 4, 2, 8, 1, true), /attention: argument 1 \(k\)/);
  assert.throws(() => k.attentionBackward(f(64), f(32), f(32), f(64), f(8), null, f(64), f(64), f(32), f(31), 1, 2, 2, 2, 4, 2, 8, 1, true), /attentionBackward: argument 9 \(gv\)/);
});

// ------------------------------------------------------------------------------------------------ embedding

test('embedding: f32 and bf16 tables, out-of-range ids throw naming id and position', () => {
  const [vocab, dim, n] = [50, 130, 300];
  const table = rand(vocab * dim, 40);
  // bf16 table: the top halves of the f32 values; the f32 lookup of the truncated values must match exactly.
  const bits = new Uint16Array(new Uint32Array(table.buffer).map((u) => u >>> 16));
  const truncated = new Float32Array(new Uint32Array(bits).map((u) => u << 16).buffer);
  const ids = Int32Array.from(rand(n, 41, 0, vocab), Math.floor);
  for (const [t, bf16, src] of [[table, false, table], [bits, true, truncated]] as const) {
    const out = new Float32Array(n * dim);
    k.embedding(t, bf16, ids, out, n, dim, vocab);
    for (let i = 0; i < n; i++) assert.deepEqual(out.subarray(i * dim, (i + 1) * dim), src.subarray(ids[i] * dim, (ids[i] + 1) * dim));
  }
  const bad = Int32Array.from([3, 7, 50, 1]);
  assert.throws(() => k.embedding(table, false, bad, new Float32Array(4 * dim), 4, dim, vocab), /embedding: id 50 at position 2/);
  assert.throws(() => k.embedding(table, false, Int32Array.from([-1]), new Float32Array(dim), 1, dim, vocab), /id -1 at position 0/);
});

for (const [n, dim] of [[5, 3], [300, 130]] as const) {
  test(`embeddingBackward n=${n} dim=${dim}: duplicate ids accumulate onto the existing gradient`, () => {
    const vocab = 7;
    const ids = Int32Array.from({ length: n }, (_, i) => (i * 3) % 5); // ids repeat; 5, 6 never used
    const gy = rand(n * dim, 42);
    const gt = rand(vocab * dim, 43);
    const want = Float64Array.from(gt);
    for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) want[ids[i] * dim + j] += gy[i * dim + j];
    k.embeddingBackward(ids, gy, gt, n, dim);
    close(gt, want, 1e-5, 'gTable');
    assert.throws(() => k.embeddingBackward(Int32Array.from([7]), gy, gt, 1, dim), /embeddingBackward: id 7 at position 0/);
  });
}

// ------------------------------------------------------------------------------------------------ cross-entropy

for (const [N, V] of [[1, 2], [9, 37], [64, 1000]] as const) {
  test(`crossEntropy N=${N} V=${V}: losses, lse, ignored rows, count and backward match float64`, () => {
    const ignore = -100;
    const logits = rand(N * V, 50, -8, 8);
    const targets = Int32Array.from(rand(N, 51, 0, V), Math.floor);
    if (N > 1) targets[N - 1] = ignore;
    const losses = new Float32Array(N).fill(NaN), lse = new Float32Array(N);
    const count = k.crossEntropy(logits, targets, losses, lse, N, V, ignore);
    assert.equal(count, targets.filter((t) => t !== ignore).length);
    const ref = (x: ArrayLike<number>) => {
      const logp = softmaxRef(x, N, V, true);
      return Float64Array.from(targets, (t, i) => (t === ignore ? 0 : -logp[i * V + t]));
    };
    close(losses, ref(logits), 1e-5, 'losses');
    for (let i = 0; i < N; i++) assert.ok(Math.abs(logits[i * V] - lse[i] - softmaxRef(logits, N, V, true)[i * V]) < 1e-4, 'lse');

    const gy = rand(N, 52, 0.5, 2);
    const gl = new Float32Array(N * V).fill(NaN);
    k.crossEntropyBackward(logits, targets, lse, gy, gl, N, V, ignore);
    closeAt(gl, numGrad((x) => dot(ref(x), gy), logits, sample(N * V, 40, 53)), 1e-4, 'gl');
    if (N > 1) assert.ok(gl.subarray((N - 1) * V).every((g) => g === 0), 'ignored row has zero gradient');
  });
}

test('crossEntropy throws on a target outside [0, V) that is not ignoreIndex', () => {
  const args = [rand(6, 1), Int32Array.from([1, 3]), new Float32Array(2), new Float32Array(2), 2, 3, -100] as const;
  assert.throws(() => k.crossEntropy(...args), /crossEntropy: target 3 at row 1/);
  assert.throws(() => k.crossEntropyBackward(rand(6, 1), Int32Array.from([-2, 0]), new Float32Array(2), new Float32Array(2), new Float32Array(6), 2, 3, -100), /target -2 at row 0/);
});

// ------------------------------------------------------------------------------------------------ optimizers

test('adamw: three steps match the formula in float64 (PyTorch AdamW)', () => {
  const n = 40000; // above the parallel threshold
  const p = rand(n, 60), m = new Float32Array(n), v = new Float32Array(n);
  const pd = Float64Array.from(p), md = new Float64Array(n), vd = new Float64Array(n);
  const [lr, b1, b2, eps, wd] = [1e-2, 0.9, 0.999, 1e-8, 0.1];
  for (let step = 1; step <= 3; step++) {
    const g = rand(n, 60 + step);
    const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
    k.adamw(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
    for (let i = 0; i < n; i++) {
      pd[i] -= lr * wd * pd[i];
      md[i] = b1 * md[i] + (1 - b1) * g[i];
      vd[i] = b2 * vd[i] + (1 - b2) * g[i] * g[i];
      pd[i] -= (lr * (md[i] / bc1)) / (Math.sqrt(vd[i] / bc2) + eps);
    }
  }
  close(p, pd, 1e-5, 'p');
  close(m, md, 1e-5, 'm');
  close(v, vd, 1e-5, 'v');
});

for (const [momentum, dampening, nesterov] of [[0, 0, false], [0.9, 0, false], [0.9, 0.1, false], [0.9, 0, true]] as const) {
  test(`sgd momentum=${momentum} dampening=${dampening} nesterov=${nesterov}: matches PyTorch semantics`, () => {
    const n = 1001;
    const p = rand(n, 70), buf = new Float32Array(n);
    const pd = Float64Array.from(p), bd = new Float64Array(n);
    const [lr, wd] = [0.05, 0.01];
    for (let step = 0; step < 3; step++) {
      const g = rand(n, 71 + step);
      k.sgd(p, g, buf, n, lr, momentum, dampening, wd, nesterov, step === 0);
      for (let i = 0; i < n; i++) {
        const gi = g[i] + wd * pd[i];
        let d = gi;
        if (momentum !== 0) {
          bd[i] = step === 0 ? gi : momentum * bd[i] + (1 - dampening) * gi;
          d = nesterov ? gi + momentum * bd[i] : bd[i];
        }
        pd[i] -= lr * d;
      }
    }
    close(p, pd, 1e-5, 'p');
    if (momentum !== 0) close(buf, bd, 1e-5, 'buf');
  });
}

test('fused kernels reject wrong array types and short arrays with the kernel and argument named', () => {
  assert.throws(() => k.softmax(new Float64Array(4) as unknown as Float32Array, new Float32Array(4), 2, 2, false), /softmax: argument 0 must be Float32Array/);
  assert.throws(() => k.rmsNorm(new Float32Array(6), null, new Float32Array(6), new Float32Array(1), 2, 3, 1e-5), /rmsNorm: argument 3 \(rstd\) has 1 elements, needs 2/);
  assert.throws(() => k.rope(new Float32Array(8), new Float32Array(8), new Float32Array(3), new Float32Array(4), 1, 2, 1, 4, 0, false, false), /rope: argument 2 \(cos\)/);
  assert.throws(() => k.adamw(new Float32Array(4), new Float32Array(4), new Float32Array(3), new Float32Array(4), 4, 1, 0.9, 0.99, 1e-8, 0, 1, 1), /adamw: argument 2 \(m\)/);
  assert.throws(() => k.layerNorm(new Float32Array(6), null, null, new Float32Array(6), new Float32Array(2), new Float32Array(2), 2.5, 3, 1e-5), /layerNorm: rows must be a non-negative integer/);
});
