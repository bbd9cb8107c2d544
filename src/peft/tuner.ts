/**
 * What every PEFT method's layer wrapper shares (PEFT's `BaseTunerLayer`): the wrapped base layer, per-adapter
 * state keyed by adapter name, which adapters are active, a disable switch, and merge / unmerge. Also the keyed
 * containers (`ModuleDict`, `ParameterDict`) that give adapter tensors PEFT's in-memory names
 * (`q_proj.lora_A.default.weight`, `embed_tokens.lora_embedding_A.default`).
 */
import { Module } from '../nn/index.js';
import type { Tensor } from '../engine/index.js';

/** A module that wraps a base layer with one or more named adapters of one PEFT method. */
export interface TunerLayer {
  /** The wrapped original layer (child `base_layer`). */
  readonly baseLayer: Module;
  /** The adapters this layer holds, in the order they were added. */
  adapterNames(): string[];
  /** Active adapters (those not held here are ignored); their tensors become trainable unless `inferenceMode`. */
  setActiveAdapters(names: readonly string[], inferenceMode: boolean): void;
  /** When false the layer computes the base layer alone (unmerging first if merged). */
  enabled: boolean;
  /** Adapters currently merged into the base weight, in merge order. */
  readonly mergedAdapters: readonly string[];
  /** Adds `names` (default: the active ones) into the base weight. */
  merge(names?: readonly string[]): void;
  /** Subtracts every merged adapter back out, last merged first. */
  unmerge(): void;
  deleteAdapter(name: string): void;
  /**
   * The base layer's own parameters with adapters `names` folded in, as new tensors of the base's dtypes (a fold may
   * add one: SSF's shift gives a bias-less layer a bias); this layer is left unchanged. What a merged checkpoint holds.
   */
  mergedParameters(names: readonly string[]): [string, Tensor][];
  /**
   * The adapter's tensors under their checkpoint suffixes, adapter name removed (`lora_A.weight`,
   * `lora_embedding_A`), in PEFT's state-dict order.
   */
  adapterTensors(name: string): [string, Tensor][];
}

/** Whether `m` is a tuner layer (duck-typed so every method's wrapper qualifies). */
export function isTunerLayer(m: Module): m is Module & TunerLayer {
  return 'baseLayer' in m && typeof (m as Partial<TunerLayer>).adapterTensors === 'function';
}

/** Children keyed by adapter name (PEFT's `nn.ModuleDict`). */
export class ModuleDict<M extends Module = Module> extends Module {
  private readonly entries = new Map<string, M>();

  set(name: string, m: M): void {
    this.entries.set(name, m);
    this.addModule(name, m);
  }

  get(name: string): M | undefined {
    return this.entries.get(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** A copy of this dict without `name` (the module tree has no child removal; the owner re-registers it). */
  without(name: string): ModuleDict<M> {
    const d = new ModuleDict<M>();
    for (const [k, m] of this.entries) if (k !== name) d.set(k, m);
    d.training = this.training;
    return d;
  }
}

/** Raw parameters keyed by adapter name (PEFT's `nn.ParameterDict`). */
export class ParameterDict extends Module {
  private readonly entries = new Map<string, Tensor>();

  set(name: string, t: Tensor): void {
    this.entries.set(name, t);
    this.addParameter(name, t);
  }

  get(name: string): Tensor | undefined {
    return this.entries.get(name);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  without(name: string): ParameterDict {
    const d = new ParameterDict();
    for (const [k, t] of this.entries) if (k !== name) d.set(k, t);
    return d;
  }
}
