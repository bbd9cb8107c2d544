/**
 * A small, deterministic TinyStories-style text dataset for training tests: short stories built from templates,
 * in a style (names, objects, fixed phrasing) stories260K has not seen exactly, so a LoRA run can lower its loss.
 */
import { writeFileSync } from 'node:fs';
import { Generator } from '../../src/engine/index.js';

const NAMES = ['Bip', 'Zuzu', 'Momo', 'Tiki', 'Pip', 'Lulu'];
const THINGS = ['red ball', 'blue kite', 'green hat', 'yellow boat', 'big cake', 'little drum'];
const PLACES = ['park', 'garden', 'beach', 'forest', 'house', 'pond'];

function pick<T>(g: Generator, xs: readonly T[]): T {
  return xs[Math.floor(g.uniform() * xs.length)]!;
}

/** `n` stories separated by blank lines (one record each when read as text). */
export function stories(n: number, seed = 0): string[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => {
    const [a, t, p] = [pick(g, NAMES), pick(g, THINGS), pick(g, PLACES)];
    return `${a} went to the ${p}. ${a} found a ${t} in the ${p}. ${a} said, "I love my ${t}!" Then ${a} went home with the ${t} and was happy.`;
  });
}

/** Prompt/completion pairs whose answer follows from the prompt (exact-match eval). */
export function qaPairs(n: number, seed = 0): { prompt: string; completion: string }[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => {
    const [a, t] = [pick(g, NAMES), pick(g, THINGS)];
    return { prompt: `${a} has a ${t}. What does ${a} have?`, completion: ` ${a} has a ${t}.` };
  });
}

export function writeStories(path: string, n: number, seed = 0): string {
  writeFileSync(path, stories(n, seed).join('\n\n') + '\n');
  return path;
}
