/**
 * The expert of a MeteoRA adapter's context-free position. A causal gate cannot know the task at a sequence's first
 * real position (BOS opens every prompt), yet that position's keys and values feed every later one, so which LoRA
 * runs there matters: on the quickstart tasks, with every other position routed right, 33.5–41.5% mean exact match
 * depending on it, against 43% with each task's own. Once the gates are trained this tries each expert there and
 * keeps the one with the lowest loss over the mixture's training rows (each task weighted equally).
 */
import type { CausalLM } from '../models/index.js';
import type { MeteoraConfig } from '../peft/meteora/index.js';
import type { PeftModel } from '../peft/model.js';
import { MoeLoraLinear } from '../peft/moelora/index.js';
import type { TaskMixture } from './data.js';
import { taskEvalLoss } from './eval.js';

export interface FirstExpertChoice {
  expert: number;
  /** Mean per-task loss with each expert at the first position. */
  losses: number[];
}

/** Chooses and sets MeteoRA adapter `adapterName`'s `first_token_expert` (see the file comment). */
export function chooseFirstTokenExpert(peft: PeftModel<CausalLM>, mixture: TaskMixture, opts: { adapterName?: string; rowsPerTask?: number } = {}): FirstExpertChoice {
  const name = opts.adapterName ?? 'default';
  const config = peft.peftConfig.get(name) as MeteoraConfig | undefined;
  if (config?.peft_type !== 'METEORA') throw new Error(`chooseFirstTokenExpert: adapter '${name}' is not a METEORA adapter`);
  const layers = peft.model
    .namedModules()
    .map(([, m]) => m)
    .filter((m): m is MoeLoraLinear => m instanceof MoeLoraLinear && m.adapterNames().includes(name));
  const rows = mixture.rows.map((r) => r.slice(0, opts.rowsPerTask ?? 64));
  const losses = config.expert_scalings.map((_, e) => {
    for (const l of layers) l.setFirstExpert(name, e);
    return rows.reduce((a, r) => a + taskEvalLoss(peft.model, r, null, mixture.padId), 0) / rows.length;
  });
  const expert = losses.indexOf(Math.min(...losses));
  for (const l of layers) l.setFirstExpert(name, expert);
  config.first_token_expert = expert;
  return { expert, losses };
}
