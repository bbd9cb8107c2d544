/**
 * The bookkeeping every non-LoRA tuner layer shares (PEFT's `BaseTunerLayer`): the wrapped base layer, per-adapter
 * tensors registered under PEFT's in-memory names, active / merged adapters, the disable switch, and trainability.
 * A method's layer supplies its forward, how an adapter folds into the base (merge) and back out (unmerge), and
 * its tensors as `[suffix, tensor]` pairs: a suffix `"ia3_l"` is registered as `ia3_l.<adapter>` (a ParameterDict,
 * saved as `…ia3_l`), a suffix `"adapter_up.weight"` as `adapter_up.<adapter>.weight` (saved as `…adapter_up.weight`).
 */
import { keep, type Tensor } from '../../engine/index.js';
import { Module, type Linear } from '../../nn/index.js';
import { cloneModule } from '../modules-to-save.js';
import { ModuleDict, ParameterDict, type TunerLayer } from '../tuner.js';

/** Parameters of one adapter inside a ModuleDict entry (`adapter_up.<adapter>.weight`). */
class ParamGroup extends Module {
  constructor(entries: [string, Tensor][]) {
    super();
    for (const [k, t] of entries) this.addParameter(k, t);
  }
}

export abstract class AdapterLayer extends Module implements TunerLayer {
  enabled = true;
  protected active: string[] = [];
  private merged: string[] = [];
  private readonly tensors = new Map<string, [string, Tensor][]>();

  constructor(readonly baseLayer: Module) {
    super();
    this.addModule('base_layer', baseLayer);
    this.training = baseLayer.training;
  }

  /** The PEFT type named in errors. */
  protected abstract readonly method: string;
  /**
   * Folds adapter `name` into `base`'s parameters: the base layer's own, or those of a copy of it
   * ({@link mergedParameters}). `undo` (only on the base layer itself) takes it back out.
   */
  protected abstract fold(name: string, undo: boolean, base: Module): void;

  adapterNames(): string[] {
    return [...this.tensors.keys()];
  }

  get mergedAdapters(): readonly string[] {
    return this.merged;
  }

  /**
   * Registers adapter `name`'s tensors (kept beyond the current scope), replacing an adapter of that name. Suffixes
   * are those of the checkpoint, in PEFT's state-dict order.
   */
  protected setAdapterTensors(name: string, entries: [string, Tensor][]): void {
    if (this.tensors.has(name)) this.deleteAdapter(name);
    const kept = entries.map(([k, t]) => [k, keep(t)] as [string, Tensor]);
    this.tensors.set(name, kept);
    const groups = new Map<string, [string, Tensor][]>();
    for (const [suffix, t] of kept) {
      const [head, ...rest] = suffix.split('.');
      if (rest.length === 0) this.dict(head!, () => new ParameterDict()).set(name, t);
      else groups.set(head!, [...(groups.get(head!) ?? []), [rest.join('.'), t]]);
    }
    for (const [head, list] of groups) this.dict(head, () => new ModuleDict()).set(name, new ParamGroup(list));
  }

  /** The child dict `key`, created on first use. */
  private dict<D extends ModuleDict | ParameterDict>(key: string, make: () => D): D {
    const found = this.namedChildren().find(([k]) => k === key)?.[1] as D | undefined;
    return found ?? (this.addModule(key, make()) as D);
  }

  /** Adapter `name`'s tensor `suffix` (an f32 leaf). */
  protected tensor(name: string, suffix: string): Tensor<'f32'> {
    const t = this.tensors.get(name)?.find(([k]) => k === suffix)?.[1];
    if (!t) throw new Error(`${this.method}: layer has no tensor ${suffix} for adapter '${name}'`);
    return t as Tensor<'f32'>;
  }

  /** Whether adapter `name` has tensor `suffix`. */
  protected hasTensor(name: string, suffix: string): boolean {
    return !!this.tensors.get(name)?.some(([k]) => k === suffix);
  }

  adapterTensors(name: string): [string, Tensor][] {
    return this.tensors.get(name) ?? [];
  }

  setActiveAdapters(names: readonly string[], inferenceMode: boolean): void {
    this.active = names.filter((n) => this.tensors.has(n));
    for (const n of this.adapterNames()) for (const [, t] of this.tensors.get(n)!) t.requiresGrad = this.active.includes(n) && !inferenceMode;
  }

  deleteAdapter(name: string): void {
    const list = this.tensors.get(name);
    if (!list) return;
    if (this.merged.includes(name)) throw new Error(`${this.method}: adapter '${name}' is merged; unmerge before deleting it`);
    for (const [, t] of list) t.dispose();
    this.tensors.delete(name);
    for (const [key, child] of this.namedChildren())
      if (child instanceof ModuleDict || child instanceof ParameterDict) this.addModule(key, child.without(name));
    this.active = this.active.filter((n) => n !== name);
  }

  merge(names: readonly string[] = this.active): void {
    for (const n of names) {
      if (!this.tensors.has(n) || this.merged.includes(n)) continue;
      this.fold(n, false, this.baseLayer);
      this.merged.push(n);
    }
  }

  unmerge(): void {
    while (this.merged.length) this.fold(this.merged.pop()!, true, this.baseLayer);
  }

  mergedParameters(names: readonly string[]): [string, Tensor][] {
    const copy = cloneModule(this.baseLayer, false);
    for (const n of names) this.fold(n, false, copy);
    return copy.namedParameters();
  }

  /** The active adapters held here, or null when the base layer alone must run (disabled or merged). */
  protected forwardAdapters(): string[] | null {
    if (!this.enabled) {
      if (this.merged.length) this.unmerge();
      return null;
    }
    return this.merged.length ? null : this.active;
  }
}

/** An adapter layer around a base `Linear`, exposing its weight and bias (models may read them, e.g. a tied head). */
export abstract class AdaptedLinear extends AdapterLayer {
  constructor(readonly base: Linear) {
    super(base);
  }

  get weight(): Tensor {
    return this.base.weight;
  }

  get bias(): Tensor | null {
    return this.base.bias;
  }
}
