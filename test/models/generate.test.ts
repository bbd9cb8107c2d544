/** generate(): batching with left padding, sampling, stop conditions, streaming and flat memory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pj from '../../src/index.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';

const SHARED = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
const STORIES = join(SHARED, 'stories260K');
const model = pj.loadCausalLM(join(STORIES, 'stories260K.bin'));
const tok = loadTokenizer(STORIES);
const golden = JSON.parse(readFileSync(join(STORIES, 'golden_greedy_64.json'), 'utf8')) as { generated_ids: number[]; decoded: string };

test('a left-padded batch generates what each prompt generates alone (greedy)', () => {
  const prompts = [[1], [1, 403, 407, 261, 378], [1, 306, 292], [1, 403, 407, 261, 378, 432, 383, 286, 261]];
  const alone = prompts.map((p) => pj.generate(model, null, [p], { maxNewTokens: 20, stopTokens: [] })[0]!.ids);
  const batched = pj.generate(model, null, prompts, { maxNewTokens: 20, stopTokens: [] }).map((g) => g.ids);
  assert.deepEqual(batched, alone);
  assert.deepEqual(alone[0], golden.generated_ids.slice(0, 20));
});

test('string prompts are encoded, and the text is the decoded continuation', () => {
  const [g] = pj.generate(model, tok, ['Once upon a time'], { maxNewTokens: 12 });
  assert.deepEqual(g!.promptIds, tok.encode('Once upon a time'));
  assert.equal(g!.text, tok.decode(g!.ids, { skipSpecialTokens: true }));
  assert.ok(g!.text.length > 0);
});

test('sampling: a seed reproduces, seeds differ, top-k 1 and tiny top-p are greedy, top-k bounds the choice', () => {
  const opts = { maxNewTokens: 24, temperature: 1, stopTokens: [] };
  const a = pj.generate(model, null, [[1]], { ...opts, seed: 7 })[0]!.ids;
  const b = pj.generate(model, null, [[1]], { ...opts, seed: 7 })[0]!.ids;
  const c = pj.generate(model, null, [[1]], { ...opts, seed: 8 })[0]!.ids;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const greedy = golden.generated_ids.slice(0, 24);
  assert.deepEqual(pj.generate(model, null, [[1]], { ...opts, temperature: 1.5, topK: 1, seed: 3 })[0]!.ids, greedy);
  assert.deepEqual(pj.generate(model, null, [[1]], { ...opts, temperature: 1.5, topP: 1e-6, seed: 3 })[0]!.ids, greedy);
  // The first token after BOS, over many seeds, is always among the 3 most likely.
  const logits = pj.noGrad(() => model.forward(pj.tensor([1], [1, 1], 'i32')).toTyped());
  const top3 = [...logits.keys()].sort((i, j) => logits[j]! - logits[i]!).slice(0, 3);
  const seen = new Set<number>();
  for (let seed = 0; seed < 40; seed++) seen.add(pj.generate(model, null, [[1]], { maxNewTokens: 1, temperature: 2, topK: 3, seed })[0]!.ids[0]!);
  assert.ok([...seen].every((t) => top3.includes(t)), `${[...seen]} ⊄ ${top3}`);
  assert.ok(seen.size > 1);
});

test('stop tokens end a row (kept in ids, not in text); other rows go on', () => {
  const stopAt = golden.generated_ids[5]!;
  const [g, h] = pj.generate(model, tok, [[1], [1, 306, 292]], { maxNewTokens: 30, stopTokens: [stopAt] });
  const first = golden.generated_ids.indexOf(stopAt);
  assert.deepEqual(g!.ids, golden.generated_ids.slice(0, first + 1));
  assert.equal(g!.finishReason, 'stop');
  assert.equal(g!.text, tok.decode(g!.ids.slice(0, -1), { skipSpecialTokens: true }));
  assert.ok(h!.ids.length > g!.ids.length || h!.finishReason === 'stop');
});

test('stop strings cut the text before them; streamed pieces add up to the text', () => {
  const pieces: string[] = [];
  const [g] = pj.generate(model, tok, [[1]], { maxNewTokens: 64, stopStrings: ['Lily'], onToken: (_, __, t) => pieces.push(t) });
  const expectedText = golden.decoded.slice(0, golden.decoded.indexOf('Lily'));
  assert.equal(g!.text, expectedText);
  assert.equal(g!.finishReason, 'stop');
  assert.equal(pieces.join(''), expectedText);
  assert.ok(g!.ids.length < 64);
});

test('a long generation allocates no new memory after the first steps', () => {
  const fresh: number[] = [];
  pj.generate(model, null, [[1, 403, 407]], { maxNewTokens: 200, stopTokens: [], onToken: () => fresh.push(pj.freshAllocatedBytes()) });
  assert.equal(fresh.length, 200);
  assert.equal(fresh[199], fresh[4], `fresh bytes grew from ${fresh[4]} to ${fresh[199]}`);
});

test('bad arguments are refused', () => {
  assert.throws(() => pj.generate(model, null, ['text'], { maxNewTokens: 2 }), /prompt 0 is text but no tokenizer/);
  assert.throws(() => pj.generate(model, null, [[]], { maxNewTokens: 2 }), /prompt 0 has no tokens/);
  assert.throws(() => pj.generate(model, null, [[1, 9999]], { maxNewTokens: 2 }), /token id 9999, outside the vocabulary of 512/);
  assert.throws(() => pj.generate(model, null, [[1]], { maxNewTokens: 2, topP: 0 }), /topP must be in \(0, 1\]/);
});

/** Runs the CLI (bin/peftjs.js) in a child process. */
function cli(args: string[]): { code: number; out: string } {
  const bin = fileURLToPath(new URL('../../bin/peftjs.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout };
}

test('peftjs generate streams the greedy continuation; peftjs inspect lists HF names, shapes and dtypes', () => {
  const g = cli(['generate', '--model', join(STORIES, 'stories260K.bin'), '--prompt', 'Once upon a time', '--max-new-tokens', '20']);
  assert.equal(g.code, 0);
  const [ref] = pj.generate(model, tok, ['Once upon a time'], { maxNewTokens: 20 });
  assert.equal(g.out, `Once upon a time${ref!.text}\n`);
  const i = cli(['inspect', join(SHARED, 'stories260K-hf'), '--dtype', 'bf16']);
  assert.equal(i.code, 0);
  assert.match(i.out, /LlamaForCausalLM \(model_type llama\)/);
  assert.match(i.out, /parameters: 260\.0K \(260032\)/);
  assert.match(i.out, /model\.layers\.4\.mlp\.down_proj\.weight +bf16 +\[64, 172\]/);
  assert.match(i.out, /model\.norm\.weight +f32 +\[64\]/);
  assert.equal((cli(['generate', '--model', join(STORIES, 'stories260K.bin'), '--prompt', 'x', '--top-k', '-1'])).code, 2);
});

test('peftjs generate --adapter applies a HF PEFT adapter (the same continuation as PeftModel + generate)', () => {
  const hf = join(SHARED, 'stories260K-hf');
  const base = pj.loadCausalLM(hf);
  const peft = new pj.PeftModel(base, { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: 'gaussian' });
  // A visible adapter: B is zero at init, so give it values.
  for (const [n, p] of peft.namedParameters()) if (n.includes('lora_B')) (p.data as Float32Array).forEach((_, i, a) => (a[i] = Math.sin(i) * 0.5));
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-gen-adapter-'));
  pj.savePeftModel(peft, dir);
  const hfTok = loadTokenizer(hf);
  const [withAdapter] = pj.generate(base, hfTok, ['Once upon a time'], { maxNewTokens: 12 });
  const g = cli(['generate', '--model', hf, '--adapter', dir, '--prompt', 'Once upon a time', '--max-new-tokens', '12']);
  assert.equal(g.code, 0);
  assert.equal(g.out, `Once upon a time${withAdapter!.text}\n`);
  const plain = cli(['generate', '--model', hf, '--prompt', 'Once upon a time', '--max-new-tokens', '12']);
  assert.notEqual(plain.out, g.out, 'the adapter changes the continuation');
  assert.equal(cli(['generate', '--model', hf, '--adapter', join(dir, 'missing'), '--prompt', 'x']).code, 1);
  rmSync(dir, { recursive: true, force: true });
  base.dispose();
});
