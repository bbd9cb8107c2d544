/** `peftjs serve`: an OpenAI-compatible server for a base model and many LoRA adapters batched together. */
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createServer, InferenceWorker } from '../serve/index.js';
import { UsageError, type Command } from './command.js';

const usage = `usage: peftjs serve --model DIR [--adapter NAME=DIR ...] [options]

  --model DIR              HF checkpoint folder of the base model (its tokenizer is used)
  --adapter NAME=DIR       an HF PEFT LoRA adapter served as model NAME (repeatable; loaded on first use)
  --model-name NAME        the name requests use for the base model (default: the folder's name)
  --host H                 address to listen on (default 127.0.0.1)
  --port P                 port (default 8000)
  --max-batch N            sequences decoded together at most (default 32)
  --max-seq-len N          context per sequence, prompt + generated (default min(model's, 1024))
  --kv-budget-mb M         memory for the KV cache (default 2048)
  --adapter-budget-mb M    memory for resident adapters; least recently used ones are evicted (default 512)
  --max-queue N            waiting requests before 429 (default 256)
  --dtype f32|bf16         base weight dtype (default f32)

Endpoints: POST /v1/completions, POST /v1/chat/completions (stream: true for SSE), GET /v1/models,
POST /v1/adapters {name, path}, DELETE /v1/adapters/NAME, GET /health, GET /metrics.
SIGTERM / SIGINT: stop taking requests, answer those in flight, exit.`;

function int(values: Record<string, unknown>, name: string): number | undefined {
  const s = values[name];
  if (s === undefined) return undefined;
  const v = Number(s);
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name} must be a positive integer, got '${String(s)}'`);
  return v;
}

const command: Command = {
  summary: 'serve a model and many LoRA adapters over an OpenAI-compatible HTTP API',
  usage,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        model: { type: 'string' },
        adapter: { type: 'string', multiple: true },
        'model-name': { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'max-batch': { type: 'string' },
        'max-seq-len': { type: 'string' },
        'kv-budget-mb': { type: 'string' },
        'adapter-budget-mb': { type: 'string' },
        'max-queue': { type: 'string' },
        dtype: { type: 'string' },
      },
    });
    if (!values.model) throw new UsageError(`--model is required\n\n${usage}`);
    if (!existsSync(values.model)) throw new UsageError(`--model ${values.model} does not exist`);
    const dtype = values.dtype ?? 'f32';
    if (dtype !== 'f32' && dtype !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got '${dtype}'`);
    const adapters: Record<string, string> = {};
    for (const a of values.adapter ?? []) {
      const eq = a.indexOf('=');
      if (eq < 1) throw new UsageError(`--adapter must be NAME=DIR, got '${a}'`);
      const [name, dir] = [a.slice(0, eq), a.slice(eq + 1)];
      if (!existsSync(dir)) throw new UsageError(`--adapter ${name}: ${dir} does not exist`);
      adapters[name] = resolve(dir);
    }
    const port = values.port === undefined ? 8000 : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, got '${values.port}'`);
    const mb = (name: string) => {
      const v = int(values, name);
      return v === undefined ? undefined : v * 2 ** 20;
    };
    const worker = await InferenceWorker.start({
      modelDir: resolve(values.model),
      dtype,
      adapters,
      maxBatch: int(values, 'max-batch'),
      maxSeqLen: int(values, 'max-seq-len'),
      kvBudgetBytes: mb('kv-budget-mb'),
      adapterBudgetBytes: mb('adapter-budget-mb'),
    });
    const baseModelName = values['model-name'] ?? basename(resolve(values.model));
    const { app, drain } = createServer(worker, { baseModelName, maxQueue: int(values, 'max-queue') });
    const address = await app.listen({ host: values.host ?? '127.0.0.1', port });
    console.error(`peftjs serve: ${baseModelName} with ${Object.keys(adapters).length} adapter(s) on ${address} (batch ≤ ${worker.info.maxBatch}, context ${worker.info.maxSeqLen})`);
    return new Promise<number>((done) => {
      const stop = async (signal: string) => {
        console.error(`peftjs serve: ${signal}: draining ${worker.inFlight} request(s) in flight`);
        await drain();
        await app.close();
        await worker.close();
        done(0);
      };
      process.once('SIGTERM', () => void stop('SIGTERM'));
      process.once('SIGINT', () => void stop('SIGINT'));
    });
  },
};

export default command;
