/**
 * Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning", §2): P trainable
 * token embeddings `prompt_embeddings` [P, D] are prepended to the input embeddings; the model stays frozen. Here
 * they run through the model once per forward (batch 1) and their per-layer keys / values become the prefix of the
 * real tokens' attention — the same computation, since virtual tokens never attend to later ones (common/virtual.ts).
 */
import { reshape, zeros, type Tensor } from '../../engine/index.js';
import type { CausalLM } from '../../models/types.js';
import { RecordingCache, VirtualTokenLayer, type PrefixKV } from '../common/virtual.js';

export class PromptTuningEmbedding extends VirtualTokenLayer {
  protected readonly method = 'PROMPT_TUNING';

  /** Adds adapter `name` with the table `init` [P, D]. */
  addAdapter(name: string, init: Tensor): void {
    this.setAdapterTensors(name, [['prompt_embeddings', init]]);
  }

  prefix(name: string, _model: CausalLM, original: CausalLM['forward']): PrefixKV {
    const table = this.tensor(name, 'prompt_embeddings');
    const [P, D] = table.shape as [number, number];
    const cache = new RecordingCache();
    this.emitVirtual = reshape(table, [1, P, D]);
    try {
      original(zeros([1, P], 'i32'), { cache: cache as never, logitsToKeep: 1 });
    } finally {
      this.emitVirtual = null;
    }
    return cache.recorded;
  }
}
