/**
 * Tokenizers: one interface over Hugging Face `tokenizer.json` tokenizers (through `@huggingface/tokenizers`)
 * and llama2.c `tokenizer.bin` files, and `loadTokenizer(dir)` which picks whichever a checkpoint folder has.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { loadLlama2cTokenizer } from './llama2c-tokenizer.js';
import { type ChatMessage, type ChatTemplateOptions, renderChatTemplate, selectChatTemplate } from './chat-template.js';

export type { ChatMessage, ChatTemplateOptions } from './chat-template.js';

/** Text ↔ token ids, with the special ids a generation loop and a trainer need. */
export interface Tokenizer {
  /** Token ids of `text`; `addSpecialTokens` (default true) adds what the tokenizer adds around a sequence (BOS, ...). */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; `skipSpecialTokens` (default false) leaves out special tokens (BOS, EOS, pad, ...). */
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** Number of token ids (largest id + 1), added tokens included. */
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosId?: number;
  readonly padId?: number;
  /** Every id that ends generation: the EOS token and generation_config.json's `eos_token_id` (one or a list). */
  readonly eosIds: readonly number[];
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Renders a conversation with the checkpoint's chat template (the text, to be encoded without special tokens). */
  applyChatTemplate?(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string;
}

/** A special token in tokenizer_config.json / special_tokens_map.json: a string or an AddedToken object. */
type SpecialToken = string | { content: string } | null | undefined;
type JsonObject = Record<string, unknown>;

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;

function specialContent(t: unknown): string | undefined {
  const tok = t as SpecialToken;
  if (typeof tok === 'string') return tok;
  if (tok && typeof tok === 'object' && typeof tok.content === 'string') return tok.content;
  return undefined;
}

/** Reads a JSON object file; undefined when the file does not exist; a parse error names the path. */
function readJsonObject(path: string): JsonObject | undefined {
  if (!existsSync(path)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`loadTokenizer: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`loadTokenizer: ${path} does not hold a JSON object`);
  }
  return value as JsonObject;
}

/** `eos_token_id` of a generation_config.json / config.json: a number, a list of numbers, or absent. */
function eosTokenIds(cfg: JsonObject | undefined): number[] {
  const v = cfg?.eos_token_id;
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** A tokenizer.json tokenizer plus the tokenizer_config.json settings `@huggingface/tokenizers` leaves to callers. */
class HfJsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosId?: number;
  readonly padId?: number;
  readonly eosIds: readonly number[];
  private readonly bosToken?: string;
  private readonly eosToken?: string;
  /** tokenizer_config.json's `add_bos_token` / `add_eos_token`, when it sets either (Llama-style tokenizers). */
  private readonly addBosEos?: { bos: boolean; eos: boolean };

  constructor(
    private readonly tok: HfTokenizer,
    config: JsonObject,
    extraEosIds: number[],
    private readonly chatTemplate: { template: unknown; source: string },
  ) {
    this.vocabSize = tok.model?.vocab.length ?? tok.get_vocab(true).size;
    const idOf = (key: (typeof SPECIAL_KEYS)[number]): number | undefined => {
      const content = specialContent(config[key]);
      return content === undefined ? undefined : tok.token_to_id(content);
    };
    this.bosToken = specialContent(config.bos_token);
    this.eosToken = specialContent(config.eos_token);
    this.bosId = idOf('bos_token');
    this.eosId = idOf('eos_token');
    this.padId = idOf('pad_token');
    this.eosIds = [...new Set([...(this.eosId === undefined ? [] : [this.eosId]), ...extraEosIds])];
    if (typeof config.add_bos_token === 'boolean' || typeof config.add_eos_token === 'boolean') {
      this.addBosEos = { bos: config.add_bos_token === true, eos: config.add_eos_token === true };
    }
  }

  /**
   * With `add_bos_token` / `add_eos_token` in tokenizer_config.json the sequence is `[BOS] text [EOS]` per those
   * flags (as transformers' Llama/Gemma fast tokenizers rebuild their post-processor); otherwise tokenizer.json's
   * own post-processor decides what special tokens surround the text.
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const addSpecial = opts.addSpecialTokens ?? true;
    if (!addSpecial || !this.addBosEos) return this.tok.encode(text, { add_special_tokens: addSpecial }).ids;
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    if (this.addBosEos.bos && this.bosId !== undefined) ids.unshift(this.bosId);
    if (this.addBosEos.eos && this.eosId !== undefined) ids.push(this.eosId);
    return ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.tok.id_to_token(id) === undefined) {
        throw new RangeError(`Tokenizer.decode: token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return '';
    return this.tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const template = selectChatTemplate(this.chatTemplate.template, this.chatTemplate.source, opts.templateName);
    return renderChatTemplate(template, this.chatTemplate.source, messages, {
      addGenerationPrompt: opts.addGenerationPrompt ?? false,
      bosToken: this.bosToken,
      eosToken: this.eosToken,
    });
  }
}

/** The llama2.c tokenizer files a folder may hold: `tokenizer.bin`, else `tok*.bin` (sorted, first). */
function findLlama2cTokenizer(dir: string): string | undefined {
  if (existsSync(join(dir, 'tokenizer.bin'))) return join(dir, 'tokenizer.bin');
  const tok = readdirSync(dir)
    .filter((f) => /^tok.*\.bin$/.test(f))
    .sort();
  return tok.length > 0 ? join(dir, tok[0]) : undefined;
}

/**
 * Loads the tokenizer of a checkpoint folder.
 *
 * - `tokenizer.json` (any model `@huggingface/tokenizers` supports), with `tokenizer_config.json` (special tokens
 *   as strings or `{content}` objects, falling back to `special_tokens_map.json`; `add_bos_token` /
 *   `add_eos_token`; `chat_template` as a string or a list of `{name, template}`, or a `chat_template.jinja`
 *   file) and the extra stop ids of `generation_config.json` (`eos_token_id`, a number or a list).
 * - else a llama2.c `tokenizer.bin` or `tok*.bin`; `config.json`'s `vocab_size`, when present, must match its
 *   token count.
 * - else an error naming the folder and every file looked for.
 */
export function loadTokenizer(dir: string): Tokenizer {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`loadTokenizer: ${dir} is not a directory`);
  }
  const tokenizerJsonPath = join(dir, 'tokenizer.json');
  if (existsSync(tokenizerJsonPath)) {
    const tokenizerJson = readJsonObject(tokenizerJsonPath)!;
    const configPath = join(dir, 'tokenizer_config.json');
    const config: JsonObject = { ...readJsonObject(configPath) };
    const specialMap = readJsonObject(join(dir, 'special_tokens_map.json'));
    for (const key of SPECIAL_KEYS) {
      // The library expects plain strings; AddedToken objects are reduced to their content.
      const content = specialContent(config[key]) ?? specialContent(specialMap?.[key]);
      if (content === undefined) delete config[key];
      else config[key] = content;
    }
    let tok: HfTokenizer;
    try {
      tok = new HfTokenizer(tokenizerJson, config);
    } catch (e) {
      throw new Error(`loadTokenizer: cannot build a tokenizer from ${tokenizerJsonPath}: ${(e as Error).message}`);
    }
    const jinjaPath = join(dir, 'chat_template.jinja');
    const chatTemplate =
      config.chat_template !== undefined || !existsSync(jinjaPath)
        ? { template: config.chat_template, source: configPath }
        : { template: readFileSync(jinjaPath, 'utf8'), source: jinjaPath };
    const generationConfig = readJsonObject(join(dir, 'generation_config.json'));
    return new HfJsonTokenizer(tok, config, eosTokenIds(generationConfig), chatTemplate);
  }
  const binPath = findLlama2cTokenizer(dir);
  if (binPath !== undefined) {
    const vocabSize = readJsonObject(join(dir, 'config.json'))?.vocab_size;
    return loadLlama2cTokenizer(binPath, typeof vocabSize === 'number' ? vocabSize : undefined);
  }
  throw new Error(
    `loadTokenizer: no tokenizer in ${dir}: looked for tokenizer.json (Hugging Face, with tokenizer_config.json), ` +
      `tokenizer.bin or tok*.bin (llama2.c)`,
  );
}
