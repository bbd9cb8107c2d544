/**
 * Multitask prompt tuning (Wang et al. 2023, "Multitask Prompt Tuning Enables Parameter-Efficient Transfer
 * Learning"; PEFT `MULTITASK_PROMPT_TUNING`): one shared prompt P* [P, D] (`prompt_embeddings`) modulated per task
 * by a rank-k product: the prompt of task t is
 *
 *   P_t = P* ⊙ (u_t · v_t),    u_t = prefix_task_cols[t] [P, k],  v_t = prefix_task_rows[t] [k, D].
 *
 * Each batch row gets its task's prompt (task ids from `withTaskIds`); the prompts run through the model as virtual
 * tokens, like prompt tuning (common/virtual.ts), one row per batch row.
 */
import { embedding, matmul, mul, reshape, tensor, zeros, type Tensor } from '../../engine/index.js';
import type { CausalLM } from '../../models/types.js';
import { currentTaskIds, requireTaskIds } from '../../multitask/routing.js';
import { RecordingCache, VirtualTokenLayer, type PrefixKV } from '../common/virtual.js';

export class MultitaskPromptEmbedding extends VirtualTokenLayer {
  protected readonly method = 'MULTITASK_PROMPT_TUNING';

  /** Adds adapter `name` with the shared prompt [P, D] and task factors cols [n, P, k], rows [n, k, D]. */
  addAdapter(name: string, prompt: Tensor, cols: Tensor, rows: Tensor): void {
    this.setAdapterTensors(name, [
      ['prefix_task_cols', cols],
      ['prefix_task_rows', rows],
      ['prompt_embeddings', prompt],
    ]);
  }

  /** The prompts [B, P, D] of tasks `ids`. */
  taskPrompts(name: string, ids: Int32Array): Tensor<'f32'> {
    const prompt = this.tensor(name, 'prompt_embeddings');
    const cols = this.tensor(name, 'prefix_task_cols');
    const rows = this.tensor(name, 'prefix_task_rows');
    const [n, P, k] = cols.shape as [number, number, number];
    const D = rows.shape[2]!;
    const at = tensor(ids, [ids.length], 'i32');
    const u = reshape(embedding(reshape(cols, [n, P * k]), at), [ids.length, P, k]);
    const v = reshape(embedding(reshape(rows, [n, k * D]), at), [ids.length, k, D]);
    return mul(prompt, matmul(u, v));
  }

  prefix(name: string, _model: CausalLM, original: CausalLM['forward']): PrefixKV {
    const n = this.tensor(name, 'prefix_task_cols').shape[0]!;
    const ids = requireTaskIds(this.method, currentTaskIds()?.length ?? 0, n);
    const prompts = this.taskPrompts(name, ids);
    const cache = new RecordingCache();
    this.emitVirtual = prompts;
    try {
      original(zeros([ids.length, prompts.shape[1]!], 'i32'), { cache: cache as never, logitsToKeep: 1 });
    } finally {
      this.emitVirtual = null;
    }
    return cache.recorded;
  }
}
