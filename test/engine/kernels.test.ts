// Native-vs-reference parity: every kernel of the contract runs the same call on both backends, on seeded random
// inputs of odd sizes, broadcast (0) and permuted strides and offset views, and the outputs are compared.
//
// Error measure for f32 outputs (stated once, used everywhere): per tensor,
//   err = max_i |native_i − ref_i| / max(1e-6, max_i |ref_i|)
// i.e. the worst absolute difference relative to the tensor's scale (entries of ±inf/NaN in the reference must match
// exactly and are left out of the scale). It is insensitive to harmless cancellation in tiny entries yet catches any
// wrong element of a tensor's magnitude. Where an output is a small difference of large terms (the norms' gx, exactly
// 0 for a one-column LayerNorm yet made of terms of size |gy·w|·rstd) the scale is at least the terms' size.
// Tolerance: 1e-5 (f32 and bf16-operand GEMM alike: bf16 products are exact in f32, so both backends differ only
// by fp32 summation order). Copies, casts, masks and integer outputs must be bit-identical (a NaN only has to stay
// a NaN).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { BinaryOp, GemmDType, UnaryOp, type AnyArray, type Kernels } from '../../src/engine/backend/kernels.js';
import { loadNative } from '../../src/engine/backend/native.js';
import { reference as R } from '../../src/engine/backend/reference/index.js';
import { Rng } from '../helpers/random.js';

const TOL = 1e-5;
const loaded = loadNative();
const N: Kernels | null = loaded instanceof Error ? null : loaded;
const SIZES = [1, 3, 17, 33, 65, 257];
const BIG = 100_003; // above the native kernels' serial threshold, so their threaded paths run too

/** Skip reason when the native addon or one of the named kernels is missing, else false. */
function missing(...names: (keyof Kernels)[]): string | false {
  if (!N) return `native addon unavailable: ${(loaded as Error).message.split('\n')[0]}`;
  const absent = names.filter((n) => typeof N[n] !== 'function');
  return absent.length ? `native kernel(s) missing: ${absent.join(', ')}` : false;
}

// Worst error seen per kernel, printed at the end.
const worst = new Map<string, number>();
after(() => {
  const rows = [...worst].map(([k, e]) => `  ${k.padEnd(22)} ${e === 0 ? '0' : e.toExponential(2)}`);
  if (rows.length) console.log(`max relative error, native vs reference:\n${rows.join('\n')}`);
});

function record(kernel: string, err: number): void {
  worst.set(kernel, Math.max(worst.get(kernel) ?? 0, err));
}

/** The per-tensor error defined in the header comment; asserts special values (±inf, NaN) coincide. */
function relErr(label: string, a: ArrayLike<number>, b: ArrayLike<number>, floor = 0): number {
  assert.equal(a.length, b.length, `${label}: length`);
  let scale = floor;
  for (let i = 0; i < b.length; i++) if (Number.isFinite(b[i])) scale = Math.max(scale, Math.abs(b[i]));
  let diff = 0;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(b[i])) {
      assert.ok(Object.is(a[i], b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])), `${label}[${i}]: native ${a[i]}, reference ${b[i]}`);
      continue;
    }
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
  }
  return diff / Math.max(1e-6, scale);
}

/**
 * Asserts native output `a` matches reference output `b` within `tol` and records the error under `kernel`;
 * `floor` is a lower bound for the tensor's scale (see the header).
 */
function near(kernel: string, label: string, a: ArrayLike<number> | number, b: ArrayLike<number> | number, tol = TOL, floor = 0): void {
  const e = typeof a === 'number' ? relErr(label, [a], [b as number], floor) : relErr(label, a, b as ArrayLike<number>, floor);
  record(kernel, e);
  assert.ok(e <= tol, `${kernel} ${label}: relative error ${e.toExponential(3)} > ${tol}`);
}

/** Asserts bit-identical arrays; with `nanClass`, two NaNs of any payload count as equal (f32, or bf16/f16 bits when `bits16`). */
function same(kernel: string, label: string, a: AnyArray, b: AnyArray, nanClass: 'f32' | 'bf16' | null = null): void {
  assert.equal(a.length, b.length, `${kernel} ${label}: length`);
  const ua = bytesAsInts(a);
  const ub = bytesAsInts(b);
  for (let i = 0; i < ub.length; i++) {
    if (ua[i] === ub[i]) continue;
    const isNaN = (u: number | bigint): boolean =>
      nanClass === 'f32' ? (Number(u) & 0x7fffffff) > 0x7f800000 : nanClass === 'bf16' ? (Number(u) & 0x7fff) > 0x7f80 : false;
    assert.ok(isNaN(ua[i]) && isNaN(ub[i]), `${kernel} ${label}[${i}]: native 0x${ua[i].toString(16)}, reference 0x${ub[i].toString(16)}`);
  }
  record(kernel, 0);
}

function bytesAsInts(a: AnyArray): Uint8Array | Uint16Array | Uint32Array | BigUint64Array {
  const [buf, off, n] = [a.buffer, a.byteOffset, a.length];
  if (a.BYTES_PER_ELEMENT === 1) return new Uint8Array(buf, off, n);
  if (a.BYTES_PER_ELEMENT === 2) return new Uint16Array(buf, off, n);
  if (a.BYTES_PER_ELEMENT === 4) return new Uint32Array(buf, off, n);
  return new BigUint64Array(buf, off, n);
}

/** Runs `call` on both backends, each on its own deep copy of `inputs`; returns [native copies, reference copies]. */
function both<T extends Record<string, AnyArray | null>>(inputs: T, call: (K: Kernels, io: T) => unknown): [T, T, unknown, unknown] {
  const n = clone(inputs);
  const r = clone(inputs);
  const rn = call(N!, n);
  const rr = call(R, r);
  return [n, r, rn, rr];
}

/** Deep copy; every other array becomes a view at a non-zero offset into a larger buffer (element 0 ≠ buffer start). */
function clone<T extends Record<string, AnyArray | null>>(inputs: T): T {
  let k = 0;
  const out: Record<string, AnyArray | null> = {};
  for (const [name, a] of Object.entries(inputs)) {
    if (a === null) {
      out[name] = null;
      continue;
    }
    const pad = k++ % 2 === 0 ? 0 : 3;
    const C = a.constructor as new (n: number) => AnyArray;
    const big = new C(a.length + pad + 2);
    const view = big.subarray(pad, pad + a.length);
    view.set(a as never);
    out[name] = view;
  }
  return out as T;
}

const f32 = (a: AnyArray | null): Float32Array => a as Float32Array;

/** A random shape of the given rank with dims from {1, 2, 3, 5, 17, 33} and at most `maxNumel` elements. */
function randomShape(rng: Rng, rank: number, maxNumel: number): number[] {
  const shape: number[] = [];
  let numel = 1;
  for (let d = 0; d < rank; d++) {
    const options = [1, 2, 3, 5, 17, 33].filter((x) => numel * x <= maxNumel);
    const dim = rng.pick(options);
    shape.push(dim);
    numel *= dim;
  }
  return shape;
}

/**
 * Strides of a tensor of `shape` laid out contiguously in a random axis order; with `broadcast`, some axes get
 * stride 0. Returns the strides and the storage length they need.
 */
function layout(rng: Rng, shape: number[], broadcast: boolean): { strides: number[]; size: number } {
  const strides = new Array<number>(shape.length).fill(0);
  let step = 1;
  for (const d of rng.permutation(shape.length).reverse()) {
    if (broadcast && rng.next() < 0.3) continue;
    strides[d] = step;
    step *= shape[d];
  }
  return { strides, size: step };
}

const contiguous = (shape: number[]): number[] => {
  const s = new Array<number>(shape.length);
  let step = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = step;
    step *= shape[d];
  }
  return s;
};
const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

// ================================================================ threads

test('setNumThreads / getNumThreads', { skip: missing('setNumThreads', 'getNumThreads') }, () => {
  const before = N!.getNumThreads();
  for (const K of [N!, R]) {
    K.setNumThreads(2);
    assert.equal(K.getNumThreads(), 2, K.name);
  }
  N!.setNumThreads(before);
});

// ================================================================ data movement

test('copyStrided: every element size, permuted, broadcast and rank-0 shapes', { skip: missing('copyStrided') }, () => {
  const rng = new Rng(1);
  const makers: ((n: number) => AnyArray)[] = [
    (n) => rng.f32(n),
    (n) => rng.u16(n),
    (n) => rng.i32(n, -1e9, 1e9),
    (n) => rng.mask(n).map(() => rng.int(0, 256)),
    (n) => BigInt64Array.from({ length: n }, () => BigInt(rng.int(-1e9, 1e9)) * 4294967296n + BigInt(rng.int(0, 2 ** 32))),
  ];
  for (let it = 0; it < 60; it++) {
    const rank = it < 2 ? 0 : rng.int(1, 9);
    const shape = randomShape(rng, rank, 5000);
    const src = layout(rng, shape, true);
    const dst = layout(rng, shape, false);
    const make = makers[it % makers.length];
    const [n, r] = both({ src: make(src.size), dst: make(dst.size) }, (K, io) =>
      K.copyStrided(io.src!, src.strides, io.dst!, dst.strides, shape),
    );
    same('copyStrided', `shape [${shape}]`, n.dst!, r.dst!);
  }
  // f32 NaN payloads move untouched.
  const nan = new Float32Array(new Uint32Array([0x7f800001, 0xffc01234, 0x7fa00000]).buffer);
  const [n] = both({ src: nan, dst: new Float32Array(3) }, (K, io) => K.copyStrided(io.src!, [1], io.dst!, [1], [3]));
  same('copyStrided', 'NaN payloads', n.dst!, nan);
});

test('castF32ToBF16 / castBF16ToF32 / castF16ToF32 are bit-exact', { skip: missing('castF32ToBF16', 'castBF16ToF32', 'castF16ToF32') }, () => {
  const rng = new Rng(2);
  for (const n of [...SIZES, BIG]) {
    // Random bit patterns (NaN, inf, subnormals, ties) and ordinary values.
    // Random patterns, exact ties (low half 0x8000) and near-ties (0x7fff, 0x8001).
    const low = [-1, 0x8000, 0x7fff, 0x8001];
    const bits = Uint32Array.from({ length: n }, (_, i) => {
      const u = rng.int(0, 2 ** 32);
      const l = low[i % 4];
      return l < 0 ? u : ((u & 0xffff0000) | l) >>> 0;
    });
    const vals = rng.f32(n, 10);
    for (const src of [new Float32Array(bits.buffer), vals]) {
      const [a, b] = both({ src, dst: new Uint16Array(n) }, (K, io) => K.castF32ToBF16(f32(io.src), io.dst as Uint16Array, n));
      same('castF32ToBF16', `n=${n}`, a.dst!, b.dst!, 'bf16');
    }
    const h = rng.u16(n);
    const [c, d] = both({ src: h, dst: new Float32Array(n) }, (K, io) => K.castBF16ToF32(io.src as Uint16Array, f32(io.dst), n));
    same('castBF16ToF32', `n=${n}`, c.dst!, d.dst!, 'f32');
    const [e, f] = both({ src: h, dst: new Float32Array(n) }, (K, io) => K.castF16ToF32(io.src as Uint16Array, f32(io.dst), n));
    same('castF16ToF32', `n=${n}`, e.dst!, f.dst!, 'f32');
  }
  // Every half-precision pattern, once.
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const [e, f] = both({ src: all, dst: new Float32Array(65536) }, (K, io) => K.castF16ToF32(io.src as Uint16Array, f32(io.dst), 65536));
  same('castF16ToF32', 'all 65536 patterns', e.dst!, f.dst!, 'f32');
});

test('fill, affine (also in place), axpy', { skip: missing('fill', 'affine', 'axpy') }, () => {
  const rng = new Rng(3);
  for (const n of [...SIZES, BIG]) {
    const value = rng.normal();
    const [a, b] = both({ dst: rng.f32(n + 2) }, (K, io) => K.fill(f32(io.dst), n, value));
    same('fill', `n=${n}`, a.dst!, b.dst!);
    const [alpha, beta] = [rng.normal(), rng.normal()];
    const [c, d] = both({ x: rng.f32(n), out: rng.f32(n) }, (K, io) => {
      K.affine(f32(io.x), f32(io.out), n, alpha, beta);
      K.affine(f32(io.x), f32(io.x), n, beta, alpha);
    });
    near('affine', `n=${n} out`, f32(c.out), f32(d.out));
    near('affine', `n=${n} in place`, f32(c.x), f32(d.x));
    const [e, f] = both({ x: rng.f32(n), y: rng.f32(n) }, (K, io) => K.axpy(f32(io.x), f32(io.y), n, alpha));
    near('axpy', `n=${n}`, f32(e.y), f32(f.y));
  }
});

// ================================================================ GEMM

test('gemm: f32 and bf16, every transpose, batches with shared operands, alpha/beta', { skip: missing('gemm') }, () => {
  const rng = new Rng(4);
  const cases: [number, number, number, number][] = [
    [1, 1, 1, 1],
    [1, 3, 17, 33],
    [2, 65, 3, 17],
    [3, 17, 33, 65],
    [1, 257, 65, 33],
    [2, 33, 257, 17],
    [1, 64, 64, 257],
    [1, 1, 257, 65],
  ];
  for (const [batch, M, Nn, K] of cases)
    for (const dtype of [GemmDType.F32, GemmDType.BF16])
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
        const strideA = batch > 1 && rng.next() < 0.3 ? 0 : M * K + rng.int(0, 3);
        const strideB = batch > 1 && rng.next() < 0.3 ? 0 : K * Nn + rng.int(0, 3);
        const strideC = M * Nn + rng.int(0, 3);
        const alpha = rng.pick([1, 0.5, -1.25]);
        const beta = rng.pick([0, 1, 0.75]);
        const lenA = (batch - 1) * strideA + M * K;
        const lenB = (batch - 1) * strideB + K * Nn;
        const toBF16 = (x: Float32Array): Uint16Array => {
          const u = new Uint16Array(x.length);
          R.castF32ToBF16(x, u, x.length);
          return u;
        };
        const a = dtype === GemmDType.BF16 ? toBF16(rng.f32(lenA)) : rng.f32(lenA);
        const b = dtype === GemmDType.BF16 ? toBF16(rng.f32(lenB)) : rng.f32(lenB);
        const [n, r] = both({ a, b, c: rng.f32((batch - 1) * strideC + M * Nn) }, (Kn, io) =>
          Kn.gemm(dtype, io.a as Float32Array, io.b as Float32Array, f32(io.c), batch, M, Nn, K, transA, transB, strideA, strideB, strideC, alpha, beta),
        );
        near(`gemm ${GemmDType[dtype]}`, `b=${batch} M=${M} N=${Nn} K=${K} tA=${transA} tB=${transB} β=${beta}`, f32(n.c), f32(r.c));
      }
});

// ================================================================ element-wise

test('binary: every op with broadcast (0) and permuted strides', { skip: missing('binary') }, () => {
  const rng = new Rng(5);
  for (let it = 0; it < 80; it++) {
    const op = (it % 4) as BinaryOp;
    const shape = randomShape(rng, rng.int(0, 6), 20000);
    const la = layout(rng, shape, true);
    const lb = layout(rng, shape, true);
    const b = rng.f32(lb.size);
    if (op === BinaryOp.Div) b.forEach((x, i) => (b[i] = x + Math.sign(x) * 0.1));
    const [n, r] = both({ a: rng.f32(la.size), b, out: new Float32Array(numel(shape)) }, (K, io) =>
      K.binary(op, f32(io.a), la.strides, f32(io.b), lb.strides, f32(io.out), shape),
    );
    near('binary', `${BinaryOp[op]} [${shape}]`, f32(n.out), f32(r.out));
  }
  const [n, r] = both({ a: rng.f32(BIG), b: rng.f32(1), out: new Float32Array(BIG) }, (K, io) =>
    K.binary(BinaryOp.Mul, f32(io.a), [1], f32(io.b), [0], f32(io.out), [BIG]),
  );
  near('binary', 'Mul by broadcast scalar, big', f32(n.out), f32(r.out));
});

const unaryOps = Object.values(UnaryOp).filter((v): v is UnaryOp => typeof v === 'number');
/** Inputs in each op's domain: positive for log and sqrt, a wide range for the rest. */
function unaryInput(rng: Rng, op: UnaryOp, n: number): Float32Array {
  return op === UnaryOp.Log || op === UnaryOp.Sqrt ? rng.f32Uniform(n, 1e-3, 20) : rng.f32(n, 4);
}

test('unary and unaryBackward: every op (also in place)', { skip: missing('unary', 'unaryBackward') }, () => {
  const rng = new Rng(6);
  for (const op of unaryOps)
    for (const n of [...SIZES, BIG]) {
      const x = unaryInput(rng, op, n);
      const [a, b] = both({ x, out: new Float32Array(n), inPlace: x }, (K, io) => {
        K.unary(op, f32(io.x), f32(io.out), n);
        K.unary(op, f32(io.inPlace), f32(io.inPlace), n);
      });
      near('unary', `${UnaryOp[op]} n=${n}`, f32(a.out), f32(b.out));
      near('unary', `${UnaryOp[op]} n=${n} in place`, f32(a.inPlace), f32(b.inPlace));
      // Same x and y = f(x) (the reference's) into both backward kernels.
      const [c, d] = both({ x, y: f32(b.out), gy: rng.f32(n), gx: rng.f32(n) }, (K, io) =>
        K.unaryBackward(op, f32(io.x), f32(io.y), f32(io.gy), f32(io.gx), n),
      );
      near('unaryBackward', `${UnaryOp[op]} n=${n}`, f32(c.gx), f32(d.gx));
    }
});

test('swiglu and swigluBackward', { skip: missing('swiglu', 'swigluBackward') }, () => {
  const rng = new Rng(7);
  for (const n of [...SIZES, BIG]) {
    const g = rng.f32(n, 4);
    const u = rng.f32(n);
    const [a, b] = both({ g, u, out: new Float32Array(n) }, (K, io) => K.swiglu(f32(io.g), f32(io.u), f32(io.out), n));
    near('swiglu', `n=${n}`, f32(a.out), f32(b.out));
    const [c, d] = both({ g, u, gy: rng.f32(n), gg: rng.f32(n), gu: rng.f32(n) }, (K, io) =>
      K.swigluBackward(f32(io.g), f32(io.u), f32(io.gy), f32(io.gg), f32(io.gu), n),
    );
    near('swigluBackward', `n=${n} gg`, f32(c.gg), f32(d.gg));
    near('swigluBackward', `n=${n} gu`, f32(c.gu), f32(d.gu));
  }
});

test('where: broadcast masks and operands', { skip: missing('where') }, () => {
  const rng = new Rng(8);
  for (let it = 0; it < 50; it++) {
    const shape = randomShape(rng, rng.int(0, 6), 20000);
    const [lm, la, lb] = [layout(rng, shape, true), layout(rng, shape, true), layout(rng, shape, true)];
    const mask = rng.mask(lm.size).map((m) => m * rng.int(1, 256)); // any non-zero byte selects a
    const [n, r] = both({ mask, a: rng.f32(la.size), b: rng.f32(lb.size), out: new Float32Array(numel(shape)) }, (K, io) =>
      K.where(io.mask as Uint8Array, lm.strides, f32(io.a), la.strides, f32(io.b), lb.strides, f32(io.out), shape),
    );
    same('where', `[${shape}]`, n.out!, r.out!);
  }
});

test('dropout: identical masks (hashUniform) and scaled outputs', { skip: missing('dropout') }, () => {
  const rng = new Rng(9);
  for (const n of [...SIZES, BIG])
    for (const p of [0, 0.1, 0.5, 0.9, 1])
      for (const seed of [0, 12345, 0xdeadbeef]) {
        const [a, b] = both({ x: rng.f32(n), out: new Float32Array(n), mask: new Uint8Array(n) }, (K, io) =>
          K.dropout(f32(io.x), f32(io.out), io.mask as Uint8Array, n, p, seed),
        );
        same('dropout', `n=${n} p=${p} seed=${seed} mask`, a.mask!, b.mask!);
        near('dropout', `n=${n} p=${p} seed=${seed} out`, f32(a.out), f32(b.out));
      }
});

// ================================================================ reductions

test('sum over the middle axis, sumSquares', { skip: missing('sum', 'sumSquares') }, () => {
  const rng = new Rng(10);
  for (let it = 0; it < 40; it++) {
    const [outer, red, inner] = [rng.pick(SIZES), rng.pick(SIZES), rng.pick(SIZES)].map((s) => (s === 257 && it % 2 ? 1 : s));
    const [a, b] = both({ x: rng.f32(outer * red * inner, 1, 0.5), out: rng.f32(outer * inner) }, (K, io) =>
      K.sum(f32(io.x), f32(io.out), outer, red, inner),
    );
    near('sum', `outer=${outer} red=${red} inner=${inner}`, f32(a.out), f32(b.out));
  }
  for (const n of [...SIZES, BIG, 1_000_003]) {
    const x = rng.f32(n, 3);
    near('sumSquares', `n=${n}`, N!.sumSquares(x, n), R.sumSquares(x, n), 1e-10);
  }
});

// ================================================================ softmax

test('softmax and log-softmax, forward and backward (rows with −inf entries too)', { skip: missing('softmax', 'softmaxBackward') }, () => {
  const rng = new Rng(11);
  for (const cols of [...SIZES, 4099])
    for (const rows of [1, 3, 33])
      for (const log of [false, true]) {
        const x = rng.f32(rows * cols, 5);
        if (cols > 1) for (let r = 0; r < rows; r += 2) x[r * cols + rng.int(0, cols)] = -Infinity; // masked logits
        const [a, b] = both({ x, out: new Float32Array(rows * cols) }, (K, io) => K.softmax(f32(io.x), f32(io.out), rows, cols, log));
        near('softmax', `${rows}×${cols} log=${log}`, f32(a.out), f32(b.out));
        const y = f32(b.out).map((v) => (Number.isFinite(v) ? v : -1e4)); // finite y for the backward
        const [c, d] = both({ y, gy: rng.f32(rows * cols), gx: new Float32Array(rows * cols) }, (K, io) =>
          K.softmaxBackward(f32(io.y), f32(io.gy), f32(io.gx), rows, cols, log),
        );
        near('softmaxBackward', `${rows}×${cols} log=${log}`, f32(c.gx), f32(d.gx));
      }
});

// ================================================================ normalisation

/** max|gy|·max|w|·max rstd: the size of the terms whose difference is a norm's gx. */
function termScale(gy: AnyArray | null, w: Float32Array | null, rstd: AnyArray | null): number {
  const maxAbs = (a: ArrayLike<number>): number => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  return maxAbs(f32(gy)) * (w ? maxAbs(w) : 1) * maxAbs(f32(rstd));
}

test('rmsNorm and layerNorm, forward and backward, with and without affine parameters', {
  skip: missing('rmsNorm', 'rmsNormBackward', 'layerNorm', 'layerNormBackward'),
}, () => {
  const rng = new Rng(12);
  for (const cols of [...SIZES, 4096])
    for (const rows of [1, 17, 65])
      for (const affine of [true, false]) {
        const n = rows * cols;
        const x = rng.f32(n, 2, 0.3);
        const w = affine ? rng.f32(cols) : null;
        const b = affine ? rng.f32(cols) : null;
        const eps = rng.pick([1e-5, 1e-6, 0.1]);
        const tag = `${rows}×${cols} affine=${affine}`;

        const [r1, r2] = both({ x, w, out: new Float32Array(n), rstd: new Float32Array(rows) }, (K, io) =>
          K.rmsNorm(f32(io.x), io.w as Float32Array | null, f32(io.out), f32(io.rstd), rows, cols, eps),
        );
        near('rmsNorm', `${tag} out`, f32(r1.out), f32(r2.out));
        near('rmsNorm', `${tag} rstd`, f32(r1.rstd), f32(r2.rstd));
        const [g1, g2] = both({ x, w, rstd: r2.rstd, gy: rng.f32(n), gx: new Float32Array(n), gw: w ? rng.f32(cols) : null }, (K, io) =>
          K.rmsNormBackward(f32(io.x), io.w as Float32Array | null, f32(io.rstd), f32(io.gy), f32(io.gx), io.gw as Float32Array | null, rows, cols),
        );
        near('rmsNormBackward', `${tag} gx`, f32(g1.gx), f32(g2.gx), TOL, termScale(g1.gy, w, r2.rstd));
        if (w) near('rmsNormBackward', `${tag} gw (accumulated)`, f32(g1.gw), f32(g2.gw));

        const [l1, l2] = both({ x, w, b, out: new Float32Array(n), mean: new Float32Array(rows), rstd: new Float32Array(rows) }, (K, io) =>
          K.layerNorm(f32(io.x), io.w as Float32Array | null, io.b as Float32Array | null, f32(io.out), f32(io.mean), f32(io.rstd), rows, cols, eps),
        );
        near('layerNorm', `${tag} out`, f32(l1.out), f32(l2.out));
        near('layerNorm', `${tag} mean`, f32(l1.mean), f32(l2.mean));
        near('layerNorm', `${tag} rstd`, f32(l1.rstd), f32(l2.rstd));
        const [h1, h2] = both(
          { x, w, mean: l2.mean, rstd: l2.rstd, gy: rng.f32(n), gx: new Float32Array(n), gw: w ? rng.f32(cols) : null, gb: b ? rng.f32(cols) : null },
          (K, io) =>
            K.layerNormBackward(f32(io.x), io.w as Float32Array | null, f32(io.mean), f32(io.rstd), f32(io.gy), f32(io.gx), io.gw as Float32Array | null, io.gb as Float32Array | null, rows, cols),
        );
        near('layerNormBackward', `${tag} gx`, f32(h1.gx), f32(h2.gx), TOL, termScale(h1.gy, w, l2.rstd));
        if (w) near('layerNormBackward', `${tag} gw (accumulated)`, f32(h1.gw), f32(h2.gw));
        if (b) near('layerNormBackward', `${tag} gb (accumulated)`, f32(h1.gb), f32(h2.gb));
      }
});

// ================================================================ rotary embeddings

test('rope: both pair layouts, inverse, per-batch tables, in place', { skip: missing('rope') }, () => {
  const rng = new Rng(13);
  for (const [batch, seq, heads, dim] of [[1, 1, 1, 2], [2, 3, 3, 4], [1, 17, 2, 34], [3, 33, 1, 66], [2, 65, 4, 128]])
    for (const interleaved of [false, true])
      for (const inverse of [false, true])
        for (const perBatch of [false, true]) {
          const half = dim / 2;
          const tables = perBatch ? batch : 1;
          const theta = rng.f32(tables * seq * half, 3);
          const cos = theta.map(Math.cos);
          const sin = theta.map(Math.sin);
          const stride = perBatch ? seq * half : 0;
          const n = batch * seq * heads * dim;
          const x = rng.f32(n);
          const [a, b] = both({ x, out: new Float32Array(n), inPlace: x, cos, sin }, (K, io) => {
            K.rope(f32(io.x), f32(io.out), f32(io.cos), f32(io.sin), batch, seq, heads, dim, stride, interleaved, inverse);
            K.rope(f32(io.inPlace), f32(io.inPlace), f32(io.cos), f32(io.sin), batch, seq, heads, dim, stride, interleaved, inverse);
          });
          const tag = `[${batch},${seq},${heads},${dim}] interleaved=${interleaved} inverse=${inverse} perBatch=${perBatch}`;
          near('rope', tag, f32(a.out), f32(b.out));
          near('rope', `${tag} in place`, f32(a.inPlace), f32(b.inPlace));
        }
});

// ================================================================ attention

interface AttnCase {
  name: string;
  B: number;
  T: number;
  S: number;
  sCap: number;
  H: number;
  KVH: number;
  D: number;
  causal: boolean;
  /** 'none', a random mask, or one that hides every key from some queries. */
  mask: 'none' | 'random' | 'blind';
}

const attnCases: AttnCase[] = [
  { name: 'single query and key', B: 1, T: 1, S: 1, sCap: 1, H: 1, KVH: 1, D: 1, causal: false, mask: 'none' },
  { name: 'non-causal', B: 2, T: 17, S: 17, sCap: 17, H: 2, KVH: 2, D: 16, causal: false, mask: 'none' },
  { name: 'cross-attention T > S', B: 1, T: 33, S: 3, sCap: 3, H: 1, KVH: 1, D: 17, causal: false, mask: 'none' },
  { name: 'causal T = S', B: 2, T: 33, S: 33, sCap: 33, H: 3, KVH: 3, D: 8, causal: true, mask: 'none' },
  { name: 'causal offset T < S, sCap > S', B: 2, T: 5, S: 65, sCap: 80, H: 2, KVH: 1, D: 32, causal: true, mask: 'none' },
  { name: 'decode step T = 1', B: 3, T: 1, S: 257, sCap: 300, H: 4, KVH: 2, D: 64, causal: true, mask: 'random' },
  { name: 'GQA 6:2 with key mask', B: 2, T: 17, S: 17, sCap: 17, H: 6, KVH: 2, D: 3, causal: true, mask: 'random' },
  { name: 'MQA 4:1 non-causal mask', B: 2, T: 9, S: 33, sCap: 40, H: 4, KVH: 1, D: 65, causal: false, mask: 'random' },
  { name: 'fully-masked rows', B: 3, T: 17, S: 33, sCap: 33, H: 2, KVH: 2, D: 16, causal: true, mask: 'blind' },
  { name: 'long sequence', B: 1, T: 257, S: 257, sCap: 257, H: 2, KVH: 1, D: 64, causal: true, mask: 'none' },
];

/** Key mask [B, S] for a case; 'blind' hides the first S − T + 2 keys of batch 0 (its first causal queries see nothing) and all of batch 1. */
function keyMaskFor(rng: Rng, c: AttnCase): Uint8Array | null {
  if (c.mask === 'none') return null;
  const m = rng.mask(c.B * c.S, 0.7);
  if (c.mask === 'blind') {
    for (let j = 0; j < c.S; j++) {
      if (j < c.S - c.T + 2) m[j] = 0;
      m[c.S + j] = 0;
    }
  }
  return m;
}

test('attention forward and backward: causal offset, sCap > S, GQA, key mask, fully-masked rows', {
  skip: missing('attention', 'attentionBackward'),
}, () => {
  const rng = new Rng(14);
  for (const c of attnCases) {
    const { B, T, S, sCap, H, KVH, D, causal } = c;
    const scale = 1 / Math.sqrt(D);
    const q = rng.f32(B * T * H * D, 1.5);
    const k = rng.f32(B * sCap * KVH * D, 1.5);
    const v = rng.f32(B * sCap * KVH * D);
    const keyMask = keyMaskFor(rng, c);
    const [a, b] = both({ q, k, v, keyMask, out: rng.f32(B * T * H * D), lse: rng.f32(B * H * T) }, (K, io) =>
      K.attention(f32(io.q), f32(io.k), f32(io.v), f32(io.out), f32(io.lse), io.keyMask as Uint8Array | null, B, T, S, sCap, H, KVH, D, scale, causal),
    );
    near('attention', `${c.name} out`, f32(a.out), f32(b.out));
    near('attention', `${c.name} lse`, f32(a.lse), f32(b.lse));
    if (c.mask === 'blind') {
      // Batch 1 sees no key at all: zeros out.
      const row = T * H * D;
      assert.ok(f32(a.out).subarray(row, 2 * row).every((x) => x === 0), 'native: a query that sees no key outputs zeros');
    }
    // Both backward kernels get the reference's out and lse.
    const dense = B * S * KVH * D;
    const [g1, g2] = both(
      { q, k, v, out: b.out, lse: b.lse, keyMask, gout: rng.f32(B * T * H * D), gq: rng.f32(q.length), gk: rng.f32(dense), gv: rng.f32(dense) },
      (K, io) =>
        K.attentionBackward(
          f32(io.q), f32(io.k), f32(io.v), f32(io.out), f32(io.lse), io.keyMask as Uint8Array | null, f32(io.gout),
          f32(io.gq), f32(io.gk), f32(io.gv), B, T, S, sCap, H, KVH, D, scale, causal,
        ),
    );
    near('attentionBackward', `${c.name} gq`, f32(g1.gq), f32(g2.gq));
    near('attentionBackward', `${c.name} gk`, f32(g1.gk), f32(g2.gk));
    near('attentionBackward', `${c.name} gv`, f32(g1.gv), f32(g2.gv));
  }
});

// ================================================================ embedding

test('embedding (f32 and bf16 tables), embeddingBackward with repeated ids, out-of-range ids throw', {
  skip: missing('embedding', 'embeddingBackward'),
}, () => {
  const rng = new Rng(15);
  for (const vocab of SIZES)
    for (const dim of [1, 3, 64, 257])
      for (const bf16 of [false, true]) {
        const n = rng.pick([1, 17, 300]);
        const table = bf16 ? rng.u16(vocab * dim).map((u) => u & 0xbfff) : rng.f32(vocab * dim); // finite bf16
        const ids = rng.i32(n, 0, vocab);
        const [a, b] = both({ table, ids, out: new Float32Array(n * dim) }, (K, io) =>
          K.embedding(io.table as Float32Array, bf16, io.ids as Int32Array, f32(io.out), n, dim, vocab),
        );
        same('embedding', `vocab=${vocab} dim=${dim} bf16=${bf16}`, a.out!, b.out!);
        const [c, d] = both({ ids, gy: rng.f32(n * dim), gTable: rng.f32(vocab * dim) }, (K, io) =>
          K.embeddingBackward(io.ids as Int32Array, f32(io.gy), f32(io.gTable), n, dim),
        );
        near('embeddingBackward', `vocab=${vocab} dim=${dim} n=${n}`, f32(c.gTable), f32(d.gTable));
      }
  for (const K of [N!, R])
    for (const bad of [-1, 5])
      assert.throws(() => K.embedding(new Float32Array(10), false, new Int32Array([0, bad]), new Float32Array(4), 2, 2, 5), /embedding/, `${K.name} id ${bad}`);
});

// ================================================================ loss

test('crossEntropy and crossEntropyBackward with ignored rows; bad targets throw', {
  skip: missing('crossEntropy', 'crossEntropyBackward'),
}, () => {
  const rng = new Rng(16);
  const ignore = -100;
  for (const V of [...SIZES, 32000])
    for (const rows of [1, 3, 65]) {
      if (V === 32000 && rows === 65) continue;
      const logits = rng.f32(rows * V, 4);
      const targets = rng.i32(rows, 0, V).map((t) => (rng.next() < 0.2 ? ignore : t));
      const [a, b, kn, kr] = both({ logits, targets, losses: rng.f32(rows), lse: rng.f32(rows) }, (K, io) =>
        K.crossEntropy(f32(io.logits), io.targets as Int32Array, f32(io.losses), f32(io.lse), rows, V, ignore),
      );
      assert.equal(kn, kr, 'count of rows not ignored');
      near('crossEntropy', `${rows}×${V} losses`, f32(a.losses), f32(b.losses));
      near('crossEntropy', `${rows}×${V} lse`, f32(a.lse), f32(b.lse));
      const [c, d] = both({ logits, targets, lse: b.lse, gy: rng.f32(rows), gl: rng.f32(rows * V) }, (K, io) =>
        K.crossEntropyBackward(f32(io.logits), io.targets as Int32Array, f32(io.lse), f32(io.gy), f32(io.gl), rows, V, ignore),
      );
      near('crossEntropyBackward', `${rows}×${V}`, f32(c.gl), f32(d.gl));
    }
  for (const K of [N!, R])
    for (const bad of [-1, 7]) {
      const t = new Int32Array([0, bad]);
      assert.throws(() => K.crossEntropy(new Float32Array(14), t, new Float32Array(2), new Float32Array(2), 2, 7, ignore), /crossEntropy/, `${K.name} target ${bad}`);
    }
});

// ================================================================ optimizers

test('adamw: several steps, with and without weight decay', { skip: missing('adamw') }, () => {
  const rng = new Rng(17);
  for (const n of [...SIZES, BIG])
    for (const wd of [0, 0.1])
      for (const t of [1, 10]) {
        const [b1, b2] = [0.9, 0.999];
        const v = rng.f32(n).map((x) => x * x * 1e-3);
        const [a, b] = both({ p: rng.f32(n), g: rng.f32(n, 0.1), m: rng.f32(n, 0.01), v }, (K, io) =>
          K.adamw(f32(io.p), f32(io.g), f32(io.m), f32(io.v), n, 1e-3, b1, b2, 1e-8, wd, 1 - b1 ** t, 1 - b2 ** t),
        );
        for (const key of ['p', 'm', 'v'] as const) near('adamw', `n=${n} wd=${wd} t=${t} ${key}`, f32(a[key]), f32(b[key]));
      }
});

test('sgd: momentum, dampening, nesterov, weight decay, first step', { skip: missing('sgd') }, () => {
  const rng = new Rng(18);
  for (const n of [1, 17, 257, BIG])
    for (const momentum of [0, 0.9])
      for (const dampening of [0, 0.1])
        for (const wd of [0, 0.01])
          for (const nesterov of momentum ? [false, true] : [false])
            for (const first of [true, false]) {
              const [a, b] = both({ p: rng.f32(n), g: rng.f32(n), buf: rng.f32(n) }, (K, io) =>
                K.sgd(f32(io.p), f32(io.g), f32(io.buf), n, 0.05, momentum, dampening, wd, nesterov, first),
              );
              const tag = `n=${n} μ=${momentum} damp=${dampening} wd=${wd} nesterov=${nesterov} first=${first}`;
              near('sgd', `${tag} p`, f32(a.p), f32(b.p));
              // The contract leaves buf unspecified for μ = 0 (PyTorch keeps no buffer then), so it is compared only with momentum.
              if (momentum) near('sgd', `${tag} buf`, f32(a.buf), f32(b.buf));
            }
});
