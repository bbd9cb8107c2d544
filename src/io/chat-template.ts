/**
 * Chat templates: the Jinja template a checkpoint ships (tokenizer_config.json `chat_template`, or a
 * `chat_template.jinja` file) rendered with `@huggingface/jinja`, with the variables transformers passes.
 */
import { Template } from '@huggingface/jinja';

/** One turn of a conversation. Extra fields (tool calls, names, ...) reach the template unchanged. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the header that starts the assistant's reply (the template's `add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /** Which template of a named list to use; default `"default"`. */
  templateName?: string;
}

/**
 * Picks the template text from a `chat_template` value: a string, or a list of `{name, template}` (the named
 * one, else `"default"`). `source` is the file it came from, for errors.
 */
export function selectChatTemplate(value: unknown, source: string, name?: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const entries = value as { name?: unknown; template?: unknown }[];
    const want = name ?? 'default';
    const hit = entries.find((e) => e?.name === want);
    if (hit && typeof hit.template === 'string') return hit.template;
    const names = entries.map((e) => JSON.stringify(e?.name)).join(', ');
    throw new Error(`chat template: ${source} has no chat_template named "${want}" (it has ${names})`);
  }
  if (value === undefined || value === null) {
    throw new Error(`chat template: ${source} has no chat_template; this tokenizer cannot render conversations`);
  }
  throw new Error(`chat template: ${source} has a chat_template that is neither a string nor a list of {name, template}`);
}

/**
 * Renders a chat template with `messages`, `add_generation_prompt`, `bos_token` and `eos_token`
 * (`raise_exception`, `range`, `strftime_now` are `@huggingface/jinja` globals). A template that fails to
 * parse or raises is reported with `source`.
 */
export function renderChatTemplate(
  template: string,
  source: string,
  messages: readonly ChatMessage[],
  vars: { addGenerationPrompt: boolean; bosToken?: string; eosToken?: string },
): string {
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new Error(`chat template: cannot parse the chat_template of ${source}: ${(e as Error).message}`);
  }
  try {
    return compiled.render({
      messages,
      add_generation_prompt: vars.addGenerationPrompt,
      bos_token: vars.bosToken ?? '',
      eos_token: vars.eosToken ?? '',
    });
  } catch (e) {
    throw new Error(`chat template: rendering the chat_template of ${source} failed: ${(e as Error).message}`);
  }
}
