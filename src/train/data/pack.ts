/**
 * Tokenized examples → fixed training rows, and rows → batches.
 *
 * A row holds `ids` and `targets` (`targets[t]` is the token that should follow `ids[t]`, −100 where there is no
 * loss). Packing concatenates the examples (in their given order) into one stream and cuts it into rows of
 * `seqLen` inputs, each row's targets running one token into the next row, so every token but the first is a
 * target exactly once and no position is padding except in the last row. Without packing each example is one row,
 * truncated to `seqLen + 1` tokens (counted in `truncated`), and a batch pads its rows on the right to its longest
 * row — with causal attention right padding needs no attention mask, since no real token sees a later position.
 */
import { truncate, type TokenizedExample } from './tokenize.js';

export const IGNORE_INDEX = -100;

export interface Row {
  ids: Int32Array;
  targets: Int32Array;
  /** The task id of every example in the row (multi-task runs: rows never mix tasks). */
  task?: number;
}

export interface Batch {
  /** i32 [B, T] input ids, row-major. */
  ids: Int32Array;
  /** i32 [B, T] targets (−100: no loss). */
  targets: Int32Array;
  B: number;
  T: number;
  /** Number of targets that count (not −100). */
  targetTokens: number;
  /** i32 [B]: each row's task id, when the rows have one. */
  taskIds?: Int32Array;
}

export interface RowsResult {
  rows: Row[];
  /** Examples cut to fit `seqLen + 1` tokens (unpacked rows only) and the tokens cut off. */
  truncated: { examples: number; tokens: number };
  /** Examples with no target left (after truncation), which were dropped. */
  dropped: number;
}

function rowFrom(ids: readonly number[], mask: ArrayLike<number>, from: number, len: number): Row {
  const row = { ids: new Int32Array(len), targets: new Int32Array(len).fill(IGNORE_INDEX) };
  for (let t = 0; t < len; t++) {
    const i = from + t;
    row.ids[t] = ids[i]!;
    if (i + 1 < ids.length && mask[i + 1]) row.targets[t] = ids[i + 1]!;
  }
  return row;
}

/** Builds training rows of at most `seqLen` positions from tokenized examples. */
export function buildRows(examples: readonly TokenizedExample[], seqLen: number, packing: boolean, padId: number): RowsResult {
  const truncatedCount = { examples: 0, tokens: 0 };
  let dropped = 0;
  const rows: Row[] = [];
  if (packing) {
    const ids: number[] = [];
    const mask: number[] = [];
    for (const ex of examples) {
      for (let i = 0; i < ex.ids.length; i++) {
        ids.push(ex.ids[i]!);
        // The first token of an example is not predicted from the previous example's end.
        mask.push(i === 0 ? 0 : ex.mask[i]!);
      }
    }
    for (let start = 0; start + 1 < ids.length; start += seqLen) {
      const len = Math.min(seqLen, ids.length - 1 - start);
      const row = rowFrom(ids, mask, start, len);
      if (len < seqLen) rows.push(padRow(row, seqLen, padId));
      else rows.push(row);
    }
    return { rows, truncated: truncatedCount, dropped };
  }
  for (const ex of examples) {
    const cut = truncate(ex, seqLen + 1);
    if (cut !== ex) {
      truncatedCount.examples++;
      truncatedCount.tokens += ex.ids.length - cut.ids.length;
    }
    if (cut.ids.length < 2 || !cut.mask.subarray(1).some((m) => m === 1)) {
      dropped++;
      continue;
    }
    rows.push(rowFrom(cut.ids, cut.mask, 0, cut.ids.length - 1));
  }
  return { rows, truncated: truncatedCount, dropped };
}

function padRow(row: Row, len: number, padId: number): Row {
  const out = { ids: new Int32Array(len).fill(padId), targets: new Int32Array(len).fill(IGNORE_INDEX) };
  out.ids.set(row.ids);
  out.targets.set(row.targets);
  return out;
}

/** Stacks rows into one batch, right-padding to the longest; the rows' task ids (if any) come along. */
export function collate(rows: readonly Row[], padId: number): Batch {
  const tasked = rows.filter((r) => r.task !== undefined).length;
  if (tasked !== 0 && tasked !== rows.length) throw new Error(`collate: ${tasked} of ${rows.length} rows have a task id (all or none must)`);
  const T = Math.max(...rows.map((r) => r.ids.length));
  const B = rows.length;
  const ids = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  let targetTokens = 0;
  rows.forEach((r, b) => {
    ids.set(r.ids, b * T);
    targets.set(r.targets, b * T);
    for (const t of r.targets) if (t !== IGNORE_INDEX) targetTokens++;
  });
  return { ids, targets, B, T, targetTokens, ...(tasked ? { taskIds: Int32Array.from(rows, (r) => r.task!) } : {}) };
}
