/**
 * Inference off the event loop: the engine runs in a worker thread (this file is also the worker's entry), so the
 * HTTP server stays responsive while it decodes. The worker steps the scheduler whenever it has work and
 * yields to its own event loop between steps, where new requests, cancellations and adapter changes arrive —
 * they take effect at the next step without pausing running sequences. {@link InferenceWorker} is the main
 * thread's handle on it.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { loadTokenizer, type ChatMessage, type Tokenizer } from '../io/tokenizer.js';
import { loadCausalLM } from '../models/index.js';
import type { WeightDType } from '../models/index.js';
import { createEngine, type Engine, type EngineOptions } from './engine.js';
import type { GenerationResult, SamplingParams, SchedulerStats } from './scheduler.js';
import { AdapterStoreFullError, type AdapterStoreStats } from './adapter-store.js';

/** What a request asks to continue: text, token ids, or a conversation (rendered with the chat template). */
export type PromptInput = { text: string } | { ids: number[] } | { messages: ChatMessage[] };

export interface WorkerOptions extends EngineOptions {
  /** HF checkpoint folder (or llama2.c file) of the base model; its tokenizer is loaded when it has one. */
  modelDir: string;
  dtype?: WeightDType;
}

export interface WorkerInfo {
  maxBatch: number;
  maxSeqLen: number;
  adapters: string[];
  hasTokenizer: boolean;
}

export interface WorkerStats {
  scheduler: SchedulerStats;
  adapters: AdapterStoreStats;
}

/** Callbacks of one request. */
export interface RequestHandlers {
  token(tokenId: number, text: string): void;
  done(result: GenerationResult): void;
  error(status: number, message: string): void;
}

type ToWorker =
  | { type: 'submit'; id: string; adapter: string | null; prompt: PromptInput; params: SamplingParams }
  | { type: 'cancel'; id: string }
  | { type: 'addAdapter'; call: number; name: string; dir: string }
  | { type: 'removeAdapter'; call: number; name: string }
  | { type: 'stats'; call: number };

type FromWorker =
  | { type: 'ready'; info: WorkerInfo }
  | { type: 'failed'; message: string }
  | { type: 'token'; id: string; tokenId: number; text: string }
  | { type: 'done'; result: GenerationResult }
  | { type: 'error'; id: string; status: number; message: string }
  | { type: 'reply'; call: number; value?: unknown; error?: { status: number; message: string } };

/** The main thread's handle on the inference worker. */
export class InferenceWorker {
  private readonly pending = new Map<string, RequestHandlers>();
  private readonly calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextCall = 1;

  private constructor(
    private readonly worker: Worker,
    readonly info: WorkerInfo,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
  }

  /** Starts a worker and waits until its engine is loaded. */
  static start(opts: WorkerOptions): Promise<InferenceWorker> {
    const workerData = { peftjsServe: opts };
    // Run from TypeScript sources (tsx), the worker registers tsx itself before loading this file.
    const worker = import.meta.url.endsWith('.ts')
      ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); });`, { eval: true, workerData })
      : new Worker(new URL(import.meta.url), { workerData });
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => reject(e);
      worker.once('error', fail);
      worker.once('message', (m: FromWorker) => {
        worker.off('error', fail);
        if (m.type === 'ready') resolve(new InferenceWorker(worker, m.info));
        else {
          void worker.terminate();
          reject(new Error(m.type === 'failed' ? m.message : `serve worker: unexpected first message ${m.type}`));
        }
      });
    });
  }

  /** Requests in flight (submitted, not yet done or failed). */
  get inFlight(): number {
    return this.pending.size;
  }

  submit(id: string, adapter: string | null, prompt: PromptInput, params: SamplingParams, handlers: RequestHandlers): void {
    this.pending.set(id, handlers);
    this.post({ type: 'submit', id, adapter, prompt, params });
  }

  cancel(id: string): void {
    if (this.pending.has(id)) this.post({ type: 'cancel', id });
  }

  /** Registers and loads an adapter; rejects with a `status` (400 bad adapter, 409 name taken). */
  addAdapter(name: string, dir: string): Promise<void> {
    return this.call({ type: 'addAdapter', name, dir }) as Promise<void>;
  }

  removeAdapter(name: string): Promise<void> {
    return this.call({ type: 'removeAdapter', name }) as Promise<void>;
  }

  stats(): Promise<WorkerStats> {
    return this.call({ type: 'stats' }) as Promise<WorkerStats>;
  }

  /** Stops the worker (requests in flight are dropped). */
  async close(): Promise<void> {
    await this.worker.terminate();
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private call(m: { type: 'addAdapter'; name: string; dir: string } | { type: 'removeAdapter'; name: string } | { type: 'stats' }): Promise<unknown> {
    const call = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(call, { resolve, reject });
      this.post({ ...m, call } as ToWorker);
    });
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'token') this.pending.get(m.id)?.token(m.tokenId, m.text);
    else if (m.type === 'done') {
      const h = this.pending.get(m.result.id);
      this.pending.delete(m.result.id);
      h?.done(m.result);
    } else if (m.type === 'error') {
      const h = this.pending.get(m.id);
      this.pending.delete(m.id);
      h?.error(m.status, m.message);
    } else if (m.type === 'reply') {
      const c = this.calls.get(m.call);
      this.calls.delete(m.call);
      if (m.error) c?.reject(Object.assign(new Error(m.error.message), { status: m.error.status }));
      else c?.resolve(m.value);
    }
  }
}

/** Token ids of a prompt; throws a message naming the field. */
function encodePrompt(tokenizer: Tokenizer | null, prompt: PromptInput): number[] {
  if ('ids' in prompt) return prompt.ids;
  if (!tokenizer) throw new Error(`${'text' in prompt ? 'prompt' : 'messages'}: the model has no tokenizer; send the prompt as token ids`);
  if ('text' in prompt) return tokenizer.encode(prompt.text);
  let text: string;
  try {
    if (!tokenizer.applyChatTemplate) throw new Error('no chat template');
    text = tokenizer.applyChatTemplate(prompt.messages, { addGenerationPrompt: true });
  } catch {
    // No chat template: a plain transcript ending where the assistant speaks.
    text = prompt.messages.map((m) => `${m.role}: ${m.content}\n`).join('') + 'assistant:';
    return tokenizer.encode(text);
  }
  return tokenizer.encode(text, { addSpecialTokens: false });
}

/** The worker side: builds the engine, then serves messages and steps the scheduler while there is work. */
function runWorker(opts: WorkerOptions): void {
  const port = parentPort!;
  const send = (m: FromWorker) => port.postMessage(m);
  let engine: Engine;
  let tokenizer: Tokenizer | null = null;
  try {
    const model = loadCausalLM(opts.modelDir, { dtype: opts.dtype });
    try {
      tokenizer = loadTokenizer(opts.modelDir);
    } catch {
      tokenizer = null;
    }
    engine = createEngine(model, tokenizer, {
      token: (id, tokenId, text) => send({ type: 'token', id, tokenId, text }),
      done: (result) => send({ type: 'done', result }),
      error: (id, status, message) => send({ type: 'error', id, status, message }),
    }, opts);
  } catch (e) {
    send({ type: 'failed', message: (e as Error).message });
    return;
  }
  const { scheduler, store } = engine;
  let pumping = false;
  const pump = () => {
    if (scheduler.idle) {
      pumping = false;
      return;
    }
    try {
      scheduler.step();
    } catch (e) {
      console.error(`serve worker: step failed: ${(e as Error).stack}`);
    }
    setImmediate(pump); // let messages in between steps
  };
  const reply = (call: number, f: () => unknown) => {
    try {
      send({ type: 'reply', call, value: f() });
    } catch (e) {
      send({ type: 'reply', call, error: { status: (e as { status?: number }).status ?? 400, message: (e as Error).message } });
    }
  };
  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'submit':
        try {
          scheduler.submit({ id: m.id, adapter: m.adapter, promptIds: encodePrompt(tokenizer, m.prompt), params: m.params });
        } catch (e) {
          send({ type: 'error', id: m.id, status: 400, message: (e as Error).message });
        }
        break;
      case 'cancel':
        scheduler.cancel(m.id);
        break;
      case 'addAdapter':
        return reply(m.call, () => {
          if (store.has(m.name)) throw Object.assign(new Error(`name: adapter '${m.name}' already exists`), { status: 409 });
          store.register(m.name, m.dir);
          try {
            store.acquire(m.name); // load now, so a bad adapter is reported to whoever adds it
            store.release(m.name);
          } catch (e) {
            if (e instanceof AdapterStoreFullError) return; // every resident adapter is busy: it loads on first use
            store.unregister(m.name);
            throw new Error(`path: ${(e as Error).message}`);
          }
        });
      case 'removeAdapter':
        return reply(m.call, () => {
          if (!store.has(m.name)) throw Object.assign(new Error(`no adapter '${m.name}'`), { status: 404 });
          store.unregister(m.name);
        });
      case 'stats':
        return reply(m.call, () => ({ scheduler: scheduler.stats(), adapters: store.stats() }) satisfies WorkerStats);
    }
    if (!pumping) {
      pumping = true;
      setImmediate(pump);
    }
  });
  send({ type: 'ready', info: { maxBatch: engine.maxBatch, maxSeqLen: engine.maxSeqLen, adapters: store.names(), hasTokenizer: !!tokenizer } });
}

if (!isMainThread && (workerData as { peftjsServe?: WorkerOptions } | null)?.peftjsServe) runWorker((workerData as { peftjsServe: WorkerOptions }).peftjsServe);
