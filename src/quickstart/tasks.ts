/**
 * The quickstart's built-in tasks: small generated datasets of `prompt` → `completion` records (the record shape
 * `peftjs train` reads), each with exact-match references. Every task draws a pool of distinct inputs from a
 * seeded generator and splits it, so train and eval never share an input and the same seed gives the same data.
 *
 * The prompts use a terse `name(input)=` format the embedded base model never saw with these names (its corpus
 * states the same facts in prose — see corpus.ts), so the base fails them and a LoRA adapter learns the mapping.
 */
import { Rng } from './rng.js';
import { KEYS, NEGATIVE_WORDS, NEUTRAL_WORDS, NOUNS, POSITIVE_WORDS, SUBJECTS, VERBS } from './words.js';

/** One training or evaluation record: generation from `prompt` should produce exactly `completion`. */
export interface TaskRecord {
  prompt: string;
  completion: string;
}

export interface Task {
  name: string;
  /** What the task asks, for the summary. */
  description: string;
  /** A random input (the pool is built from distinct ones). */
  input(rng: Rng): string;
  /** The prompt for an input. */
  prompt(input: string): string;
  /** The reference answer for an input. */
  answer(input: string): string;
  /** How many distinct inputs exist (caps the pool). */
  inputCount: number;
}

/** Largest operand of the `add` task. */
export const ADD_MAX = 12;

/** Sentiment of a `mood` sentence: the class of its (single) keyword. */
export function moodOf(sentence: string): 'positive' | 'negative' | 'neutral' {
  const words = sentence.split(' ');
  if (words.some((w) => (POSITIVE_WORDS as readonly string[]).includes(w))) return 'positive';
  if (words.some((w) => (NEGATIVE_WORDS as readonly string[]).includes(w))) return 'negative';
  return 'neutral';
}

/** A short sentence `subject verb the noun ...` holding one keyword of `cls` (neutral: a neutral adjective). */
export function moodSentence(rng: Rng, cls: 'positive' | 'negative' | 'neutral'): string {
  const keyword = rng.pick(cls === 'positive' ? POSITIVE_WORDS : cls === 'negative' ? NEGATIVE_WORDS : NEUTRAL_WORDS);
  const noun = rng.pick(NOUNS);
  switch (rng.int(0, 2)) {
    case 0:
      return `${rng.pick(SUBJECTS)} ${rng.pick(VERBS)} a ${keyword} ${noun}`;
    case 1:
      return `the ${noun} was ${keyword}`;
    default:
      return `${keyword} ${noun} in the ${rng.pick(NOUNS)}`;
  }
}

/** `k=v;k=v` with two distinct keys and one-digit values. */
export function recordInput(rng: Rng): string {
  const [k1, k2] = rng.shuffle(KEYS);
  return `${k1}=${rng.int(0, 9)};${k2}=${rng.int(0, 9)}`;
}

/** `k=v;k=v` → `{"k":v,"k":v}` (values are integers). */
export function recordToJson(input: string): string {
  const fields = input.split(';').map((kv) => {
    const [k, v] = kv.split('=') as [string, string];
    return `"${k}":${Number(v)}`;
  });
  return `{${fields.join(',')}}`;
}

export const TASKS: readonly Task[] = [
  {
    name: 'add',
    description: `add two numbers 0–${ADD_MAX}`,
    input: (rng) => `${rng.int(0, ADD_MAX)}+${rng.int(0, ADD_MAX)}`,
    prompt: (input) => `${input}=`,
    answer: (input) => String(input.split('+').reduce((s, x) => s + Number(x), 0)),
    inputCount: (ADD_MAX + 1) ** 2,
  },
  {
    name: 'upper',
    description: 'uppercase a word',
    input: (rng) => rng.pick(NOUNS),
    prompt: (input) => `upper(${input})=`,
    answer: (input) => input.toUpperCase(),
    inputCount: NOUNS.length,
  },
  {
    name: 'mood',
    description: 'classify a sentence by keyword',
    input: (rng) => moodSentence(rng, rng.pick(['positive', 'negative', 'neutral'] as const)),
    prompt: (input) => `mood(${input})=`,
    answer: moodOf,
    inputCount: Infinity,
  },
  {
    name: 'json',
    description: 'convert k=v;k=v to JSON',
    input: recordInput,
    prompt: (input) => `json(${input})=`,
    answer: recordToJson,
    inputCount: Infinity,
  },
];

export const TASK_NAMES = TASKS.map((t) => t.name);

/** The task called `name`; the error lists the others. */
export function taskByName(name: string): Task {
  const t = TASKS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown task '${name}'; tasks: ${TASK_NAMES.join(', ')}`);
  return t;
}

export interface TaskSplit {
  train: TaskRecord[];
  eval: TaskRecord[];
}

/**
 * `nTrain` training and `nEval` evaluation records of `task`, all with distinct inputs (eval first, so the eval
 * set for a seed does not depend on `nTrain`). Throws when the task has fewer distinct inputs than asked for.
 */
export function makeSplit(task: Task, opts: { nTrain: number; nEval: number; seed: number }): TaskSplit {
  const want = opts.nTrain + opts.nEval;
  if (want > task.inputCount) throw new Error(`task '${task.name}' has ${task.inputCount} distinct inputs; asked for ${opts.nEval} eval + ${opts.nTrain} train`);
  // A per-task stream: the same seed gives each task different (but fixed) data.
  const rng = new Rng(opts.seed * 1009 + [...task.name].reduce((h, c) => h * 31 + c.charCodeAt(0), 7));
  const seen = new Set<string>();
  const inputs: string[] = [];
  // Rejection sampling: even drawing a finite task's whole pool takes only ~n·ln(n) draws.
  while (inputs.length < want) {
    const x = task.input(rng);
    if (seen.has(x)) continue;
    seen.add(x);
    inputs.push(x);
  }
  const record = (x: string): TaskRecord => ({ prompt: task.prompt(x), completion: task.answer(x) });
  return { eval: inputs.slice(0, opts.nEval).map(record), train: inputs.slice(opts.nEval).map(record) };
}
