/**
 * The llama2.c tokenizer (`tokenizer.bin`, `tok512.bin`, ...): a sentencepiece BPE vocabulary exported by
 * llama2.c's `tokenizer.py`, encoded and decoded exactly as llama2.c's `run.c` does.
 *
 * File layout (little-endian): `int32 max_token_length`, then for every token `float32 score, int32 len,
 * len bytes` (the piece, UTF-8, with sentencepiece's '▁' already turned into ' '). The file does not store the
 * vocabulary size; llama2.c takes it from the model header, here it is the number of records in the file.
 * Fixed ids: 0 `<unk>`, 1 BOS (`"\n<s>\n"`), 2 EOS (`"\n</s>\n"`), 3..258 the byte-fallback pieces `<0x00>`..`<0xFF>`.
 */
import { readFileSync } from 'node:fs';
import type { Tokenizer } from './tokenizer.js';

const UNK_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;
/** Byte b is the piece `<0xBB>` at id b + BYTE_OFFSET. */
const BYTE_OFFSET = 3;

/** Bytes as a "binary" string (one char per byte, U+0000..U+00FF): a lossless Map key for byte pieces. */
function bytesKey(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** A merge candidate: the adjacent positions `left`, `right` holding `leftId`, `rightId` concatenate to `merged`. */
interface Pair {
  score: number;
  left: number;
  right: number;
  leftId: number;
  rightId: number;
  merged: number;
}

/** Binary max-heap of merge candidates: higher score first, then smaller (further left) position. */
class PairHeap {
  private readonly items: Pair[] = [];

  private static before(a: Pair, b: Pair): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(p: Pair): void {
    const h = this.items;
    let i = h.push(p) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!PairHeap.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  pop(): Pair | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && PairHeap.before(h[l], h[m])) m = l;
        if (r < h.length && PairHeap.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

/** A llama2.c tokenizer: pieces, their merge scores, and the byte-fallback rule. */
export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly eosIds = [EOS_ID];
  readonly padId = undefined;
  /** Byte pieces (binary strings), by id. */
  private readonly pieces: string[];
  /** Byte piece → id (llama2.c's sorted_vocab + bsearch). */
  private readonly ids = new Map<string, number>();

  /**
   * @param pieces the token pieces as bytes, by id
   * @param scores the merge score of every token (float32 values)
   * @param maxTokenLength the header's longest piece length
   */
  constructor(
    pieces: Uint8Array[],
    readonly scores: Float32Array,
    readonly maxTokenLength: number,
  ) {
    if (pieces.length !== scores.length) {
      throw new Error(`Llama2cTokenizer: ${pieces.length} pieces but ${scores.length} scores`);
    }
    this.pieces = pieces.map(bytesKey);
    // Keep the first id of a duplicated piece (the shipped vocabularies have none).
    this.pieces.forEach((p, id) => {
      if (!this.ids.has(p)) this.ids.set(p, id);
    });
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /**
   * llama2.c `encode`: optional BOS, the dummy-prefix space piece, one piece per UTF-8 code point (or its
   * bytes as `<0xXX>` pieces when the code point is not in the vocabulary), then repeatedly merge the adjacent
   * pair whose concatenation is the highest-scoring piece (leftmost on ties) until no pair merges. EOS is never
   * added here (llama2.c's `eos` flag is off for generation); `addSpecialTokens` (default true) adds BOS.
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const bytes = utf8.encode(text);
    const tokens: number[] = [];
    if (opts.addSpecialTokens ?? true) tokens.push(BOS_ID);
    if (bytes.length > 0) {
      const space = this.ids.get(' ');
      if (space === undefined) throw new Error('Llama2cTokenizer.encode: the vocabulary has no " " piece for the dummy prefix');
      tokens.push(space);
    }
    // Group the bytes into code points: a lead byte starts a new group; a group holds at most 4 bytes.
    for (let start = 0; start < bytes.length; ) {
      let end = start + 1;
      while (end < bytes.length && (bytes[end] & 0xc0) === 0x80 && end - start < 4) end++;
      const group = bytes.subarray(start, end);
      const id = this.ids.get(bytesKey(group));
      if (id !== undefined) tokens.push(id);
      else for (const b of group) tokens.push(b + BYTE_OFFSET);
      start = end;
    }
    return this.mergePairs(tokens);
  }

  /**
   * llama2.c's merge loop: while some adjacent pair concatenates to a piece, replace the pair whose piece has the
   * highest score (the leftmost of equal scores) by that piece; scores must beat llama2.c's float
   * `best_score = -1e10`. llama2.c rescans the sequence per merge (quadratic); this keeps the candidate pairs in
   * a heap ordered by (score desc, left position asc) over a linked list, which picks the same pair every step.
   */
  private mergePairs(tokens: number[]): number[] {
    const n = tokens.length;
    const id = Int32Array.from(tokens);
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const floor = Math.fround(-1e10);
    const heap = new PairHeap();
    const push = (left: number): void => {
      const right = next[left];
      if (left < 0 || right < 0) return;
      const merged = this.ids.get(this.pieces[id[left]] + this.pieces[id[right]]);
      if (merged !== undefined && this.scores[merged] > floor) {
        heap.push({ score: this.scores[merged], left, right, leftId: id[left], rightId: id[right], merged });
      }
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    for (let p = heap.pop(); p !== undefined; p = heap.pop()) {
      // Skip entries made stale by earlier merges: a side merged away (id -1) or into a longer piece (new id).
      if (id[p.left] !== p.leftId || id[p.right] !== p.rightId) continue;
      id[p.left] = p.merged;
      id[p.right] = -1;
      next[p.left] = next[p.right];
      if (next[p.right] >= 0) prev[next[p.right]] = p.left;
      push(prev[p.left]);
      push(p.left);
    }
    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(id[i]);
    return out;
  }

  /**
   * llama2.c `decode`, over a whole sequence: a piece right after BOS loses its leading space, `<0xXX>` pieces
   * are raw bytes, and the concatenated bytes are decoded as UTF-8 (invalid sequences become U+FFFD).
   * `skipSpecialTokens` drops `<unk>`, BOS and EOS (otherwise their pieces are written as stored).
   */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const out: number[] = [];
    ids.forEach((id, i) => {
      const piece = this.piece(id, 'decode');
      if (opts.skipSpecialTokens && (id === UNK_ID || id === BOS_ID || id === EOS_ID)) return;
      const byte = /^<0x([0-9A-F]{2})>$/.exec(piece);
      if (byte) {
        out.push(parseInt(byte[1], 16));
        return;
      }
      const from = i > 0 && ids[i - 1] === BOS_ID && piece.charCodeAt(0) === 0x20 ? 1 : 0;
      for (let k = from; k < piece.length; k++) out.push(piece.charCodeAt(k));
    });
    return utf8Decoder.decode(new Uint8Array(out));
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(bytesKey(utf8.encode(token)));
  }

  idToToken(id: number): string | undefined {
    const piece = this.pieces[id];
    return piece === undefined ? undefined : utf8Decoder.decode(Uint8Array.from(piece, (c) => c.charCodeAt(0)));
  }

  private piece(id: number, op: string): string {
    const piece = this.pieces[id];
    if (piece === undefined) {
      throw new RangeError(`Llama2cTokenizer.${op}: token id ${id} is outside the vocabulary [0, ${this.pieces.length})`);
    }
    return piece;
  }
}

/**
 * Parses a llama2.c tokenizer file.
 * @param buf the file's bytes
 * @param source the file path, for error messages
 * @param vocabSize when given (the model's vocab size), the file must hold exactly this many tokens
 */
export function parseLlama2cTokenizer(buf: Uint8Array, source: string, vocabSize?: number): Llama2cTokenizer {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const fail = (why: string): never => {
    throw new Error(`llama2.c tokenizer ${source}: ${why}`);
  };
  if (buf.byteLength < 4) fail(`file is ${buf.byteLength} bytes, too short for the max_token_length header`);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0) fail(`max_token_length ${maxTokenLength} is not positive`);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < buf.byteLength) {
    const id = pieces.length;
    if (off + 8 > buf.byteLength) fail(`truncated: token ${id} record header at byte ${off} runs past the end (${buf.byteLength} bytes)`);
    const score = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxTokenLength) fail(`token ${id} has length ${len}, outside [0, max_token_length ${maxTokenLength}]`);
    if (off + len > buf.byteLength) fail(`truncated: token ${id} needs ${len} bytes at byte ${off} but the file ends at ${buf.byteLength}`);
    pieces.push(buf.slice(off, off + len));
    scores.push(score);
    off += len;
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    fail(`holds ${pieces.length} tokens but the model's vocab_size is ${vocabSize}`);
  }
  if (pieces.length < BYTE_OFFSET + 256) fail(`holds ${pieces.length} tokens, fewer than the ${BYTE_OFFSET + 256} fixed ones (unk, bos, eos, 256 bytes)`);
  return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength);
}

/** Reads and parses a llama2.c tokenizer file (see {@link parseLlama2cTokenizer}). */
export function loadLlama2cTokenizer(path: string, vocabSize?: number): Llama2cTokenizer {
  return parseLlama2cTokenizer(readFileSync(path), path, vocabSize);
}
