import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeShardedSafetensors, openCheckpointTensors } from '../../src/io/sharded.js';
import { writeSafetensors, type SafeArray, type TensorData } from '../../src/io/safetensors.js';
import { fromF32, toF32 } from '../../src/merge/dtype.js';
import { parseMergeConfig, runMerge, evaluateSetting, MergeConfigError } from '../../src/merge/config.js';
import { ties } from '../../src/merge/methods/ties.js';
import { linear } from '../../src/merge/methods/linear.js';
import { slerp } from '../../src/merge/methods/slerp.js';
import { dare } from '../../src/merge/methods/dare.js';
import { breadcrumbs } from '../../src/merge/methods/breadcrumbs.js';
import { mergeOrder } from '../../src/merge/stream.js';
import { Rng } from '../helpers/random.js';

const LAYERS = 3;
/** name → shape of a tiny llama-like checkpoint. */
const SHAPES: [string, number[]][] = [
  ['model.embed_tokens.weight', [11, 8]],
  ...Array.from({ length: LAYERS }, (_, l) => [
    [`model.layers.${l}.self_attn.q_proj.weight`, [8, 8]],
    [`model.layers.${l}.mlp.up_proj.weight`, [12, 8]],
    [`model.layers.${l}.input_layernorm.weight`, [8]],
  ] as [string, number[]][]).flat(),
  ['model.norm.weight', [8]],
];

/** Writes a checkpoint of random f32 tensors as shards of ≤ 700 bytes (several shards) plus a config.json. */
function makeCheckpoint(dir: string, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const tensors = new Map(SHAPES.map(([n, s]) => [n, rng.f32(s.reduce((a, b) => a * b, 1))]));
  const entries: [string, TensorData][] = SHAPES.map(([n, s]) => [n, { dtype: 'F32', shape: s, data: tensors.get(n)! as SafeArray }]);
  entries.push(['model.position_ids', { dtype: 'I64', shape: [4], data: new BigInt64Array([0n, 1n, 2n, BigInt(seed)]) }]);
  writeShardedSafetensors(dir, entries, 700);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ num_hidden_layers: LAYERS, torch_dtype: 'float32' }));
  writeFileSync(join(dir, 'tokenizer.json'), '{"seed": ' + seed + '}');
  return tensors;
}

function readAll(dir: string): Map<string, Float32Array> {
  const src = openCheckpointTensors(dir);
  const out = new Map(src.names().filter((n) => !n.includes('position')).map((n) => [n, toF32(src.read(n), src.info(n).dtype as 'F32')]));
  src.close();
  return out;
}

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-merge-'));
const base = join(tmp, 'base'), a = join(tmp, 'a'), b = join(tmp, 'b');
const T = { base: makeCheckpoint(base, 1), a: makeCheckpoint(a, 2), b: makeCheckpoint(b, 3) };
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** mergekit's layer position t of a tensor name: i / (L − 1) in block i, 0 elsewhere. */
const tOf = (name: string) => {
  const m = /layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) / (LAYERS - 1) : 0;
};

test('a streamed TIES merge of sharded checkpoints equals the in-memory merge, with filters and gradients', () => {
  const yaml = `
merge_method: ties
base_model: ${base}
models:
  - model: ${base}
  - model: ${a}
    parameters:
      weight: [{filter: mlp, value: 0.5}, {value: 1}]
      density: [1, 0.5, 0.2]
  - model: ${b}
    parameters: {weight: 0.7, density: 0.6}
parameters: {lambda: 0.9}
`;
  const config = parseMergeConfig(yaml);
  const out = join(tmp, 'out-ties');
  // Weights in another format stay behind; a tokenizer's .bin comes along.
  writeFileSync(join(base, 'pytorch_model.bin'), 'weights');
  writeFileSync(join(base, 'tok512.bin'), 'tokenizer');
  const seen: string[] = [];
  const report = runMerge(config, out, { maxShardBytes: 500, onProgress: (p) => seen.push(p.name) });
  assert.equal(seen.length, SHAPES.length + 1);
  assert.equal(seen.at(-1), 'model.layers.0.mlp.up_proj.weight', 'the largest tensor is merged last');
  assert.ok(report.files.length > 1, 'several output shards');
  assert.ok(existsSync(join(out, 'model.safetensors.index.json')));
  assert.equal(readFileSync(join(out, 'tokenizer.json'), 'utf8'), '{"seed": 1}', 'non-weight files come from the base');
  assert.equal(readFileSync(join(out, 'tok512.bin'), 'utf8'), 'tokenizer');
  assert.ok(!existsSync(join(out, 'pytorch_model.bin')));
  // Beside the weights, as mergekit leaves them: the config as written, and a card in place of the base's.
  assert.equal(readFileSync(join(out, 'mergekit_config.yml'), 'utf8'), yaml);
  const card = readFileSync(join(out, 'README.md'), 'utf8');
  assert.match(card, /^---\nlibrary_name: transformers\ntags:\n- merge\n- peftjs\n---\n# out-ties\n/);
  assert.ok(card.includes(`by the \`ties\` method with \`${base}\` as the base`) && card.includes(`- \`${a}\`\n- \`${b}\``), card);
  assert.ok(card.includes('```yaml\n' + yaml.trimEnd() + '\n```'), 'the card shows the config');
  const merged = readAll(out);
  for (const [name] of SHAPES) {
    const t = tOf(name);
    const densityA = t <= 0.5 ? 1 - t : 0.5 - (t - 0.5) * 0.6; // gradient [1, 0.5, 0.2] at t
    const expected = ties(T.base.get(name)!, [T.a.get(name)!, T.b.get(name)!], {
      weights: [name.includes('mlp') ? 0.5 : 1, 0.7],
      density: [densityA, 0.6],
      lambda: 0.9,
    });
    assert.deepEqual(merged.get(name), expected, name);
  }
  // Integer tensors are copied from the base.
  const src = openCheckpointTensors(out);
  assert.deepEqual(src.read('model.position_ids'), new BigInt64Array([0n, 1n, 2n, 1n]));
  src.close();
});

test('mergeOrder: checkpoint order with the largest tensor (the first of equals) last', () => {
  assert.deepEqual(mergeOrder([5, 9, 3, 9, 1]), [0, 2, 3, 4, 1]);
  assert.deepEqual(mergeOrder([4, 2]), [1, 0]);
  assert.deepEqual(mergeOrder([1, 2]), [0, 1]);
  assert.deepEqual(mergeOrder([]), []);
});

test('linear, slerp (slices form, per-filter t), dare and breadcrumbs through configs match the pure functions', () => {
  const run = (yaml: string, name: string) => {
    const out = join(tmp, name);
    runMerge(parseMergeConfig(yaml), out);
    return readAll(out);
  };
  const lin = run(`merge_method: linear\nmodels:\n  - {model: ${a}, parameters: {weight: 1}}\n  - {model: ${b}, parameters: {weight: 3}}\n`, 'lin');
  const sl = run(`
slices:
  - sources:
      - {model: ${base}, layer_range: [0, ${LAYERS}]}
      - {model: ${a}, layer_range: [0, ${LAYERS}]}
merge_method: slerp
base_model: ${base}
parameters:
  t:
    - {filter: self_attn, value: [0, 0.5, 1]}
    - {value: 0.3}
dtype: float32
`, 'slerp');
  const da = run(`merge_method: dare_ties\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1, density: 0.5}}\n  - {model: ${b}, parameters: {weight: 1, density: 0.5}}\n`, 'dare');
  const bc = run(`merge_method: breadcrumbs\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1, density: 0.8, gamma: 0.1}}\n`, 'crumbs');
  for (const [name] of SHAPES) {
    assert.deepEqual(lin.get(name), linear([T.a.get(name)!, T.b.get(name)!], [1, 3]), name);
    const t = name.includes('self_attn') ? tOf(name) : 0.3;
    assert.deepEqual(sl.get(name), slerp(t, T.base.get(name)!, T.a.get(name)!), name);
    const d = da.get(name)!;
    // DARE's mask is random; check the defining facts: entries are the base plus (rescaled, sign-elected) deltas.
    const dBase = T.base.get(name)!;
    const plain = dare(dBase, [T.a.get(name)!, T.b.get(name)!], { density: 1, variant: 'ties' });
    let changed = 0;
    for (let i = 0; i < d.length; i++) if (Math.abs(d[i] - plain[i]) > 1e-6) changed++;
    assert.ok(changed > 0, 'dropping changes the merge');
    assert.deepEqual(bc.get(name), breadcrumbs(dBase, [T.a.get(name)!], { density: 0.8, gamma: 0.1 }), name);
  }
});

test('output dtype: bf16 and f16 outputs round the f32 merge, config.json records it', () => {
  for (const [dtype, st] of [['bfloat16', 'BF16'], ['float16', 'F16']] as const) {
    const out = join(tmp, `lin-${dtype}`);
    runMerge(parseMergeConfig(`merge_method: linear\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1}}\n  - {model: ${b}, parameters: {weight: 1}}\ndtype: ${dtype}\n`), out);
    const src = openCheckpointTensors(out);
    const name = 'model.layers.1.mlp.up_proj.weight';
    assert.equal(src.info(name).dtype, st);
    const expected = linear([T.a.get(name)!, T.b.get(name)!], [1, 1]);
    assert.deepEqual(src.read(name), fromF32(expected, st));
    src.close();
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype, dtype);
  }
});

test('f32 → f16 rounds to the nearest half (ties to even), keeps subnormals, overflows to inf', () => {
  const rng = new Rng(5);
  const x = new Float32Array([0, -0, 1, -2.5, 65504, 65519, 65520, 1e6, 6e-8, 3e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2.98e-8, 2.99e-8, ...rng.f32(2000, 3), ...rng.f32(500, 1e-6)]);
  const h = fromF32(x, 'F16') as Uint16Array;
  const decode = (bits: number[]) => toF32(new Uint16Array(bits), 'F16');
  for (let i = 0; i < x.length; i++) {
    const [y, up, down] = decode([h[i], h[i] + 1, h[i] - 1]);
    if (!Number.isFinite(y)) {
      assert.ok(Math.abs(x[i]) >= 65520, `${x[i]} overflows only past the rounding boundary`);
      continue;
    }
    assert.equal((h[i] & 0x8000) !== 0, x[i] < 0 || Object.is(x[i], -0), `sign of ${x[i]}`);
    const err = Math.abs(y - x[i]);
    for (const n of [up, down]) if (Number.isFinite(n) && Math.sign(n) === Math.sign(y)) assert.ok(err <= Math.abs(n - x[i]), `${x[i]} → ${y}, but ${n} is nearer`);
    if (Math.abs(up - x[i]) === err && y !== up) assert.equal(h[i] & 1, 0, `tie at ${x[i]} goes to even`);
  }
  assert.ok(Number.isNaN(decode([(fromF32(new Float32Array([NaN]), 'F16') as Uint16Array)[0]])[0]));
});

test('gradients and filters evaluate as mergekit does', () => {
  assert.equal(evaluateSetting([0, 1], 'x', 0.25), 0.25);
  assert.ok(Math.abs((evaluateSetting([1, 0.5, 0.2], 'x', 0.75) as number) - 0.35) < 1e-12);
  assert.equal(evaluateSetting([{ filter: 'mlp', value: 2 }, { value: 3 }], 'model.layers.0.mlp.up_proj.weight', 0), 2);
  assert.equal(evaluateSetting([{ filter: 'mlp', value: 2 }, { value: 3 }], 'model.norm.weight', 0), 3);
  assert.equal(evaluateSetting([{ filter: 'mlp', value: 2 }], 'model.norm.weight', 0), undefined);
});

test('config errors name the key', () => {
  const bad = (yaml: string, re: RegExp) => assert.throws(() => parseMergeConfig(yaml), (e: Error) => e instanceof MergeConfigError && re.test(e.message));
  bad(`merge_method: ties\nbase_model: x\nmodels: [{model: y, parameters: {weight: 1}}]\nfoo: 1\n`, /foo: unsupported key/);
  bad(`merge_method: nope\nmodels: [{model: y}]\n`, /merge_method: unsupported method "nope"/);
  bad(`merge_method: ties\nmodels: [{model: y, parameters: {weight: 1}}]\n`, /base_model: is required/);
  bad(`merge_method: ties\nbase_model: x\nmodels: [{model: y, parameters: {weight: 1, t: 0.5}}]\n`, /models\[0\]\.parameters\.t: unsupported key/);
  bad(`merge_method: ties\nbase_model: x\nmodels: [{model: y, parameters: {density: 0.5}}]\n`, /models\[0\]\.parameters\.weight: is required/);
  bad(`merge_method: linear\nmodels: [{model: y, parameters: {weight: [{filter: 3, value: 1}]}}]\n`, /weight\[0\]\.filter/);
  bad(`merge_method: slerp\nbase_model: x\nmodels: [{model: x}, {model: y}]\n`, /parameters\.t: is required/);
  bad(`merge_method: linear\nmodels: [{model: y, parameters: {weight: 1}}]\ndtype: int4\n`, /dtype: unsupported dtype/);
  bad(`merge_method: linear\nmodels: [{model: y, parameters: {weight: 1}}]\ntokenizer: {source: union}\n`, /tokenizer: tokenizer surgery/);
  bad(`merge_method: linear\nslices: [{sources: [{model: x, layer_range: [0, 4]}]}, {sources: [{model: y, layer_range: [4, 8]}]}]\n`, /slices: only one slice/);
  bad(`merge_method: linear\nmodels: [{model: "base+lora", parameters: {weight: 1}}]\n`, /model\+lora/);
  bad(`merge_method: fisher\nmodels: [{model: x}]\n`, /models\[0\]\.fisher: is required/);
  bad(`merge_method: linear\nmodels: [{model: x, gram: g.safetensors, parameters: {weight: 1}}]\n`, /gram: only used by/);
});

test('the output folder may not hold an input: the merge refuses before it writes anything', () => {
  const config = (first: string) => parseMergeConfig(`merge_method: linear\nmodels:\n  - {model: ${first}, parameters: {weight: 1}}\n  - {model: ${b}, parameters: {weight: 1}}\n`);
  const before = [readdirSync(a).sort(), readdirSync(b).sort()];
  // The folder itself, the same folder by another path, and the folder of an input given as its shard index.
  for (const [first, out] of [[a, b], [a, join(b, '..', 'b')], [join(a, 'model.safetensors.index.json'), a]]) {
    assert.throws(() => runMerge(config(first), out), /merge: the output folder .* holds the input .*: write the merge to another folder/, out);
  }
  assert.deepEqual([readdirSync(a).sort(), readdirSync(b).sort()], before, 'nothing was written');
});

test('the checkpoints must share an architecture: a missing tensor is named', () => {
  const odd = join(tmp, 'odd');
  mkdirSync(odd);
  writeSafetensors(join(odd, 'model.safetensors'), { 'model.norm.weight': { dtype: 'F32', shape: [8], data: new Float32Array(8) } });
  assert.throws(() => runMerge(parseMergeConfig(`merge_method: linear\nmodels:\n  - {model: ${a}, parameters: {weight: 1}}\n  - {model: ${odd}, parameters: {weight: 1}}\n`), join(tmp, 'x')), /lacks tensor "model\.embed_tokens\.weight"/);
  assert.ok(!readdirSync(tmp).includes('x') || readdirSync(join(tmp, 'x')).every((f) => !f.includes('.tmp-')));
});
