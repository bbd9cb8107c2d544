/**
 * Data files → training and evaluation rows, with a report of everything left out or cut. With `taskField` every
 * record names its task; the tasks are the distinct values in order of first appearance in the training files
 * (task id = index), and each task's examples are packed into rows of their own, tagged with the task id.
 */
import type { Tokenizer } from '../../io/tokenizer.js';
import { readExamples, type DataFormat, type Example, type Source } from './formats.js';
import { buildRows, type Row, type RowsResult } from './pack.js';
import { trainEvalSplit } from './split.js';
import { tokenizeExample, type Reference, type TokenizedExample, type TokenizeOptions } from './tokenize.js';

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
  /** The record field naming each example's task (multi-task runs). */
  taskField?: string;
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
  /** Multi-task runs: rows per task, in task-id order. */
  tasks?: { name: string; trainRows: number; evalRows: number }[];
}

export interface PreparedData {
  train: Row[];
  eval: Row[];
  /** Eval prompts with the completion greedy generation should reproduce (prompt/completion records only). */
  references: Reference[];
  /** The task names by task id (multi-task runs, with `taskField`). */
  tasks?: string[];
  report: DataReport;
}

const asList = (f: string | string[]) => (Array.isArray(f) ? f : [f]);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Reads, validates, splits, tokenizes and packs the data of a training run. */
export function prepareData(tok: Tokenizer, o: DataOptions): PreparedData {
  const skipped: DataReport['skipped'] = [];
  const read = (files: string | string[], tasks?: readonly string[]): Example[] =>
    asList(files).flatMap((f) => {
      const r = readExamples(f, { format: o.format, skipMalformed: o.skipMalformed, taskField: o.taskField, tasks });
      skipped.push(...r.skipped);
      return r.examples;
    });
  const all = read(o.data);
  if (all.length === 0) throw new Error(`no training examples in ${asList(o.data).join(', ')}`);
  const tasks = o.taskField === undefined ? null : [...new Set(all.map((x) => x.task!))];
  const split = o.evalData ? { train: all, eval: read(o.evalData, tasks ?? undefined) } : trainEvalSplit(all, o.evalSplit, o.seed);
  const padId = tok.padId ?? tok.eosId ?? 0;
  const taskId = new Map(tasks?.map((t, i) => [t, i]));
  const tokenize = (xs: Example[]) => xs.map((x) => ({ ...tokenizeExample(tok, x, o), task: taskId.get(x.task!) }));
  const trainTok = tokenize(split.train);
  const evalTok = tokenize(split.eval);
  const rows = (xs: (TokenizedExample & { task?: number })[]): RowsResult => {
    if (!tasks) return buildRows(xs, o.seqLen, o.packing, padId);
    // One task's examples per row: pack (or pad) each task on its own.
    const parts = tasks.map((_, t) => {
      const r = buildRows(xs.filter((x) => x.task === t), o.seqLen, o.packing, padId);
      for (const row of r.rows) row.task = t;
      return r;
    });
    return {
      rows: parts.flatMap((p) => p.rows),
      truncated: { examples: sum(parts.map((p) => p.truncated.examples)), tokens: sum(parts.map((p) => p.truncated.tokens)) },
      dropped: sum(parts.map((p) => p.dropped)),
    };
  };
  const train = rows(trainTok);
  const ev = rows(evalTok);
  let trainTargetTokens = 0;
  for (const r of train.rows) for (const t of r.targets) if (t >= 0) trainTargetTokens++;
  const count = (rs: Row[], t: number) => rs.filter((r) => r.task === t).length;
  return {
    train: train.rows,
    eval: ev.rows,
    references: evalTok.flatMap((e) => (e.reference ? [{ ...e.reference, ...(e.task === undefined ? {} : { task: e.task }) }] : [])),
    ...(tasks ? { tasks } : {}),
    report: {
      trainExamples: split.train.length,
      evalExamples: split.eval.length,
      skipped,
      truncated: { examples: train.truncated.examples + ev.truncated.examples, tokens: train.truncated.tokens + ev.truncated.tokens },
      dropped: train.dropped + ev.dropped,
      trainRows: train.rows.length,
      evalRows: ev.rows.length,
      trainTargetTokens,
      ...(tasks ? { tasks: tasks.map((name, t) => ({ name, trainRows: count(train.rows, t), evalRows: count(ev.rows, t) })) } : {}),
    },
  };
}
