/**
 * Data-driven initialisations: some methods read a few batches before training starts — CorDA (activation
 * covariance), LoRA-GA and LoRA-SB (the full-weight gradient of one batch) before the adapters are injected, EVA
 * (SVD of layer inputs) after. The trainer calls both functions with its first batches; they do nothing for
 * methods that need no data.
 */
import { backward, noGrad, tidy, type Tensor } from '../engine/index.js';
import type { CausalLM } from '../models/index.js';
import { preprocessCorda } from './lora/init/corda.js';
import { initializeEva } from './lora/init/eva.js';
import { preprocessLoraGa } from './lora/init/loraga.js';
import { preprocessLoraSb } from './lorasb/index.js';
import type { PeftModel } from './model.js';

/** One calibration batch: i32 [B, T] input ids and next-token targets (−100: no loss). */
export interface CalibrationBatch {
  ids: Tensor;
  targets: Tensor;
}

/** Whether the config's initialisation reads data (so the caller should gather calibration batches). */
export function needsCalibration(config: Record<string, unknown>): boolean {
  return config.peft_type === 'LORASB' || ['corda', 'lora_ga', 'eva'].includes(String(config.init_lora_weights));
}

/** Runs the pre-injection calibration the config asks for on the base model. */
export function calibrateBase(model: CausalLM, config: Record<string, unknown>, batches: readonly CalibrationBatch[]): void {
  if (batches.length === 0) throw new Error(`calibration for ${String(config.peft_type)} needs at least one batch of data`);
  const first = batches[0]!;
  const trainStep = () => tidy(() => backward(model.loss(first.ids, first.targets)));
  if (config.peft_type === 'LORASB') preprocessLoraSb(model, config, trainStep);
  else if (config.init_lora_weights === 'lora_ga') preprocessLoraGa(model, config, trainStep);
  else if (config.init_lora_weights === 'corda') preprocessCorda(model, config, () => noGrad(() => tidy(() => batches.forEach((b) => model.forward(b.ids)))));
}

/** Runs the post-injection calibration the config asks for (EVA) on the adapters of `peft`. */
export function calibrateAdapter(peft: PeftModel, config: Record<string, unknown>, batches: readonly CalibrationBatch[]): void {
  if (config.init_lora_weights === 'eva') initializeEva(peft, batches.map((b) => ({ inputIds: b.ids, labels: b.targets })));
}
