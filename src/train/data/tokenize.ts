/**
 * Examples → token ids with a loss mask. `mask[i] = 1` when token i is a training target (predicted from the tokens
 * before it). By default only completions and assistant turns are targets (`lossOn: 'completion'`); plain text is
 * all target. Chat conversations are rendered with the tokenizer's chat template (or one given explicitly), and the
 * assistant spans are found by rendering each prefix of the conversation.
 */
import { renderChatTemplate } from '../../io/chat-template.js';
import type { ChatMessage, Tokenizer } from '../../io/tokenizer.js';
import type { Example, Source } from './formats.js';

export interface TokenizedExample {
  ids: number[];
  /** 1 where the token is a loss target. */
  mask: Uint8Array;
  source: Source;
  /** For prompt/completion records: what greedy generation from the prompt should produce (exact-match eval). */
  reference?: Reference;
}

/** A prompt and the completion tokens (EOS excluded) greedy generation should reproduce. */
export interface Reference {
  promptIds: number[];
  completionIds: number[];
  /** The example's task id (multi-task runs; set by `prepareData`). */
  task?: number;
}

export interface TokenizeOptions {
  /** 'completion' (default): loss on completion / assistant tokens only; 'all': on every token. */
  lossOn?: 'completion' | 'all';
  /** A Jinja chat template overriding the tokenizer's own (needed for tokenizers without one). */
  chatTemplate?: string;
  /** Append the EOS token after text and completions (default true) so the model learns to stop. */
  addEos?: boolean;
}

/** Concatenates text pieces, each encoded on its own, with per-piece target flags. */
function encodePieces(tok: Tokenizer, pieces: { text: string; target: boolean; special?: boolean }[]): { ids: number[]; mask: number[] } {
  const ids: number[] = [];
  const mask: number[] = [];
  for (const p of pieces) {
    if (p.text === '') continue;
    const part = tok.encode(p.text, { addSpecialTokens: p.special ?? false });
    ids.push(...part);
    for (let i = 0; i < part.length; i++) mask.push(p.target ? 1 : 0);
  }
  return { ids, mask };
}

function renderChat(tok: Tokenizer, messages: readonly ChatMessage[], addGenerationPrompt: boolean, template: string | undefined, source: Source): string {
  if (template !== undefined)
    return renderChatTemplate(template, 'the chatTemplate option', messages, {
      addGenerationPrompt,
      bosToken: tok.bosId === undefined ? undefined : tok.idToToken(tok.bosId),
      eosToken: tok.eosId === undefined ? undefined : tok.idToToken(tok.eosId),
    });
  if (!tok.applyChatTemplate)
    throw new Error(`${source.file}:${source.line}: a chat record needs a chat template, and this tokenizer has none (set chatTemplate)`);
  return tok.applyChatTemplate(messages, { addGenerationPrompt });
}

/** Tokenizes one example (no truncation; see `truncate`). */
export function tokenizeExample(tok: Tokenizer, ex: Example, opts: TokenizeOptions = {}): TokenizedExample {
  const all = (opts.lossOn ?? 'completion') === 'all';
  const eos = (opts.addEos ?? true) && tok.eosId !== undefined ? [tok.eosId] : [];
  const finish = (r: { ids: number[]; mask: number[] }, target: boolean) => {
    for (const id of eos) {
      r.ids.push(id);
      r.mask.push(target ? 1 : 0);
    }
    return { ids: r.ids, mask: Uint8Array.from(r.mask) };
  };
  switch (ex.kind) {
    case 'text':
      return { ...finish(encodePieces(tok, [{ text: ex.text, target: true, special: true }]), true), source: ex.source };
    case 'completion': {
      const prompt = tok.encode(ex.prompt);
      const r = encodePieces(tok, [{ text: ex.completion, target: true }]);
      const completionIds = r.ids.slice();
      const out = finish({ ids: [...prompt, ...r.ids], mask: [...prompt.map(() => (all ? 1 : 0)), ...r.mask] }, true);
      return { ...out, source: ex.source, reference: { promptIds: prompt, completionIds } };
    }
    case 'chat': {
      // Split the rendered conversation at the start and end of every assistant turn.
      const pieces: { text: string; target: boolean }[] = [];
      let done = '';
      ex.messages.forEach((m, i) => {
        if (m.role !== 'assistant') return;
        const before = renderChat(tok, ex.messages.slice(0, i), true, opts.chatTemplate, ex.source);
        const through = renderChat(tok, ex.messages.slice(0, i + 1), false, opts.chatTemplate, ex.source);
        if (!before.startsWith(done) || !through.startsWith(before))
          throw new Error(`${ex.source.file}:${ex.source.line}: the chat template does not render conversations prefix by prefix; cannot locate assistant turn ${i}`);
        pieces.push({ text: before.slice(done.length), target: all }, { text: through.slice(before.length), target: true });
        done = through;
      });
      const full = renderChat(tok, ex.messages, false, opts.chatTemplate, ex.source);
      pieces.push({ text: full.slice(done.length), target: all });
      const r = encodePieces(tok, pieces);
      return { ids: r.ids, mask: Uint8Array.from(r.mask), source: ex.source };
    }
  }
}

/** Cuts `ex` to `maxTokens`; returns it unchanged when it fits. */
export function truncate(ex: TokenizedExample, maxTokens: number): TokenizedExample {
  if (ex.ids.length <= maxTokens) return ex;
  return { ...ex, ids: ex.ids.slice(0, maxTokens), mask: ex.mask.slice(0, maxTokens) };
}

/** Number of loss targets of an example (its first token is never one: nothing precedes it). */
export function targetCount(ex: TokenizedExample): number {
  let n = 0;
  for (let i = 1; i < ex.mask.length; i++) n += ex.mask[i]!;
  return n;
}
