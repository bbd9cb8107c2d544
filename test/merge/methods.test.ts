import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withBackend } from '../../src/engine/index.js';
import { linear } from '../../src/merge/methods/linear.js';
import { taskArithmetic, combineTaskVectors } from '../../src/merge/methods/task-arithmetic.js';
import { ties, trimByMagnitude } from '../../src/merge/methods/ties.js';
import { dare, dareDrop } from '../../src/merge/methods/dare.js';
import { breadcrumbs, breadcrumbsMask } from '../../src/merge/methods/breadcrumbs.js';
import { slerp } from '../../src/merge/methods/slerp.js';
import { fisherMerge } from '../../src/merge/methods/fisher.js';
import { regmean, gram } from '../../src/merge/methods/regmean.js';
import { greedySoup, uniformSoup } from '../../src/merge/methods/soup.js';
import { keepMagnitudeRanks, magnitudeAtRank } from '../../src/merge/select.js';
import { matmul } from '../../src/merge/matrix.js';
import { backends } from '../helpers/backends.js';
import { Rng } from '../helpers/random.js';

const f32 = (xs: number[]) => new Float32Array(xs);
const close = (a: Float32Array, b: ArrayLike<number>, tol = 1e-5) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `entry ${i}: ${a[i]} vs ${b[i]}`);
};

test('linear: weighted average, normalised by default', () => {
  close(linear([f32([1, 2]), f32([3, 6])], [1, 3]), [2.5, 5]);
  close(linear([f32([1, 2]), f32([3, 6])], [1, 3], { normalize: false }), [10, 20]);
});

test('task arithmetic: base + λ Σ wᵢ τᵢ', () => {
  const base = f32([1, 1, 1]);
  close(taskArithmetic(base, [f32([2, 1, 0]), f32([1, 3, 1])], { lambda: 0.5, weights: [1, 2] }), [1.5, 3, 0.5]);
});

test('magnitude ranks: the sampled bracket and the exact radix select both match a sort, ties broken by index', () => {
  const rng = new Rng(3);
  // Many repeated magnitudes (both signs) to exercise the tie rule; above 2¹⁴ entries the bracket comes from a sample,
  // and with a quarter of the entries one value, a rank lands in a tie at a bracket's end.
  const cases = [
    f32(Array.from({ length: 5000 }, () => rng.int(-40, 40) / 8)),
    f32(Array.from({ length: 300_000 }, (_, i) => (i % 4 === 0 ? 0.5 : rng.int(-4000, 4000) / 1024))),
  ];
  for (const x of cases) {
    const n = x.length;
    const order = [...x.keys()].sort((i, j) => Math.abs(x[i]) - Math.abs(x[j]) || i - j);
    const mag = (i: number) => Math.abs(x[order[i]]);
    for (const rank of [0, 1, 17, Math.floor(n / 2), Math.floor(n * 0.6), n - 2, n - 1]) {
      const less = order.findIndex((i) => Math.abs(x[i]) === mag(rank));
      const equal = order.filter((i) => Math.abs(x[i]) === mag(rank)).length;
      for (const exact of [false, true]) {
        const r = magnitudeAtRank(x, rank, { exact });
        assert.equal(new Float32Array(new Uint32Array([r.bits]).buffer)[0], mag(rank), `n=${n} rank ${rank} exact=${exact}`);
        assert.deepEqual([r.less, r.equal], [less, equal], `n=${n} rank ${rank} exact=${exact}: less, equal`);
      }
    }
    for (const [lo, hi] of [[0, n], [100, Math.floor(n * 0.8)], [n / 2, n / 2 + 1], [0, 1], [n - 1, n], [10, 10]]) {
      const kept = keepMagnitudeRanks(x.slice(), lo, hi);
      const expected = new Float32Array(n);
      for (const i of order.slice(lo, hi)) expected[i] = x[i];
      assert.deepEqual(kept, expected, `n=${n} ranks [${lo}, ${hi})`);
    }
  }
});

test('TIES: trim, elect sign by summed magnitude, disjoint mean — a worked example', () => {
  const base = f32([0, 0, 0, 0, 0]);
  // Task vectors (base is 0): density 0.6 keeps the 3 largest magnitudes of each.
  const t1 = f32([3, -2, 0.5, 1, -4]); // keeps 3, -2, -4
  const t2 = f32([-1, 5, 2, -0.1, 6]); // keeps 5, 2, 6
  const t3 = f32([-4, 1, -3, 2, 0.2]); // keeps -4, -3, 2
  assert.deepEqual(trimByMagnitude(t1.slice(), 0.6), f32([3, -2, 0, 0, -4]));
  // Per entry, trimmed values and elected sign (sign of the sum):
  // 0: 3, 0, -4 → sum -1 → −; agreeing {-4} → -4
  // 1: -2, 5, 0 → +; agreeing {5} → 5
  // 2: 0, 2, -3 → −; agreeing {-3} → -3
  // 3: 0, 0, 2 → +; {2} → 2
  // 4: -4, 6, 0 → +; {6} → 6
  close(ties(base, [t1, t2, t3], { density: 0.6 }), [-4, 5, -3, 2, 6]);
  // Without trimming, entry 3: 1, -0.1, 2 → + ; mean of {1, 2} = 1.5 (the disjoint mean ignores the -0.1).
  close(ties(base, [t1, t2, t3]).subarray(3, 4), [1.5]);
  // λ scales the merged vector; the base is added back.
  close(ties(f32([1, 1, 1, 1, 1]), [t1, t2, t3].map((t) => t.map((v) => v + 1)), { density: 0.6, lambda: 0.5 }), [-1, 3.5, -0.5, 2, 4]);
});

test('TIES sign election weighs magnitudes, not counts', () => {
  const d = [f32([1]), f32([1]), f32([-5])];
  close(combineTaskVectors(f32([0]), d, { consensus: 'sum', normalize: true }), [-5]);
  close(combineTaskVectors(f32([0]), d, { consensus: 'count', normalize: true }), [1]);
});

for (const name of backends()) {
  test(`DARE: the rescale keeps the expectation, drops ≈ 1 − density, is seeded (${name})`, () => {
    withBackend(name, () => {
      const n = 200_000, density = 0.3;
      const delta = new Float32Array(n).fill(2);
      const dropped = dareDrop(delta.slice(), density, 1234);
      const kept = dropped.filter((v) => v !== 0);
      assert.ok(Math.abs(kept.length / n - density) < 0.005, `kept fraction ${kept.length / n}`);
      for (const v of kept) assert.ok(Math.abs(v - 2 / density) < 1e-5);
      const mean = dropped.reduce((a, v) => a + v, 0) / n;
      assert.ok(Math.abs(mean - 2) < 0.03, `mean ${mean}`); // σ of the mean ≈ 2·√(0.7/0.3)/√n ≈ 0.007
      assert.deepEqual(dareDrop(delta.slice(), density, 1234), dropped, 'same seed, same mask');
      assert.notDeepEqual(dareDrop(delta.slice(), density, 99), dropped, 'another seed, another mask');
      // Merged: base + mean over many seeds of DARE ≈ base + Σ τ.
      const base = f32([1, -1]);
      let acc = [0, 0];
      const draws = 4000; // σ of each mean ≈ 0.035
      for (let s = 0; s < draws; s++) {
        const m = dare(base, [f32([2, 0]), f32([1, 1])], { density: 0.5, seed: 2 * s });
        acc = acc.map((a, i) => a + m[i] / draws);
      }
      close(f32(acc), [1 + 1 + 0, -1 + 1 + 2], 0.1); // τ₁ = [1, 1], τ₂ = [0, 2]
    });
  });
}

test('DARE-TIES: survivors are rescaled, then signs are elected', () => {
  const base = f32([0, 0, 0, 0]);
  const m = dare(base, [f32([1, 1, 1, 1]), f32([-3, -3, -3, -3])], { density: 1, variant: 'ties' });
  close(m, [-3, -3, -3, -3]);
});

test('Breadcrumbs: drops the top gamma and the bottom (1 − density − gamma) by magnitude', () => {
  const x = f32([0.1, -9, 3, -0.5, 2, 7, -1, 4, 0.2, -5]); // |x| ascending: .1 .2 .5 1 2 3 4 5 7 9
  // density 0.5, gamma 0.2: n_top = 2 (9, 7 go), n_bot = 10 − 5 − 2 = 3 (.1, .2, .5 go), keep 1 2 3 4 5.
  assert.deepEqual(breadcrumbsMask(x.slice(), 0.5, 0.2), f32([0, 0, 3, 0, 2, 0, -1, 4, 0, -5]));
  // density + gamma > 1: n_bot would be −1, so only one outlier (9) is removed and 9 of 10 are kept.
  assert.deepEqual(breadcrumbsMask(x.slice(), 0.9, 0.2), f32([0.1, 0, 3, -0.5, 2, 7, -1, 4, 0.2, -5]));
  const base = f32(Array(10).fill(1));
  close(breadcrumbs(base, [x.map((v) => v + 1)], { density: 0.5, gamma: 0.2 }), [1, 1, 4, 1, 3, 1, 0, 5, 1, -4]);
});

test('SLERP: endpoints, stays on the sphere for equal norms, falls back to lerp when parallel', () => {
  const a = f32([1, 0, 0]), b = f32([0, 1, 0]);
  close(slerp(0, a, b), a);
  close(slerp(1, a, b), b);
  const mid = slerp(0.5, a, b);
  close(mid, [Math.SQRT1_2, Math.SQRT1_2, 0]);
  assert.ok(Math.abs(Math.hypot(...mid) - 1) < 1e-6, 'norm 1, where lerp would give 0.707');
  const third = slerp(1 / 3, a, b);
  close(third, [Math.cos(Math.PI / 6), Math.sin(Math.PI / 6), 0]);
  // Parallel vectors of different norms: linear interpolation.
  close(slerp(0.25, f32([1, 2, 3]), f32([2, 4, 6])), [1.25, 2.5, 3.75]);
});

test('Fisher merging: equal Fisher is the plain average; information wins', () => {
  const m1 = f32([1, 2, 3]), m2 = f32([3, 6, 5]);
  const same = f32([0.7, 0.7, 0.7]);
  close(fisherMerge([m1, m2], [same, same]), linear([m1, m2], [1, 1]));
  close(fisherMerge([m1, m2], [f32([1, 0, 3]), f32([0, 1, 1])], { epsilon: 0 }), [1, 6, 3.5]);
  close(fisherMerge([m1, m2], [f32([0, 0, 0]), f32([0, 0, 0])]), [2, 4, 4], 1e-4);
});

for (const name of backends()) {
  test(`RegMean: one model returns it; two models minimise the summed output error (${name})`, () => {
    withBackend(name, () => {
      const rng = new Rng(11);
      const out = 3, inF = 4, rows = 20;
      const w1 = rng.f32(out * inF), w2 = rng.f32(out * inF);
      const x1 = rng.f32(rows * inF), x2 = rng.f32(rows * inF);
      const g1 = gram(x1, rows, inF), g2 = gram(x2, rows, inF);
      close(regmean([w1], [g1], out, inF), w1, 1e-4);
      const w = regmean([w1, w2], [g1, g2], out, inF);
      // Least squares optimality: Σ Gᵢ (W − Wᵢ)ᵀ = 0.
      const resid = new Float32Array(inF * out);
      for (const [g, wi] of [[g1, w1], [g2, w2]] as const) matmul(g, w.map((v, i) => v - wi[i]), inF, inF, out, { transB: true, into: resid });
      for (const r of resid) assert.ok(Math.abs(r) < 1e-3, `residual ${r}`);
      // α = 0 leaves only the diagonals: each input feature's column is the diag-weighted mean.
      const d = regmean([w1, w2], [g1, g2], out, inF, { alpha: 0 });
      for (let c = 0; c < inF; c++) {
        const a = g1[c * inF + c], b = g2[c * inF + c];
        for (let r = 0; r < out; r++) assert.ok(Math.abs(d[r * inF + c] - (a * w1[r * inF + c] + b * w2[r * inF + c]) / (a + b)) < 1e-4);
      }
    });
  });
}

test('soups: uniform averages; greedy keeps only ingredients that do not hurt', async () => {
  const model = (v: number) => new Map([['w', f32([v])]]);
  const models = [model(1), model(10), model(3), model(2)];
  close(uniformSoup(models).get('w')!, [4]);
  // Score: closeness of w to 2. Alone: 1 → −1, 10 → −8, 3 → −1, 2 → 0.
  const evaluate = (m: ReadonlyMap<string, Float32Array>) => -Math.abs(m.get('w')![0] - 2);
  const g = await greedySoup(models, evaluate);
  // Start from 2; + 1 → 1.5 (−0.5, worse); + 3 → 2.5 (−0.5, worse); + 10 → 6 (worse). Ties in order keep index order.
  assert.deepEqual(g.ingredients, [3]);
  const g2 = await greedySoup([model(1), model(3), model(10)], evaluate);
  // 1 and 3 both score −1 (1 first by stable sort), soup(1,3) = 2 scores 0 → kept; soup(1,3,10) worse.
  assert.deepEqual(g2.ingredients, [0, 1]);
  close(g2.soup.get('w')!, [2]);
  assert.equal(Math.abs(g2.score), 0);
});
