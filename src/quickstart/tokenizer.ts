/**
 * The embedded model's tokenizer: byte-level BPE with no merges — one token per byte (GPT-2's byte ↔ character
 * table, so Python's `tokenizers` and `@huggingface/tokenizers` read it unchanged) plus `<pad>`, `<s>` (BOS,
 * added in front of every encoded sequence by the post-processor) and `</s>` (EOS). Any text round-trips.
 */

export const PAD_TOKEN = '<pad>';
export const BOS_TOKEN = '<s>';
export const EOS_TOKEN = '</s>';
const SPECIALS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN] as const;

/** Number of ids: the specials (0, 1, 2), then the 256 bytes. */
export const VOCAB_SIZE = SPECIALS.length + 256;

/**
 * GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to code points from 256 up, so every
 * byte is a visible character in the vocabulary.
 */
export function bytesToUnicode(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : next++));
  return table;
}

/** tokenizer.json (HF `tokenizers` format) of the byte-level tokenizer. */
export function tokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  SPECIALS.forEach((t, i) => (vocab[t] = i));
  bytesToUnicode().forEach((c, b) => (vocab[c] = SPECIALS.length + b));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const bos = (typeId: number) => ({ SpecialToken: { id: BOS_TOKEN, type_id: typeId } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos(0), { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos(0), { Sequence: { id: 'A', type_id: 0 } }, bos(1), { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [BOS_TOKEN]: { id: BOS_TOKEN, ids: [1], tokens: [BOS_TOKEN] } },
    },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** tokenizer_config.json: the special tokens by role (transformers' `PreTrainedTokenizerFast`). */
export function tokenizerConfigJson(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: BOS_TOKEN,
    eos_token: EOS_TOKEN,
    pad_token: PAD_TOKEN,
    model_max_length: maxLength,
    clean_up_tokenization_spaces: false,
  };
}
