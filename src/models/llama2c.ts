/**
 * llama2.c checkpoints (`run.c` "version 0" format): a header of 7 int32 — dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len (a negative vocab_size means the classifier is not shared with the token
 * embedding) — then float32 weights in the order of run.c's `memory_map_weights`, each matrix [out, in] row-major
 * like PyTorch's Linear. The file is exposed as a TensorSource under HF Llama names, so it loads into the same
 * `LlamaForCausalLM`, with interleaved RoPE (llama2.c keeps Meta's q/k layout; HF checkpoints permute them).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { SafetensorsError, unknownTensorError, type SafeArray, type TensorInfo, type TensorSource } from '../io/safetensors.js';
import { ConfigReader } from './config.js';
import { LlamaForCausalLM, parseLlamaConfig } from './llama.js';
import type { RawConfig, WeightSource } from './types.js';

const HEADER_BYTES = 28;
/** The magic of llama2.c's later "versioned" exports (`export.py --version 1/2`), which this reader refuses. */
const VERSIONED_MAGIC = 0x616b3432;

/** Whether a file name in a folder looks like a llama2.c model (a .bin that is not a tokenizer). */
export function isLlama2cModelFile(name: string): boolean {
  return name.endsWith('.bin') && name !== 'tokenizer.bin' && !/^tok.*\.bin$/.test(name);
}

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
}

export class Llama2cFile implements TensorSource {
  private readonly tensors = new Map<string, TensorInfo>();

  private constructor(
    readonly path: string,
    private fd: number,
    readonly header: Llama2cHeader,
    size: number,
  ) {
    const { dim, hiddenDim: hid, nLayers: L, nHeads, nKvHeads, vocabSize: V, seqLen, sharedClassifier } = header;
    const hs = dim / nHeads;
    const kvDim = nKvHeads * hs;
    let offset = HEADER_BYTES;
    const add = (name: string, shape: number[]) => {
      const byteLength = shape.reduce((a, b) => a * b, 1) * 4;
      this.tensors.set(name, { name, dtype: 'F32', shape, byteOffset: offset, byteLength, file: path });
      offset += byteLength;
    };
    /** One run.c array holding `L` per-layer tensors of `shape`. */
    const perLayer = (suffix: string, shape: number[]) => {
      for (let l = 0; l < L; l++) add(`model.layers.${l}.${suffix}`, shape);
    };
    add('model.embed_tokens.weight', [V, dim]);
    perLayer('input_layernorm.weight', [dim]);
    perLayer('self_attn.q_proj.weight', [nHeads * hs, dim]);
    perLayer('self_attn.k_proj.weight', [kvDim, dim]);
    perLayer('self_attn.v_proj.weight', [kvDim, dim]);
    perLayer('self_attn.o_proj.weight', [dim, nHeads * hs]);
    perLayer('post_attention_layernorm.weight', [dim]);
    perLayer('mlp.gate_proj.weight', [hid, dim]); // w1
    perLayer('mlp.down_proj.weight', [dim, hid]); // w2
    perLayer('mlp.up_proj.weight', [hid, dim]); // w3
    add('model.norm.weight', [dim]);
    offset += seqLen * hs * 4; // freq_cis_real and freq_cis_imag, unused (run.c skips them too)
    if (!sharedClassifier) add('lm_head.weight', [V, dim]);
    if (offset !== size)
      throw new SafetensorsError(path, undefined, `llama2.c file is ${size} bytes but its header (${JSON.stringify(header)}) implies ${offset} — truncated, or not a version-0 llama2.c export`);
  }

  /** Opens a llama2.c file and checks its size against the header. */
  static open(path: string): Llama2cFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(HEADER_BYTES);
      if (size < HEADER_BYTES || readSync(fd, head, 0, HEADER_BYTES, 0) !== HEADER_BYTES)
        throw new SafetensorsError(path, undefined, `too short for a llama2.c header (${size} bytes)`);
      const h = Array.from({ length: 7 }, (_, i) => head.readInt32LE(i * 4));
      if (h[0] === VERSIONED_MAGIC)
        throw new SafetensorsError(path, undefined, 'this is a versioned llama2.c export (magic "ak42"); re-export it with the legacy format (version 0)');
      const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = h as [number, number, number, number, number, number, number];
      if ([dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].some((v) => v <= 0) || vocab === 0 || dim % nHeads || nHeads % nKvHeads)
        throw new SafetensorsError(path, undefined, `not a llama2.c checkpoint: implausible header ${JSON.stringify(h)}`);
      const header = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), seqLen, sharedClassifier: vocab > 0 };
      return new Llama2cFile(path, fd, header, size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The header as an HF-style Llama config.json object. */
  config(): RawConfig {
    const h = this.header;
    return {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: h.vocabSize,
      hidden_size: h.dim,
      intermediate_size: h.hiddenDim,
      num_hidden_layers: h.nLayers,
      num_attention_heads: h.nHeads,
      num_key_value_heads: h.nKvHeads,
      max_position_embeddings: h.seqLen,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: h.sharedClassifier,
      bos_token_id: 1,
      // run.c ends a sample at BOS (it delimits stories in training data); 2 is the sentencepiece EOS.
      eos_token_id: [1, 2],
      source_format: `llama2.c (${basename(this.path)})`,
    };
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw unknownTensorError(this.path, name, this.names());
    return t;
  }

  read(name: string): SafeArray {
    const t = this.info(name);
    const out = new Float32Array(t.byteLength / 4);
    const bytes = new Uint8Array(out.buffer);
    let done = 0;
    while (done < t.byteLength) {
      const n = readSync(this.fd, bytes, done, t.byteLength - done, t.byteOffset + done);
      if (n <= 0) throw new SafetensorsError(this.path, name, 'unexpected end of file');
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** The Llama model of a llama2.c file (interleaved RoPE), built from `weights` (which reads `file`). */
export function llama2cModel(file: Llama2cFile, weights: WeightSource): LlamaForCausalLM {
  const cfg = parseLlamaConfig(new ConfigReader(file.config(), file.path));
  return new LlamaForCausalLM({ ...cfg, ropeInterleaved: true }, weights);
}
