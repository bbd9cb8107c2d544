// Native core kernels checked against independent JavaScript oracles, for what a native-vs-reference parity
// test cannot show: GEMM accuracy against double precision on odd shapes, exact bf16/f16 bit handling, the
// multi-threaded strided paths on large inputs, dropout's mask bit for bit, and argument validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative } from '../../src/engine/backend/native.js';
import { type AnyArray, BinaryOp, GemmDType, hashUniform, UnaryOp } from '../../src/engine/backend/kernels.js';

const loaded = loadNative();
if (loaded instanceof Error) throw loaded;
const k = loaded;

/** Deterministic uniform floats in [-1, 1) (a small LCG, so failures reproduce). */
function randomF32(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}
/** bf16 bits → value, exactly. */
const bf16Value = (h: number): number => fromBits(h << 16);

interface GemmCase {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  strideA: number;
  strideB: number;
  strideC: number;
  alpha: number;
  beta: number;
}

/**
 * C_b = alpha·op(A_b)·op(B_b) + beta·C_b in double precision, batch entries in order; returns C and, per element,
 * the bound Σ|alpha·a·b| + |beta·c| that scales the rounding error an fp32-accumulating GEMM may make.
 */
function naiveGemm(g: GemmCase, a: ArrayLike<number>, b: ArrayLike<number>, c0: Float32Array): { c: Float64Array; mag: Float64Array } {
  const c = Float64Array.from(c0);
  const mag = new Float64Array(c0.length);
  for (let bi = 0; bi < g.batch; bi++) {
    const oa = bi * g.strideA, ob = bi * g.strideB, oc = bi * g.strideC;
    for (let i = 0; i < g.M; i++)
      for (let j = 0; j < g.N; j++) {
        let acc = 0, abs = 0;
        for (let p = 0; p < g.K; p++) {
          const x = a[oa + (g.transA ? p * g.M + i : i * g.K + p)]!;
          const y = b[ob + (g.transB ? j * g.K + p : p * g.N + j)]!;
          acc += x * y;
          abs += Math.abs(x * y);
        }
        const at = oc + i * g.N + j;
        const prev = g.beta === 0 ? 0 : g.beta * c[at]!;
        mag[at] = Math.abs(g.alpha) * abs + Math.abs(prev) + mag[at]! * Math.abs(g.beta);
        c[at] = g.alpha * acc + prev;
      }
  }
  return { c, mag };
}

function checkGemm(dtype: GemmDType, g: GemmCase, seed: number): void {
  const aLen = (g.batch - 1) * g.strideA + g.M * g.K;
  const bLen = (g.batch - 1) * g.strideB + g.K * g.N;
  const cLen = (g.batch - 1) * g.strideC + g.M * g.N;
  const a32 = randomF32(aLen, seed), b32 = randomF32(bLen, seed + 1);
  const c = randomF32(cLen, seed + 2);
  // bf16 operands: round once, then both sides use the exact bf16 values.
  const a16 = new Uint16Array(aLen), b16 = new Uint16Array(bLen);
  k.castF32ToBF16(a32, a16, aLen);
  k.castF32ToBF16(b32, b16, bLen);
  const aVals = dtype === GemmDType.F32 ? a32 : Array.from(a16, bf16Value);
  const bVals = dtype === GemmDType.F32 ? b32 : Array.from(b16, bf16Value);
  const want = naiveGemm(g, aVals, bVals, c);
  const { batch, M, N, K, transA, transB, strideA, strideB, strideC, alpha, beta } = g;
  const [a, b] = dtype === GemmDType.F32 ? [a32, b32] : [a16, b16];
  k.gemm(dtype, a, b, c, batch, M, N, K, transA, transB, strideA, strideB, strideC, alpha, beta);
  for (let i = 0; i < cLen; i++) {
    const tol = 1e-6 * (1 + want.mag[i]!) * Math.sqrt(K + 1) * batch;
    if (!(Math.abs(c[i]! - want.c[i]!) <= tol))
      assert.fail(`${GemmDType[dtype]} ${JSON.stringify(g)}: C[${i}] = ${c[i]}, want ${want.c[i]} (tol ${tol})`);
  }
}

for (const dtype of [GemmDType.F32, GemmDType.BF16]) {
  test(`gemm ${GemmDType[dtype]}: odd shapes, all transposes, alpha and beta, against double precision`, () => {
    let seed = 1;
    for (const [M, N, K] of [[1, 1, 1], [7, 13, 5], [65, 33, 129], [1, 40, 17], [31, 1, 64]] as const)
      for (const transA of [false, true])
        for (const transB of [false, true])
          for (const [alpha, beta] of [[1, 0], [0.5, 1], [-2, 0.25], [1, 1]] as const)
            checkGemm(dtype, { batch: 1, M, N, K, transA, transB, strideA: 0, strideB: 0, strideC: 0, alpha, beta }, seed++);
  });

  test(`gemm ${GemmDType[dtype]}: batched, with gaps between matrices and stride-0 broadcast`, () => {
    const M = 9, N = 11, K = 6;
    const cases: Partial<GemmCase>[] = [
      { strideA: M * K, strideB: K * N, strideC: M * N },
      { strideA: M * K + 3, strideB: K * N + 5, strideC: M * N + 2 }, // padded batch entries
      { strideA: 0, strideB: K * N, strideC: M * N }, // A shared by every entry
      { strideA: M * K, strideB: 0, strideC: M * N, transB: true }, // B shared (a weight)
      { strideA: M * K, strideB: K * N, strideC: 0, beta: 1 }, // one C accumulating the batch
    ];
    let seed = 100;
    for (const cs of cases)
      for (const transA of [false, true])
        checkGemm(
          dtype,
          { batch: 4, M, N, K, transA, transB: false, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0, ...cs },
          seed++,
        );
  });

  test(`gemm ${GemmDType[dtype]}: beta = 0 overwrites C even where it holds NaN; K = 0 scales C by beta`, () => {
    const a = dtype === GemmDType.F32 ? new Float32Array(6).fill(1) : new Uint16Array(6).fill(0x3f80);
    const c = new Float32Array(4).fill(NaN);
    k.gemm(dtype, a, a, c, 1, 2, 2, 3, false, false, 0, 0, 0, 1, 0);
    assert.deepEqual(Array.from(c), [3, 3, 3, 3]);
    k.gemm(dtype, a, a, c, 1, 2, 2, 0, false, false, 0, 0, 0, 1, 0.5);
    assert.deepEqual(Array.from(c), [1.5, 1.5, 1.5, 1.5]);
  });
}

test('gemm: large bf16 shape (multi-threaded oneDNN path) against double precision', () => {
  checkGemm(GemmDType.BF16, { batch: 2, M: 130, N: 96, K: 300, transA: false, transB: true, strideA: 130 * 300, strideB: 0, strideC: 130 * 96, alpha: 0.125, beta: 1 }, 7);
});

test('benchRawGemm times both dtypes on any CPU (bf16 where oneDNN has no bf16 matmul too) and rejects other dtypes', () => {
  // On an AVX2-only CPU oneDNN cannot build a bf16 matmul; this call used to abort the process there.
  for (const dtype of [GemmDType.F32, GemmDType.BF16]) {
    const seconds = k.benchRawGemm(dtype, 16, 8, 32, 2);
    assert.ok(seconds > 0 && seconds < 10, `dtype ${dtype}: ${seconds} s`);
  }
  assert.throws(() => k.benchRawGemm(2 as GemmDType, 4, 4, 4, 1), /dtype must be 0 \(f32\) or 1 \(bf16\)/);
});

/** The bf16 nearest to x with ties to even, found by comparing distances in double (an independent oracle). */
function bf16Oracle(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const lo = bitsOf(x) >>> 16;
  const hi = lo + 1;
  const dLo = Math.abs(x - bf16Value(lo));
  // Past the largest finite bf16, hi stands for ±2¹²⁸ (the exponent unbounded), so values nearer to it overflow.
  const hiValue = (hi & 0x7fff) === 0x7f80 ? Math.sign(x) * 2 ** 128 : bf16Value(hi);
  const dHi = Math.abs(hiValue - x);
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return pick & 0xffff;
}

test('castF32ToBF16: round to nearest even, overflow to inf, NaN stays NaN', () => {
  const special = [
    1 + 2 ** -8, // tie between 1 (even) and 1 + 2⁻⁷: stays 1
    1 + 3 * 2 ** -8, // tie between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶: rounds up
    1 + 2 ** -8 + 2 ** -20, // just above a tie
    -(1 + 3 * 2 ** -8),
    0,
    -0,
    Infinity,
    -Infinity,
    3.4028234663852886e38, // largest f32 rounds up to inf
    1e-45, // smallest subnormal
    1.1754942e-38, // largest subnormal
  ];
  const bits = [
    ...special.map(bitsOf),
    ...Array.from(randomF32(20000, 3), (r) => Math.floor((r + 1) * 2 ** 31)), // random bit patterns
    ...Array.from({ length: 2000 }, (_, i) => ((0x3f80 + i) << 16) | 0x8000), // exact ties
  ].filter((b) => !Number.isNaN(fromBits(b)));
  const src = new Float32Array(new Uint32Array(bits).buffer);
  const dst = new Uint16Array(src.length);
  k.castF32ToBF16(src, dst, src.length);
  for (let i = 0; i < src.length; i++)
    if (dst[i] !== bf16Oracle(src[i]!)) assert.fail(`bf16(${src[i]}) = 0x${dst[i]!.toString(16)}, want 0x${bf16Oracle(src[i]!).toString(16)}`);

  // NaNs, including ones whose payload is only in the 16 bits bf16 drops, and a negative one.
  const nanBits = new Uint32Array([0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffc00000]);
  const nans = new Float32Array(nanBits.buffer);
  const nb = new Uint16Array(nans.length);
  k.castF32ToBF16(nans, nb, nans.length);
  const back = new Float32Array(nans.length);
  k.castBF16ToF32(nb, back, nans.length);
  for (let i = 0; i < nans.length; i++) {
    assert.ok(Number.isNaN(back[i]), `NaN 0x${nanBits[i]!.toString(16)} became 0x${nb[i]!.toString(16)}`);
    assert.equal(nb[i]! >> 15, nanBits[i]! >>> 31, 'sign of NaN kept');
  }
});

test('castBF16ToF32 and castF16ToF32: every one of the 65536 bit patterns', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const out = new Float32Array(65536);
  const outBits = new Uint32Array(out.buffer); // compare bits: reading a NaN into a JS number may change them
  k.castBF16ToF32(all, out, 65536);
  for (let h = 0; h < 65536; h++) assert.equal(outBits[h], (h << 16) >>> 0);

  k.castF16ToF32(all, out, 65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h >> 15 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
    const want = e === 31 ? (m === 0 ? sign * Infinity : NaN) : sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
    if (!Object.is(out[h], want)) assert.fail(`f16 0x${h.toString(16)} → ${out[h]}, want ${want}`);
  }
});

/** Row-major indices of `shape`, in order. */
function* indices(shape: number[]): Generator<number[]> {
  const idx = shape.map(() => 0);
  if (shape.some((s) => s === 0)) return;
  for (;;) {
    yield idx;
    let d = shape.length - 1;
    while (d >= 0 && ++idx[d]! === shape[d]) idx[d--] = 0;
    if (d < 0) return;
  }
}
const dot = (idx: number[], strides: number[]): number => idx.reduce((s, v, d) => s + v * strides[d]!, 0);
const contiguous = (shape: number[]): number[] => shape.map((_, d) => shape.slice(d + 1).reduce((p, s) => p * s, 1));

test('copyStrided: permuted views, broadcasts and strided destinations of every element size', () => {
  // [a, b, c] contiguous, read as its permutation [c, a, b]; large enough for the threaded path.
  const cases: { src: number[]; dst: number[]; shape: number[] }[] = [
    { shape: [40, 30, 50], src: [1, 30 * 50, 50], dst: contiguous([40, 30, 50]) },
    { shape: [3, 5, 7], src: [0, 7, 1], dst: contiguous([3, 5, 7]) }, // broadcast along axis 0
    { shape: [64, 700], src: [700, 1], dst: [1, 64] }, // transposing write
    { shape: [2, 1, 3, 1], src: [9, 100, 3, 7], dst: [6, 6, 2, 5] }, // size-1 axes with arbitrary strides
    { shape: [], src: [], dst: [] }, // a scalar
    { shape: [4, 0, 3], src: [0, 0, 0], dst: [0, 0, 0] }, // empty
  ];
  // Every element size; values large enough to need all of each element's bytes.
  const kinds: [string, (n: number) => AnyArray, (v: number) => number | bigint][] = [
    ['u8', (n) => new Uint8Array(n), (v) => v],
    ['u16', (n) => new Uint16Array(n), (v) => v * 257],
    ['f32', (n) => new Float32Array(n), (v) => v * 1.5e30],
    ['i64', (n) => new BigInt64Array(n), (v) => BigInt(v) << 40n],
  ];
  type Cells = { [i: number]: number | bigint };
  for (const { shape, src: ss, dst: ds } of cases)
    for (const [kind, make, value] of kinds) {
      const span = (st: number[]): number => (shape.some((s) => s === 0) ? 0 : dot(shape.map((s) => s - 1), st) + 1);
      const src = make(span(ss)), dst = make(span(ds)), want = make(span(ds));
      for (let i = 0; i < src.length; i++) (src as Cells)[i] = value((i * 7 + 3) % 251);
      for (const idx of indices(shape)) (want as Cells)[dot(idx, ds)] = (src as Cells)[dot(idx, ss)]!;
      k.copyStrided(src, ss, dst, ds, shape);
      assert.deepEqual(dst, want, `${kind} ${JSON.stringify({ shape, ss, ds })}`);
    }
});

test('binary: threaded strided and broadcast paths match a JavaScript loop exactly', () => {
  const shape = [6, 70, 90]; // 37800 elements: above the threading threshold
  const cases: [number[], number[]][] = [
    [contiguous(shape), contiguous(shape)],
    [contiguous(shape), [0, 0, 1]], // row vector
    [[0, 0, 0], contiguous(shape)], // scalar on the left
    [[1, 6 * 90, 6], [0, 1, 0]], // permuted view with a column broadcast
  ];
  for (const op of [BinaryOp.Add, BinaryOp.Sub, BinaryOp.Mul, BinaryOp.Div])
    for (const [as, bs] of cases) {
      const a = randomF32(dot(shape.map((s) => s - 1), as) + 1, op + 10);
      const b = randomF32(dot(shape.map((s) => s - 1), bs) + 1, op + 20);
      const out = new Float32Array(6 * 70 * 90);
      k.binary(op, a, as, b, bs, out, shape);
      const f = [(x: number, y: number) => x + y, (x: number, y: number) => x - y, (x: number, y: number) => x * y, (x: number, y: number) => x / y][op]!;
      let i = 0;
      for (const idx of indices(shape)) {
        const want = Math.fround(f(a[dot(idx, as)]!, b[dot(idx, bs)]!));
        if (out[i] !== want) assert.fail(`${BinaryOp[op]} ${JSON.stringify([as, bs])} at ${idx}: ${out[i]} ≠ ${want}`);
        i++;
      }
    }
});

test('sum and sumSquares: large reductions against double precision', () => {
  for (const [outer, red, inner] of [[1, 100000, 1], [300, 200, 1], [1, 2048, 768], [5, 70, 300], [3, 0, 4]] as const) {
    const x = randomF32(outer * red * inner, outer + red + inner);
    const out = new Float32Array(outer * inner).fill(NaN);
    k.sum(x, out, outer, red, inner);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        let s = 0;
        for (let r = 0; r < red; r++) s += x[(o * red + r) * inner + i]!;
        assert.ok(Math.abs(out[o * inner + i]! - s) <= 1e-6 * (1 + Math.abs(s)), `sum [${outer},${red},${inner}] at ${o},${i}`);
      }
  }
  const x = randomF32(200001, 5);
  const want = x.reduce((s, v) => s + v * v, 0);
  assert.ok(Math.abs(k.sumSquares(x, x.length) - want) <= 1e-9 * want);
});

test('dropout: the mask is exactly the JavaScript hashUniform draw, kept values scaled by 1/(1 − p)', () => {
  const n = 100003;
  const x = randomF32(n, 9);
  for (const [p, seed] of [[0.3, 42], [0.1, 0xdeadbeef], [0, 7], [1, 7]] as const) {
    const out = new Float32Array(n), mask = new Uint8Array(n);
    k.dropout(x, out, mask, n, p, seed);
    for (let i = 0; i < n; i++) {
      const keep = hashUniform(seed, i) >= p;
      if (mask[i] !== (keep ? 1 : 0)) assert.fail(`p=${p} seed=${seed}: mask[${i}] = ${mask[i]}`);
      if (out[i] !== (keep ? Math.fround(x[i]! * (1 / (1 - p))) : 0)) assert.fail(`p=${p}: out[${i}] = ${out[i]}`);
    }
  }
});

test('setNumThreads / getNumThreads', () => {
  const before = k.getNumThreads();
  assert.ok(before >= 1);
  k.setNumThreads(1);
  assert.equal(k.getNumThreads(), 1);
  checkGemm(GemmDType.BF16, { batch: 1, M: 33, N: 17, K: 40, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0 }, 3);
  k.setNumThreads(before);
  assert.equal(k.getNumThreads(), before);
  assert.throws(() => k.setNumThreads(0), /setNumThreads/);
});

test('short arrays and wrong array types throw errors naming the kernel and argument', () => {
  const f = new Float32Array(6), u = new Uint16Array(6);
  assert.throws(() => k.gemm(GemmDType.F32, f, f, f, 1, 2, 2, 4, false, false, 0, 0, 0, 1, 0), /gemm: .*\(a\) has 6 elements, needs 8/);
  assert.throws(() => k.gemm(GemmDType.F32, f, f, f, 2, 1, 3, 2, false, false, 2, 0, 4, 1, 0), /gemm: .*\(c\)/);
  assert.throws(() => k.gemm(GemmDType.BF16, f, u, f, 1, 1, 1, 1, false, false, 0, 0, 0, 1, 0), /gemm: argument 1 must be Uint16Array/);
  assert.throws(() => k.castF32ToBF16(f, new Uint16Array(3), 6), /castF32ToBF16: .*\(dst\)/);
  assert.throws(() => k.binary(BinaryOp.Add, f, [4, 1], f, [0, 1], f, [2, 3]), /binary: .*\(a\) has 6 elements, needs 7/);
  assert.throws(() => k.binary(BinaryOp.Add, new Float32Array(7), [1], new Float32Array(7), [1], f, [7]), /binary: .*\(out\)/);
  assert.throws(() => k.binary(BinaryOp.Add, f, [1, 1], f, [1], f, [2, 3]), /binary: b strides/);
  assert.throws(() => k.copyStrided(f, [1], u, [1], [6]), /copyStrided: .*byte elements/);
  assert.throws(() => k.where(new Uint8Array(2), [1], f, [1], f, [1], f, [3]), /where: .*\(mask\)/);
  assert.throws(() => k.sum(f, f, 2, 2, 2), /sum: .*\(x\)/);
  assert.throws(() => k.dropout(f, f, new Uint8Array(6), 6, 1.5, 0), /dropout: p must be/);
  assert.throws(() => k.unary(99 as UnaryOp, f, f, 6), /unary: unknown op/);
  assert.throws(() => k.axpy(f, f, -1, 1), /axpy: n must be a non-negative integer/);
});
