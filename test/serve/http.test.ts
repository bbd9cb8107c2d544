// The HTTP API end to end on 127.0.0.1: concurrent requests over several adapters each answered with exactly
// its adapter's output alone (plain and streamed), the error contract (400 naming the field, 404, 429 with
// Retry-After), adapters added and removed at runtime, client disconnects cancelling their sequence, a bounded
// load test mixing malformed and valid requests, and SIGTERM draining the CLI server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { createServer, InferenceWorker } from '../../src/serve/index.js';
import { aloneGreedy, makeAdapter, SPECS, STORIES } from './adapters.js';

const tokenizer = loadTokenizer(STORIES);
const dirs = SPECS.map((s) => makeAdapter(STORIES, s));
const names = dirs.map((_, i) => `ad${i}`);
const BASE = 'stories';
const PROMPTS = ['Once upon a time', 'The cat', 'Tom and Sue went'];
const N = 12;
const alone = new Map<string, number[]>();
for (const [k, dir] of [[BASE, null] as const, ...names.map((n, i) => [n, dirs[i]!] as const)])
  for (const p of PROMPTS) alone.set(`${k}|${p}`, aloneGreedy(STORIES, tokenizer, dir, p, N));

let worker: InferenceWorker;
let url = '';
let close: () => Promise<void>;

before(async () => {
  // Only the first three adapters at start; the fourth is added over HTTP.
  worker = await InferenceWorker.start({ modelDir: STORIES, adapters: Object.fromEntries(names.slice(0, 3).map((n, i) => [n, dirs[i]!])), maxBatch: 8 });
  const { app } = createServer(worker, { baseModelName: BASE, maxQueue: 64 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  close = async () => {
    await app.close();
    await worker.close();
  };
});
after(() => close());

const post = (path: string, body: unknown, raw = false) =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ? (body as string) : JSON.stringify(body) });

async function complete(model: string, prompt: string, stream = false): Promise<{ ids?: number[]; text: string }> {
  const res = await post('/v1/completions', { model, prompt, max_tokens: N, temperature: 0, stream, return_token_ids: true });
  assert.equal(res.status, 200, await res.clone().text());
  if (!stream) {
    const j = (await res.json()) as { choices: { text: string; token_ids: number[] }[] };
    return { ids: j.choices[0]!.token_ids, text: j.choices[0]!.text };
  }
  const events = (await res.text()).split('\n\n').filter(Boolean);
  assert.equal(events.at(-1), 'data: [DONE]');
  return { text: events.slice(0, -1).map((e) => (JSON.parse(e.slice(6)) as { choices: { text: string }[] }).choices[0]!.text).join('') };
}

test('48 concurrent requests over 3 adapters and the base: each equals its adapter alone (plain and streamed)', async () => {
  const jobs = Array.from({ length: 48 }, (_, i) => ({ model: [BASE, ...names.slice(0, 3)][i % 4]!, prompt: PROMPTS[i % 3]!, stream: i % 3 === 0 }));
  const got = await Promise.all(jobs.map((j) => complete(j.model, j.prompt, j.stream)));
  jobs.forEach((j, i) => {
    const want = alone.get(`${j.model}|${j.prompt}`)!;
    const wantIds = tokenizer.eosIds.includes(want.at(-1)!) ? want.slice(0, -1) : want;
    if (!j.stream) assert.deepEqual(got[i]!.ids, want, `request ${i} (${j.model})`);
    assert.equal(got[i]!.text, tokenizer.decode(wantIds, { skipSpecialTokens: true }), `text of request ${i} (${j.model})`);
  });
});

test('errors: malformed JSON, wrong types (param named), unknown model, unknown route', async () => {
  const cases: [Response, number, string | null][] = [
    [await post('/v1/completions', '{"prompt": "a", ', true), 400, null],
    [await post('/v1/completions', { prompt: 5 }), 400, 'prompt'],
    [await post('/v1/completions', { prompt: 'a', max_tokens: 'many' }), 400, 'max_tokens'],
    [await post('/v1/completions', { prompt: 'a', temperature: -1 }), 400, 'temperature'],
    [await post('/v1/completions', { prompt: 'a', stream: 'yes' }), 400, 'stream'],
    [await post('/v1/completions', { prompt: 'a', max_tokens: 100000 }), 400, 'max_tokens'],
    [await post('/v1/chat/completions', { messages: [{ role: 'user' }] }), 400, 'messages[0].content'],
    [await post('/v1/chat/completions', { messages: 'hi' }), 400, 'messages'],
    [await post('/v1/completions', { model: 'nope', prompt: 'a' }), 404, 'model'],
    [await post('/v1/adapters', { name: 'x' }), 400, 'path'],
    [await post('/v1/adapters', { name: 'bad', path: '/nonexistent' }), 400, 'path'],
    [await fetch(`${url}/v1/adapters/nope`, { method: 'DELETE' }), 404, 'name'],
    [await fetch(`${url}/v2/nothing`), 404, null],
  ];
  for (const [res, status, param] of cases) {
    const body = (await res.json()) as { error: { message: string; type: string; param: string | null } };
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(body.error.param, param, JSON.stringify(body));
    assert.ok(body.error.message.length > 0 && body.error.type.length > 0);
  }
});

test('adapters at runtime: add one over HTTP, use it alongside running requests, list it, delete it', async () => {
  const running = complete(names[0]!, PROMPTS[0]!);
  const added = await post('/v1/adapters', { name: names[3], path: dirs[3] });
  assert.equal(added.status, 201, await added.clone().text());
  assert.equal((await post('/v1/adapters', { name: names[3], path: dirs[3] })).status, 409);
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
  assert.deepEqual(models.data.map((m) => m.id), [BASE, ...names]);
  assert.deepEqual((await complete(names[3]!, PROMPTS[1]!)).ids, alone.get(`${names[3]}|${PROMPTS[1]}`));
  assert.deepEqual((await running).ids, alone.get(`${names[0]}|${PROMPTS[0]}`));
  assert.equal((await fetch(`${url}/v1/adapters/${names[3]}`, { method: 'DELETE' })).status, 200);
  assert.equal((await post('/v1/completions', { model: names[3], prompt: 'a' })).status, 404);
});

test('chat completions: a reply message, and a streamed one whose deltas add up to it', async () => {
  const body = { model: names[1], messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 10, temperature: 0 };
  const res = (await (await post('/v1/chat/completions', body)).json()) as { object: string; choices: { message: { role: string; content: string } }[] };
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.choices[0]!.message.role, 'assistant');
  const events = (await (await post('/v1/chat/completions', { ...body, stream: true })).text()).split('\n\n').filter((e) => e && e !== 'data: [DONE]');
  const deltas = events.map((e) => (JSON.parse(e.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]!.delta.content ?? '');
  assert.equal(deltas.join(''), res.choices[0]!.message.content);
});

test('a client that disconnects cancels its sequence', async () => {
  const before = (await worker.stats()).scheduler.generatedTokens;
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once', max_tokens: 400, temperature: 0, stream: true, ignore_eos: true }),
    signal: ac.signal,
  });
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  for (let i = 0; i < 100 && worker.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(worker.inFlight, 0);
  const stats = await worker.stats();
  assert.equal(stats.scheduler.running, 0);
  const made = stats.scheduler.generatedTokens - before;
  assert.ok(made >= 1 && made < 400, `the sequence stopped early (${made} of 400 tokens)`);
});

test('queue full: 429 with Retry-After, and the server keeps answering', async () => {
  const { app } = createServer(worker, { baseModelName: BASE, maxQueue: 0 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const u = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const all = await Promise.all(
    Array.from({ length: 20 }, () =>
      fetch(`${u}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Once', max_tokens: 30, temperature: 0 }) }),
    ),
  );
  const limited = all.filter((r) => r.status === 429);
  assert.ok(limited.length > 0 && limited.length < 20, `${limited.length} of 20 were limited`);
  assert.equal(limited[0]!.headers.get('retry-after'), '1');
  assert.equal(((await limited[0]!.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
  assert.ok(all.every((r) => r.status === 200 || r.status === 429));
  await app.close();
});

test('load test: 300 requests, malformed and valid mixed, 24 at a time; every one answered, the server stays up', async () => {
  const bodies: [string, number][] = [
    ['{"prompt": "Once", "max_tokens": 4, "temperature": 0}', 200],
    [`{"model": "${names[2]}", "prompt": "The", "max_tokens": 3}`, 200],
    ['{"prompt": ', 400],
    ['[1, 2, 3]', 400],
    ['{"prompt": "x", "top_p": 7}', 400],
    ['{"model": "missing", "prompt": "x"}', 404],
    ['', 400],
    ['{"prompt": [1, 2, 99999], "max_tokens": 2}', 400],
    [`{"model": "${names[0]}", "prompt": "Hi", "max_tokens": 2, "stream": true}`, 200],
  ];
  const statuses: number[] = [];
  const deadline = Date.now() + 120_000;
  let next = 0;
  const runner = async () => {
    while (next < 300 && Date.now() < deadline) {
      const [body, want] = bodies[next++ % bodies.length]!;
      const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.text();
      assert.equal(res.status, want, body);
      statuses.push(res.status);
    }
  };
  await Promise.all(Array.from({ length: 24 }, runner));
  assert.equal(statuses.length, 300);
  assert.equal((await fetch(`${url}/health`)).status, 200);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /peftjs_requests_total\{route="\/v1\/completions",status="400"\} \d+/);
  assert.match(metrics, /# TYPE peftjs_request_latency_seconds histogram/);
});

test('peftjs serve: SIGTERM drains the request in flight, then exits 0', async () => {
  const child = spawn(process.execPath, ['bin/peftjs.js', 'serve', '--model', STORIES, '--port', '0', '--adapter', `${names[0]}=${dirs[0]}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', () => reject(new Error(`server exited: ${err}`)));
  });
  const u = `http://127.0.0.1:${port}`;
  const inFlight = fetch(`${u}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: names[0], prompt: 'Once', max_tokens: 200, temperature: 0, ignore_eos: true }),
  });
  await new Promise((r) => setTimeout(r, 100));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 200);
  assert.equal(await exited, 0);
  assert.match(err, /SIGTERM: draining 1 request/);
});
