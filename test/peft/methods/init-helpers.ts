// Shared by the LoRA-initialisation tests (PiSSA, OLoRA, EVA, LoRA-GA, CorDA, LoRA-SB): the real stories260K-hf
// base, a fixed token batch, output comparison, and a short training loop.
import * as pj from '../../../src/index.js';

export const STORIES = new URL('../../../../shared/models/stories260K-hf', import.meta.url).pathname;

export function loadStories(): pj.CausalLM {
  return pj.loadCausalLM(STORIES, { dtype: 'f32' });
}

/** A fixed [B, T] batch of token ids and its next-token targets (the sequence repeats, so it is learnable). */
export function tokenBatch(seed = 1, B = 4, T = 32): { ids: pj.Tensor; targets: pj.Tensor } {
  const gen = new pj.Generator(seed);
  const ids: number[] = [];
  const targets: number[] = [];
  for (let b = 0; b < B; b++) {
    const period = Array.from({ length: 7 }, () => 3 + (gen.nextU32() % 500));
    const row = Array.from({ length: T + 1 }, (_, t) => period[t % period.length]!);
    ids.push(...row.slice(0, T));
    targets.push(...row.slice(1));
  }
  return { ids: pj.keep(pj.tensor(ids, [B, T], 'i32')), targets: pj.keep(pj.tensor(targets, [B, T], 'i32')) };
}

export function logits(model: pj.CausalLM, ids: pj.Tensor): Float32Array {
  return pj.tidy(() => pj.noGrad(() => model.forward(ids).toTyped() as Float32Array));
}

/** ‖a − b‖ / ‖b‖. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** `steps` AdamW steps on `batch`; returns the loss before the first and after the last step. */
export function train(peft: pj.PeftModel<pj.CausalLM>, batch: { ids: pj.Tensor; targets: pj.Tensor }, steps: number, lr = 1e-2): { first: number; last: number } {
  const opt = new pj.AdamW(peft.trainableParameters(), { lr });
  const loss = () => pj.tidy(() => pj.noGrad(() => peft.model.loss(batch.ids, batch.targets).item()));
  const first = loss();
  for (let s = 0; s < steps; s++) {
    pj.tidy(() => pj.backward(peft.model.loss(batch.ids, batch.targets)));
    opt.step();
    opt.zeroGrad();
  }
  return { first, last: loss() };
}

/** The Linear weight at `path` as [out, in] values. */
export function weightOf(model: pj.Module, path: string): Float32Array {
  const m = model.getModule(path) as pj.Module & { base?: pj.Linear };
  const lin = (m.base ?? m) as pj.Linear;
  return lin.weight.toTyped() as Float32Array;
}
