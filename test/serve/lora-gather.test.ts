// The gathered LoRA kernel (BGMV): the reference twin against a float64 per-row loop over separately stored
// adapters (correctness), and the native kernel against the reference (parity). Error measure as in
// test/engine/kernels.test.ts: max |got − want| / max(1e-6, max |want|), tolerance 1e-5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative } from '../../src/engine/backend/native.js';
import { loraGather as reference } from '../../src/engine/backend/reference/lora-gather.js';
import type { Kernels } from '../../src/engine/backend/kernels.js';
import { LoraPool } from '../../src/serve/batch-lora.js';
import { Rng } from '../helpers/random.js';

const TOL = 1e-5;
const loaded = loadNative();
type LoraGatherKernel = Kernels['loraGather'];
const nativeGather: LoraGatherKernel | null = loaded instanceof Error ? null : loaded.loraGather;

function relErr(got: Float32Array, want: ArrayLike<number>): number {
  let scale = 1e-6;
  let worst = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  return worst / scale;
}

interface Case {
  rows: number;
  inF: number;
  outF: number;
  ranks: number[];
  rowAdapter: Int32Array;
  As: Float32Array[];
  Bs: Float32Array[];
  scales: number[];
  x: Float32Array;
  y0: Float32Array;
  pool: LoraPool;
}

/** Adapters of the given ranks placed in a pool with gaps between them (rank-granular, S-LoRA style). */
function makeCase(rng: Rng, rows: number, inF: number, outF: number, ranks: number[]): Case {
  const n = ranks.length;
  const capacity = ranks.reduce((s, r) => s + r + 2, 1);
  const pool = new LoraPool(inF, outF, n + 1, capacity); // one slot more than used: never referenced
  const As: Float32Array[] = [];
  const Bs: Float32Array[] = [];
  const scales: number[] = [];
  let at = 1;
  ranks.forEach((r, s) => {
    As.push(rng.f32(r * inF));
    Bs.push(rng.f32(outF * r));
    scales.push(rng.uniform(0.25, 2));
    pool.set(s, at, As[s]!, Bs[s]!, r, scales[s]!);
    at += r + 2;
  });
  const rowAdapter = Int32Array.from({ length: rows }, () => rng.int(-1, n));
  return { rows, inF, outF, ranks, rowAdapter, As, Bs, scales, x: rng.f32(rows * inF), y0: rng.f32(rows * outF), pool };
}

function run(k: LoraGatherKernel, c: Case): Float32Array {
  const y = c.y0.slice();
  const p = c.pool;
  k(c.x, y, c.rowAdapter, p.a!, p.bT!, p.offset, p.rank, p.scale, c.rows, c.inF, c.outF, p.slots);
  return y;
}

/** y[r] + s·B·(A·x[r]) per row in float64, each adapter from its own [r, in] / [out, r] arrays. */
function perRowLoop(c: Case): Float64Array {
  const y = Float64Array.from(c.y0);
  for (let row = 0; row < c.rows; row++) {
    const a = c.rowAdapter[row]!;
    if (a < 0) continue;
    const r = c.ranks[a]!;
    const h = new Float64Array(r);
    for (let j = 0; j < r; j++) for (let i = 0; i < c.inF; i++) h[j] += c.As[a]![j * c.inF + i]! * c.x[row * c.inF + i]!;
    for (let o = 0; o < c.outF; o++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += c.Bs[a]![o * r + j]! * h[j]!;
      y[row * c.outF + o] += Math.fround(c.scales[a]!) * s;
    }
  }
  return y;
}

const SHAPES: [number, number, number, number[]][] = [
  [1, 3, 5, [1]],
  [7, 17, 33, [4, 1, 8]],
  [32, 64, 96, [8, 16, 2, 8, 4]],
  [65, 257, 129, [3, 12, 7, 1, 16, 5, 9, 2]], // large enough for the native threaded path
];

test('loraGather reference: equals a per-row loop over each row\u2019s own adapter (mixed ranks, rows without one)', () => {
  const rng = new Rng(1);
  for (const [rows, inF, outF, ranks] of SHAPES) {
    const c = makeCase(rng, rows, inF, outF, ranks);
    const err = relErr(run(reference, c), perRowLoop(c));
    assert.ok(err < TOL, `rows ${rows} ${inF}→${outF}: err ${err}`);
    // Rows with no adapter keep y exactly.
    const y = run(reference, c);
    for (let r = 0; r < rows; r++) if (c.rowAdapter[r] === -1) assert.deepEqual(y.subarray(r * outF, (r + 1) * outF), c.y0.subarray(r * outF, (r + 1) * outF));
  }
});

test('loraGather native: parity with the reference', { skip: nativeGather ? false : 'native addon without loraGather' }, () => {
  const rng = new Rng(2);
  for (const [rows, inF, outF, ranks] of SHAPES) {
    const c = makeCase(rng, rows, inF, outF, ranks);
    const err = relErr(run(nativeGather!, c), run(reference, c));
    assert.ok(err < TOL, `rows ${rows} ${inF}→${outF}: err ${err}`);
  }
});

test('loraGather: a cleared slot and a rank-0 adapter leave rows unchanged', () => {
  const rng = new Rng(3);
  const c = makeCase(rng, 9, 8, 6, [2, 3]);
  c.rowAdapter.fill(1);
  c.pool.clear(1);
  for (const k of [reference, ...(nativeGather ? [nativeGather] : [])]) assert.deepEqual(run(k, c), c.y0);
});

test('loraGather: bad adapter indices and out-of-pool adapters are refused, naming the argument', () => {
  const rng = new Rng(4);
  const c = makeCase(rng, 4, 8, 6, [2, 3]);
  for (const k of [reference, ...(nativeGather ? [nativeGather] : [])]) {
    c.rowAdapter[2] = 5;
    assert.throws(() => run(k, c), /loraGather: rowAdapter\[2\] = 5 is outside \[-1, 3\)/);
    c.rowAdapter[2] = 0;
    c.pool.offset[0] = c.pool.capacityRanks - 1;
    assert.throws(() => run(k, c), /loraGather: adapter 0 \(offset \d+, rank 2\) lies outside the pools/);
    c.pool.offset[0] = 1;
  }
});
