// Data pipeline: file formats, malformed-record errors, tokenization with loss masks, packing/padding, splits.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { readExamples, DataError } from '../../src/train/data/formats.js';
import { tokenizeExample, truncate } from '../../src/train/data/tokenize.js';
import { buildRows, collate, IGNORE_INDEX } from '../../src/train/data/pack.js';
import { BatchLoader, permutation, trainEvalSplit } from '../../src/train/data/split.js';
import { prepareData } from '../../src/train/data/prepare.js';

const dir = mkdtempSync(join(tmpdir(), 'peftjs-data-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const llama2c = loadTokenizer('../shared/models/stories260K');
const llama3 = loadTokenizer('test/fixtures/tokenizers/tiny-llama3');

describe('data formats', () => {
  it('reads the three record kinds from JSONL with their line numbers', () => {
    const p = file('a.jsonl', '{"text":"hello"}\n\n{"prompt":"Q","completion":"A"}\n{"messages":[{"role":"user","content":"hi"}]}\n');
    const { examples } = readExamples(p);
    assert.deepEqual(examples.map((e) => [e.kind, e.source.line]), [['text', 1], ['completion', 3], ['chat', 4]]);
  });

  it('names file, line and field of a malformed record, or skips it with a count', () => {
    const p = file('bad.jsonl', '{"text":"ok"}\n{"prompt":"Q","completion":7}\n{"txt":"x"}\nnot json\n');
    assert.throws(() => readExamples(p), (e: Error) => e instanceof DataError && e.message === `${p}:2: field "completion": expected a string, got number 7`);
    const r = readExamples(p, { skipMalformed: true });
    assert.equal(r.examples.length, 1);
    assert.deepEqual(r.skipped.map((s) => s.source.line), [2, 3, 4]);
    assert.match(r.skipped[1]!.reason, /no "text", "prompt"\/"completion" or "messages" field \(fields: txt\)/);
    assert.match(r.skipped[2]!.reason, /:4: invalid JSON/);
  });

  it('names the line of a bad element in a JSON array and a bad chat message field', () => {
    const p = file('a.json', '[\n  {"text": "a"},\n  {"text": "b,]"},\n  {"messages": [{"role": "user", "content": 5}]}\n]\n');
    assert.throws(() => readExamples(p), { message: `${p}:4: field "messages[0].content": expected a string, got number 5` });
    const w = file('w.json', '{"data": [{"text": "x"}, {"text": "y"}]}');
    assert.equal(readExamples(w).examples.length, 2);
  });

  it('reads CSV (quoted multi-line cells, JSON messages cells) and plain-text paragraphs', () => {
    const p = file('a.csv', 'prompt,completion\n"Say ""hi""",hi\n"two\nlines",x\n');
    const { examples } = readExamples(p);
    assert.deepEqual(examples.map((e) => (e.kind === 'completion' ? [e.prompt, e.completion, e.source.line] : null)), [['Say "hi"', 'hi', 2], ['two\nlines', 'x', 4]]);
    const m = file('m.csv', 'messages\n"[{""role"":""user"",""content"":""q""}]"\n');
    assert.equal(readExamples(m).examples[0]!.kind, 'chat');
    const t = file('a.txt', 'First story.\nStill first.\n\n\nSecond one.\n');
    const tx = readExamples(t).examples;
    assert.deepEqual(tx.map((e) => (e.kind === 'text' ? [e.text, e.source.line] : null)), [['First story.\nStill first.', 1], ['Second one.', 5]]);
  });
});

describe('tokenization', () => {
  const src = { file: 'x', line: 1 };
  it('text: BOS + tokens + EOS, all targets', () => {
    const t = tokenizeExample(llama2c, { kind: 'text', text: 'Once upon a time', source: src });
    assert.deepEqual(t.ids, [...llama2c.encode('Once upon a time'), llama2c.eosId]);
    assert.ok(t.mask.every((m) => m === 1));
  });

  it('completion: loss only on completion tokens (and EOS) unless lossOn is all', () => {
    const ex = { kind: 'completion' as const, prompt: 'Lily saw', completion: ' a ball', source: src };
    const t = tokenizeExample(llama2c, ex);
    const p = llama2c.encode('Lily saw').length;
    assert.deepEqual([...t.mask], [...Array(p).fill(0), ...Array(t.ids.length - p).fill(1)]);
    assert.equal(t.ids.at(-1), llama2c.eosId);
    assert.deepEqual(t.reference, { promptIds: llama2c.encode('Lily saw'), completionIds: llama2c.encode(' a ball', { addSpecialTokens: false }) });
    assert.ok(tokenizeExample(llama2c, ex, { lossOn: 'all' }).mask.every((m) => m === 1));
  });

  it('chat: loss exactly on the assistant replies, rendered by the chat template', () => {
    const messages = [
      { role: 'user', content: 'Hi there' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
      { role: 'assistant', content: 'See you' },
    ];
    const t = tokenizeExample(llama3, { kind: 'chat', messages, source: src });
    assert.deepEqual(t.ids, llama3.encode(llama3.applyChatTemplate!(messages), { addSpecialTokens: false }));
    const target = llama3.decode(t.ids.filter((_, i) => t.mask[i]));
    assert.equal(target, 'Hello!<|eot_id|>See you<|eot_id|>');
  });

  it('chat with a tokenizer lacking a template needs chatTemplate', () => {
    const ex = { kind: 'chat' as const, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }], source: src };
    assert.throws(() => tokenizeExample(llama2c, ex), /x:1: .*chat template.*set chatTemplate/);
    const t = tokenizeExample(llama2c, ex, { chatTemplate: '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}' });
    assert.match(llama2c.decode(t.ids.filter((_, i) => t.mask[i])), /^ ?b\n$/); // sentencepiece adds a prefix space
  });
});

describe('rows and batches', () => {
  const ex = (ids: number[], mask: number[]) => ({ ids, mask: Uint8Array.from(mask), source: { file: 'x', line: 1 } });
  it('packing: rows of seqLen whose targets run into the next row; example starts are not targets', () => {
    const r = buildRows([ex([1, 10, 11, 2], [1, 1, 1, 1]), ex([1, 20, 21, 22, 2], [0, 0, 1, 1, 1])], 3, true, 0);
    // stream 1 10 11 2 1 20 21 22 2 (9 tokens → 8 targets → rows of 3,3,2(+pad))
    assert.deepEqual(r.rows.map((x) => [...x.ids]), [[1, 10, 11], [2, 1, 20], [21, 22, 0]]);
    assert.deepEqual(r.rows.map((x) => [...x.targets]), [[10, 11, 2], [IGNORE_INDEX, IGNORE_INDEX, 21], [22, 2, IGNORE_INDEX]]);
    assert.deepEqual(r.truncated, { examples: 0, tokens: 0 });
  });

  it('padding: one row per example, truncation counted, target-less examples dropped; batches pad right', () => {
    const r = buildRows([ex([1, 5, 6, 7, 8, 9], [1, 1, 1, 1, 1, 1]), ex([1, 5], [1, 0]), ex([1, 4], [0, 1])], 3, false, 0);
    assert.deepEqual(r.truncated, { examples: 1, tokens: 2 });
    assert.equal(r.dropped, 1);
    const b = collate(r.rows, 99);
    assert.deepEqual([b.B, b.T, b.targetTokens], [2, 3, 4]);
    assert.deepEqual([...b.ids], [1, 5, 6, 1, 99, 99]);
    assert.deepEqual([...b.targets], [5, 6, 7, 4, IGNORE_INDEX, IGNORE_INDEX]);
    assert.equal(truncate(ex([1, 2], [1, 1]), 5).ids.length, 2);
  });

  it('seeded shuffles and splits are reproducible and differ by seed', () => {
    assert.deepEqual(permutation(20, 3), permutation(20, 3));
    assert.notDeepEqual(permutation(20, 3), permutation(20, 4));
    assert.deepEqual([...permutation(20, 3)].sort((a, b) => a - b), [...Array(20).keys()]);
    const s = trainEvalSplit([...Array(10).keys()], 0.2, 1);
    assert.equal(s.eval.length, 2);
    assert.deepEqual([...s.train, ...s.eval].sort((a, b) => a - b), [...Array(10).keys()]);
    assert.equal(trainEvalSplit([1, 2], 5, 1).train.length, 1);
  });

  it('the batch loader resumes from its position with the same batches', () => {
    const rows = Array.from({ length: 7 }, (_, i) => ({ ids: Int32Array.of(i), targets: Int32Array.of(i) }));
    const a = new BatchLoader(rows, 2, 5, true, 0);
    const seq = Array.from({ length: 8 }, () => [...a.next().ids]);
    const b = new BatchLoader(rows, 2, 5, true, 0);
    for (let i = 0; i < 5; i++) b.next();
    const c = new BatchLoader(rows, 2, 5, true, 0);
    c.position = { ...b.position };
    assert.deepEqual(Array.from({ length: 3 }, () => [...c.next().ids]), seq.slice(5));
    assert.equal(a.batchesPerEpoch, 3);
    assert.deepEqual(new Set(seq.slice(0, 3).flat()).size, 6);
    assert.notDeepEqual(seq.slice(0, 3), seq.slice(3, 6));
  });
});

describe('prepareData', () => {
  it('splits, tokenizes, packs and reports skipped and truncated records', () => {
    const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `Tom has ${i} cats.`, completion: ' He is happy.' }));
    lines.splice(3, 0, '{"prompt": 1}');
    const p = file('p.jsonl', lines.join('\n'));
    const d = prepareData(llama2c, { data: p, seqLen: 8, packing: false, evalSplit: 0.25, seed: 1, skipMalformed: true });
    assert.equal(d.report.skipped.length, 1);
    assert.equal(d.report.skipped[0]!.source.line, 4);
    assert.deepEqual([d.report.trainExamples, d.report.evalExamples], [15, 5]);
    assert.equal(d.references.length, 5);
    assert.ok(d.report.truncated.examples > 0, 'prompts longer than 9 tokens are cut and counted');
    assert.ok(d.train.every((r) => r.ids.length <= 8));
  });
});
