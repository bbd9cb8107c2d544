/**
 * The PEFT method registry. A method is one folder (`src/peft/<method>/`) exporting a {@link PeftMethod}; adding
 * one is that folder plus its line in {@link METHODS}.
 */
import type { Module } from '../nn/index.js';
import type { PeftConfigBase } from './config.js';
import type { TunerLayer } from './tuner.js';
import { lora } from './lora/index.js';

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
  inject(target: Module, adapterName: string, config: C, moduleName: string): (Module & TunerLayer) | null;
}

/** Every registered method. */
const METHODS: PeftMethod[] = [lora as unknown as PeftMethod];

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
