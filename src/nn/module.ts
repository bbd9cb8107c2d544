/**
 * A module tree with dotted names, like `torch.nn.Module`: children and parameters are registered under the
 * names the Hugging Face checkpoints use (`model.layers.0.self_attn.q_proj.weight`), so checkpoint keys, LoRA
 * targeting and the adapter format all speak the same names.
 */
import type { Tensor } from '../engine/index.js';

export abstract class Module {
  private readonly children = new Map<string, Module>();
  private readonly params = new Map<string, Tensor | null>();
  /** Training mode (dropout active); see `train()` / `eval()`. */
  training = false;

  /** Registers `module` as child `name` (also readable as the property `this[name]`); returns it. */
  protected addModule<M extends Module>(name: string, module: M): M {
    this.children.set(name, module);
    (this as unknown as Record<string, unknown>)[name] = module;
    return module;
  }

  /** Registers a parameter (or an absent optional one, as null) under `name`; returns it. */
  protected addParameter<T extends Tensor | null>(name: string, t: T): T {
    this.params.set(name, t);
    return t;
  }

  /** The parameter registered as `name` on this module (not a descendant). */
  param(name: string): Tensor | null {
    if (!this.params.has(name)) throw new Error(`${this.constructor.name} has no parameter '${name}'`);
    return this.params.get(name)!;
  }

  /** Replaces (or sets) this module's own parameter `name`. */
  setParam(name: string, t: Tensor | null): void {
    if (!this.params.has(name)) throw new Error(`${this.constructor.name} has no parameter '${name}'`);
    this.params.set(name, t);
  }

  /** Direct children, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** This module and all descendants with their dotted paths ('' for this one), depth first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.children) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Every parameter with its dotted path (`a.b.weight`), depth first; absent optional ones are skipped. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.params) if (p) out.push([prefix ? `${prefix}.${n}` : n, p]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** The descendant at dotted `path` ('' is this module). */
  getModule(path: string): Module {
    let m: Module = this;
    for (const part of path ? path.split('.') : []) {
      const next = m.children.get(part);
      if (!next) throw new Error(`no module '${path}' (no child '${part}' in ${m.constructor.name})`);
      m = next;
    }
    return m;
  }

  /** Replaces the descendant at dotted `path` (used to wrap layers with adapters). */
  setModule(path: string, module: Module): void {
    const dot = path.lastIndexOf('.');
    const parent = this.getModule(dot < 0 ? '' : path.slice(0, dot));
    const name = path.slice(dot + 1);
    if (!parent.children.has(name)) throw new Error(`no module '${path}' to replace`);
    parent.addModule(name, module);
  }

  /** Sets training mode on this module and its descendants. */
  train(flag = true): this {
    for (const [, m] of this.namedModules()) m.training = flag;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Disposes every parameter of the tree. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}

/** An ordered list of modules named '0', '1', … (HF `nn.ModuleList`). */
export class ModuleList<M extends Module = Module> extends Module {
  constructor(items: M[] = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): void {
    this.addModule(String(this.length), m);
  }

  /** The current children (reflects replacements made with `setModule`). */
  get items(): M[] {
    return this.namedChildren().map(([, m]) => m as M);
  }

  get length(): number {
    return this.namedChildren().length;
  }

  at(i: number): M {
    return this.getModule(String(i)) as M;
  }
}
