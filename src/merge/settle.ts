/**
 * TIES and Breadcrumbs merged in one pass over the inputs. Their bands of magnitude ranks are known only once every
 * entry has been counted, so the pass merges each range with the provisional bands of a {@link BandSearch} — which
 * decide every entry outside the search's brackets as the exact bands will — while counting the brackets in the same
 * tiles (tiesBracketCombine); the entries inside some bracket (a few percent) are kept aside with their inputs and,
 * once the pass has ended and the exact bands are known, merged again by the same kernel over them alone and written
 * into the held output. The inputs cross memory once instead of twice (a counting pass, then the merge's).
 */
import { CastDType } from '../engine/backend/kernels.js';
import { lowerBound, type BandSearch, type MagnitudeBand } from './select.js';
import type { BracketCounting } from './methods/task-arithmetic.js';
import type { TypedRange } from './dtype.js';
import type { SettledMerge, TensorScan } from './stream.js';

// The pending lists, grown to the largest tensor's and reused (fresh ones cost a page fault per 4 KiB written).
const SCR = { cap: 0, k: 0, idx: new Float64Array(0), vals: [] as Float32Array[] };
/** A range combiner as {@link rowCombiner} returns it. */
type Combine = (inputs: readonly TypedRange[], models: boolean, out: TypedRange, bands?: readonly MagnitudeBand[], offset?: number, counting?: BracketCounting) => void;

/**
 * The one-pass merge of k task vectors (inputs: the base, then the k models) of n entries with the bands `search`
 * finds, keeping at most `capacity` pending entries (default: twice the sample's estimate, and 1024 more). When a
 * boundary missed its bracket (a 6σ event of the sample) or more entries fell inside the brackets, the provisional
 * ranges cannot be settled: a second pass merges every range with the exact bands instead.
 */
export function settledMerge(
  search: BandSearch,
  n: number,
  k: number,
  combine: Combine,
  scan: TensorScan,
  capacity = Math.min(n, Math.ceil(2 * search.expectedInside) + 1024),
): SettledMerge {
  if (SCR.cap < capacity || SCR.k !== k) { SCR.cap = capacity; SCR.k = k; SCR.idx = new Float64Array(capacity); SCR.vals = Array.from({ length: k + 1 }, () => new Float32Array(capacity)); }
  const counting: BracketCounting = {
    brackets: search.brackets,
    lists: search.lists,
    counts: search.counts,
    pendingIndex: SCR.idx.subarray(0, capacity),
    pendingValues: SCR.vals.map((v) => v.subarray(0, capacity)),
    pendingCount: new Float64Array(1),
  };
  return {
    range(chunks, offset, out) {
      combine(chunks, true, out, search.provisional, offset, counting);
      search.counted(offset);
    },
    finish(out) {
      const { bands, held } = search.finish();
      const m = counting.pendingCount[0];
      if (!held || m > capacity) {
        scan((chunks, offset, length) => combine(chunks, true, { data: out.data.subarray(offset, offset + length), dtype: out.dtype }, bands, offset));
        return;
      }
      const index = counting.pendingIndex.subarray(0, m);
      // The pending entries are in index order, so a band's index cut is a position among them.
      const local = bands.map((b) => ({ ...b, lowCut: lowerBound(index, b.lowCut), highCut: lowerBound(index, b.highCut) }));
      const settled = out.data instanceof Float32Array ? new Float32Array(m) : new Uint16Array(m);
      combine(counting.pendingValues.map((v) => ({ data: v.subarray(0, m), dtype: CastDType.F32 })), false, { data: settled, dtype: out.dtype }, local, 0);
      for (let p = 0; p < m; p++) out.data[index[p]] = settled[p];
    },
  };
}
