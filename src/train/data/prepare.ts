/** Data files → training and evaluation rows, with a report of everything left out or cut. */
import type { Tokenizer } from '../../io/tokenizer.js';
import { readExamples, type DataFormat, type Example, type Source } from './formats.js';
import { buildRows, type Row } from './pack.js';
import { trainEvalSplit } from './split.js';
import { tokenizeExample, type Reference, type TokenizeOptions } from './tokenize.js';

export interface DataOptions extends TokenizeOptions {
  data: string | string[];
  evalData?: string | string[];
  format?: DataFormat;
  skipMalformed?: boolean;
  seqLen: number;
  packing: boolean;
  /** Eval fraction (< 1) or count (≥ 1) split off `data` when there is no `evalData`. */
  evalSplit: number;
  seed: number;
}

export interface DataReport {
  trainExamples: number;
  evalExamples: number;
  /** Malformed records skipped (with `skipMalformed`). */
  skipped: { source: Source; reason: string }[];
  /** Examples cut to the row length (unpacked rows only) and tokens cut off, per split. */
  truncated: { examples: number; tokens: number };
  /** Examples with no target token left, dropped. */
  dropped: number;
  trainRows: number;
  evalRows: number;
  /** Target tokens of one pass over the training rows. */
  trainTargetTokens: number;
}

export interface PreparedData {
  train: Row[];
  eval: Row[];
  /** Eval prompts with the completion greedy generation should reproduce (prompt/completion records only). */
  references: Reference[];
  report: DataReport;
}

const asList = (f: string | string[]) => (Array.isArray(f) ? f : [f]);

/** Reads, validates, splits, tokenizes and packs the data of a training run. */
export function prepareData(tok: Tokenizer, o: DataOptions): PreparedData {
  const skipped: DataReport['skipped'] = [];
  const read = (files: string | string[]): Example[] =>
    asList(files).flatMap((f) => {
      const r = readExamples(f, { format: o.format, skipMalformed: o.skipMalformed });
      skipped.push(...r.skipped);
      return r.examples;
    });
  const all = read(o.data);
  if (all.length === 0) throw new Error(`no training examples in ${asList(o.data).join(', ')}`);
  const split = o.evalData ? { train: all, eval: read(o.evalData) } : trainEvalSplit(all, o.evalSplit, o.seed);
  const padId = tok.padId ?? tok.eosId ?? 0;
  const tokenize = (xs: Example[]) => xs.map((x) => tokenizeExample(tok, x, o));
  const trainTok = tokenize(split.train);
  const evalTok = tokenize(split.eval);
  const train = buildRows(trainTok, o.seqLen, o.packing, padId);
  const ev = buildRows(evalTok, o.seqLen, o.packing, padId);
  let trainTargetTokens = 0;
  for (const r of train.rows) for (const t of r.targets) if (t >= 0) trainTargetTokens++;
  return {
    train: train.rows,
    eval: ev.rows,
    references: evalTok.flatMap((e) => (e.reference ? [e.reference] : [])),
    report: {
      trainExamples: split.train.length,
      evalExamples: split.eval.length,
      skipped,
      truncated: { examples: train.truncated.examples + ev.truncated.examples, tokens: train.truncated.tokens + ev.truncated.tokens },
      dropped: train.dropped + ev.dropped,
      trainRows: train.rows.length,
      evalRows: ev.rows.length,
      trainTargetTokens,
    },
  };
}
