import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backward, noGrad, tensor, tidy, withBackend, type Tensor } from '../../src/engine/index.js';
import { Linear } from '../../src/nn/index.js';
import { BertForSequenceClassification, DistilBertForSequenceClassification, isSequenceClassifier, type EncoderInputs, type SequenceClassifier } from '../../src/models/bert.js';
import { loadModel, type LoadOptions } from '../../src/models/load.js';
import { backends } from '../helpers/backends.js';

const FIXTURES = new URL('../fixtures/models/', import.meta.url).pathname;

interface Expected {
  ids: number[][];
  attentionMask: number[][];
  tokenTypeIds?: number[][];
  logits: number[][];
}
const FAMILIES = ['bert-random', 'distilbert-random'] as const;
const expected = Object.fromEntries(FAMILIES.map((f) => [f, JSON.parse(readFileSync(join(FIXTURES, `${f}-expected.json`), 'utf8')) as Expected]));

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-bert-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

function load(family: string, opts: LoadOptions = {}): SequenceClassifier {
  const m = loadModel(join(FIXTURES, family), opts);
  assert.ok(isSequenceClassifier(m));
  return m;
}

/** max|got − ref| / max|ref|. */
function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(got.length, ref.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return d / m;
}

const mat = <D extends 'i32' | 'u8'>(rows: number[][], dtype: D) => tensor(rows.flat(), [rows.length, rows[0]!.length], dtype);

/** Logits [B, labels] of rows given as plain arrays (token types only when given). */
function classify(m: SequenceClassifier, ids: number[][], mask: number[][], types?: number[][]): number[] {
  return noGrad(() =>
    tidy(() => {
      const opts: EncoderInputs = { attentionMask: mat(mask, 'u8'), tokenTypeIds: types ? mat(types, 'i32') : null };
      return m.forward(mat(ids, 'i32'), opts).toArray();
    }),
  );
}

const logitsOf = (m: SequenceClassifier, e: Expected) => classify(m, e.ids, e.attentionMask, e.tokenTypeIds);

for (const name of backends())
  for (const family of FAMILIES)
    test(`${family}: classification logits of a padded batch match PyTorch (${name})`, () =>
      withBackend(name, () => {
        const m = load(family);
        const e = expected[family]!;
        const err = relErr(logitsOf(m, e), e.logits.flat());
        assert.ok(err < 1e-4, `logits off by ${err} relative`);
        m.dispose();
      }));

for (const family of FAMILIES)
  test(`${family}: a sequence's logits do not depend on the padding around it`, () => {
    const m = load(family);
    const e = expected[family]!;
    const batch = logitsOf(m, e);
    const L = m.config.numLabels;
    e.ids.forEach((row, b) => {
      const n = e.attentionMask[b]!.reduce((a, x) => a + x, 0);
      const types = e.tokenTypeIds?.[b];
      for (const pad of [0, 5]) {
        // Its real tokens alone, then with `pad` extra padding positions holding arbitrary ids.
        const ids = [...row.slice(0, n), ...Array.from({ length: pad }, (_, i) => 7 + i)];
        const mask = [...Array<number>(n).fill(1), ...Array<number>(pad).fill(0)];
        const t = types && [[...types.slice(0, n), ...Array<number>(pad).fill(0)]];
        const alone = classify(m, [ids], [mask], t);
        assert.ok(relErr(alone, batch.slice(b * L, (b + 1) * L)) < 1e-5, `row ${b} with ${pad} padding`);
      }
    });
    // Without the mask the padding is attended to and the padded rows change: the mask is what makes this hold.
    const unmasked = classify(m, e.ids, e.ids.map((r) => r.map(() => 1)), e.tokenTypeIds);
    assert.ok(relErr(unmasked.slice(L, 2 * L), batch.slice(L, 2 * L)) > 1e-3);
    m.dispose();
  });

test('bert: token type ids enter the embeddings', () => {
  const m = load('bert-random');
  const e = expected['bert-random']!;
  const zeroTypes = classify(m, e.ids, e.attentionMask);
  assert.ok(relErr(zeroTypes.slice(6, 9), e.logits[2]!) > 1e-3, 'row 2 has a second segment');
  assert.ok(relErr(zeroTypes.slice(0, 6), e.logits.slice(0, 2).flat()) < 1e-4, 'rows 0 and 1 are all segment 0');
  m.dispose();
});

test('bert/distilbert: HF module names and heads', () => {
  const bert = load('bert-random');
  assert.ok(bert instanceof BertForSequenceClassification);
  assert.equal(bert.config.numLabels, 3); // from id2label
  const names = bert.namedParameters().map(([n]) => n);
  for (const n of ['bert.embeddings.token_type_embeddings.weight', 'bert.encoder.layer.1.attention.self.query.weight', 'bert.encoder.layer.0.attention.output.LayerNorm.bias', 'bert.encoder.layer.0.output.dense.weight', 'bert.pooler.dense.bias', 'classifier.weight'])
    assert.ok(names.includes(n), n);
  assert.ok(!names.includes('bert.embeddings.position_ids'));
  assert.ok(bert.getModule('bert.encoder.layer.0.attention.self.value') instanceof Linear);
  const distil = load('distilbert-random');
  assert.ok(distil instanceof DistilBertForSequenceClassification);
  assert.equal(distil.config.numLabels, 2); // HF's default without id2label
  const dNames = distil.namedParameters().map(([n]) => n);
  for (const n of ['distilbert.embeddings.word_embeddings.weight', 'distilbert.transformer.layer.0.attention.q_lin.weight', 'distilbert.transformer.layer.1.ffn.lin2.bias', 'distilbert.transformer.layer.1.output_layer_norm.weight', 'pre_classifier.weight', 'classifier.bias'])
    assert.ok(dNames.includes(n), n);
  assert.throws(() => noGrad(() => distil.forward(mat([[1, 2]], 'i32'), { tokenTypeIds: mat([[0, 0]], 'i32') })), /no token type embeddings/);
  bert.dispose();
  distil.dispose();
});

test('bert: encode returns the last hidden states, loss is the cross-entropy of the logits', () => {
  const m = load('bert-random');
  const e = expected['bert-random']!;
  const labels = [2, 0, 1];
  const params = ['classifier.weight', 'bert.encoder.layer.0.attention.self.query.weight'].map((n) => m.namedParameters().find(([p]) => p === n)![1]);
  for (const p of params) p.requiresGrad_();
  tidy(() => {
    const ids = mat(e.ids, 'i32');
    const opts = { attentionMask: mat(e.attentionMask, 'u8'), tokenTypeIds: mat(e.tokenTypeIds!, 'i32') };
    assert.deepEqual(m.encode(ids, opts).shape, [3, 9, 32]);
    const loss = m.loss(ids, tensor(labels, [3], 'i32'), opts);
    const want = labels.map((y, b) => {
      const row = e.logits[b]!;
      const max = Math.max(...row);
      return Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0)) + max - row[y]!;
    });
    assert.ok(Math.abs(loss.item() - want.reduce((a, x) => a + x, 0) / 3) < 1e-5);
    // The gradient reaches the classifier and the first layer.
    backward(loss);
    for (const p of params) assert.ok(p.grad && p.grad.toArray().some((g) => g !== 0));
  });
  m.dispose();
});

for (const family of FAMILIES)
  test(`${family}: bf16 weights load and stay close to the f32 logits`, () => {
    const m = load(family, { dtype: 'bf16' });
    const query = family === 'bert-random' ? 'bert.encoder.layer.0.attention.self.query' : 'distilbert.transformer.layer.0.attention.q_lin';
    assert.equal((m.getModule(query) as Linear).weight.dtype, 'bf16');
    const e = expected[family]!;
    const err = relErr(logitsOf(m, e), e.logits.flat());
    assert.ok(err > 1e-5 && err < 3e-2, `bf16 logits off by ${err} relative`);
    m.dispose();
  });

test('bert: a config that disagrees with a tensor shape is reported with the tensor name and both shapes', () => {
  const dir = join(tmp, 'bert-five-labels');
  mkdirSync(dir);
  const raw = JSON.parse(readFileSync(join(FIXTURES, 'bert-random', 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...raw, num_labels: 5 }));
  symlinkSync(join(FIXTURES, 'bert-random', 'model.safetensors'), join(dir, 'model.safetensors'));
  assert.throws(() => loadModel(dir), (e: Error) => e.message.includes('"classifier.weight"') && e.message.includes('[3, 32]') && e.message.includes('[5, 32]'));
});

test('bert: input shapes and dtypes are checked', () => {
  const m = load('bert-random');
  const ids: Tensor = mat([[1, 2, 3]], 'i32');
  assert.throws(() => m.forward(ids, { attentionMask: mat([[1, 1]], 'u8') }), /attentionMask must be u8 \[1, 3\]/);
  assert.throws(() => m.forward(ids, { attentionMask: mat([[1, 1, 1]], 'i32') }), /attentionMask must be u8/);
  assert.throws(() => m.forward(mat([Array.from({ length: 25 }, () => 1)], 'i32')), /25 tokens exceed the 24 learned positions/);
  ids.dispose();
  m.dispose();
});
