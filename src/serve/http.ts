/**
 * The OpenAI-compatible HTTP API (fastify) over an {@link InferenceWorker}:
 * `POST /v1/completions`, `POST /v1/chat/completions` (`stream: true` as server-sent events), `GET /v1/models`,
 * `POST /v1/adapters`, `DELETE /v1/adapters/:name`, `GET /health`, `GET /metrics` (Prometheus text).
 * `model` names an adapter, or the base model for none. Errors use OpenAI's body
 * `{error: {message, type, param, code}}`: 400 for malformed JSON or a bad field (named in `param`), 404 for an
 * unknown model or adapter, 429 with Retry-After when the queue is full, 503 while draining. A client that
 * disconnects cancels its sequence.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ChatMessage } from '../io/tokenizer.js';
import { Counter, Gauge, Histogram, Registry } from './metrics.js';
import type { FinishReason, GenerationResult, SamplingParams } from './scheduler.js';
import type { InferenceWorker, PromptInput, WorkerStats } from './worker.js';

export interface ServerOptions {
  /** The name `model` takes for the base model (no adapter). */
  baseModelName: string;
  /** Requests waiting beyond the running batch before 429s (default 256). */
  maxQueue?: number;
  /** Default `max_tokens` of /v1/completions (default 16, as OpenAI's). */
  defaultMaxTokens?: number;
}

/** An error answered with an OpenAI-style body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = status === 404 ? 'not_found_error' : status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }
}

function errorBody(e: ApiError) {
  return { error: { message: e.message, type: e.type, param: e.param, code: null } };
}

type Body = Record<string, unknown>;

/** Field readers: each returns the value or throws a 400 naming the field. */
const field = {
  optional<T>(b: Body, name: string, check: (v: unknown) => v is T, want: string): T | undefined {
    const v = b[name];
    if (v === undefined || v === null) return undefined;
    if (!check(v)) throw new ApiError(400, `${name} must be ${want}, got ${JSON.stringify(v)?.slice(0, 80)}`, name);
    return v;
  },
  number(b: Body, name: string, fallback: number, ok: (v: number) => boolean, want: string): number {
    return field.optional(b, name, (v): v is number => typeof v === 'number' && Number.isFinite(v) && ok(v), want) ?? fallback;
  },
};

const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isIntList = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x));

/** The sampling parameters shared by both endpoints. */
function samplingParams(b: Body, defaultMaxTokens: number, tokenField: string): SamplingParams {
  const n = field.number(b, 'n', 1, (v) => v === 1, '1 (one choice per request)');
  void n;
  const stop = field.optional(b, 'stop', (v): v is string | string[] => isString(v) || (Array.isArray(v) && v.length <= 4 && v.every(isString)), 'a string or a list of up to 4 strings');
  return {
    maxTokens: field.number(b, tokenField, defaultMaxTokens, (v) => Number.isInteger(v) && v >= 1, 'a positive integer'),
    temperature: field.number(b, 'temperature', 1, (v) => v >= 0 && v <= 2, 'a number in [0, 2]'),
    topP: field.number(b, 'top_p', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    topK: field.number(b, 'top_k', 0, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer'),
    seed: field.number(b, 'seed', Math.floor(Math.random() * 2 ** 31), Number.isInteger, 'an integer'),
    stop: stop === undefined ? [] : typeof stop === 'string' ? [stop] : stop,
    ignoreEos: field.optional(b, 'ignore_eos', isBool, 'a boolean') ?? false,
  };
}

function messagesOf(b: Body): ChatMessage[] {
  const m = b.messages;
  if (!Array.isArray(m) || m.length === 0) throw new ApiError(400, 'messages must be a non-empty list of {role, content}', 'messages');
  return m.map((x, i) => {
    const msg = x as Record<string, unknown>;
    if (!msg || typeof msg !== 'object' || !isString(msg.role)) throw new ApiError(400, `messages[${i}].role must be a string`, `messages[${i}].role`);
    let content = msg.content;
    // OpenAI's content parts: keep the text ones.
    if (Array.isArray(content)) content = content.map((p) => ((p as Body)?.type === 'text' && isString((p as Body).text) ? (p as Body).text : '')).join('');
    if (!isString(content)) throw new ApiError(400, `messages[${i}].content must be a string`, `messages[${i}].content`);
    return { role: msg.role, content };
  });
}

function promptOf(b: Body): PromptInput {
  let p = b.prompt;
  if (Array.isArray(p) && p.length === 1 && (isString(p[0]) || isIntList(p[0]))) p = p[0]; // a batch of one
  if (isString(p)) return { text: p };
  if (isIntList(p)) return { ids: p };
  throw new ApiError(400, 'prompt must be a string or a list of token ids (one prompt per request)', 'prompt');
}

interface Started {
  id: string;
  created: number;
  model: string;
}

/** Builds the fastify app; `drain()` stops taking requests and resolves when those in flight are answered. */
export function createServer(worker: InferenceWorker, opts: ServerOptions): { app: FastifyInstance; drain(): Promise<void> } {
  const app = Fastify({ logger: false, bodyLimit: 8 * 2 ** 20 });
  const maxQueue = opts.maxQueue ?? 256;
  const defaultMaxTokens = opts.defaultMaxTokens ?? 16;
  const adapters = new Set(worker.info.adapters);
  let draining = false;
  let drained: (() => void) | null = null;
  let latest: WorkerStats | null = null;

  const metrics = new Registry();
  const requests = metrics.add('peftjs_requests_total', new Counter('HTTP requests answered, by route and status'));
  const tokens = metrics.add('peftjs_generated_tokens_total', new Counter('Tokens generated, by model'));
  const latency = metrics.add('peftjs_request_latency_seconds', new Histogram('Time from request to last token', [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]));
  const ttft = metrics.add('peftjs_time_to_first_token_seconds', new Histogram('Time from request to first token', [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]));
  metrics.add('peftjs_requests_in_flight', new Gauge('Requests submitted and not yet answered', () => worker.inFlight));
  metrics.add('peftjs_running_sequences', new Gauge('Sequences in the running batch', () => latest?.scheduler.running ?? 0));
  metrics.add('peftjs_waiting_requests', new Gauge('Requests waiting for a slot', () => latest?.scheduler.waiting ?? 0));
  metrics.add('peftjs_kv_slots', new Gauge('KV cache slots (the largest batch)', () => latest?.scheduler.slots ?? 0));
  metrics.add('peftjs_decode_steps_total', new Gauge('Scheduler steps run', () => latest?.scheduler.steps ?? 0));
  metrics.add('peftjs_adapters_registered', new Gauge('Adapters known', () => latest?.adapters.registered ?? 0));
  metrics.add('peftjs_adapters_loaded', new Gauge('Adapters resident in memory', () => latest?.adapters.loaded ?? 0));
  metrics.add('peftjs_adapter_rank_rows_used', new Gauge('Rank rows of the adapter pools in use', () => latest?.adapters.usedRanks ?? 0));
  metrics.add('peftjs_adapter_rank_rows_capacity', new Gauge('Rank rows the adapter memory budget holds', () => latest?.adapters.capacityRanks ?? 0));
  metrics.add('peftjs_adapter_loads_total', new Gauge('Adapter loads', () => latest?.adapters.loads ?? 0));
  metrics.add('peftjs_adapter_evictions_total', new Gauge('Adapters evicted by the LRU', () => latest?.adapters.evictions ?? 0));

  const settle = () => {
    if (draining && worker.inFlight === 0) drained?.();
  };

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const e =
      err instanceof ApiError
        ? err
        : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? new ApiError(400, `unsupported content type ${JSON.stringify(req.headers['content-type'] ?? '')}; send application/json`)
          : (err.statusCode ?? 500) < 500
            ? new ApiError(400, err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'the request body is empty; send a JSON object' : `malformed JSON body: ${err.message}`)
            : new ApiError(500, err.message);
    requests.inc({ route: req.routeOptions.url ?? 'unknown', status: String(e.status) });
    void reply.code(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(new ApiError(404, `no route ${req.method} ${req.url}`)));
  });
  const body = (req: FastifyRequest): Body => {
    const b = req.body;
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw new ApiError(400, 'the request body must be a JSON object');
    return b as Body;
  };

  /** The adapter `model` names (null for the base model); 404 when unknown. */
  const adapterOf = (b: Body): string | null => {
    const model = field.optional(b, 'model', isString, 'a string') ?? opts.baseModelName;
    if (model === opts.baseModelName) return null;
    if (!adapters.has(model)) throw new ApiError(404, `The model '${model}' does not exist (known: ${[opts.baseModelName, ...adapters].join(', ')})`, 'model');
    return model;
  };

  /** Runs one generation for a route: streamed as SSE or answered whole. */
  const generate = (
    req: FastifyRequest,
    reply: FastifyReply,
    route: string,
    prompt: PromptInput,
    adapter: string | null,
    params: SamplingParams,
    stream: boolean,
    render: { chunk(s: Started, text: string, first: boolean, finish: FinishReason | null): unknown; whole(s: Started, r: GenerationResult, text: string): unknown },
  ) => {
    if (draining) throw new ApiError(503, 'the server is shutting down');
    if (worker.inFlight >= worker.info.maxBatch + maxQueue) {
      void reply.header('Retry-After', '1');
      throw new ApiError(429, `the queue is full (${worker.inFlight} requests in flight); retry later`);
    }
    const s: Started = { id: `${route === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model: adapter ?? opts.baseModelName };
    const t0 = performance.now();
    let first = true;
    let text = '';
    let finished = false;
    const url = route === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    return new Promise<void>((resolve) => {
      const end = (status: number) => {
        finished = true;
        requests.inc({ route: url, status: String(status) });
        settle();
        resolve();
      };
      const raw = reply.raw;
      raw.on('close', () => {
        if (!finished) worker.cancel(s.id); // the client went away
      });
      if (stream) {
        reply.hijack();
        raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      }
      const sse = (v: unknown) => raw.write(`data: ${JSON.stringify(v)}\n\n`);
      worker.submit(s.id, adapter, prompt, params, {
        token(_, delta) {
          if (first) ttft.observe((performance.now() - t0) / 1000);
          tokens.inc({ model: s.model });
          text += delta;
          if (stream && (delta || first)) sse(render.chunk(s, delta, first, null));
          first = false;
        },
        done(r) {
          latency.observe((performance.now() - t0) / 1000);
          if (stream) {
            sse(render.chunk(s, '', first, r.finishReason));
            raw.end('data: [DONE]\n\n');
          } else if (!raw.destroyed) void reply.send(render.whole(s, r, text));
          end(200);
        },
        error(status, message) {
          const e = new ApiError(status, message, message.match(/^(\w+): /)?.[1] ?? null);
          if (stream) {
            sse(errorBody(e));
            raw.end('data: [DONE]\n\n');
          } else void reply.code(status).send(errorBody(e));
          end(status);
        },
      });
    });
  };

  const usage = (r: GenerationResult) => ({ prompt_tokens: r.promptTokens, completion_tokens: r.ids.length, total_tokens: r.promptTokens + r.ids.length });
  const finishOf = (f: FinishReason) => (f === 'cancelled' ? 'stop' : f);

  app.post('/v1/completions', async (req, reply) => {
    const b = body(req);
    const adapter = adapterOf(b);
    const prompt = promptOf(b);
    const params = samplingParams(b, defaultMaxTokens, 'max_tokens');
    const stream = field.optional(b, 'stream', isBool, 'a boolean') ?? false;
    const withIds = field.optional(b, 'return_token_ids', isBool, 'a boolean') ?? false;
    await generate(req, reply, 'completion', prompt, adapter, params, stream, {
      chunk: (s, text, _first, finish) => ({ id: s.id, object: 'text_completion', created: s.created, model: s.model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish && finishOf(finish) }] }),
      whole: (s, r, text) => ({
        id: s.id,
        object: 'text_completion',
        created: s.created,
        model: s.model,
        choices: [{ index: 0, text, logprobs: null, finish_reason: finishOf(r.finishReason), ...(withIds ? { token_ids: r.ids } : {}) }],
        usage: usage(r),
      }),
    });
    return reply;
  });

  app.post('/v1/chat/completions', async (req, reply) => {
    const b = body(req);
    const adapter = adapterOf(b);
    const messages = messagesOf(b);
    // Chat replies run to the end of the context unless limited (OpenAI); max_completion_tokens is the newer name.
    const params = samplingParams(b, 0, b.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens');
    const stream = field.optional(b, 'stream', isBool, 'a boolean') ?? false;
    await generate(req, reply, 'chat', { messages }, adapter, params, stream, {
      chunk: (s, text, first, finish) => ({
        id: s.id,
        object: 'chat.completion.chunk',
        created: s.created,
        model: s.model,
        choices: [{ index: 0, delta: finish ? {} : first ? { role: 'assistant', content: text } : { content: text }, finish_reason: finish && finishOf(finish) }],
      }),
      whole: (s, r, text) => ({
        id: s.id,
        object: 'chat.completion',
        created: s.created,
        model: s.model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finishOf(r.finishReason) }],
        usage: usage(r),
      }),
    });
    return reply;
  });

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [opts.baseModelName, ...adapters].map((id, i) => ({ id, object: 'model', created: 0, owned_by: 'peftjs', ...(i > 0 ? { parent: opts.baseModelName } : {}) })),
  }));

  app.post('/v1/adapters', async (req, reply) => {
    const b = body(req);
    const name = field.optional(b, 'name', (v): v is string => isString(v) && /^[\w.-]{1,128}$/.test(v) && !v.includes('/'), 'a name of letters, digits, _ . - (at most 128)');
    if (name === undefined) throw new ApiError(400, 'name is required', 'name');
    const path = field.optional(b, 'path', isString, 'a directory path');
    if (path === undefined) throw new ApiError(400, 'path is required', 'path');
    if (name === opts.baseModelName || adapters.has(name)) throw new ApiError(409, `name: adapter '${name}' already exists`, 'name');
    try {
      await worker.addAdapter(name, path);
    } catch (e) {
      const status = (e as { status?: number }).status ?? 400;
      const message = (e as Error).message;
      throw new ApiError(status, message, message.match(/^(\w+): /)?.[1] ?? 'path');
    }
    adapters.add(name);
    requests.inc({ route: '/v1/adapters', status: '201' });
    return reply.code(201).send({ id: name, object: 'model', owned_by: 'peftjs', parent: opts.baseModelName });
  });

  app.delete('/v1/adapters/:name', async (req) => {
    const { name } = req.params as { name: string };
    if (!adapters.has(name)) throw new ApiError(404, `no adapter '${name}'`, 'name');
    await worker.removeAdapter(name);
    adapters.delete(name);
    requests.inc({ route: '/v1/adapters/:name', status: '200' });
    return { id: name, object: 'model', deleted: true };
  });

  app.get('/health', async (_req, reply) => {
    if (draining) return reply.code(503).send({ status: 'draining' });
    return { status: 'ok', in_flight: worker.inFlight };
  });

  app.get('/metrics', async (_req, reply) => {
    latest = await worker.stats();
    return reply.type('text/plain; version=0.0.4').send(metrics.render());
  });

  return {
    app,
    drain() {
      draining = true;
      return new Promise<void>((resolve) => {
        drained = resolve;
        settle();
      });
    },
  };
}
