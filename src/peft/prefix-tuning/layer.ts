/**
 * Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation", §4): every layer's
 * attention gets P learned key / value positions in front of the input's, `prompt_embeddings` [P, L·2·KVH·D] laid
 * out as PEFT's past_key_values (layer, key/value, head, dim) — fed through the attention kernel by
 * common/virtual.ts. With `prefix_projection` (§4.3's reparameterisation) the table is
 * `Linear₂(tanh(Linear₁(E)))` of P trainable embeddings E [P, token_dim]; the saved `prompt_embeddings` is then that
 * output (as PEFT saves it), which loads as a plain table.
 */
import { globalGenerator, linear, noGrad, rand, randn, tanh, zeros, type Tensor } from '../../engine/index.js';
import type { CausalLM } from '../../models/types.js';
import { splitPrefixTable, VirtualTokenLayer, type PrefixKV } from '../common/virtual.js';

export interface PrefixSpec {
  tokens: number;
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The projection MLP's hidden width, or null for a plain table. */
  projection: number | null;
  zeroInit: boolean;
}

/** torch nn.Linear's default init: U(−1/√in, 1/√in) for weight and bias. */
function torchLinear(out: number, inF: number, zero: boolean): [Tensor, Tensor] {
  const b = 1 / Math.sqrt(inF);
  return zero ? [zeros([out, inF]), zeros([out])] : [rand([out, inF], -b, b, globalGenerator), rand([out], -b, b, globalGenerator)];
}

export class PrefixTuningEncoder extends VirtualTokenLayer {
  protected readonly method = 'PREFIX_TUNING';
  readonly specs = new Map<string, PrefixSpec>();

  addAdapter(name: string, s: PrefixSpec): void {
    this.specs.set(name, s);
    const width = s.layers * 2 * s.kvHeads * s.headDim;
    if (s.projection === null) {
      this.setAdapterTensors(name, [['prompt_embeddings', s.zeroInit ? zeros([s.tokens, width]) : randn([s.tokens, width])]]);
      return;
    }
    const tokenDim = s.kvHeads * s.headDim;
    const [w0, b0] = torchLinear(s.projection, tokenDim, false);
    const [w2, b2] = torchLinear(width, s.projection, s.zeroInit);
    this.setAdapterTensors(name, [
      ['prefix_encoder.embedding.weight', randn([s.tokens, tokenDim])],
      ['prefix_encoder.transform.0.weight', w0],
      ['prefix_encoder.transform.0.bias', b0],
      ['prefix_encoder.transform.2.weight', w2],
      ['prefix_encoder.transform.2.bias', b2],
    ]);
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.specs.delete(name);
  }

  /** The prefix table [P, L·2·KVH·D] of adapter `name` (through the projection when it has one). */
  table(name: string): Tensor {
    if (this.specs.get(name)!.projection === null) return this.tensor(name, 'prompt_embeddings');
    const t = (k: string) => this.tensor(name, `prefix_encoder.${k}`);
    return linear(tanh(linear(t('embedding.weight'), t('transform.0.weight'), t('transform.0.bias'))), t('transform.2.weight'), t('transform.2.bias'));
  }

  /** Saved as PEFT saves it: the one `prompt_embeddings` table (computed when projected). */
  override adapterTensors(name: string): [string, Tensor][] {
    const s = this.specs.get(name);
    if (!s) return [];
    return s.projection === null ? super.adapterTensors(name) : [['prompt_embeddings', noGrad(() => this.table(name))]];
  }

  prefix(name: string, _model: CausalLM): PrefixKV {
    const s = this.specs.get(name)!;
    return splitPrefixTable(this.table(name), s.layers, s.kvHeads, s.headDim);
  }
}
