/** `peftjs generate`: text continuation from a checkpoint folder or a llama2.c file, streamed to stdout. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadTokenizer } from '../io/tokenizer.js';
import { generate, loadCausalLM } from '../models/index.js';
import { withTaskIds } from '../multitask/index.js';
import { PeftModel } from '../peft/index.js';
import { TASKS_NAME } from '../train/trainer.js';
import { parseOrUsage, UsageError, type Command } from './command.js';

const usage = `usage: peftjs generate --model DIR|FILE.bin --prompt TEXT [options]

  --model DIR|FILE.bin   HF checkpoint folder (config.json + safetensors) or llama2.c .bin (its folder's tokenizer is used)
  --prompt TEXT          the text to continue
  --max-new-tokens N     tokens to generate at most (default 128)
  --temperature T        0 = greedy (default 0)
  --top-k K              sample among the K most likely tokens (default 0 = all)
  --top-p P              nucleus sampling threshold (default 1 = off)
  --seed S               sampling seed (default 0)
  --stop TEXT            stop at this string (repeatable)
  --dtype f32|bf16       weight dtype (default f32)
  --adapter DIR          apply a HF PEFT adapter (adapter_config.json + adapter_model.safetensors)
  --task N|NAME          task for multi-task adapters that route by task (MTLoRA, Poly/MHR, multitask prompts): its id,
                         or its name when the adapter folder has tasks.json (written by peftjs train --task-field)`;

/** A number option: `fallback` when absent; a UsageError naming the option when not a number satisfying `ok`. */
function num(values: Record<string, unknown>, name: string, fallback: number, ok: (v: number) => boolean, want: string): number {
  const s = values[name];
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isFinite(v) || !ok(v)) throw new UsageError(`--${name} must be ${want}, got '${String(s)}'`);
  return v;
}

/**
 * The task id `--task value` names for the adapter in `adapterDir`: a name listed in its tasks.json (the id is its
 * index), else a non-negative integer id.
 */
export function resolveTaskId(value: string, adapterDir: string | undefined): number {
  const file = adapterDir === undefined ? null : join(adapterDir, TASKS_NAME);
  const names = file && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as string[]) : null;
  const named = names?.indexOf(value) ?? -1;
  if (named >= 0) return named;
  if (/^\d+$/.test(value)) return Number(value);
  if (names) throw new UsageError(`--task: unknown task '${value}'; the adapter's tasks (${file}): ${names.join(', ')}`);
  throw new UsageError(`--task must be a task id (a non-negative integer), or a task name when the adapter has ${TASKS_NAME}, got '${value}'`);
}

const command: Command = {
  summary: 'generate text with a model (HF checkpoint or llama2.c .bin)',
  usage,
  async run(args) {
    const { values } = parseOrUsage(usage, () =>
      parseArgs({
      args,
      options: {
        model: { type: 'string' },
        prompt: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-k': { type: 'string' },
        'top-p': { type: 'string' },
        seed: { type: 'string' },
        stop: { type: 'string', multiple: true },
        dtype: { type: 'string' },
        adapter: { type: 'string' },
        task: { type: 'string' },
      },
      }),
    );
    if (!values.model) throw new UsageError(`--model is required\n\n${usage}`);
    if (values.prompt === undefined) throw new UsageError(`--prompt is required\n\n${usage}`);
    const dtype = values.dtype ?? 'f32';
    if (dtype !== 'f32' && dtype !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got '${dtype}'`);
    const int = (v: number) => Number.isInteger(v) && v >= 0;
    const opts = {
      maxNewTokens: num(values, 'max-new-tokens', 128, int, 'a non-negative integer'),
      temperature: num(values, 'temperature', 0, (v) => v >= 0, 'a number ≥ 0'),
      topK: num(values, 'top-k', 0, int, 'a non-negative integer'),
      topP: num(values, 'top-p', 1, (v) => v > 0 && v <= 1, 'in (0, 1]'),
      seed: num(values, 'seed', 0, Number.isInteger, 'an integer'),
      stopStrings: values.stop ?? [],
    };
    const path = values.model;
    if (!existsSync(path)) throw new UsageError(`--model ${path} does not exist`);
    const model = loadCausalLM(path, { dtype });
    // The adapter wraps the model's layers in place, so generating with `model` runs it.
    if (values.adapter) PeftModel.fromPretrained(model, values.adapter);
    const task = values.task === undefined ? null : resolveTaskId(values.task, values.adapter);
    const tokenizer = loadTokenizer(statSync(path).isDirectory() ? path : dirname(path));
    process.stdout.write(values.prompt);
    const start = performance.now();
    const run = () => generate(model, tokenizer, [values.prompt!], { ...opts, onToken: (_, __, text) => process.stdout.write(text) });
    const [g] = task === null ? run() : withTaskIds([task], run);
    const seconds = (performance.now() - start) / 1000;
    process.stdout.write('\n');
    process.stderr.write(`[${g!.ids.length} tokens in ${seconds.toFixed(2)} s, ${(g!.ids.length / seconds).toFixed(1)} tokens/s, ${g!.finishReason}]\n`);
    model.dispose();
    return 0;
  },
};

export default command;
