/**
 * The PEFT method registry. A method is one folder (`src/peft/<method>/`) exporting a {@link PeftMethod}; adding
 * one is that folder plus its line in {@link METHODS}.
 */
import type { Tensor } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { PeftModel } from './model.js';
import type { PeftConfigBase } from './config.js';
import type { TunerLayer } from './tuner.js';
import { lora } from './lora/index.js';
import { lorasb } from './lorasb/index.js';
import { ia3 } from './ia3/index.js';
import { promptTuning } from './prompt-tuning/index.js';
import { prefixTuning } from './prefix-tuning/index.js';
import { bottleneck } from './bottleneck/index.js';
import { ssf } from './ssf/index.js';
import { bitfit } from './bitfit/index.js';
import { lnTuning } from './ln-tuning/index.js';
import { dora } from './dora/index.js';
import { vera } from './vera/index.js';
import { nola } from './nola/index.js';
import { randlora } from './randlora/index.js';
import { loha } from './loha/index.js';
import { lokr } from './lokr/index.js';
import { loldu } from './loldu/index.js';
import { dylora } from './dylora/index.js';
import { adalora } from './adalora/index.js';
import { increlora } from './increlora/index.js';
import { mtlora } from './mtlora/index.js';
import { moelora } from './moelora/index.js';
import { smora } from './smora/index.js';
import { polytropon } from './polytropon/index.js';
import { meteora } from './meteora/index.js';
import { mpt } from './mpt/index.js';

export interface PeftMethod<C extends PeftConfigBase = PeftConfigBase> {
  /** HF `peft_type` (`"LORA"`). */
  readonly peftType: string;
  /** Prefix of the method's parameter names in the state dict (`"lora_"`). */
  readonly prefix: string;
  /** Whether adapters can be merged into (and unmerged from) the base weights. */
  readonly supportsMerge: boolean;
  /** Parses and validates a config (HF field names; unknown keys dropped with one warning). `where` names the source. */
  parseConfig(raw: Record<string, unknown>, where?: string): C;
  /**
   * Adds adapter `adapterName` to the matched module `target` (named `moduleName` in the model): returns the layer
   * to install there (`target` itself when it already is this method's layer), or null when the module type is
   * not supported by the method.
   */
  inject(target: Module, adapterName: string, config: C, moduleName: string, model: Module): (Module & TunerLayer) | null;
  /**
   * The modules to inject into, for methods whose targets are not (only) chosen by `target_modules` — prompt
   * learning wraps the input embedding, BitFit keeps the matched modules that have a bias. Default:
   * `findTargetModules(model, config)`.
   */
  targets?(model: Module, config: C): string[];
  /**
   * The method's tensors are saved under their bare suffixes rather than `base_model.model.<module path>.<suffix>`
   * (PEFT's prompt learning saves one `prompt_embeddings` tensor for the whole model).
   */
  readonly bareKeys?: boolean;
  /** A config field the trainer fills with the run's number of optimizer steps when unset (AdaLoRA's `total_step`). */
  readonly totalStepsField?: string;
  /**
   * A config field the trainer fills with the run's number of tasks when unset (MTLoRA's `n_tasks`): the method
   * routes each example by its task id, so `train()` needs `taskField`.
   */
  readonly taskCountField?: string;
  /** Per-step training behaviour (AdaLoRA's rank allocation and orthogonality regulariser, load-balancing losses). */
  trainingHooks?(peft: PeftModel, adapterName: string): TrainingHooks;
  /**
   * Method-level tensors shared by the adapter's layers, under their own keys (VeRA's `base_model.vera_A`), saved
   * when the config says so (`save_projection`); a file that has them overrides the layers' seeded values, one that
   * lacks them keeps those (each with a warning where it contradicts the config, as PEFT warns). Each call assembles
   * fresh tensors from the layers.
   */
  sharedTensors?(peft: PeftModel, adapterName: string): SharedTensor[];
}

/** A method-level tensor (see {@link PeftMethod.sharedTensors}). */
export interface SharedTensor {
  /** Checkpoint key (`base_model.vera_A`). */
  key: string;
  /** The tensor as the file holds it, assembled from the layers. */
  tensor: Tensor<'f32'>;
  /** Whether the config asks for it in the file (`save_projection`). */
  saved: boolean;
  /** Copies `tensor` (after a file's values were loaded into it) back into the layers. */
  apply(): void;
}

/** What a method adds to each optimizer step of training. */
export interface TrainingHooks {
  /** A term added to the loss once per optimizer step (before backward). */
  regularizer?(): Tensor<'f32'>;
  /** Called after the optimizer step with the number of steps done (1-based), before gradients are zeroed. */
  afterStep?(step: number): void;
  /**
   * The hooks' own state beyond the trainable parameters (AdaLoRA's importance averages and rank masks), for a
   * training checkpoint; a copy, unaffected by later steps. Hooks without state leave `state` and `restore` out.
   */
  state?(): HooksState;
  /**
   * Puts back what {@link TrainingHooks.state} returned (into hooks made fresh for the same adapter and config).
   * The trainer calls it before it restores the parameters, which then overwrite any values it resets (masked E).
   */
  restore?(state: HooksState): void;
}

/** A method's training state: JSON values, and f32 arrays kept bit-exact (a checkpoint stores them as safetensors). */
export interface HooksState {
  values: Record<string, unknown>;
  arrays: Map<string, Float32Array>;
}

/** Every registered method (each typed by its own config; erased to the base config type here). */
const METHODS = [
  lora,
  lorasb,
  ia3,
  promptTuning,
  prefixTuning,
  bottleneck,
  ssf,
  bitfit,
  lnTuning,
  dora,
  vera,
  nola,
  randlora,
  loha,
  lokr,
  loldu,
  dylora,
  adalora,
  increlora,
  mtlora,
  moelora,
  smora,
  polytropon,
  meteora,
  mpt,
] as unknown as PeftMethod[];

/** The method for `peftType`; throws listing the known ones. */
export function peftMethod(peftType: unknown): PeftMethod {
  const m = METHODS.find((x) => x.peftType === peftType);
  if (!m) throw new Error(`unknown peft_type ${JSON.stringify(peftType)}; peftjs supports: ${METHODS.map((x) => x.peftType).join(', ')}`);
  return m;
}

/** The `peft_type` names peftjs supports. */
export function peftTypes(): string[] {
  return METHODS.map((m) => m.peftType);
}
