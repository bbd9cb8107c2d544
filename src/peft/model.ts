/**
 * `PeftModel`: a base model with named adapters injected into its module tree (PEFT's `PeftModel` + `BaseTuner`).
 * The base model keeps its own forward — matched layers are replaced in place by adapter layers — so the model
 * runs as before, with the active adapters applied. Base parameters are frozen (requiresGrad false: no gradient,
 * no optimizer state); `trainableParameters()` are the active adapter's tensors (plus `modules_to_save` copies and
 * biases per `bias`).
 */
import type { Tensor } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { PeftConfigBase } from './config.js';
import { peftMethod, type PeftMethod } from './registry.js';
import { ALL_LINEAR, allLinearNames, findModulesToSave, findTargetModules, type TargetOptions } from './targets.js';
import { isTunerLayer, type TunerLayer } from './tuner.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import type { SafeDType } from '../io/safetensors.js';
import {
  fillAdapterTensors,
  loadAdapterInto,
  readAdapterFiles,
  saveMergedModel,
  savePeftModel,
  type LoadAdapterOptions,
  type SaveMergedOptions,
} from './format.js';

/** Task types whose PEFT model adds the classifier heads to `modules_to_save` (PEFT does so at model creation). */
const CLASSIFIER_TASKS = ['SEQ_CLS', 'TOKEN_CLS'];
const CLASSIFIER_MODULE_NAMES = ['classifier', 'score'];

export interface PeftModelOptions extends TargetOptions {}

/** Counts as PEFT's `get_nb_trainable_parameters` (shared tensors counted once). */
export interface ParameterCounts {
  trainable: number;
  all: number;
}

export class PeftModel<M extends Module = Module> {
  /** Config of every adapter, by name. */
  readonly peftConfig = new Map<string, PeftConfigBase>();
  /** The safetensors dtype each adapter's f32 tensors are saved in (that of the file it was loaded from; F32). */
  readonly adapterDType = new Map<string, SafeDType>();
  private active: string[] = [];
  private disabled = false;

  /**
   * Wraps `model` with the adapter saved in `dir` (PEFT `PeftModel.from_pretrained`): inference mode unless
   * `isTrainable`.
   */
  static fromPretrained<M extends Module>(
    model: M,
    dir: string,
    opts: LoadAdapterOptions & PeftModelOptions & { adapterName?: string } = {},
  ): PeftModel<M> {
    const files = readAdapterFiles(dir);
    const name = opts.adapterName ?? 'default';
    const peft = new PeftModel(model, { ...files.config, inference_mode: !opts.isTrainable }, name, opts);
    fillAdapterTensors(peft, name, files, dir);
    return peft;
  }

  /** Loads another adapter from `dir` as `name` (inactive until `setAdapter`). */
  loadAdapter(dir: string, name: string, opts: LoadAdapterOptions = {}): void {
    loadAdapterInto(this, dir, name, opts);
  }

  /** Saves adapters (default: all) in the HF PEFT format: `dir` for "default", `dir/<name>/` for the others. */
  save(dir: string, adapters?: readonly string[]): void {
    savePeftModel(this, dir, adapters);
  }

  /** Writes the base model with the active adapters merged as a plain HF checkpoint (this model is unchanged). */
  saveMergedModel(dir: string, opts: SaveMergedOptions): void {
    saveMergedModel(this, dir, opts);
  }

  /**
   * Wraps `model` (modified in place) and adds adapter `adapterName` from `config` (a parsed config, or raw HF
   * fields with `peft_type`; LoRA is assumed when it has none).
   */
  constructor(
    readonly model: M,
    config: PeftConfigBase | Record<string, unknown>,
    adapterName = 'default',
    readonly options: PeftModelOptions = {},
  ) {
    this.addAdapter(adapterName, config);
    this.setAdapter(adapterName);
  }

  /** The method of adapter `name`. */
  method(name: string): PeftMethod {
    const c = this.peftConfig.get(name);
    if (!c) throw new Error(`no adapter '${name}'; adapters: ${[...this.peftConfig.keys()].join(', ') || '(none)'}`);
    return peftMethod(c.peft_type);
  }

  get activeAdapters(): readonly string[] {
    return this.active;
  }

  /** `modules_to_save` as the PEFT model applies it (classifier heads added for classification tasks). */
  private modulesToSave(config: PeftConfigBase): string[] {
    const extra = config.task_type && CLASSIFIER_TASKS.includes(config.task_type) ? CLASSIFIER_MODULE_NAMES : [];
    return [...new Set([...(config.modules_to_save ?? []), ...extra])];
  }

  /**
   * Injects a new adapter (inactive until `setAdapter`). The config is parsed by its method; `"all-linear"` is
   * resolved to the model's linear layers (and kept resolved in the config, as PEFT does).
   */
  addAdapter(name: string, rawConfig: PeftConfigBase | Record<string, unknown>): void {
    if (this.peftConfig.has(name)) throw new Error(`adapter '${name}' already exists`);
    if (name.includes('.')) throw new Error(`adapter name '${name}' must not contain '.'`);
    const method = peftMethod(rawConfig.peft_type ?? 'LORA');
    const config = method.parseConfig({ ...rawConfig, peft_type: method.peftType }, `adapter '${name}' config`);
    if (typeof config.target_modules === 'string' && config.target_modules.toLowerCase() === ALL_LINEAR)
      config.target_modules = allLinearNames(this.model, this.options);
    const toSave = this.modulesToSave(config);
    const targetConfig = { ...config, modules_to_save: toSave };
    const targets = method.targets ? method.targets(this.model, targetConfig) : findTargetModules(this.model, targetConfig);
    const installed: [string, Module][] = [];
    try {
      for (const path of targets) {
        const target = this.model.getModule(path);
        const layer = method.inject(target, name, config, path, this.model);
        if (!layer)
          throw new Error(
            `target module ${path} (${target.constructor.name}) is not supported by ${method.peftType} (see docs/methods/ for the layer types each method adapts)`,
          );
        if (layer !== target) {
          this.model.setModule(path, layer);
          installed.push([path, target]);
        }
      }
    } catch (e) {
      // Leave the model as it was: drop what this adapter added.
      for (const [path, original] of installed) this.model.setModule(path, original);
      for (const [, m] of this.model.namedModules()) if (isTunerLayer(m)) m.deleteAdapter(name);
      throw e;
    }
    for (const path of findModulesToSave(this.model, toSave)) {
      const m = this.model.getModule(path);
      const wrapper = m instanceof ModulesToSaveWrapper ? m : new ModulesToSaveWrapper(m);
      wrapper.addAdapter(name);
      if (wrapper !== m) this.model.setModule(path, wrapper);
    }
    this.peftConfig.set(name, config);
    this.refreshTrainable();
  }

  /** Activates one adapter or several (their outputs add up); the others stay in memory, inactive. */
  setAdapter(names: string | readonly string[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    for (const n of list) this.method(n);
    this.active = list;
    this.refreshTrainable();
  }

  /** Runs `fn` with every adapter disabled (the base model alone; merged adapters are unmerged first). */
  disableAdapters<T>(fn: () => T): T {
    const was = this.disabled;
    this.setEnabled(false);
    try {
      return fn();
    } finally {
      this.setEnabled(!was);
    }
  }

  private setEnabled(flag: boolean): void {
    this.disabled = !flag;
    for (const [, m] of this.model.namedModules()) if (isTunerLayer(m) || m instanceof ModulesToSaveWrapper) m.enabled = flag;
  }

  /** Removes adapter `name` and its tensors. */
  deleteAdapter(name: string): void {
    this.method(name);
    for (const [, m] of this.model.namedModules()) if (isTunerLayer(m) || m instanceof ModulesToSaveWrapper) m.deleteAdapter(name);
    this.peftConfig.delete(name);
    this.adapterDType.delete(name);
    this.active = this.active.filter((n) => n !== name);
    this.unwrapEmpty(false);
    this.refreshTrainable();
  }

  /** Adapter layers and modules_to_save wrappers with their paths. */
  private wrappers(): [string, Module & TunerLayer][] {
    return this.model.namedModules().filter((e): e is [string, Module & TunerLayer] => isTunerLayer(e[1]));
  }

  /**
   * Sets requiresGrad from scratch: base frozen; the active adapters' tensors and `modules_to_save` copies
   * trainable unless their config is in inference mode; biases per the active configs' `bias`.
   */
  private refreshTrainable(): void {
    for (const p of this.model.parameters()) p.requiresGrad = false;
    const inference = this.active.every((n) => this.peftConfig.get(n)!.inference_mode);
    for (const [, m] of this.model.namedModules()) if (isTunerLayer(m) || m instanceof ModulesToSaveWrapper) m.setActiveAdapters(this.active, inference);
    for (const n of this.active) {
      const c = this.peftConfig.get(n)!;
      if (c.inference_mode) continue;
      const bias = (c as { bias?: string }).bias ?? 'none';
      if (bias === 'all') {
        for (const [k, p] of this.model.namedParameters()) if (k === 'bias' || k.endsWith('.bias')) p.requiresGrad = true;
      } else if (bias.endsWith('_only')) {
        for (const [, layer] of this.wrappers()) {
          const b = layer.baseLayer.namedParameters().find(([k]) => k === 'bias')?.[1];
          if (b) b.requiresGrad = true;
        }
      }
    }
  }

  /** Parameters with their dotted names as PEFT's `named_parameters` gives them (shared tensors once). */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    return this.model.namedParameters().filter(([, p]) => !seen.has(p) && !!seen.add(p));
  }

  /** The tensors an optimizer should update (f32 leaves with requiresGrad). */
  trainableParameters(): Tensor<'f32'>[] {
    return this.namedParameters()
      .map(([, p]) => p)
      .filter((p) => p.requiresGrad) as Tensor<'f32'>[];
  }

  /** Trainable and total parameter counts, as PEFT's `get_nb_trainable_parameters`. */
  parameterCounts(): ParameterCounts {
    let trainable = 0;
    let all = 0;
    for (const [, p] of this.namedParameters()) {
      all += p.size;
      if (p.requiresGrad) trainable += p.size;
    }
    return { trainable, all };
  }

  /** PEFT's line: `trainable params: X || all params: Y || trainable%: Z` (printed and returned). */
  printTrainableParameters(): string {
    const { trainable, all } = this.parameterCounts();
    const fmt = (n: number) => n.toLocaleString('en-US');
    const line = `trainable params: ${fmt(trainable)} || all params: ${fmt(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
    console.log(line);
    return line;
  }

  /** Merges `names` (default: the active adapters) into the base weights, reversibly. */
  merge(names: readonly string[] = this.active): void {
    for (const n of names) if (!this.method(n).supportsMerge) throw new Error(`adapter '${n}' (${this.method(n).peftType}) cannot be merged`);
    for (const [, layer] of this.wrappers()) layer.merge(names);
  }

  /** Subtracts every merged adapter back out of the base weights. */
  unmerge(): void {
    for (const [, layer] of this.wrappers()) layer.unmerge();
  }

  /**
   * Puts plain modules back where wrappers hold no adapter (or everywhere with `all`): an adapter layer becomes
   * its base layer, a `modules_to_save` wrapper the module it runs now.
   */
  private unwrapEmpty(all: boolean): void {
    for (const [path, m] of [...this.model.namedModules()].reverse()) {
      if (isTunerLayer(m) && (all || m.adapterNames().length === 0)) this.model.setModule(path, m.baseLayer);
      else if (m instanceof ModulesToSaveWrapper && (all || m.adapterNames().length === 0)) this.model.setModule(path, m.current());
    }
  }

  /** Merges the active adapters into the base and returns the plain base model (this PeftModel is then spent). */
  mergeAndUnload(names: readonly string[] = this.active): M {
    this.merge(names);
    return this.unload();
  }

  /**
   * Returns the plain base model without merging: adapter layers are replaced by their base layers and each
   * `modules_to_save` wrapper by the active adapter's copy, as PEFT does (this PeftModel is then spent).
   */
  unload(): M {
    for (const [, m] of this.model.namedModules()) if (m instanceof ModulesToSaveWrapper) m.enabled = true;
    this.unwrapEmpty(true);
    this.peftConfig.clear();
    this.active = [];
    return this.model;
  }

  /**
   * The base model's parameters under their original checkpoint names (adapter wrappers see-through), with the
   * adapters `merged` added into copies of the affected weights. Shared tensors appear once (first name), so a
   * tied output head is not repeated. Stored layouts are kept (Conv1D stays [in, out]).
   */
  baseStateDict(merged: readonly string[] = []): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const push = (name: string, t: Tensor) => {
      if (!seen.has(t)) out.push([name, t]);
      seen.add(t);
    };
    const walk = (m: Module, prefix: string): void => {
      const join = (n: string) => (prefix ? `${prefix}.${n}` : n);
      if (isTunerLayer(m)) {
        const toMerge = merged.filter((n) => m.adapterNames().includes(n) && !m.mergedAdapters.includes(n));
        for (const [n, p] of toMerge.length ? m.mergedParameters(toMerge) : m.baseLayer.namedParameters()) push(join(n), p);
        return;
      }
      if (m instanceof ModulesToSaveWrapper) {
        for (const [n, p] of m.current().namedParameters()) push(join(n), p);
        return;
      }
      for (const [n, p] of m.namedParameters()) if (!n.includes('.')) push(join(n), p);
      for (const [n, c] of m.namedChildren()) walk(c, join(n));
    };
    walk(this.model, '');
    return out;
  }
}
