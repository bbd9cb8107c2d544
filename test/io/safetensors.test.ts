import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SAFE_DTYPES,
  SafetensorsError,
  SafetensorsFile,
  dtypeSize,
  writeFileAtomic,
  writeSafetensors,
  type SafeArray,
  type SafeDType,
  type TensorData,
} from '../../src/io/safetensors.js';
import { ShardedCheckpoint, openCheckpointTensors, writeShardedSafetensors } from '../../src/io/sharded.js';
import { Rng } from '../helpers/random.js';

const PYTHON = '/usr/bin/python3';
const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const MODEL_DIR = new URL('../../../shared/models/stories260K-hf/', import.meta.url).pathname;

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-safetensors-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let fileCounter = 0;
const tmpFile = (ext = '.safetensors') => join(tmp, `f${fileCounter++}${ext}`);

/** A seeded uniform [0, 1) source so fuzz runs are reproducible. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** A tensor of `dtype` and `shape` filled with random bytes (BOOL with 0/1). */
function randomTensor(dtype: SafeDType, shape: number[], rand: () => number): TensorData {
  const numel = shape.reduce((a, d) => a * d, 1);
  const bytes = new Uint8Array(numel * dtypeSize(dtype)).map(() => (dtype === 'BOOL' ? (rand() < 0.5 ? 1 : 0) : Math.floor(rand() * 256)));
  const data = fromBytes(dtype, bytes);
  return { dtype, shape, data };
}

/** Reinterprets bytes as the dtype's typed array by round-tripping a file (keeps the test independent of internals). */
function fromBytes(dtype: SafeDType, bytes: Uint8Array): SafeArray {
  const ctor = {
    F64: Float64Array, F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I64: BigInt64Array, I32: Int32Array, I16: Int16Array,
    I8: Int8Array, U64: BigUint64Array, U32: Uint32Array, U16: Uint16Array, U8: Uint8Array, BOOL: Uint8Array,
  }[dtype];
  return new ctor(bytes.slice().buffer);
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Asserts `fn` throws a SafetensorsError naming `file` whose message matches `re`. */
function assertFails(fn: () => unknown, file: string, re: RegExp): SafetensorsError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof SafetensorsError, `expected a SafetensorsError, got ${String(err)}`);
  assert.ok(err.message.includes(file), `message should name ${file}: ${err.message}`);
  assert.match(err.message, re);
  return err;
}

/** A raw file: 8-byte length (declared, default the real length), header text/bytes, then data bytes. */
function rawFile(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), declared?: bigint): string {
  const h = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  const path = tmpFile();
  writeFileSync(path, out);
  return path;
}

/** Opens `path` and reads every tensor. */
function readAll(path: string): Map<string, SafeArray> {
  const f = SafetensorsFile.open(path);
  try {
    return new Map(f.names().map((n) => [n, f.read(n)]));
  } finally {
    f.close();
  }
}

test('round trip of every dtype, with scalar and empty shapes, order and metadata kept', () => {
  const rand = rng(1);
  const entries: [string, TensorData][] = [['z.odd', randomTensor('I8', [5], rand)]];
  entries.push(...SAFE_DTYPES.map((d, i): [string, TensorData] => [`t.${d}`, randomTensor(d, [2 + (i % 3), 3], rand)]));
  entries.push(['scalar', randomTensor('F32', [], rand)], ['empty', randomTensor('BF16', [0, 4], rand)]);
  const path = tmpFile();
  const metadata = { format: 'pt', 'odd "key"': 'ünïcode ✓' };
  writeSafetensors(path, entries, metadata);

  const raw = readFileSync(path);
  const n = Number(raw.readBigUInt64LE(0));
  assert.equal(n % 8, 0, 'data section must start 8-byte aligned');
  assert.match(raw.subarray(8, 8 + n).toString('utf8'), /^\{.*\} *$/);

  const f = SafetensorsFile.open(path);
  assert.deepEqual(f.names(), entries.map(([name]) => name));
  assert.deepEqual(f.metadata, metadata);
  for (const [name, t] of entries) {
    const info = f.info(name);
    assert.equal(info.dtype, t.dtype);
    assert.deepEqual(info.shape, t.shape);
    assert.equal(info.byteLength, t.data.byteLength);
    assert.equal(info.byteOffset % dtypeSize(t.dtype), 0, `${name} is aligned to its element size`);
    const got = f.read(name);
    assert.equal(got.constructor, t.data.constructor, name);
    assert.equal(got.byteOffset, 0);
    assert.equal(got.buffer.byteLength, got.byteLength, 'a fresh buffer of its own');
    assert.deepEqual(bytesOf(got), bytesOf(t.data), name);
  }
  // The caller owns the copy: changing it does not change the next read.
  const a = f.read('t.F32') as Float32Array;
  a[0] = 12345;
  assert.notEqual((f.read('t.F32') as Float32Array)[0], 12345);
  f.close();
  assertFails(() => f.read('t.F32'), path, /closed/);

  // Object form keeps insertion order too; omitting metadata writes none.
  const path2 = tmpFile();
  writeSafetensors(path2, { b: entries[0][1], a: entries[1][1] });
  const g = SafetensorsFile.open(path2);
  assert.deepEqual(g.names(), ['b', 'a']);
  assert.deepEqual(g.metadata, {});
  assert.ok(!readFileSync(path2).includes('__metadata__'));
  g.close();
});

test('writer validates tensors and leaves no temporary files', () => {
  const path = tmpFile();
  const ok: TensorData = { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) };
  assertFails(() => writeSafetensors(path, { w: { ...ok, data: new Float32Array(3) } }), path, /"w".*4 elements but the data has 3/);
  assertFails(() => writeSafetensors(path, { w: { ...ok, data: new Float64Array(4) } }), path, /needs its data in a Float32Array, got Float64Array/);
  assertFails(() => writeSafetensors(path, { w: { ...ok, shape: [-2, -2] } }), path, /shape \[-2,-2\]/);
  assertFails(() => writeSafetensors(path, { w: { ...ok, dtype: 'F8' as SafeDType } }), path, /unsupported dtype "F8"/);
  assertFails(() => writeSafetensors(path, [['w', ok], ['w', ok]]), path, /duplicate/);
  assertFails(() => writeSafetensors(path, { __metadata__: ok }), path, /reserved/);
  assert.equal(existsSync(path), false);
  writeSafetensors(path, []);
  assert.deepEqual(readAll(path).size, 0, 'a file without tensors is valid');

  // A failure in the middle of an atomic write keeps the old file and removes the temporary one.
  writeSafetensors(path, { w: ok });
  const before = readFileSync(path);
  assert.throws(() =>
    writeFileAtomic(path, (fd) => {
      writeSync(fd, 'partial');
      throw new Error('disk full');
    }),
  /disk full/);
  assert.deepEqual(readFileSync(path), before);
  assert.deepEqual(readdirSync(tmp).filter((f) => f.includes('.tmp-')), []);
});

test('reads the stories260K checkpoint: names and shapes follow its config.json', () => {
  const cfg = JSON.parse(readFileSync(join(MODEL_DIR, 'config.json'), 'utf8'));
  const { hidden_size: h, intermediate_size: inter, vocab_size: v, num_attention_heads: heads, num_key_value_heads: kv, head_dim: hd } = cfg;
  const expected = new Map<string, number[]>([['model.embed_tokens.weight', [v, h]], ['model.norm.weight', [h]]]);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    for (const [k, s] of Object.entries({
      'input_layernorm.weight': [h], 'post_attention_layernorm.weight': [h],
      'self_attn.q_proj.weight': [heads * hd, h], 'self_attn.k_proj.weight': [kv * hd, h], 'self_attn.v_proj.weight': [kv * hd, h], 'self_attn.o_proj.weight': [h, heads * hd],
      'mlp.gate_proj.weight': [inter, h], 'mlp.up_proj.weight': [inter, h], 'mlp.down_proj.weight': [h, inter],
    })) expected.set(p + k, s);
  }
  const f = SafetensorsFile.open(join(MODEL_DIR, 'model.safetensors'));
  assert.deepEqual(new Set(f.names()), new Set(expected.keys()));
  for (const [name, shape] of expected) {
    assert.deepEqual(f.info(name).shape, shape, name);
    assert.equal(f.info(name).dtype, 'F32');
  }
  const emb = f.read('model.embed_tokens.weight') as Float32Array;
  assert.ok(emb instanceof Float32Array);
  assert.equal(emb.length, v * h);
  assert.ok(emb.every(Number.isFinite));
  assert.ok(emb.some((x) => x !== 0));
  assertFails(() => f.read('lm_head.weight'), 'model.safetensors', /no such tensor; available: "model\..*\(47 in all\)/);
  f.close();
});

/** f16 bits → number. */
function halfToNumber(b: number): number {
  const sign = b & 0x8000 ? -1 : 1;
  const exp = (b >> 10) & 0x1f;
  const frac = b & 0x3ff;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return exp === 0 ? sign * frac * 2 ** -24 : sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Bits → number for F32/BF16/F16, for checking the `values` Python reported against the raw bits. */
function floatOfBits(dtype: string, bits: number): number {
  if (dtype === 'F16') return halfToNumber(bits);
  return new Float32Array(new Uint32Array([dtype === 'BF16' ? bits << 16 : bits]).buffer)[0];
}

type Described = { dtype: string; shape: number[]; bits?: number[]; values: (number | string)[] };

/** Asserts `arr` holds what the Python script described (bits for floats, decimal strings for I64). */
function assertMatchesDescription(name: string, arr: SafeArray, d: Described): void {
  if (d.bits) {
    const bits = d.dtype === 'F32' ? new Uint32Array(arr.buffer) : (arr as Uint16Array);
    assert.deepEqual([...bits], d.bits, name);
    d.values.forEach((v, i) => {
      const x = floatOfBits(d.dtype, d.bits![i]);
      if (typeof v === 'string') assert.equal(String(x).toLowerCase().replace('infinity', 'inf'), v, name);
      else assert.equal(x, v, name);
    });
  } else if (d.dtype === 'I64') {
    assert.deepEqual([...(arr as BigInt64Array)], d.values.map((s) => BigInt(s)), name);
  } else {
    assert.deepEqual([...(arr as Uint8Array | Int32Array)], d.values, name);
  }
}

test('reads the committed file written by the PyTorch-side script', () => {
  const path = join(FIXTURES, 'safetensors_fixture.safetensors');
  const expected = JSON.parse(readFileSync(join(FIXTURES, 'safetensors_fixture.json'), 'utf8')) as {
    metadata: Record<string, string>;
    tensors: Record<string, Described>;
  };
  const f = SafetensorsFile.open(path);
  assert.deepEqual(f.metadata, expected.metadata);
  assert.deepEqual(new Set(f.names()), new Set(Object.keys(expected.tensors)));
  for (const [name, d] of Object.entries(expected.tensors)) {
    assert.equal(f.info(name).dtype, d.dtype, name);
    assert.deepEqual(f.info(name).shape, d.shape, name);
    assertMatchesDescription(name, f.read(name), d);
  }
  f.close();
});

/** Runs the Python script's own reader on `path`, or returns why it cannot. */
function pythonRead(path: string, names: string[] = []): { metadata: Record<string, string>; tensors: Record<string, Described> } | string {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, [join(FIXTURES, 'make_safetensors_fixture.py'), 'read', path, ...names], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0 && /ModuleNotFoundError/.test(r.stderr)) return `${PYTHON} lacks torch/numpy`;
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('files we write are read back by the PyTorch-side reader', (t) => {
  const rand = rng(7);
  const entries: [string, TensorData][] = (['F32', 'F16', 'BF16', 'I64', 'I32', 'U8', 'BOOL'] as const).map((d) => [`x.${d}`, randomTensor(d, [3, 2], rand)]);
  (entries[0][1].data as Float32Array).set([NaN, -0, Infinity]);
  entries.push(['scalar', randomTensor('F32', [], rand)], ['empty', randomTensor('I64', [2, 0], rand)]);
  const path = tmpFile();
  const metadata = { format: 'pt', created_by: 'peftjs test' };
  writeSafetensors(path, entries, metadata);
  const py = pythonRead(path);
  if (typeof py === 'string') return t.skip(`skipping the Python cross-check: ${py}`);
  assert.deepEqual(py.metadata, metadata);
  assert.deepEqual(Object.keys(py.tensors).sort(), entries.map(([n]) => n).sort());
  for (const [name, tensor] of entries) {
    assert.deepEqual(py.tensors[name].shape, tensor.shape, name);
    assertMatchesDescription(name, tensor.data, py.tensors[name]);
  }
});

test('the PyTorch-side reader agrees with ours on the real checkpoint', (t) => {
  const path = join(MODEL_DIR, 'model.safetensors');
  const names = ['model.embed_tokens.weight', 'model.layers.4.mlp.down_proj.weight', 'model.norm.weight'];
  const py = pythonRead(path, names);
  if (typeof py === 'string') return t.skip(`skipping the Python cross-check: ${py}`);
  const ours = readAll(path);
  assert.deepEqual(Object.keys(py.tensors), names);
  for (const [name, d] of Object.entries(py.tensors)) assertMatchesDescription(name, ours.get(name)!, d);
});

test('opening reads only the header: a sparse 5 GB file opens at once and tensors past 4 GiB read correctly', () => {
  const big = 5 * 2 ** 30;
  const header = JSON.stringify({ huge: { dtype: 'U8', shape: [big], data_offsets: [0, big] }, tail: { dtype: 'F32', shape: [3], data_offsets: [big, big + 12] } });
  const path = rawFile(header);
  const dataStart = 8 + new TextEncoder().encode(header).length;
  truncateSync(path, dataStart + big + 12);
  const fd = openSync(path, 'r+');
  writeSync(fd, new Uint8Array(new Float32Array([1.5, -2, 3e38]).buffer), 0, 12, dataStart + big);
  closeSync(fd);
  const t0 = performance.now();
  const f = SafetensorsFile.open(path);
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(f.info('huge').byteLength, big);
  assert.deepEqual([...(f.read('tail') as Float32Array)], [1.5, -2, new Float32Array([3e38])[0]]);
  f.close();
  unlinkSync(path);
});

test('corrupt headers fail with clear errors naming the file and tensor', () => {
  const f32 = (shape: unknown, offsets: unknown, dtype: unknown = 'F32') => JSON.stringify({ w: { dtype, shape, data_offsets: offsets } });
  const data8 = new Uint8Array(8);
  const cases: [string, string | Uint8Array, Uint8Array, RegExp, bigint?][] = [
    ['declared header longer than the file', '{}', data8, /truncated: the header alone needs 1008 bytes, found 18/, 1000n],
    ['huge declared header length', '{}', data8, /declared header length 1152921504606846976 bytes exceeds/, 2n ** 60n],
    ['bad UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), data8, /not valid UTF-8/],
    ['bad JSON', '{"w": {"dtype": ', data8, /not valid JSON/],
    ['JSON array', '[]', data8, /must be a JSON object/],
    ['JSON null', 'null', data8, /must be a JSON object/],
    ['entry not an object', '{"w": 3}', data8, /"w".*must be an object/],
    ['unknown dtype', f32([2], [0, 8], 'F8_E4M3'), data8, /"w".*unsupported dtype "F8_E4M3"/],
    ['dtype from Object.prototype', f32([2], [0, 8], 'toString'), data8, /unsupported dtype "toString"/],
    ['missing dtype', JSON.stringify({ w: { shape: [2], data_offsets: [0, 8] } }), data8, /unsupported dtype undefined/],
    ['negative shape', f32([-2], [0, 8]), data8, /"w".*shape \[-2\]/],
    ['non-integer shape', f32([1.5], [0, 6]), data8, /shape \[1\.5\]/],
    ['shape not an array', f32('2', [0, 8]), data8, /shape "2"/],
    ['offsets out of range', f32([4], [0, 16]), data8, /"w".*truncated: expected \d+ bytes, found \d+/],
    ['end before begin', f32([0], [8, 0]), data8, /end before they begin/],
    ['offsets not a pair', f32([2], [0]), data8, /must be \[begin, end\]/],
    ['offsets beyond 2^53', f32([2], [2 ** 60, 2 ** 60 + 8]), data8, /two non-negative integers/],
    ['size mismatch vs shape', f32([3], [0, 8]), data8, /span 8 bytes but shape \[3\] of F32 needs 12/],
    ['numel overflow', f32([2 ** 40, 2 ** 40], [0, 8]), data8, /needs 4835703278458516698824704/],
    ['metadata not strings', JSON.stringify({ __metadata__: { n: 1 } }), data8, /"__metadata__" value for "n" must be a string/],
    ['overlapping tensors', JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'U8', shape: [4], data_offsets: [4, 8] } }), data8, /"b".*overlap tensor "a"/],
  ];
  for (const [what, header, data, re, declared] of cases) {
    const path = rawFile(header, data, declared);
    assert.doesNotThrow(() => assertFails(() => SafetensorsFile.open(path), path, re), what);
  }
  assertFails(() => SafetensorsFile.open(join(tmp, 'missing.safetensors')), 'missing.safetensors', /cannot open: ENOENT/);
  assertFails(() => SafetensorsFile.open(tmp), tmp, /cannot open|not a regular file/);
  // Zero-length tensors may share offsets with others.
  const ok = rawFile(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } }), data8);
  assert.deepEqual([...readAll(ok).keys()], ['a', 'e']);
});

test('truncated files fail at open or read, at every kind of cut point', () => {
  const path = tmpFile();
  writeSafetensors(path, { a: { dtype: 'F32', shape: [4, 4], data: new Float32Array(16).fill(1) }, b: { dtype: 'I64', shape: [3], data: new BigInt64Array(3) } });
  const full = readFileSync(path);
  const headerEnd = 8 + Number(full.readBigUInt64LE(0));
  for (const cut of [0, 3, 7, 8, 20, headerEnd - 1, headerEnd, headerEnd + 5, full.length - 1]) {
    const p = tmpFile();
    writeFileSync(p, full.subarray(0, cut));
    assertFails(() => SafetensorsFile.open(p), p, /truncated|too short/);
  }
  // A file that shrinks after it was opened fails on read, not with garbage.
  const p = tmpFile();
  writeFileSync(p, full);
  const f = SafetensorsFile.open(p);
  truncateSync(p, headerEnd + 10);
  assertFails(() => f.read('b'), p, /"b".*truncated/);
  f.close();
});

test('random byte flips and cuts of a valid file give a clean parse or a SafetensorsError, never a crash', { timeout: 60_000 }, () => {
  const rand = rng(42);
  const base = tmpFile();
  writeSafetensors(
    base,
    [['w', randomTensor('F32', [3, 5], rand)], ['h', randomTensor('BF16', [7], rand)], ['ids', randomTensor('I64', [4], rand)], ['m', randomTensor('BOOL', [2, 3], rand)], ['e', randomTensor('U8', [0], rand)]],
    { format: 'pt' },
  );
  const good = readFileSync(base);
  const headerEnd = 8 + Number(good.readBigUInt64LE(0));
  let parsed = 0;
  let rejected = 0;
  for (let it = 0; it < 400; it++) {
    const bytes = Uint8Array.from(good);
    const flips = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < flips; k++) {
      // Mostly hit the length prefix and header, where the parser's decisions are.
      const pos = rand() < 0.6 ? Math.floor(rand() * headerEnd) : Math.floor(rand() * bytes.length);
      bytes[pos] = rand() < 0.5 ? bytes[pos] ^ (1 << Math.floor(rand() * 8)) : Math.floor(rand() * 256);
    }
    const len = rand() < 0.1 ? Math.floor(rand() * bytes.length) : bytes.length;
    const path = join(tmp, `fuzz-${it}.safetensors`);
    writeFileSync(path, bytes.subarray(0, len));
    try {
      const f = SafetensorsFile.open(path);
      for (const name of f.names()) {
        const info = f.info(name);
        const arr = f.read(name);
        assert.equal(arr.byteLength, info.byteLength);
        assert.equal(arr.length, info.shape.reduce((a, d) => a * d, 1));
      }
      f.close();
      parsed++;
    } catch (e) {
      if (!(e instanceof SafetensorsError) || !e.message.includes(path)) throw new Error(`iteration ${it}: unexpected failure ${String(e)}`, { cause: e });
      rejected++;
    }
    unlinkSync(path);
  }
  assert.ok(parsed > 0 && rejected > 0, `both outcomes should occur (parsed ${parsed}, rejected ${rejected})`);
});

test('sharded checkpoints: round trip, one lookup over all shards, stale files removed', () => {
  const rand = rng(3);
  const entries: [string, TensorData][] = [
    ['a', randomTensor('F32', [10], rand)], // 40 bytes
    ['b', randomTensor('BF16', [8], rand)], // 16
    ['c', randomTensor('I64', [2], rand)], // 16
    ['big', randomTensor('U8', [200], rand)], // larger than a shard: alone
    ['d', randomTensor('F32', [1], rand)],
  ];
  const dir = join(tmp, 'sharded');
  const out = writeShardedSafetensors(dir, entries, 64, { format: 'pt' });
  // Greedy in order: [a, b] (56 bytes), c would make 72 > 64 so it starts a shard, big gets its own, then d.
  assert.deepEqual(out.shards, [1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`));
  assert.equal(out.totalSize, 40 + 16 + 16 + 200 + 4);
  const index = JSON.parse(readFileSync(out.index, 'utf8'));
  const shardOf: Record<string, string> = index.weight_map;
  assert.deepEqual(index, {
    metadata: { total_size: out.totalSize },
    weight_map: { a: out.shards[0], b: out.shards[0], c: out.shards[1], big: out.shards[2], d: out.shards[3] },
  });
  const ckpt = openCheckpointTensors(dir);
  assert.ok(ckpt instanceof ShardedCheckpoint);
  assert.deepEqual(ckpt.names(), entries.map(([n]) => n));
  for (const [name, t] of entries) {
    assert.equal(ckpt.info(name).file, join(dir, shardOf[name]));
    assert.deepEqual(bytesOf(ckpt.read(name)), bytesOf(t.data), name);
  }
  assert.deepEqual((ckpt as ShardedCheckpoint).shards.map((s) => s.metadata), out.shards.map(() => ({ format: 'pt' })));
  assertFails(() => ckpt.read('nope'), 'model.safetensors.index.json', /"nope".*available: "a", "b"/);
  ckpt.close();

  // Re-saving as one shard removes the four old shards, and a lone model.safetensors is opened directly.
  writeShardedSafetensors(dir, entries, 1 << 20);
  assert.deepEqual(readdirSync(dir).sort(), ['model-00001-of-00001.safetensors', 'model.safetensors.index.json']);
  const single = join(tmp, 'single');
  writeShardedSafetensors(single, entries.slice(0, 2), 1 << 20);
  writeSafetensors(join(single, 'model.safetensors'), entries.slice(0, 1));
  const s = openCheckpointTensors(single);
  assert.ok(s instanceof SafetensorsFile);
  assert.deepEqual(s.names(), ['a']);
  s.close();
  assertFails(() => openCheckpointTensors(join(tmp, 'nowhere')), 'nowhere', /cannot open the checkpoint/);
  const empty = join(tmp, 'empty-dir');
  writeShardedSafetensors(empty, [], 10);
  unlinkSync(join(empty, 'model.safetensors.index.json'));
  assertFails(() => openCheckpointTensors(empty), empty, /no model.safetensors or model.safetensors.index.json in this folder \(it holds: model-00001-of-00001.safetensors\)/);
});

test('a shard index pointing at a missing shard or the wrong shard fails naming index, tensor and shard', () => {
  const rand = rng(5);
  const entries: [string, TensorData][] = ['x', 'y', 'z'].map((n) => [n, randomTensor('F32', [4], rand)]);
  const dir = join(tmp, 'bad-index');
  const out = writeShardedSafetensors(dir, entries, 16);
  const index = JSON.parse(readFileSync(out.index, 'utf8'));

  [index.weight_map.x, index.weight_map.y] = [out.shards[1], out.shards[0]];
  writeFileSync(out.index, JSON.stringify(index));
  assertFails(() => openCheckpointTensors(dir), out.index, /tensor "x": mapped to shard ".*model-00002-of-00003.safetensors", which does not hold it \(it is in ".*model-00001-of-00003.safetensors"\)/);

  [index.weight_map.x, index.weight_map.y] = [out.shards[0], out.shards[1]];
  index.weight_map.w = out.shards[1];
  writeFileSync(out.index, JSON.stringify(index));
  assertFails(() => openCheckpointTensors(out.index), out.index, /tensor "w".*no shard holds it/);

  delete index.weight_map.w;
  index.weight_map.z = '../escape.safetensors';
  writeFileSync(out.index, JSON.stringify(index));
  assertFails(() => openCheckpointTensors(dir), out.index, /"z": shard "..\/escape.safetensors" lies outside/);

  index.weight_map.z = out.shards[2];
  writeFileSync(out.index, JSON.stringify(index));
  unlinkSync(join(dir, out.shards[2]));
  assertFails(() => openCheckpointTensors(dir), out.index, /tensor "z": mapped to shard "model-00003-of-00003.safetensors", which does not exist/);

  writeFileSync(out.index, '{"weight_map": [1]}');
  assertFails(() => openCheckpointTensors(dir), out.index, /must be an object with a "weight_map" object/);
});
