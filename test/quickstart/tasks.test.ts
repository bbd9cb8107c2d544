// The quickstart's generated tasks, corpus and tokenizer: determinism, disjoint splits, correct references, and
// that the corpus never holds a task record.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { ADD_MAX, TASKS, makeSplit, moodOf, recordToJson, taskByName } from '../../src/quickstart/tasks.js';
import { corpusDocuments } from '../../src/quickstart/corpus.js';
import { tokenizerConfigJson, tokenizerJson, VOCAB_SIZE } from '../../src/quickstart/tokenizer.js';
import { DEFAULT_MODEL_DIR, MAX_POSITIONS, defaultModelConfig } from '../../src/quickstart/default-model.js';
import { NEGATIVE_WORDS, POSITIVE_WORDS } from '../../src/quickstart/words.js';

describe('quickstart tasks', () => {
  it('are deterministic per seed and differ across seeds', () => {
    for (const t of TASKS) {
      const a = makeSplit(t, { nTrain: 60, nEval: 20, seed: 3 });
      assert.deepEqual(makeSplit(t, { nTrain: 60, nEval: 20, seed: 3 }), a, t.name);
      assert.notDeepEqual(makeSplit(t, { nTrain: 60, nEval: 20, seed: 4 }), a, t.name);
      // The eval set of a seed does not depend on how much training data is drawn.
      assert.deepEqual(makeSplit(t, { nTrain: 10, nEval: 20, seed: 3 }).eval, a.eval, t.name);
    }
  });

  it('keep train and eval inputs disjoint and distinct', () => {
    for (const t of TASKS) {
      const n = Math.min(300, t.inputCount - 50);
      const s = makeSplit(t, { nTrain: n, nEval: 50, seed: 0 });
      const prompts = [...s.train, ...s.eval].map((r) => r.prompt);
      assert.equal(new Set(prompts).size, n + 50, t.name);
    }
  });

  it('refuse more examples than a finite task has', () => {
    const upper = taskByName('upper');
    assert.throws(() => makeSplit(upper, { nTrain: upper.inputCount, nEval: 1, seed: 0 }), /distinct inputs/);
    assert.throws(() => taskByName('nope'), /unknown task 'nope'; tasks: add, upper, mood, json/);
  });

  it('have correct references', () => {
    const recs = (name: string) => {
      const s = makeSplit(taskByName(name), { nTrain: 100, nEval: 50, seed: 1 });
      return [...s.train, ...s.eval];
    };
    for (const r of recs('add')) {
      const m = /^(\d+)\+(\d+)=$/.exec(r.prompt)!;
      assert.ok(m, r.prompt);
      assert.ok(Number(m[1]) <= ADD_MAX && Number(m[2]) <= ADD_MAX);
      assert.equal(Number(r.completion), Number(m[1]) + Number(m[2]));
    }
    for (const r of recs('upper')) {
      const w = /^upper\(([a-z]+)\)=$/.exec(r.prompt)![1]!;
      assert.equal(r.completion.length, w.length);
      for (let i = 0; i < w.length; i++) assert.equal(r.completion.charCodeAt(i), w.charCodeAt(i) - 32);
    }
    const classes = new Set<string>();
    for (const r of recs('mood')) {
      const words = /^mood\((.+)\)=$/.exec(r.prompt)![1]!.split(' ');
      const pos = words.filter((w) => (POSITIVE_WORDS as readonly string[]).includes(w)).length;
      const neg = words.filter((w) => (NEGATIVE_WORDS as readonly string[]).includes(w)).length;
      assert.ok(pos + neg <= 1, r.prompt);
      assert.equal(r.completion, pos ? 'positive' : neg ? 'negative' : 'neutral', r.prompt);
      classes.add(r.completion);
    }
    assert.deepEqual([...classes].sort(), ['negative', 'neutral', 'positive']);
    for (const r of recs('json')) {
      const body = /^json\((.+)\)=$/.exec(r.prompt)![1]!;
      const expected = Object.fromEntries(body.split(';').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
      assert.deepEqual(JSON.parse(r.completion), expected);
      assert.equal(r.completion, JSON.stringify(expected));
    }
    assert.equal(moodOf('i saw a lovely cat'), 'positive');
    assert.equal(recordToJson('id=07;age=3'), '{"id":7,"age":3}');
  });
});

describe('quickstart corpus', () => {
  const docs = corpusDocuments(20_000, 5);

  it('is deterministic per seed', () => {
    assert.deepEqual(corpusDocuments(200, 5), docs.slice(0, 200));
    assert.notDeepEqual(corpusDocuments(200, 6), docs.slice(0, 200));
  });

  it('never holds a task record, but states the facts the tasks need and shows the answer format', () => {
    for (const d of docs) assert.doesNotMatch(d, /\+|upper\(|mood\(|json\(/, d);
    const has = (re: RegExp) => docs.some((d) => re.test(d));
    assert.ok(has(/^\d+ plus \d+ is \d+\.$/));
    assert.ok(has(/ in capitals is [A-Z]+\.$/));
    assert.ok(has(/sounds (positive|negative|neutral)\.$/));
    assert.ok(has(/\{"[a-z]+":\d+,"[a-z]+":\d+\}/));
    assert.ok(has(/^copy\(\w+\)=\w+$/));
  });
});

describe('quickstart tokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-qs-tok-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson()));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigJson(MAX_POSITIONS)));
  const tok = loadTokenizer(dir);

  it('has one token per byte plus BOS/EOS/PAD, and prepends BOS', () => {
    assert.equal(tok.vocabSize, VOCAB_SIZE);
    assert.deepEqual([tok.padId, tok.bosId, tok.eosId], [0, 1, 2]);
    const ids = tok.encode('ab c');
    assert.equal(ids[0], tok.bosId);
    assert.equal(ids.length, 5);
    assert.deepEqual(tok.encode('ab c', { addSpecialTokens: false }), ids.slice(1));
  });

  it('round-trips every character the tasks and corpus use, and arbitrary UTF-8', () => {
    const text = [...corpusDocuments(5000, 1), ...TASKS.flatMap((t) => makeSplit(t, { nTrain: 100, nEval: 20, seed: 2 }).train.flatMap((r) => [r.prompt, r.completion]))].join('\n');
    const chars = [...new Set(text)].join('');
    for (const s of [text, chars, ' leading  and trailing \t', 'é ü 漢字 🙂']) {
      const ids = tok.encode(s, { addSpecialTokens: false });
      assert.equal(ids.length, Buffer.byteLength(s, 'utf8'));
      assert.equal(tok.decode(ids), s);
    }
    // Prompt and completion tokenized apart concatenate to the whole (the trainer encodes them separately).
    for (const s of ['12+7=19', 'upper(cat)=CAT']) assert.deepEqual(tok.encode(s), [...tok.encode(s.slice(0, 6)), ...tok.encode(s.slice(6), { addSpecialTokens: false })]);
  });

  it('is the tokenizer committed with the default model, next to its config', () => {
    assert.deepEqual(JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'tokenizer.json'), 'utf8')), tokenizerJson());
    assert.deepEqual(JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'tokenizer_config.json'), 'utf8')), tokenizerConfigJson(MAX_POSITIONS));
    assert.deepEqual(JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'config.json'), 'utf8')), defaultModelConfig());
  });
});
