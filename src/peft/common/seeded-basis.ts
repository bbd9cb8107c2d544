/**
 * Frozen random bases regenerated from a seed (VeRA's shared projections, NOLA's and RandLoRA's bases), so an
 * adapter file need only hold the trainable vectors and the seed. Row i of a basis is drawn from its own generator,
 * seeded from (seed, tag, i): any top-left [rows, cols] block is the same whichever larger basis it is cut from. That
 * gives PEFT's "one shared matrix of the largest size, sliced per layer" semantics without first scanning the model
 * for the largest size. The values come from peftjs's generator (xoshiro128**), not torch's: the bases are
 * reproducible across peftjs runs and platforms, but are not the ones PEFT draws for the same seed.
 */
import { empty, Generator, type Tensor } from '../../engine/index.js';

/** 32-bit FNV-1a of a string. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** murmur3's 32-bit finaliser: a bijective mix. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** A 32-bit seed derived from `seed` and a label (a basis name, a module path). */
export function deriveSeed(seed: number, label: string): number {
  return mix32((seed >>> 0) ^ mix32(fnv1a(label)));
}

/**
 * A frozen [rows, cols] f32 basis with entries U(−bound, bound): row i is the first `cols` draws of a generator
 * seeded from (`seed`, `tag`, i). `shape` may add trailing structure (rows × cols must equal its size).
 */
export function seededBasis(seed: number, tag: string, rows: number, cols: number, bound: number, shape: readonly number[] = [rows, cols]): Tensor<'f32'> {
  if (shape.reduce((a, b) => a * b, 1) !== rows * cols) throw new Error(`seededBasis: shape [${shape.join(', ')}] does not hold ${rows}×${cols}`);
  const t = empty(shape);
  const d = t.data;
  const base = deriveSeed(seed, tag);
  const gen = new Generator(0);
  for (let i = 0; i < rows; i++) {
    gen.seed(mix32(base + Math.imul(i + 1, 0x9e3779b9)));
    for (let j = 0; j < cols; j++) d[i * cols + j] = bound * (2 * gen.uniform() - 1);
  }
  return t;
}
