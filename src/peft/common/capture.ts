/**
 * What the data-driven initialisations (EVA, CorDA, LoRA-GA, LoRA-SB) read from a model: the inputs of chosen
 * layers during a forward pass (PyTorch forward hooks, done by wrapping the instances' `forward`), and the gradient
 * of chosen frozen weights over a user-supplied training step.
 */
import { castTo, contiguousCopy, transpose, type Tensor } from '../../engine/index.js';
import { Linear, type Module } from '../../nn/index.js';
import { ALL_LINEAR, allLinearNames, findTargetModules, type TargetConfig } from '../targets.js';

/** The `Linear` modules `config` targets in a plain (not yet adapted) model, with their names. */
export function targetLinears(model: Module, config: TargetConfig): [string, Linear][] {
  const sel = typeof config.target_modules === 'string' && config.target_modules.toLowerCase() === ALL_LINEAR ? allLinearNames(model) : config.target_modules;
  return findTargetModules(model, { ...config, target_modules: sel })
    .map((n) => [n, model.getModule(n)] as [string, Module])
    .filter((e): e is [string, Linear] => e[1] instanceof Linear);
}

/**
 * Runs `run` with `onInput(i, x)` called on the input of `modules[i]` each time it runs forward, then removes the
 * hooks (also on error). `x` is only valid during the call: copy what you keep.
 */
export function withInputHooks<T>(modules: readonly Module[], onInput: (i: number, x: Tensor) => void, run: () => T): T {
  const wrapped = modules.map((m, i) => {
    const own = Object.prototype.hasOwnProperty.call(m, 'forward');
    const orig = (m as unknown as { forward: (...a: unknown[]) => unknown }).forward;
    (m as unknown as { forward: (...a: unknown[]) => unknown }).forward = (x: unknown, ...rest: unknown[]) => {
      onInput(i, x as Tensor);
      return orig.call(m, x, ...rest);
    };
    return { m, own, orig };
  });
  try {
    return run();
  } finally {
    for (const { m, own, orig } of wrapped) {
      if (own) (m as unknown as { forward: unknown }).forward = orig;
      else delete (m as unknown as { forward?: unknown }).forward;
    }
  }
}

/** `x` [..., cols] as a fresh contiguous f32 array of [rows, cols]. */
export function rowsOf(x: Tensor): Float32Array {
  const c = x.dtype === 'f32' ? contiguousCopy(x) : castTo(x, 'f32');
  const out = (c.data as Float32Array).slice(0, c.size);
  c.dispose();
  return out;
}

/**
 * The gradient of the loss `trainStep` back-propagates with respect to each weight of `linears`, as [out, in] f32
 * (Conv1D layout transposed), averaged over the forward passes each layer saw (PEFT `estimate_gradients`). Only
 * these weights require grad meanwhile; every parameter's requiresGrad and grad are restored afterwards.
 */
export function weightGradients(model: Module, linears: readonly Linear[], trainStep: () => void): Float32Array[] {
  const params = model.parameters();
  const saved = params.map((p) => [p, p.requiresGrad, p.grad] as const);
  for (const p of params) {
    p.requiresGrad = false;
    p.grad = null;
  }
  for (const l of linears) l.weight.requiresGrad = true;
  const calls = linears.map(() => 0);
  try {
    withInputHooks(linears, (i) => calls[i]!++, trainStep);
    return linears.map((l, i) => {
      const g = l.weight.grad;
      if (!g || calls[i] === 0) throw new Error(`weightGradients: the train step produced no gradient for a ${l.weight.describe()} weight (did it call backward() through every target layer?)`);
      const view = l.fanInFanOut ? transpose(g) : g;
      const gm = contiguousCopy(view);
      if (view !== g) view.dispose();
      const out = (gm.data as Float32Array).slice(0, gm.size);
      gm.dispose();
      for (let j = 0; j < out.length; j++) out[j]! /= calls[i]!;
      return out;
    });
  } finally {
    for (const l of linears) {
      l.weight.grad?.dispose();
      l.weight.grad = null;
    }
    for (const [p, rg, gr] of saved) {
      p.requiresGrad = rg;
      p.grad = gr;
    }
  }
}
