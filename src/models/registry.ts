/**
 * The architectures `loadModel` knows, by config.json `model_type`.
 *
 * Adding one: write `src/models/<name>.ts` exporting an {@link Architecture} (its `build` constructs the model,
 * taking every tensor from the WeightSource under its HF name), import it here and add it to `ARCHITECTURES`.
 * The loader does the rest: dtype conversion, shape checks, missing/unexpected tensor reports, and a check that
 * the built module tree's parameter names are exactly the tensors it read.
 */
import type { ConfigReader } from './config.js';
import { bertArchitecture, distilBertArchitecture } from './bert.js';
import { gpt2Architecture } from './gpt2.js';
import { llamaArchitecture } from './llama.js';
import type { PretrainedModel, WeightSource } from './types.js';

export interface Architecture {
  /** config.json `model_type` values this implementation loads. */
  readonly modelTypes: readonly string[];
  /** Builds the model from its config; throws (naming the config file and field) on an unusable config. */
  build(cfg: ConfigReader, weights: WeightSource): PretrainedModel;
  /**
   * HF `base_model_prefix` (`transformer`, `bert`, …): checkpoints of the bare base model store its tensors without
   * it (`wte.weight` for `transformer.wte.weight`); the loader reads those under the prefixed name.
   */
  readonly basePrefix?: string;
  /** Checkpoint tensors that are not parameters and are skipped silently (e.g. saved rotary tables). */
  readonly ignoreUnexpected?: readonly RegExp[];
}

export const ARCHITECTURES: readonly Architecture[] = [llamaArchitecture, gpt2Architecture, bertArchitecture, distilBertArchitecture];

/** Every supported `model_type`. */
export function supportedModelTypes(): string[] {
  return ARCHITECTURES.flatMap((a) => a.modelTypes);
}

/** The architecture for `modelType`; the error lists the supported types. */
export function architectureFor(modelType: string, source: string): Architecture {
  const arch = ARCHITECTURES.find((a) => a.modelTypes.includes(modelType));
  if (!arch) throw new Error(`${source}: model_type "${modelType}" is not supported (supported: ${supportedModelTypes().join(', ')})`);
  return arch;
}
