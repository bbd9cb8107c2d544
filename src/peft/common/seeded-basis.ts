/**
 * Frozen random bases regenerated from a seed (NOLA's and RandLoRA's bases), so an adapter file need only hold the
 * trainable vectors and the seed. Row i of a basis is drawn from its own generator,
 * seeded from (seed, tag, i): any top-left [rows, cols] block is the same whichever larger basis it is cut from. That
 * gives PEFT's "one shared matrix of the largest size, sliced per layer" semantics without first scanning the model
 * for the largest size. The values come from peftjs's generator (xoshiro128**), not torch's: the bases are
 * reproducible across peftjs runs and platforms, but are not the ones PEFT draws for the same seed (VeRA, whose
 * draws are simple, uses torch's generator instead: common/torch-rng.ts).
 */
import { empty, Generator, type Tensor } from '../../engine/index.js';
import type { Module } from '../../nn/index.js';
import type { PeftModel } from '../model.js';
import type { SharedTensor } from '../registry.js';
import type { TunerLayer } from '../tuner.js';

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

/** The layers of `cls` holding adapter `name` in `peft`'s model. */
export function layersWith<L extends TunerLayer>(peft: PeftModel, name: string, cls: abstract new (...args: never[]) => L): L[] {
  return peft.model
    .namedModules()
    .map(([, m]) => m)
    .filter((m): m is Module & L => m instanceof cls && m.adapterNames().includes(name));
}

/**
 * A matrix shared by all layers as PEFT stores it (one of the largest size, each layer using its top-left corner):
 * `seeded` (the seed's values, viewed as [its first dim, the rest]) with each layer's block (viewed likewise) copied
 * into its corner, so values loaded from a file are what is saved. Blocks are written smallest first so the largest
 * layer's values win where copies overlap. `saved`: whether the config asks for it in the file.
 */
export function sharedTensor(key: string, seeded: Tensor<'f32'>, blocks: readonly Tensor<'f32'>[], saved: boolean): SharedTensor {
  const [rows, cols] = [seeded.shape[0]!, seeded.size / seeded.shape[0]!];
  const copy = (block: Tensor<'f32'>, toShared: boolean) => {
    const [br, bc] = [block.shape[0]!, block.size / block.shape[0]!];
    if (br > rows || bc > cols) throw new Error(`sharedTensor ${key}: a layer's [${br}, ${bc}] block exceeds the shared [${rows}, ${cols}]`);
    const [s, b] = [seeded.data, block.data as Float32Array];
    for (let i = 0; i < br; i++)
      if (toShared) s.set(b.subarray(i * bc, (i + 1) * bc), i * cols);
      else b.set(s.subarray(i * cols, i * cols + bc), i * bc);
  };
  for (const b of [...blocks].sort((x, y) => x.size - y.size)) copy(b, true);
  return { key, tensor: seeded, saved, apply: () => blocks.forEach((b) => copy(b, false)) };
}
