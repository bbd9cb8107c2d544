/** `MultitaskPromptTuningConfig`: HF PEFT's field names and defaults (src/peft/tuners/multitask_prompt_tuning/config.py). */
import { is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { PROMPT_LEARNING_CHECKS, PROMPT_LEARNING_DEFAULTS, type PromptLearningFields } from '../prompt-tuning/config.js';

export type MptInit = 'RANDOM' | 'TEXT' | 'AVERAGE_SOURCE_TASKS' | 'EXACT_SOURCE_TASK' | 'ONLY_SOURCE_SHARED';

export interface MultitaskPromptTuningConfig extends PeftConfigBase, PromptLearningFields {
  peft_type: 'MULTITASK_PROMPT_TUNING';
  /**
   * RANDOM: N(0, 1) shared prompt, N(0, 0.02) task factors (PEFT); the *_SOURCE_* inits start from a multitask
   * prompt trained on source tasks (`prompt_tuning_init_state_dict_path`): the averaged task factors, one source
   * task's factors, or the shared prompt alone. TEXT is refused (use PROMPT_TUNING's TEXT init).
   */
  prompt_tuning_init: MptInit;
  prompt_tuning_init_text: string | null;
  tokenizer_name_or_path: string | null;
  tokenizer_kwargs: Record<string, unknown> | null;
  /** The source adapter: its folder or its `adapter_model.safetensors` (PEFT: a torch state dict). */
  prompt_tuning_init_state_dict_path: string | null;
  prompt_tuning_init_task: number;
  /** Rank of each task's prompt factor cols·rows. */
  num_ranks: number;
  num_tasks: number;
}

export const MPT_DEFAULTS = {
  ...PROMPT_LEARNING_DEFAULTS,
  prompt_tuning_init: 'RANDOM',
  prompt_tuning_init_text: null,
  tokenizer_name_or_path: null,
  tokenizer_kwargs: null,
  prompt_tuning_init_state_dict_path: null,
  prompt_tuning_init_task: 0,
  num_ranks: 1,
  num_tasks: 1,
} as const;

export function parseMptConfig(raw: Record<string, unknown>, where = 'MultitaskPromptTuningConfig'): MultitaskPromptTuningConfig {
  const c = parseConfigFields<MultitaskPromptTuningConfig>('MULTITASK_PROMPT_TUNING', raw, MPT_DEFAULTS, {
    ...PROMPT_LEARNING_CHECKS,
    prompt_tuning_init: is.oneOf('RANDOM', 'TEXT', 'AVERAGE_SOURCE_TASKS', 'EXACT_SOURCE_TASK', 'ONLY_SOURCE_SHARED'),
    prompt_tuning_init_state_dict_path: is.nullable((v) => (typeof v === 'string' ? null : 'must be a string')),
    prompt_tuning_init_task: is.int(0),
    num_ranks: is.int(1),
    num_tasks: is.int(1),
  }, where);
  if (c.num_virtual_tokens === null) throw new Error(`${where}: num_virtual_tokens must be set`);
  if (c.prompt_tuning_init === 'TEXT') throw new Error(`${where}: prompt_tuning_init "TEXT" is not supported for MULTITASK_PROMPT_TUNING in peftjs (use RANDOM or a *_SOURCE_* init)`);
  if (c.prompt_tuning_init !== 'RANDOM' && !c.inference_mode && !c.prompt_tuning_init_state_dict_path)
    throw new Error(`${where}: prompt_tuning_init_state_dict_path needs to be specified with ${c.prompt_tuning_init} init method`);
  return c;
}
