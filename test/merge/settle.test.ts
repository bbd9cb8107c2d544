// The one-pass TIES / Breadcrumbs merge (settle.ts) against the pure whole-tensor functions: settled from its pending
// entries, and through its fallback second pass — when a lying sample makes the brackets miss their boundaries, and
// when the pending list has no room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CastDType } from '../../src/engine/backend/kernels.js';
import type { TypedRange } from '../../src/merge/dtype.js';
import { breadcrumbs } from '../../src/merge/methods/breadcrumbs.js';
import { rowCombiner } from '../../src/merge/methods/task-arithmetic.js';
import { ties, trimRanks } from '../../src/merge/methods/ties.js';
import { breadcrumbsRanks } from '../../src/merge/methods/breadcrumbs.js';
import { searchBands, type VectorSource } from '../../src/merge/select.js';
import { settledMerge } from '../../src/merge/settle.js';
import type { TensorScan } from '../../src/merge/stream.js';
import { Rng } from '../helpers/random.js';

const n = 60_000, RANGE = 4096;
const rng = new Rng(11);
// Values on a grid, so magnitudes tie and the bands cut through ties.
const grid = () => Float32Array.from({ length: n }, () => Math.round(rng.uniform(-64, 64)) / 64);
const base = grid(), models = [grid(), grid()];
const f32 = (data: Float32Array): TypedRange => ({ data, dtype: CastDType.F32 });

const scan: TensorScan = (visit, from = 0) => {
  for (let offset = from; offset < n; offset += RANGE) {
    const end = Math.min(n, offset + RANGE);
    if (visit([base, ...models].map((x) => f32(x.subarray(offset, end))), offset, end - offset) === false) return;
  }
};

/** The task vectors model − base as the selection reads them; `lie` makes the sample see zeros. */
const source = (lie: boolean): VectorSource => ({
  scan: (visit, from) =>
    scan((chunks, offset, length) => visit(chunks.slice(1).map((c) => ({ dtypes: Int32Array.of(CastDType.F32, CastDType.F32), inputs: [c.data, chunks[0].data] })), offset, length), from),
  gather: (indices) => models.map((m) => Float32Array.from(indices, (i) => (lie ? 0 : m[i] - base[i]))),
});

const cases = [
  { name: 'TIES', ranges: [trimRanks(n, 0.3), trimRanks(n, 0.6)], opts: { consensus: 'sum' as const, normalize: true }, want: ties(base, models, { density: [0.3, 0.6] }) },
  {
    name: 'Breadcrumbs',
    ranges: [breadcrumbsRanks(n, 0.5, 0.1), breadcrumbsRanks(n, 0.7, 0.05)],
    opts: { consensus: null, normalize: false },
    want: breadcrumbs(base, models, { density: [0.5, 0.7], gamma: [0.1, 0.05] }),
  },
];

for (const { name, ranges, opts, want } of cases) {
  test(`${name} in one pass equals the whole-tensor function: settled, after brackets that missed, and with no room for pending entries`, () => {
    for (const [how, lie, capacity] of [['settled', false, undefined], ['missed brackets', true, undefined], ['no room', false, 0]] as const) {
      const search = searchBands(source(lie), n, ranges);
      assert.ok(!search.decided);
      const merge = settledMerge(search, n, 2, rowCombiner(new Float32Array([1, 1]), opts), scan, capacity);
      const out = new Float32Array(n);
      scan((chunks, offset, length) => merge.range(chunks, offset, f32(out.subarray(offset, offset + length))));
      merge.finish(f32(out));
      assert.equal(search.finish().held, !lie, `${name} (${how}): whether the brackets held`);
      for (let i = 0; i < n; i++) assert.ok(out[i] === want[i], `${name} (${how}) [${i}]: got ${out[i]}, want ${want[i]}`);
    }
  });
}
