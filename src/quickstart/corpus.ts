/**
 * The synthetic pretraining corpus of the embedded base model: short one-line documents of generic text. It
 * teaches the character statistics of the words the tasks use, the facts the tasks draw on (sums, capital
 * letters, which words are positive or negative, records written as JSON) stated in PROSE, and the terse
 * `name(input)=answer` answer format with OTHER functions (copy, len, first, last). It never holds a task record:
 * `12+7=`, `upper(…)=`, `mood(…)=` and `json(…)=` do not occur, so the base model fails the tasks and a LoRA
 * adapter only has to connect the new prompt format to what the base already knows.
 */
import { Rng } from './rng.js';
import { ADD_MAX, moodOf, moodSentence, recordInput, recordToJson } from './tasks.js';
import { NEUTRAL_WORDS, NOUNS, SUBJECTS, VERBS } from './words.js';

/** A filler sentence: `the teacher found the old lamp.` */
function filler(rng: Rng): string {
  const adj = rng.uniform() < 0.5 ? `${rng.pick(NEUTRAL_WORDS)} ` : '';
  return `${rng.pick(SUBJECTS)} ${rng.pick(VERBS)} the ${adj}${rng.pick(NOUNS)} near the ${rng.pick(NOUNS)}.`;
}

/** Sums in prose: `12 plus 7 is 19.` */
function sumFact(rng: Rng): string {
  const a = rng.int(0, ADD_MAX);
  const b = rng.int(0, ADD_MAX);
  return rng.uniform() < 0.5 ? `${a} plus ${b} is ${a + b}.` : `adding ${a} and ${b} gives ${a + b}.`;
}

/** Capital letters in prose: `cat in capitals is CAT.` */
function capitalFact(rng: Rng): string {
  const w = rng.pick(NOUNS);
  return rng.uniform() < 0.5 ? `${w} in capitals is ${w.toUpperCase()}.` : `they wrote ${w} as ${w.toUpperCase()} on the sign.`;
}

/** Sentiment in prose: `"i saw a lovely cat" sounds positive.` */
function moodFact(rng: Rng): string {
  const s = moodSentence(rng, rng.pick(['positive', 'negative', 'neutral'] as const));
  return rng.uniform() < 0.5 ? `"${s}" sounds ${moodOf(s)}.` : `someone said ${s}, a ${moodOf(s)} remark.`;
}

/** Records in prose: `the record id=3;age=7 is stored as {"id":3,"age":7}.` */
function recordFact(rng: Rng): string {
  const r = recordInput(rng);
  return rng.uniform() < 0.5 ? `the record ${r} is stored as ${recordToJson(r)}.` : `we saved ${recordToJson(r)} from ${r}.`;
}

/** The answer format with functions that are not tasks: `copy(cat)=cat`, `len(cat)=3`, `first(…)`, `last(…)`. */
function formatLine(rng: Rng): string {
  const x = rng.uniform() < 0.7 ? rng.pick(NOUNS) : String(rng.int(0, 999));
  switch (rng.int(0, 3)) {
    case 0:
      return `copy(${x})=${x}`;
    case 1:
      return `len(${x})=${x.length}`;
    case 2:
      return `first(${x})=${x[0]}`;
    default:
      return `last(${x})=${x.at(-1)}`;
  }
}

/** Document kinds and their share of the corpus. */
const MIX: [(rng: Rng) => string, number][] = [
  [filler, 0.1],
  [sumFact, 0.2],
  [capitalFact, 0.1],
  [moodFact, 0.1],
  [recordFact, 0.25],
  [formatLine, 0.25],
];

/** `n` corpus documents drawn with `seed`. */
export function corpusDocuments(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    let r = rng.uniform();
    let k = 0;
    while (k < MIX.length - 1 && r >= MIX[k]![1]) r -= MIX[k++]![1];
    docs.push(MIX[k]![0](rng));
  }
  return docs;
}
