/** Per-task evaluation: exact match of greedy generations and the eval loss, each under the task's id. */
import { crossEntropy, noGrad, tensor, tidy } from '../engine/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { generate, type CausalLM } from '../models/index.js';
import { collate, type Row } from '../train/data/pack.js';
import type { TaskRecord } from './data.js';
import { withTaskIds } from './routing.js';

export interface ExactMatch {
  correct: number;
  total: number;
  accuracy: number;
  /** The generated answers (trimmed). */
  outputs: string[];
}

/**
 * Greedy answers of `model` to the records' prompts, compared exactly (trimmed) with their completions. `taskId`
 * is the task every row is routed to (null: no task ids — methods that route by themselves, like MeteoRA).
 */
export function taskExactMatch(model: CausalLM, tok: Tokenizer, records: readonly TaskRecord[], taskId: number | null, batchSize = 64): ExactMatch {
  const longest = Math.max(...records.map((r) => tok.encode(r.completion, { addSpecialTokens: false }).length));
  const outputs: string[] = [];
  for (let i = 0; i < records.length; i += batchSize) {
    const part = records.slice(i, i + batchSize);
    const ids = taskId === null ? null : new Array<number>(part.length).fill(taskId);
    const gens = noGrad(() => withTaskIds(ids, () => generate(model, tok, part.map((r) => r.prompt), { maxNewTokens: longest + 1 })));
    outputs.push(...gens.map((g) => g.text.trim()));
  }
  const correct = outputs.filter((o, i) => o === records[i]!.completion.trim()).length;
  return { correct, total: records.length, accuracy: records.length ? correct / records.length : NaN, outputs };
}

/** Mean cross-entropy over the target tokens of `rows`, every row routed to `taskId` (null: none). */
export function taskEvalLoss(model: CausalLM, rows: readonly Row[], taskId: number | null, padId: number, batchSize = 64): number {
  let sum = 0;
  let count = 0;
  noGrad(() => {
    for (let i = 0; i < rows.length; i += batchSize) {
      const b = collate(rows.slice(i, i + batchSize), padId);
      const ids = taskId === null ? null : new Array<number>(b.B).fill(taskId);
      sum += tidy(() =>
        withTaskIds(ids, () => crossEntropy(model.forward(tensor(b.ids, [b.B, b.T], 'i32')), tensor(b.targets, [b.B, b.T], 'i32'), { reduction: 'sum' }).item()),
      );
      count += b.targetTokens;
    }
  });
  return count ? sum / count : NaN;
}
