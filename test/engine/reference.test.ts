// The reference backend against values computed by hand, and its backward kernels against central finite
// differences of its forward kernels (so the oracle the native kernels are compared with is itself checked).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reference as R } from '../../src/engine/backend/reference/index.js';
import { erf } from '../../src/engine/backend/reference/elementwise.js';
import { GemmDType, UnaryOp } from '../../src/engine/backend/kernels.js';
import { Rng } from '../helpers/random.js';

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])), `[${i}] ${actual[i]} vs ${expected[i]}`);
}

test('softmax of [0, ln 2] is [1/3, 2/3]; log-softmax is its log', () => {
  const x = new Float32Array([0, Math.LN2]);
  const y = new Float32Array(2);
  R.softmax(x, y, 1, 2, false);
  close(y, [1 / 3, 2 / 3]);
  R.softmax(x, y, 1, 2, true);
  close(y, [Math.log(1 / 3), Math.log(2 / 3)]);
});

test('rmsNorm of [3, 4] with eps 0 divides by √12.5, then scales by w', () => {
  const out = new Float32Array(2);
  const rstd = new Float32Array(1);
  R.rmsNorm(new Float32Array([3, 4]), new Float32Array([1, 2]), out, rstd, 1, 2, 0);
  close(rstd, [1 / Math.sqrt(12.5)]);
  close(out, [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)]);
});

test('layerNorm of [1, 2, 3] has mean 2, rstd √(3/2)', () => {
  const out = new Float32Array(3);
  const mean = new Float32Array(1);
  const rstd = new Float32Array(1);
  R.layerNorm(new Float32Array([1, 2, 3]), null, new Float32Array([0, 1, 0]), out, mean, rstd, 1, 3, 0);
  close(mean, [2]);
  close(rstd, [Math.sqrt(1.5)]);
  close(out, [-Math.sqrt(1.5), 1, Math.sqrt(1.5)]);
});

test('rope by 90° maps each pair (a, b) to (−b, a), in both pair layouts; inverse undoes it', () => {
  const x = new Float32Array([1, 2, 3, 4]);
  const cos = new Float32Array([0, 0]);
  const sin = new Float32Array([1, 1]);
  const out = new Float32Array(4);
  R.rope(x, out, cos, sin, 1, 1, 1, 4, 0, true, false); // pairs (0,1), (2,3)
  close(out, [-2, 1, -4, 3]);
  R.rope(x, out, cos, sin, 1, 1, 1, 4, 0, false, false); // pairs (0,2), (1,3)
  close(out, [-3, -4, 1, 2]);
  R.rope(out, out, cos, sin, 1, 1, 1, 4, 0, false, true);
  close(out, x);
});

test('cross-entropy of uniform logits is ln V; ignored rows give 0 and are not counted', () => {
  const V = 7;
  const logits = new Float32Array(3 * V).fill(0.25);
  const losses = new Float32Array(3);
  const lse = new Float32Array(3);
  const kept = R.crossEntropy(logits, new Int32Array([2, -100, 6]), losses, lse, 3, V, -100);
  assert.equal(kept, 2);
  close(losses, [Math.log(V), 0, Math.log(V)]);
  const gl = new Float32Array(3 * V);
  R.crossEntropyBackward(logits, new Int32Array([2, -100, 6]), lse, new Float32Array([1, 1, 2]), gl, 3, V, -100);
  close(gl.subarray(0, V), [1, 1, 1 - V, 1, 1, 1, 1].map((g) => g / V));
  close(gl.subarray(V, 2 * V), new Array(V).fill(0));
  assert.throws(() => R.crossEntropy(logits, new Int32Array([0, 7, 0]), losses, lse, 3, V, -100), /crossEntropy: targets\[1\] = 7/);
});

test('adamw first step moves each parameter by ≈ lr·sign(g); weight decay shrinks p first', () => {
  const p = new Float32Array([1, -2, 0.5]);
  const g = new Float32Array([0.3, -4, 1e-3]);
  const m = new Float32Array(3);
  const v = new Float32Array(3);
  const lr = 0.01;
  R.adamw(p, g, m, v, 3, lr, 0.9, 0.999, 1e-12, 0, 1 - 0.9, 1 - 0.999);
  close(p, [1 - lr, -2 + lr, 0.5 - lr], 1e-6);
  const q = new Float32Array([2]);
  R.adamw(q, new Float32Array([1]), new Float32Array(1), new Float32Array(1), 1, lr, 0.9, 0.999, 0, 0.1, 0.1, 0.001);
  close(q, [2 - lr * 0.1 * 2 - lr]);
});

test('sgd: first step sets the buffer, nesterov adds μ·buf, μ = 0 is plain SGD', () => {
  const p = new Float32Array([1]);
  const buf = new Float32Array(1);
  R.sgd(p, new Float32Array([2]), buf, 1, 0.1, 0.9, 0.5, 0.5, true, true); // g' = 2.5, buf = 2.5, d = 2.5 + 2.25
  close(buf, [2.5]);
  close(p, [1 - 0.1 * 4.75]);
  R.sgd(p, new Float32Array([1]), buf, 1, 0.1, 0.9, 0.5, 0, false, false); // buf = 2.25 + 0.5, d = buf
  close(buf, [2.75]);
  close(p, [1 - 0.475 - 0.275]);
  const q = new Float32Array([1]);
  R.sgd(q, new Float32Array([3]), buf, 1, 0.1, 0, 0, 0, false, true);
  close(q, [0.7]);
});

test('bf16 cast rounds to nearest even and keeps NaN; f16 cast is exact for subnormals, inf and NaN', () => {
  const u = new Uint32Array([0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0xff800000, 0x7fc00001, 0x00000001]);
  const b = new Uint16Array(u.length);
  R.castF32ToBF16(new Float32Array(u.buffer), b, u.length);
  // 1.0; tie → even (0x3f80); tie → even (0x3f82); above tie → up; max float rounds to inf; −inf; NaN; tiny → +0
  assert.deepEqual([...b.subarray(0, 6)], [0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0xff80]);
  assert.ok((b[6] & 0x7f80) === 0x7f80 && (b[6] & 0x7f) !== 0, 'NaN stays NaN');
  assert.equal(b[7], 0);
  const f = new Float32Array(2);
  R.castBF16ToF32(new Uint16Array([0x3f80, 0xc040]), f, 2);
  assert.deepEqual([...f], [1, -3]);
  const h = new Uint16Array([0x0001, 0x03ff, 0x3c00, 0xc000, 0x7c00, 0xfc00, 0x8000, 0x7bff, 0x7e00]);
  const hf = new Float32Array(h.length);
  R.castF16ToF32(h, hf, h.length);
  assert.deepEqual([...hf.subarray(0, 8)], [2 ** -24, 1023 * 2 ** -24, 1, -2, Infinity, -Infinity, -0, 65504]);
  assert.ok(Number.isNaN(hf[8]));
});

test('copyStrided transposes and broadcasts; gemm matches a hand product for every transpose and dtype', () => {
  const src = new Float32Array([1, 2, 3, 4, 5, 6]); // [2,3]
  const dst = new Float32Array(6);
  R.copyStrided(src, [1, 3], dst, [2, 1], [3, 2]); // dst = srcᵀ
  assert.deepEqual([...dst], [1, 4, 2, 5, 3, 6]);
  R.copyStrided(src, [0, 1], dst, [3, 1], [2, 3]); // broadcast row 0
  assert.deepEqual([...dst], [1, 2, 3, 1, 2, 3]);
  const A = [1, 2, 3, 4, 5, 6]; // [2,3]
  const B = [1, 0, -1, 2, 0.5, 1]; // [3,2]
  const AB = [1 * 1 + 2 * -1 + 3 * 0.5, 1 * 0 + 2 * 2 + 3 * 1, 4 * 1 + 5 * -1 + 6 * 0.5, 4 * 0 + 5 * 2 + 6 * 1];
  const At = [1, 4, 2, 5, 3, 6];
  const Bt = [1, -1, 0.5, 0, 2, 1];
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]])
    for (const dt of [GemmDType.F32, GemmDType.BF16]) {
      const enc = (xs: number[]): Float32Array | Uint16Array => {
        const f = new Float32Array(xs);
        if (dt === GemmDType.F32) return f;
        const u = new Uint16Array(xs.length);
        R.castF32ToBF16(f, u, xs.length);
        return u;
      };
      const c = new Float32Array([1, 1, 1, 1]);
      R.gemm(dt, enc(ta ? At : A), enc(tb ? Bt : B), c, 1, 2, 2, 3, ta, tb, 0, 0, 0, 2, 0.5);
      close(c, AB.map((x) => 2 * x + 0.5));
    }
});

test('erf matches tabulated values (Python math.erf)', () => {
  close([erf(0), erf(0.5), erf(-1), erf(2.4), erf(2.6), erf(3), erf(6)], [0, 0.5204998778130465, -0.8427007929497149, 0.999311486103355, 0.9997639655834707, 0.9999779095030014, 1], 1e-14);
});

test('attention: one visible key returns its value; a masked-out row returns zeros with lse −∞', () => {
  // B=1, T=2, S=2, H=1, D=2, causal: query 0 sees key 0 only, query 1 sees both with equal scores (q = 0).
  const q = new Float32Array([1, 1, 0, 0]);
  const k = new Float32Array([1, 0, 0, 1]);
  const v = new Float32Array([1, 2, 3, 4]);
  const out = new Float32Array(4);
  const lse = new Float32Array(2);
  R.attention(q, k, v, out, lse, null, 1, 2, 2, 2, 1, 1, 2, 0.5, true);
  close(out, [1, 2, 2, 3]);
  close(lse, [0.5, Math.LN2]);
  R.attention(q, k, v, out, lse, new Uint8Array([0, 1]), 1, 2, 2, 2, 1, 1, 2, 0.5, true);
  close(out, [0, 0, 3, 4]);
  assert.equal(lse[0], -Infinity);
});

test('embedding looks rows up (f32 and bf16) and rejects out-of-range ids', () => {
  const out = new Float32Array(4);
  R.embedding(new Float32Array([1, 2, 3, 4, 5, 6]), false, new Int32Array([2, 0]), out, 2, 2, 3);
  assert.deepEqual([...out], [5, 6, 1, 2]);
  R.embedding(new Uint16Array([0x3f80, 0x4000, 0x4040, 0x4080]), true, new Int32Array([1, 1]), out, 2, 2, 2);
  assert.deepEqual([...out], [3, 4, 3, 4]);
  assert.throws(() => R.embedding(new Float32Array(6), false, new Int32Array([3]), out, 1, 2, 3), /embedding: ids\[0\] = 3/);
  const g = new Float32Array(6);
  R.embeddingBackward(new Int32Array([1, 1]), new Float32Array([1, 2, 3, 4]), g, 2, 2);
  assert.deepEqual([...g], [0, 0, 4, 6, 0, 0]);
});

// ---------------------------------------------------------------- finite differences
// For a kernel f and scalar loss L(x) = Σ gy·f(x), checks the analytic directional derivative Σ gx·d against
// (L(x + h·d) − L(x − h·d)) / 2h for a random direction d. Relative tolerance 2e-3 (f32 outputs, h = 1e-2).
const rng = new Rng(1234);

function dirCheck(name: string, x: Float32Array, gx: ArrayLike<number>, loss: (x: Float32Array) => number, h = 1e-2): void {
  const d = rng.f32(x.length);
  const plus = x.map((xi, i) => xi + h * d[i]);
  const minus = x.map((xi, i) => xi - h * d[i]);
  const numeric = (loss(plus) - loss(minus)) / (2 * h);
  // The step actually taken is the f32-rounded plus − minus, not 2h·d.
  let analytic = 0;
  for (let i = 0; i < x.length; i++) analytic += (gx[i] * (plus[i] - minus[i])) / (2 * h);
  assert.ok(Math.abs(numeric - analytic) <= 2e-3 * Math.max(1, Math.abs(analytic)), `${name}: numeric ${numeric} vs analytic ${analytic}`);
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

test('unary and swiglu backward match finite differences', () => {
  const n = 64;
  for (const op of Object.values(UnaryOp).filter((v): v is UnaryOp => typeof v === 'number')) {
    const positive = op === UnaryOp.Log || op === UnaryOp.Sqrt;
    const x = positive ? rng.f32Uniform(n, 0.5, 2) : rng.f32(n);
    const y = new Float32Array(n);
    R.unary(op, x, y, n);
    const gy = rng.f32(n);
    const gx = new Float32Array(n);
    R.unaryBackward(op, x, y, gy, gx, n);
    // Relu's kink: keep inputs away from 0 so the finite difference does not straddle it.
    if (op === UnaryOp.Relu) x.forEach((v, i) => (x[i] = v + Math.sign(v) * 0.05));
    dirCheck(UnaryOp[op], x, gx, (xx) => {
      const yy = new Float32Array(n);
      R.unary(op, xx, yy, n);
      return dot(gy, yy);
    });
  }
  const g = rng.f32(n);
  const u = rng.f32(n);
  const gy = rng.f32(n);
  const gg = new Float32Array(n);
  const gu = new Float32Array(n);
  R.swigluBackward(g, u, gy, gg, gu, n);
  const swi = (gg2: Float32Array, uu: Float32Array): number => {
    const o = new Float32Array(n);
    R.swiglu(gg2, uu, o, n);
    return dot(gy, o);
  };
  dirCheck('swiglu/g', g, gg, (x) => swi(x, u));
  dirCheck('swiglu/u', u, gu, (x) => swi(g, x));
});

test('softmax, norm, rope, cross-entropy backward match finite differences', () => {
  const rows = 3;
  const cols = 17;
  const n = rows * cols;
  const x = rng.f32(n);
  const gy = rng.f32(n);
  const gx = new Float32Array(n);
  for (const log of [false, true]) {
    const y = new Float32Array(n);
    R.softmax(x, y, rows, cols, log);
    R.softmaxBackward(y, gy, gx, rows, cols, log);
    dirCheck(`softmax log=${log}`, x, gx, (xx) => {
      R.softmax(xx, y, rows, cols, log);
      return dot(gy, y);
    });
  }
  const w = rng.f32(cols);
  const b = rng.f32(cols);
  const out = new Float32Array(n);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  const rms = (xx: Float32Array, ww: Float32Array): number => {
    R.rmsNorm(xx, ww, out, rstd, rows, cols, 1e-5);
    return dot(gy, out);
  };
  rms(x, w);
  const gw = new Float32Array(cols).fill(1); // accumulates: starts at 1
  R.rmsNormBackward(x, w, rstd, gy, gx, gw, rows, cols);
  dirCheck('rmsNorm/x', x, gx, (xx) => rms(xx, w));
  dirCheck('rmsNorm/w', w, gw.map((v) => v - 1), (ww) => rms(x, ww));
  const ln = (xx: Float32Array, ww: Float32Array, bb: Float32Array): number => {
    R.layerNorm(xx, ww, bb, out, mean, rstd, rows, cols, 1e-5);
    return dot(gy, out);
  };
  ln(x, w, b);
  const gb = new Float32Array(cols);
  gw.fill(0);
  R.layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, cols);
  dirCheck('layerNorm/x', x, gx, (xx) => ln(xx, w, b));
  dirCheck('layerNorm/w', w, gw, (ww) => ln(x, ww, b));
  dirCheck('layerNorm/b', b, gb, (bb) => ln(x, w, bb));

  // rope: the backward is the inverse rotation of gy.
  const [B, S, H, D] = [2, 3, 2, 4];
  const xr = rng.f32(B * S * H * D);
  const gr = rng.f32(xr.length);
  const theta = rng.f32(S * (D / 2));
  const cos = theta.map(Math.cos);
  const sin = theta.map(Math.sin);
  for (const interleaved of [false, true]) {
    const gxr = new Float32Array(xr.length);
    R.rope(gr, gxr, cos, sin, B, S, H, D, 0, interleaved, true);
    dirCheck(`rope interleaved=${interleaved}`, xr, gxr, (xx) => {
      const o = new Float32Array(xx.length);
      R.rope(xx, o, cos, sin, B, S, H, D, 0, interleaved, false);
      return dot(gr, o);
    });
  }

  const V = 11;
  const logits = rng.f32(4 * V);
  const targets = new Int32Array([3, -1, 0, 10]);
  const losses = new Float32Array(4);
  const lse = new Float32Array(4);
  const gyl = rng.f32(4);
  R.crossEntropy(logits, targets, losses, lse, 4, V, -1);
  const gl = new Float32Array(4 * V);
  R.crossEntropyBackward(logits, targets, lse, gyl, gl, 4, V, -1);
  dirCheck('crossEntropy', logits, gl, (xx) => {
    R.crossEntropy(xx, targets, losses, lse, 4, V, -1);
    return dot(gyl, losses);
  });
});

test('attention backward matches finite differences (GQA, causal offset, key mask, sCap > S)', () => {
  const [B, T, S, sCap, H, KVH, D] = [2, 3, 5, 7, 4, 2, 3];
  const scale = 1 / Math.sqrt(D);
  const q = rng.f32(B * T * H * D);
  const k = rng.f32(B * sCap * KVH * D);
  const v = rng.f32(B * sCap * KVH * D);
  const mask = new Uint8Array([1, 0, 1, 1, 1, 0, 1, 1, 1, 1]);
  const gout = rng.f32(q.length);
  const out = new Float32Array(q.length);
  const lse = new Float32Array(B * H * T);
  const fwd = (qq: Float32Array, kk: Float32Array, vv: Float32Array): number => {
    R.attention(qq, kk, vv, out, lse, mask, B, T, S, sCap, H, KVH, D, scale, true);
    return dot(gout, out);
  };
  fwd(q, k, v);
  const gq = new Float32Array(q.length);
  const gk = new Float32Array(B * S * KVH * D);
  const gv = new Float32Array(gk.length);
  R.attentionBackward(q, k, v, out, lse, mask, gout, gq, gk, gv, B, T, S, sCap, H, KVH, D, scale, true);
  // gk, gv are dense [B, S, KVH, D]; spread them onto the [B, sCap, KVH, D] layout of k and v (zeros past S).
  const spread = (g: Float32Array): Float32Array => {
    const r = new Float32Array(k.length);
    for (let b = 0; b < B; b++) r.set(g.subarray(b * S * KVH * D, (b + 1) * S * KVH * D), b * sCap * KVH * D);
    return r;
  };
  dirCheck('attention/q', q, gq, (x) => fwd(x, k, v));
  dirCheck('attention/k', k, spread(gk), (x) => fwd(q, x, v));
  dirCheck('attention/v', v, spread(gv), (x) => fwd(q, k, x));
});
