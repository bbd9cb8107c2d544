/**
 * Training data files: JSONL, JSON (an array of records, or `{"data": [...]}`), CSV (header row) and plain text
 * (one record per blank-line-separated paragraph). A record is one of
 *   `{"text": ...}`, `{"prompt": ..., "completion": ...}` or `{"messages": [{"role": ..., "content": ...}, ...]}`.
 * With `taskField`, every record also names its task in that field (multi-task runs).
 * A malformed record is an error naming the file, the line and the field — or, with `skipMalformed`, is counted
 * and left out.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import type { ChatMessage } from '../../io/tokenizer.js';

/** Where a record came from (1-based line of its first character). */
export interface Source {
  file: string;
  line: number;
}

export type Example = (
  | { kind: 'text'; text: string; source: Source }
  | { kind: 'completion'; prompt: string; completion: string; source: Source }
  | { kind: 'chat'; messages: ChatMessage[]; source: Source }
) & {
  /** The record's task (the `taskField` value), in multi-task runs. */
  task?: string;
};

export type DataFormat = 'auto' | 'jsonl' | 'json' | 'csv' | 'text';

export interface ReadOptions {
  /** File format; 'auto' (default) picks by extension (.jsonl/.ndjson, .json, .csv/.tsv, anything else text). */
  format?: DataFormat;
  /** Leave malformed records out (counted in `skipped`) instead of throwing. */
  skipMalformed?: boolean;
  /** The field naming each record's task (a string or a number); a record without it is malformed. */
  taskField?: string;
  /** The known tasks: a record naming another is malformed (eval data of a multi-task run). */
  tasks?: readonly string[];
}

export interface ReadResult {
  examples: Example[];
  /** The records left out with `skipMalformed`, with why. */
  skipped: { source: Source; reason: string }[];
}

/** A record that is not one of the accepted shapes; `message` names file, line and field. */
export class DataError extends Error {
  constructor(
    readonly source: Source,
    readonly field: string | null,
    readonly reason: string,
  ) {
    super(`${source.file}:${source.line}: ${field === null ? '' : `field "${field}": `}${reason}`);
  }
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

function requireString(rec: Record<string, unknown>, field: string, source: Source, prefix = ''): string {
  const v = rec[field];
  if (typeof v !== 'string') throw new DataError(source, prefix + field, v === undefined ? 'missing' : `expected a string, got ${describeValue(v)}`);
  return v;
}

/** Validates one parsed record (`messages` may still be a JSON string, as CSV cells are). */
export function toExample(value: unknown, source: Source): Example {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new DataError(source, null, `expected an object with "text", "prompt"+"completion" or "messages", got ${describeValue(value)}`);
  const rec = value as Record<string, unknown>;
  if ('messages' in rec) {
    let list = rec.messages;
    if (typeof list === 'string') {
      try {
        list = JSON.parse(list);
      } catch {
        throw new DataError(source, 'messages', 'expected a list of {role, content} (the cell is not valid JSON)');
      }
    }
    if (!Array.isArray(list) || list.length === 0) throw new DataError(source, 'messages', `expected a non-empty list, got ${describeValue(list)}`);
    const messages = list.map((m, i) => {
      if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new DataError(source, `messages[${i}]`, `expected an object, got ${describeValue(m)}`);
      const msg = m as Record<string, unknown>;
      requireString(msg, 'role', source, `messages[${i}].`);
      requireString(msg, 'content', source, `messages[${i}].`);
      return msg as ChatMessage;
    });
    return { kind: 'chat', messages, source };
  }
  if ('prompt' in rec || 'completion' in rec)
    return { kind: 'completion', prompt: requireString(rec, 'prompt', source), completion: requireString(rec, 'completion', source), source };
  if ('text' in rec) return { kind: 'text', text: requireString(rec, 'text', source), source };
  const keys = Object.keys(rec);
  throw new DataError(source, null, `no "text", "prompt"/"completion" or "messages" field (fields: ${keys.length ? keys.join(', ') : 'none'})`);
}

/** The task a record names in `field` (record number `record` of its file); with `known`, one of those. */
function taskOf(value: unknown, field: string, source: Source, record: number, known?: readonly string[]): string {
  const v = (value as Record<string, unknown>)[field];
  if (v === undefined) throw new DataError(source, field, `missing in record ${record} (taskField names each example's task)`);
  if (!((typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isFinite(v))))
    throw new DataError(source, field, `record ${record}: expected a task name (a non-empty string or a number), got ${describeValue(v)}`);
  const task = String(v);
  if (known && !known.includes(task)) throw new DataError(source, field, `record ${record}: unknown task "${task}" (the training data's tasks: ${known.join(', ')})`);
  return task;
}

/** 1-based line of every character offset in `text`, as a lookup function. */
function lineLookup(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

/**
 * Start offsets of the elements of the top-level JSON array beginning at `open` (its `[`), found by tracking
 * strings and nesting — JSON.parse gives no positions, and errors must name a line.
 */
function arrayElementOffsets(text: string, open: number): number[] {
  const offsets: number[] = [];
  let depth = 0;
  let inString = false;
  let expectElement = false;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
    if (expectElement && depth === 1 && c !== ']') offsets.push(i);
    expectElement = false;
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (c === ']' || c === '}') {
      if (--depth === 0) break;
    } else if (c === ',' && depth === 1) expectElement = true;
  }
  return offsets;
}

function records(file: string, text: string, format: Exclude<DataFormat, 'auto'>): { value: unknown; source: Source; error?: DataError }[] {
  const lineOf = lineLookup(text);
  switch (format) {
    case 'jsonl':
      return text.split('\n').flatMap((raw, i) => {
        const source = { file, line: i + 1 };
        if (raw.trim() === '') return [];
        try {
          return [{ value: JSON.parse(raw) as unknown, source }];
        } catch (e) {
          return [{ value: null, source, error: new DataError(source, null, `invalid JSON: ${(e as Error).message}`) }];
        }
      });
    case 'json': {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw new Error(`${file}: invalid JSON: ${(e as Error).message}`);
      }
      const wrapped = value !== null && typeof value === 'object' && !Array.isArray(value) && Array.isArray((value as { data?: unknown }).data);
      const list = wrapped ? ((value as { data: unknown[] }).data) : value;
      if (!Array.isArray(list)) throw new Error(`${file}: expected a JSON array of records (or {"data": [...]})`);
      const open = wrapped ? text.indexOf('[', text.indexOf('"data"')) : text.indexOf('[');
      const offsets = arrayElementOffsets(text, open);
      return list.map((v, i) => ({ value: v, source: { file, line: lineOf(offsets[i] ?? open) } }));
    }
    case 'csv': {
      const rows = parseCsv(text, { columns: true, skip_empty_lines: true, info: true, delimiter: extname(file) === '.tsv' ? '\t' : ',' }) as {
        record: Record<string, string>;
        info: { lines: number };
      }[];
      return rows.map(({ record, info }) => {
        // Empty cells are absent fields (a CSV mixing record kinds leaves the other columns blank).
        const value = Object.fromEntries(Object.entries(record).filter(([, v]) => v !== ''));
        return { value, source: { file, line: info.lines } };
      });
    }
    case 'text': {
      const out: { value: unknown; source: Source }[] = [];
      const re = /\S[\s\S]*?(?=\n[ \t]*\n|\s*$)/g;
      for (let m = re.exec(text); m; m = re.exec(text)) out.push({ value: { text: m[0] }, source: { file, line: lineOf(m.index) } });
      return out;
    }
  }
}

/** The format of `file` under 'auto'. */
export function detectFormat(file: string): Exclude<DataFormat, 'auto'> {
  const ext = extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'json';
  if (ext === '.csv' || ext === '.tsv') return 'csv';
  return 'text';
}

/** Reads and validates every record of `file`. */
export function readExamples(file: string, opts: ReadOptions = {}): ReadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read data file ${file}: ${(e as Error).message}`);
  }
  const format = !opts.format || opts.format === 'auto' ? detectFormat(file) : opts.format;
  const examples: Example[] = [];
  const skipped: ReadResult['skipped'] = [];
  for (const [i, r] of records(file, text, format).entries()) {
    try {
      if (r.error) throw r.error;
      const ex = toExample(r.value, r.source);
      if (opts.taskField !== undefined) ex.task = taskOf(r.value, opts.taskField, r.source, i + 1, opts.tasks);
      examples.push(ex);
    } catch (e) {
      if (!(e instanceof DataError) || !opts.skipMalformed) throw e;
      skipped.push({ source: r.source, reason: e.message });
    }
  }
  return { examples, skipped };
}
