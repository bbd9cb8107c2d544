// The merging kernels: native against the reference backend on odd sizes (serial and threaded paths), and the
// reference against definitions written here (exhaustive f16 round trips, a sorted ranking, a worked TIES entry).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Rng } from '../helpers/random.js';
import { CastDType, SignElection, type Kernels } from '../../src/engine/backend/kernels.js';
import { reference } from '../../src/engine/backend/reference/index.js';

const native = createRequire(import.meta.url)('../../build/Release/peftjs.node') as Kernels;

/** Deterministic uniform values in [lo, hi). */
const rand = (n: number, seed: number, lo = -1, hi = 1): Float32Array => new Rng(seed).f32Uniform(n, lo, hi);

// Below and above the native kernels' 32768-element threading threshold.
const SIZES = [1, 7, 1023, 40_001, 100_003];

/** Every f32 with a given magnitude pattern plus the interesting edges: halves' range, subnormals, inf, NaN. */
function castInputs(n: number, seed: number): Float32Array {
  const x = rand(n, seed, -1, 1);
  const scales = [1, 65504, 65519.99, 65520, 1e5, 6.1e-5, 5.96e-8, 2.98e-8, 1e-9, 3e-4];
  for (let i = 0; i < n; i++) x[i] *= scales[i % scales.length];
  const edges = [0, -0, Infinity, -Infinity, NaN, 65504, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 1 + 2 ** -11, 1 + 3 * 2 ** -11];
  edges.forEach((v, i) => i < n && (x[i] = v));
  return x;
}

test('castF32ToF16: native equals reference bit for bit, odd sizes and edge values', () => {
  for (const n of SIZES) {
    const x = castInputs(n, n);
    const a = new Uint16Array(n), b = new Uint16Array(n);
    native.castF32ToF16(x, a, n);
    reference.castF32ToF16(x, b, n);
    for (let i = 0; i < n; i++) assert.equal(a[i], b[i], `n=${n} x[${i}]=${x[i]}: native ${a[i].toString(16)}, reference ${b[i].toString(16)}`);
  }
});

test('castF32ToF16: every half round-trips, midpoints round to even, overflow and NaN', () => {
  const halves = new Uint16Array(65536).map((_, i) => i);
  const f = new Float32Array(65536);
  reference.castF16ToF32(halves, f, 65536);
  for (const k of [native, reference]) {
    const back = new Uint16Array(65536);
    k.castF32ToF16(f, back, 65536);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) assert.equal(back[h], h | 0x200, `${k.name}: NaN ${h.toString(16)} stays NaN (quiet)`);
      else assert.equal(back[h], h, `${k.name}: half ${h.toString(16)} round-trips`);
    }
    // Midpoints between consecutive finite positive halves round to the even one (f64 midpoints are exact in f32).
    const mids = new Float32Array(0x7bff);
    for (let h = 0; h < 0x7bff; h++) mids[h] = (f[h] + f[h + 1]) / 2;
    const r = new Uint16Array(mids.length);
    k.castF32ToF16(mids, r, mids.length);
    for (let h = 0; h < mids.length; h++) assert.equal(r[h], h & 1 ? h + 1 : h, `${k.name}: midpoint above ${h.toString(16)}`);
    const o = new Uint16Array(3);
    k.castF32ToF16(new Float32Array([65519, 65520, -1e6]), o, 3);
    assert.deepEqual([...o], [0x7bff, 0x7c00, 0xfc00], `${k.name}: overflow`);
  }
});

test('weightedSum: native equals the whole-tensor chain (affine, axpy, cast) and the reference, for mixed input and output dtypes', () => {
  const castTo = (k: Kernels, x: Float32Array, dtype: CastDType): Float32Array | Uint16Array => {
    if (dtype === CastDType.F32) return x.slice();
    const out = new Uint16Array(x.length);
    (dtype === CastDType.BF16 ? k.castF32ToBF16 : k.castF32ToF16).call(k, x, out, x.length);
    return out;
  };
  const wide = (x: Float32Array | Uint16Array, dtype: CastDType) => (x instanceof Float32Array ? x : castFrom(x, dtype));
  for (const n of SIZES) {
    const values = [rand(n, n + 11, -3, 3), rand(n, n + 12, -3, 3), rand(n, n + 13, -3, 3)];
    for (const dtypes of [[CastDType.BF16, CastDType.BF16], [CastDType.F32, CastDType.F16, CastDType.BF16], [CastDType.F16]]) {
      const inputs = dtypes.map((d, j) => castTo(reference, values[j], d));
      const w = Float32Array.from(dtypes, (_, j) => [0.5, -1.25, 0.3][j]);
      // The whole-tensor linear merge's arithmetic on the exact f32 values of the inputs.
      const acc = new Float32Array(n);
      inputs.forEach((x, j) => {
        const v = wide(x, dtypes[j]);
        if (j === 0) native.affine(v, acc, n, w[j], 0);
        else native.axpy(v, acc, n, w[j]);
      });
      for (const outDtype of [CastDType.F32, CastDType.BF16, CastDType.F16]) {
        const got = outDtype === CastDType.F32 ? new Float32Array(n) : new Uint16Array(n);
        native.weightedSum(Int32Array.from(dtypes), inputs, w, n, outDtype, got);
        // === : the chain's affine adds +0, so it gives +0 where the kernel gives −0.
        const [a, chain] = [wide(got, outDtype), wide(castTo(native, acc, outDtype), outDtype)];
        for (let i = 0; i < n; i++) assert.ok(a[i] === chain[i] || (Number.isNaN(a[i]) && Number.isNaN(chain[i])), `n=${n} dtypes ${dtypes} → ${outDtype} [${i}]: ${a[i]} vs ${chain[i]}`);
        const ref = outDtype === CastDType.F32 ? new Float32Array(n) : new Uint16Array(n);
        reference.weightedSum(Int32Array.from(dtypes), inputs, w, n, outDtype, ref);
        const b = wide(ref, outDtype);
        // Native may fuse the multiply-add; one rounding of the output dtype apart at most.
        const ulp = outDtype === CastDType.F32 ? 1e-6 : outDtype === CastDType.BF16 ? 2 ** -7 : 2 ** -10;
        for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i] - b[i]) <= ulp * (1 + Math.abs(b[i])), `n=${n} [${i}]: ${a[i]} vs ${b[i]}`);
      }
    }
  }
  // A worked entry: bf16 1 and −2 weighted 2 and 0.5 → 1, written as bf16 0x3f80 by both backends.
  for (const k of [native, reference]) {
    const out = new Uint16Array(1);
    k.weightedSum(new Int32Array([CastDType.BF16, CastDType.BF16]), [new Uint16Array([0x3f80]), new Uint16Array([0xc000])], new Float32Array([2, 0.5]), 1, CastDType.BF16, out);
    assert.equal(out[0], 0x3f80);
  }
  assert.throws(() => native.weightedSum(new Int32Array([CastDType.BF16]), [new Float32Array(4)], new Float32Array([1]), 4, CastDType.F32, new Float32Array(4)), /input 0 must be a Uint16Array/);
  assert.throws(() => native.weightedSum(new Int32Array(0), [], new Float32Array(0), 4, CastDType.F32, new Float32Array(4)), /no inputs/);
});

/** bf16 / f16 bits back to f32 (reference kernels). */
function castFrom(x: Uint16Array, dtype: CastDType): Float32Array {
  const out = new Float32Array(x.length);
  (dtype === CastDType.BF16 ? reference.castBF16ToF32 : reference.castF16ToF32)(x, out, x.length);
  return out;
}

/** `x` rounded to `dtype` (bf16 / f16 bits), and those values back in f32. */
function rounded(x: Float32Array, dtype: CastDType.BF16 | CastDType.F16): [Uint16Array, Float32Array] {
  const bits = new Uint16Array(x.length);
  (dtype === CastDType.BF16 ? reference.castF32ToBF16 : reference.castF32ToF16)(x, bits, x.length);
  return [bits, castFrom(bits, dtype)];
}

/**
 * A vector in the two forms the selection kernels read: one f32 input d, and two inputs — x (bf16) and a base (f16) —
 * whose f32 difference is d. Values on a coarse grid, so magnitudes tie.
 */
function vectorForms(n: number, seed: number): { d: Float32Array; one: [Int32Array, Float32Array[]]; two: [Int32Array, Uint16Array[]] } {
  const [xb, x] = rounded(rand(n, seed, -2, 2).map((v) => Math.round(v * 32) / 32), CastDType.BF16);
  const [bh, b] = rounded(rand(n, seed + 1, -2, 2).map((v) => Math.round(v * 64) / 64), CastDType.F16);
  const d = x.map((v, i) => v - b[i]);
  return { d, one: [Int32Array.of(CastDType.F32), [d]], two: [Int32Array.of(CastDType.BF16, CastDType.F16), [xb, bh]] };
}

test('magnitudeHistogram: native equals reference (accumulating, with a prefix match), x − base read as stored equals its f32 difference; counts match a direct count', () => {
  for (const n of SIZES) {
    const { d, one, two } = vectorForms(n, n + 3);
    const bits = new Uint32Array(d.buffer);
    for (const [bins, shift, matchShift, match] of [[2048, 20, 31, 0], [1024, 10, 20, bits[0] >>> 20 & 0x7ff]]) {
      const hists = [native, reference].flatMap((k) =>
        [one, two].map(([dtypes, inputs]) => {
          const h = new Int32Array(bins).fill(5);
          k.magnitudeHistogram(dtypes, inputs, n, h, bins, shift, matchShift, match);
          return h;
        }),
      );
      for (const h of hists.slice(1)) assert.deepEqual(h, hists[0], `n=${n} shift=${shift}`);
      let want = 0;
      for (let i = 0; i < n; i++) want += Number(matchShift === 31 || (bits[i] & 0x7fffffff) >>> matchShift === match);
      assert.equal(hists[0].reduce((s, c) => s + c, 0) - 5 * bins, want, `n=${n}: total count`);
    }
  }
  assert.throws(() => native.magnitudeHistogram(Int32Array.of(0, 0, 0), [new Float32Array(4), new Float32Array(4), new Float32Array(4)], 4, new Int32Array(16), 16, 0, 31, 0), /one input \(x\) or two/);
});

test('magnitudeBrackets: native equals direct counts over chunks, for vectors read as they are and as x − base, several brackets per vector (counts, and the collected bits as a multiset); an overfull list keeps counting', () => {
  const bitsOf = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0];
  for (const n of SIZES) {
    const [ab, a] = rounded(rand(n, n + 7, -2, 2).map((v) => Math.round(v * 32) / 32), CastDType.BF16);
    const [bb, b] = rounded(rand(n, n + 8, -2, 2).map((v) => Math.round(v * 32) / 32), CastDType.BF16);
    const [hh, h] = rounded(rand(n, n + 9, -2, 2).map((v) => Math.round(v * 64) / 64), CastDType.F16);
    const vectors = [a.map((v, i) => v - h[i]), b.map((v, i) => v - h[i])];
    // Two brackets on vector 1 (one of them a single magnitude), one on vector 0.
    const rows = Int32Array.of(1, 0, 1);
    const bounds = Float64Array.of(bitsOf(0.25), bitsOf(0.5), bitsOf(0.125), bitsOf(1), bitsOf(0.75), bitsOf(0.75));
    const mags = vectors.map((d) => [...new Uint32Array(d.buffer)].map((u) => u & 0x7fffffff));
    const want = [...rows].map((r, k) => {
      const [lo, hi] = [bounds[2 * k], bounds[2 * k + 1]], m = mags[r];
      return { counts: [m.filter((q) => q < lo).length, m.filter((q) => q === lo).length, m.filter((q) => q > lo && q < hi).length, hi > lo ? m.filter((q) => q === hi).length : 0], inside: m.filter((q) => q > lo && q < hi).sort((p, q) => p - q) };
    });
    const forms: [string, Int32Array, (Float32Array | Uint16Array)[], boolean][] = [
      ['x − base', Int32Array.of(CastDType.F16, CastDType.BF16, CastDType.BF16), [hh, ab, bb], true],
      ['as they are', Int32Array.of(CastDType.F32, CastDType.F32), vectors, false],
    ];
    for (const k of [native, reference]) {
      for (const [form, dtypes, inputs, based] of forms) {
        const lists = [...rows].map(() => new Int32Array(n)), counts = new Float64Array(4 * rows.length);
        const cut = Math.floor(n / 2);
        k.magnitudeBrackets(dtypes, inputs.map((x) => x.subarray(0, cut)), cut, based, rows, bounds, lists, counts);
        k.magnitudeBrackets(dtypes, inputs.map((x) => x.subarray(cut)), n - cut, based, rows, bounds, lists, counts);
        want.forEach((w, j) => {
          const label = `${k.name} n=${n} ${form}, bracket ${j}`;
          assert.deepEqual([...counts.subarray(4 * j, 4 * j + 4)], w.counts, `${label}: counts`);
          assert.deepEqual([...lists[j].subarray(0, w.counts[2])].sort((p, q) => p - q), w.inside, `${label}: collected bits`);
        });
        const small = [...rows].map(() => new Int32Array(3)), c = new Float64Array(4 * rows.length);
        k.magnitudeBrackets(dtypes, inputs, n, based, rows, bounds, small, c);
        want.forEach((w, j) => assert.deepEqual([...c.subarray(4 * j, 4 * j + 4)], w.counts, `${k.name} n=${n} ${form}, bracket ${j}: counts past a full list`));
      }
      assert.throws(() => k.magnitudeBrackets(...forms[0].slice(1, 3) as [Int32Array, Uint16Array[]], n, true, Int32Array.of(2), Float64Array.of(0, 1), [new Int32Array(1)], new Float64Array(4)), /rows\[0\] = 2 names no row of 2/);
    }
  }
});

test('magnitudeGather: native equals the magnitude bits at the positions, from f32 and from x − base; a position outside is named', () => {
  for (const n of SIZES) {
    const { d, one, two } = vectorForms(n, n + 11);
    const mags = new Uint32Array(d.buffer).map((b) => b & 0x7fffffff);
    // Repeats and any order, more positions than the threading threshold when n allows.
    const at = Int32Array.from({ length: 300 }, (_, j) => (j * 7919 + (j % 3)) % n);
    const want = Int32Array.from(at, (i) => mags[i]);
    for (const k of [native, reference]) {
      for (const [dtypes, inputs] of [one, two]) {
        const out = new Int32Array(at.length + 1).fill(-1);
        k.magnitudeGather(dtypes, inputs, n, at, at.length, out);
        assert.deepEqual(out.subarray(0, at.length), want, `${k.name} n=${n} ${inputs.length} input(s)`);
        assert.equal(out[at.length], -1, 'nothing past count');
      }
      assert.throws(() => k.magnitudeGather(...one, n, Int32Array.of(0, n), 2, new Int32Array(2)), new RegExp(`at\\[1\\] = ${n} lies outside \\[0, ${n}\\)`));
    }
  }
});

/** Kept indices of a band of ascending (|x|, index) ranks [lo, hi), by sorting. */
function bandBySort(x: Float32Array, lo: number, hi: number): Set<number> {
  const order = [...x.keys()].sort((i, j) => Math.abs(x[i]) - Math.abs(x[j]) || i - j);
  return new Set(order.slice(lo, hi));
}

const F32 = Int32Array.of(CastDType.F32);

test('magnitudeRankIndex and keepMagnitudeBand: native equals reference in chunks, and keep exactly the sorted rank band with ties by index', () => {
  for (const n of SIZES.filter((s) => s > 1)) {
    for (const zeros of [false, true]) {
      // Quantised values so many entries tie in magnitude; with half of them zero, the lower boundary is 0.
      const x = rand(n, n + 4, -1, 1).map((v, i) => (zeros && i % 2 ? 0 : Math.round(v * 8) / 8));
      const u = new Uint32Array(x.buffer);
      const sorted = [...u].map((b) => b & 0x7fffffff).sort((p, q) => p - q);
      const lo = Math.floor(n * 0.3), hi = Math.floor(n * 0.9);
      const low = sorted[lo], high = sorted[hi - 1];
      const lowSkip = lo - sorted.indexOf(low), highTake = hi - sorted.indexOf(high);
      const equalHigh = sorted.lastIndexOf(high) + 1 - sorted.indexOf(high);
      const outs = [native, reference].map((k) => {
        const lowCut = k.magnitudeRankIndex(F32, [x], n, low, lowSkip);
        const highCut = highTake < equalHigh ? k.magnitudeRankIndex(F32, [x], n, high, highTake) : n;
        assert.ok(lowCut >= 0 && highCut >= 0, `${k.name} n=${n}: the cuts are found`);
        assert.equal(k.magnitudeRankIndex(F32, [x], n, high, equalHigh), -1 - equalHigh, `${k.name}: one past the last tie`);
        const y = x.slice();
        const cut = Math.floor(n / 3); // two chunks: the predicate needs only each chunk's offset
        k.keepMagnitudeBand(y.subarray(0, cut), cut, 0, low, lowCut, high, highCut);
        k.keepMagnitudeBand(y.subarray(cut), n - cut, cut, low, lowCut, high, highCut);
        return y;
      });
      assert.deepEqual(outs[0], outs[1], `n=${n}: native vs reference`);
      const keep = bandBySort(x, lo, hi);
      for (let i = 0; i < n; i++) assert.equal(outs[0][i], keep.has(i) ? x[i] : 0, `n=${n}: entry ${i}`);
      if (zeros && n > 2) assert.equal(low, 0, 'the lower boundary is a zero magnitude');
    }
    // From x − base as stored: the same index as from the f32 difference.
    const { d, two } = vectorForms(n, n + 11);
    const bits = new Uint32Array(d.buffer)[n >> 1] & 0x7fffffff;
    for (const k of [native, reference]) assert.equal(k.magnitudeRankIndex(...two, n, bits, 0), reference.magnitudeRankIndex(F32, [d], n, bits, 0), `${k.name} n=${n}`);
  }
});

/** Row j's band of magnitude ranks [lo, hi) of x, in keepMagnitudeBand's form, found by sorting. */
function bandOf(x: Float32Array, lo: number, hi: number): number[] {
  const n = x.length;
  if (lo >= hi) return [2 ** 31, 0, 2 ** 31, 0];
  const u = new Uint32Array(x.buffer, x.byteOffset, n);
  const sorted = [...u].map((b) => b & 0x7fffffff).sort((p, q) => p - q);
  const low = lo > 0 ? sorted[lo] : -1, high = hi < n ? sorted[hi - 1] : 2 ** 31;
  const cut = (bits: number, rank: number) => reference.magnitudeRankIndex(F32, [x], n, bits, rank);
  const lowCut = low < 0 ? 0 : cut(low, lo - sorted.indexOf(low));
  const highTake = hi - sorted.indexOf(high), equalHigh = sorted.lastIndexOf(high) + 1 - sorted.indexOf(high);
  const highCut = high >= 2 ** 31 || highTake >= equalHigh ? n : cut(high, highTake);
  return [low, lowCut, high, highCut];
}

test('tiesCombine: native matches reference (no election, sum and count votes; f32 and bf16 bases; up to 4 rows of one dtype in one pass, more in several), bands equal trimming the rows first, models equal their task vectors, outputs cast', () => {
  for (const n of SIZES) {
    for (const k of [1, 3, 5]) {
      // Task vectors quantised, so bands cut through ties; each model = base + τ exactly in f32.
      const base = rand(n, n + 9).map((v) => Math.round(v * 256) / 256);
      const [baseBf16] = rounded(base, CastDType.BF16);
      const taus = Array.from({ length: k }, (_, j) => rand(n, n + k + j, -1, 1).map((v, i) => (i % 5 === 0 ? 0 : Math.round(v * 16) / 16)));
      const models = taus.map((t) => t.map((v, i) => v + base[i]));
      const w = Float32Array.from({ length: k }, (_, j) => 0.5 + j);
      // Row 0 keeps its top half, row 1 a middle band, row 2 nothing.
      const ranges = [[Math.floor(n / 2), n], [Math.floor(n / 5), Math.floor((3 * n) / 4)], [0, 0], [0, n], [Math.floor(n / 3), Math.floor(n / 2)]];
      const bands = Float64Array.from(taus.flatMap((t, j) => bandOf(t, ranges[j][0], ranges[j][1])));
      const trimmed = taus.map((t, j) => {
        const y = t.slice();
        native.keepMagnitudeBand(y, n, 0, ...(Array.from(bands.subarray(4 * j, 4 * j + 4)) as [number, number, number, number]));
        return y;
      });
      for (const [normalize, election] of [[true, SignElection.Sum], [false, SignElection.Count], [true, SignElection.Count], [true, SignElection.None]] as const) {
        for (const [dtype, b] of [[CastDType.F32, base], [CastDType.BF16, baseBf16]] as const) {
          const at = (kern: Kernels, rows: Float32Array[], bs: Float64Array, fromModels: boolean, outDtype = CastDType.F32) => {
            // In two ranges: the bands need only each range's offset.
            const out = outDtype === CastDType.F32 ? new Float32Array(n) : new Uint16Array(n), cut = Math.floor(n / 3);
            const dtypes = Int32Array.from([dtype, ...rows.map(() => CastDType.F32)]);
            for (const [from, to] of [[0, cut], [cut, n]]) {
              const inputs = [b, ...rows].map((x) => x.subarray(from, to));
              kern.tiesCombine(dtypes, inputs, to - from, w, bs, from, outDtype, out.subarray(from, to), 0.8, normalize, election, fromModels);
            }
            return out;
          };
          const label = `k=${k} n=${n} dtype=${dtype} normalize=${normalize} election=${election}`;
          const mine = at(native, taus, bands, false) as Float32Array, ref = at(reference, taus, bands, false) as Float32Array;
          for (let i = 0; i < n; i++) assert.ok(Math.abs(mine[i] - ref[i]) <= 1e-6 * (1 + Math.abs(ref[i])), `${label} [${i}]: ${mine[i]} vs ${ref[i]}`);
          assert.deepEqual(mine, at(native, trimmed, new Float64Array(0), false), `${label}: banded = trimmed rows`);
          // The base here is exact in bf16, so model − base gives back τ exactly.
          if (dtype === CastDType.BF16) for (const kern of [native, reference]) assert.deepEqual(at(kern, models, bands, true), at(kern, taus, bands, false), `${label} ${kern.name}: models`);
          // Every input in one 16-bit dtype (a checkpoint merge's usual case): models read as themselves, minus the base.
          for (const half of [CastDType.BF16, CastDType.F16] as const) {
            const [baseBits] = rounded(base, half), rows = models.map((x) => rounded(x, half)[0]);
            const halves = (kern: Kernels) => {
              const out = new Float32Array(n);
              kern.tiesCombine(Int32Array.from([half, ...rows.map(() => half)]), [baseBits, ...rows], n, w, bands, 0, CastDType.F32, out, 0.8, normalize, election, true);
              return out;
            };
            const mineHalf = halves(native), refHalf = halves(reference);
            for (let i = 0; i < n; i++) assert.ok(Math.abs(mineHalf[i] - refHalf[i]) <= 1e-6 * (1 + Math.abs(refHalf[i])), `${label} all dtype ${half} [${i}]: ${mineHalf[i]} vs ${refHalf[i]}`);
          }
          assert.deepEqual(at(native, taus, bands, false, CastDType.BF16), rounded(mine, CastDType.BF16)[0], `${label}: bf16 output`);
        }
      }
    }
  }
  for (const kern of [native, reference]) {
    const out = new Float32Array(2), none = new Float64Array(0), f32 = Int32Array.from([0, 0, 0, 0]);
    const worked = (election: SignElection) =>
      kern.tiesCombine(f32, [new Float32Array([10, 10]), new Float32Array([3, 4]), new Float32Array([-2, -1]), new Float32Array([-2, -1])], 2, new Float32Array([1, 1, 1]), none, 0, CastDType.F32, out, 1, true, election, false);
    // Entry 0: 3, −2, −2 → sum −1 elects −, disjoint mean −2. Entry 1: 4, −1, −1 → sum 2 elects +, mean 4; by count −;
    // without an election, the mean of all three.
    worked(SignElection.Sum);
    assert.deepEqual([...out], [8, 14], kern.name);
    worked(SignElection.Count);
    assert.deepEqual([...out], [8, 9], `${kern.name} by count`);
    worked(SignElection.None);
    assert.deepEqual([...out], [Math.fround(10 + Math.fround(-1 / 3)), Math.fround(10 + Math.fround(2 / 3))], `${kern.name} no election`);
    // Weights summing to less than 1e-8 in magnitude are not divided by (mergekit's rule without an election).
    kern.tiesCombine(Int32Array.of(0, 0, 0), [new Float32Array([10]), new Float32Array([1e8]), new Float32Array([1e8])], 1, new Float32Array([3e-9, 2e-9]), none, 0, CastDType.F32, out, 1, true, SignElection.None, false);
    assert.ok(Math.abs(out[0] - 10.5) < 1e-5, `${kern.name}: |Σw| < 1e-8 → no division, got ${out[0]}`);
  }
  assert.throws(() => native.tiesCombine(Int32Array.of(0, 0), [new Float32Array(2), new Float32Array(2)], 2, new Float32Array(1), new Float64Array(0), 0, CastDType.F32, new Float32Array(2), 1, false, 3 as SignElection, false), /election must be/);
});
