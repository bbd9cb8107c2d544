import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withBackend } from '../../src/engine/index.js';
import { svd, solve } from '../../src/engine/index.js';
import { matmul, frobenius } from '../../src/merge/matrix.js';
import { backends } from '../helpers/backends.js';
import { Rng } from '../helpers/random.js';

/** u · diag(s) · vt. */
function reconstruct(u: Float32Array, s: Float32Array, vt: Float32Array, m: number, k: number, n: number): Float32Array {
  const us = u.map((x, i) => x * s[i % k]);
  return matmul(us, vt, m, k, n);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** ‖XᵀX − I‖ max-entry for X [rows, cols] (columns orthonormal). */
function orthoError(x: Float32Array, rows: number, cols: number): number {
  const g = matmul(x, x, cols, rows, cols, { transA: true });
  let e = 0;
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) e = Math.max(e, Math.abs(g[i * cols + j] - (i === j ? 1 : 0)));
  return e;
}

// Tall, wide, square, a single row, and a rank-deficient matrix (rank 2 of 5×4).
const rng = new Rng(7);
const lowRank = matmul(rng.f32(5 * 2), rng.f32(2 * 4), 5, 2, 4);
const cases: [string, number, number, Float32Array][] = [
  ['tall 9x4', 9, 4, rng.f32(36)],
  ['wide 3x7', 3, 7, rng.f32(21)],
  ['square 6x6', 6, 6, rng.f32(36)],
  ['row 1x5', 1, 5, rng.f32(5)],
  ['rank-2 5x4', 5, 4, lowRank],
];

for (const name of backends()) {
  for (const [label, m, n, a] of cases) {
    test(`svd reconstructs, is orthonormal and sorted (${name}, ${label})`, () => {
      const copy = a.slice();
      const { u, s, vt, k } = withBackend(name, () => svd(a, m, n));
      assert.deepEqual(a, copy, 'input is not modified');
      assert.ok(maxAbsDiff(reconstruct(u, s, vt, m, k, n), a) < 1e-4 * Math.max(1, frobenius(a)));
      for (let i = 1; i < k; i++) assert.ok(s[i] <= s[i - 1] + 1e-6 && s[i] >= 0);
      assert.ok(orthoError(u, m, k) < 1e-4, 'columns of u are orthonormal');
      const v = new Float32Array(n * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) v[j * k + i] = vt[i * n + j];
      assert.ok(orthoError(v, n, k) < 1e-4, 'rows of vt are orthonormal');
    });
  }

  test(`solve returns a⁻¹b and rejects a singular matrix (${name})`, () => {
    const n = 7, r = 3;
    const a = rng.f32(n * n);
    for (let i = 0; i < n; i++) a[i * n + i] += 4;
    const xTrue = rng.f32(n * r);
    const b = matmul(a, xTrue, n, n, r);
    const x = withBackend(name, () => solve(a, b, n, r));
    assert.ok(maxAbsDiff(x, xTrue) < 1e-4);
    const singular = new Float32Array([1, 2, 2, 4]);
    assert.throws(() => withBackend(name, () => solve(singular, new Float32Array([1, 1]), 2, 1)), /solve.*singular/);
  });
}

test('native and reference svd agree on singular values and the rank-k truncation', { skip: backends().length < 2 }, () => {
  const m = 40, n = 25;
  const a = rng.f32(m * n);
  const ref = withBackend('reference', () => svd(a, m, n));
  const nat = withBackend('native', () => svd(a, m, n));
  assert.ok(maxAbsDiff(ref.s, nat.s) < 1e-4 * ref.s[0]);
  // Singular vectors are unique up to sign, so compare the rank-5 truncations instead.
  const trunc = (d: typeof ref) => {
    const k = 5;
    const u = new Float32Array(m * k), vt = d.vt.slice(0, k * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) u[i * k + j] = d.u[i * d.k + j];
    return reconstruct(u, d.s.slice(0, k), vt, m, k, n);
  };
  assert.ok(maxAbsDiff(trunc(ref), trunc(nat)) < 1e-4);
});
