/**
 * `modules_to_save` (PEFT `ModulesToSaveWrapper`): whole modules (a classification head, say) trained in full as
 * part of an adapter. The wrapper keeps the frozen original (`original_module`) and one trainable f32 copy per
 * adapter (`modules_to_save.<adapter>`), runs the active adapter's copy, and the adapter checkpoint stores the copy
 * under the module's own name (`score.weight`).
 */
import { castTo, contiguousCopy, keep, type Tensor } from '../engine/index.js';
import { Module } from '../nn/index.js';
import { ModuleDict } from './tuner.js';

/**
 * A deep copy of `m` whose parameters are fresh f32 leaves. The module tree has no clone of its own, so this
 * copies the instance structurally (same class, own fields) and replaces its parameter and child maps — it relies
 * on `Module` keeping them in the `params` / `children` fields.
 */
export function cloneModule<M extends Module>(m: M, toF32 = true): M {
  type Internals = { params: Map<string, Tensor | null>; children: Map<string, Module> } & Record<string, unknown>;
  const src = m as unknown as Internals;
  const copy = Object.create(Object.getPrototypeOf(m)) as Internals;
  for (const key of Object.keys(src)) copy[key] = src[key];
  copy.params = new Map(
    [...src.params].map(([n, p]) => [n, p && (keep(p.dtype === 'f32' || !toF32 ? contiguousCopy(p) : castTo(p, 'f32')) as Tensor)]),
  );
  copy.children = new Map([...src.children].map(([n, c]) => [n, cloneModule(c, toF32)]));
  for (const [n, c] of copy.children) copy[n] = c;
  return copy as unknown as M;
}

export class ModulesToSaveWrapper extends Module {
  private copies = this.addModule('modules_to_save', new ModuleDict());
  private active: string | null = null;
  enabled = true;

  constructor(readonly originalModule: Module) {
    super();
    this.addModule('original_module', originalModule);
    this.training = originalModule.training;
  }

  adapterNames(): string[] {
    return this.copies.keys();
  }

  /** Adds a trainable copy of the original module for adapter `name`. */
  addAdapter(name: string): void {
    if (this.copies.has(name)) return;
    const copy = cloneModule(this.originalModule);
    this.copies.set(name, copy);
  }

  /** PEFT's wrapper runs one adapter's copy: the first active one it holds. */
  setActiveAdapters(names: readonly string[], inferenceMode: boolean): void {
    this.active = names.find((n) => this.copies.has(n)) ?? null;
    for (const n of this.copies.keys())
      for (const p of this.copies.get(n)!.parameters()) p.requiresGrad = n === this.active && !inferenceMode;
  }

  deleteAdapter(name: string): void {
    const m = this.copies.get(name);
    if (!m) return;
    m.dispose();
    this.copies = this.addModule('modules_to_save', this.copies.without(name));
    if (this.active === name) this.active = null;
  }

  /** The module that runs now: the active adapter's copy, or the original when disabled or none is active. */
  current(): Module {
    return this.enabled && this.active ? this.copies.get(this.active)! : this.originalModule;
  }

  /** Adapter `name`'s copy (the module `merge_and_unload` puts back), or undefined. */
  copyOf(name: string): Module | undefined {
    return this.copies.get(name);
  }

  /** The adapter's tensors under the module's own parameter names (`weight`, `bias`). */
  adapterTensors(name: string): [string, Tensor][] {
    return this.copies.get(name)?.namedParameters() ?? [];
  }

  /** Runs the current module's `forward` with the same arguments. */
  forward(...args: unknown[]): unknown {
    const m = this.current() as Module & { forward?: (...a: unknown[]) => unknown };
    if (typeof m.forward !== 'function') throw new Error(`modules_to_save: ${m.constructor.name} has no forward()`);
    return m.forward(...args);
  }
}
