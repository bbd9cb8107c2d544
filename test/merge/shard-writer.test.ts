// The out-of-core shard writer, written through directly and through the write-behind worker: the same files,
// readable as a sharded checkpoint; the worker's slots are reused in order and its errors reach the caller; written
// behind, the shards are preallocated (the native preallocation thread) before the writes reach them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { nativeAddonPath, type NativeKernels } from '../../src/engine/backend/native.js';
import { openCheckpointTensors } from '../../src/io/sharded.js';
import { checkFreeSpace, ShardWriter, type TensorSpec } from '../../src/merge/shard-writer.js';
import { WriteBehind } from '../../src/merge/write-behind.js';
import { Rng } from '../helpers/random.js';
import { inTempDir } from '../helpers/temp.js';

const SPECS: TensorSpec[] = [
  { name: 'a', dtype: 'F32', shape: [40, 30] },
  { name: 'b', dtype: 'F32', shape: [7] },
  { name: 'c', dtype: 'F32', shape: [25, 20] },
  { name: 'd', dtype: 'F32', shape: [3, 3] },
];

test('ShardWriter: write-behind gives the same shards as direct writes, ranges in any order', () =>
  inTempDir('shards', (root) => {
    const rng = new Rng(5);
    const data = new Map(SPECS.map((s) => [s.name, rng.f32(s.shape.reduce((x, y) => x * y, 1)) as Float32Array<ArrayBuffer>]));
    for (const writeBehind of [false, true]) {
      const dir = join(root, String(writeBehind));
      const w = new ShardWriter(dir, SPECS, 4000, { writeBehind });
      // c in two ranges, the second first; then the others.
      const c = data.get('c')!;
      w.writeRange('c', 1200, c.subarray(300));
      w.writeRange('c', 0, c.subarray(0, 300));
      for (const name of ['d', 'a', 'b']) w.write(name, data.get(name)!);
      w.finish();
      const ckpt = openCheckpointTensors(dir);
      for (const s of SPECS) assert.deepEqual(ckpt.read(s.name), data.get(s.name), `writeBehind=${writeBehind}: ${s.name}`);
      ckpt.close();
    }
    const files = readdirSync(join(root, 'false')).sort();
    assert.ok(files.length > 2, 'several shards and an index');
    assert.deepEqual(readdirSync(join(root, 'true')).sort(), files, 'no temporary file is left');
    for (const f of files) assert.deepEqual(readFileSync(join(root, 'true', f)), readFileSync(join(root, 'false', f)), f);
  }));

test('ShardWriter: an output larger than the free space, or a file, fails before anything is written, naming it', () =>
  inTempDir('shards', (root) => {
    const dir = join(root, 'out');
    // 2⁴⁰ f32 entries (4.4 TB): more than any test machine has free.
    const huge: TensorSpec[] = [{ name: 'w', dtype: 'F32', shape: [1 << 20, 1 << 20] }];
    assert.throws(() => new ShardWriter(dir, huge, 5_000_000_000), (e: Error) => e.message.includes(dir) && /needs 4398\.\d\d GB, but its file system has [\d.]+ GB free/.test(e.message));
    assert.deepEqual(readdirSync(dir), [], 'no shard was started');
    writeFileSync(join(root, 'file'), 'x');
    assert.throws(() => new ShardWriter(join(root, 'file'), SPECS, 4000), /merge: the output .*file is a file: give a folder/);
    // The check itself: free = available blocks × block size, compared with the bytes needed; no probe, no check.
    const probe = (bavail: number) => () => ({ bavail, bsize: 4096 });
    assert.doesNotThrow(() => checkFreeSpace('/x', 4096 * 10, probe(10)));
    assert.throws(() => checkFreeSpace('/x', 4096 * 10 + 1, probe(10)), /merge: the output in \/x needs 0\.00 GB, but its file system has 0\.00 GB free/);
    assert.doesNotThrow(() => checkFreeSpace('/x', 1e18, () => {
      throw new Error('statfs is not supported here');
    }));
  }));

test('ShardWriter: a merge that stops before its end leaves the folder\'s previous checkpoint as it was, and no temporary file', () =>
  inTempDir('shards', (dir) => {
    const rng = new Rng(8);
    const fill = () => new Map(SPECS.map((s) => [s.name, rng.f32(s.shape.reduce((x, y) => x * y, 1)) as Float32Array<ArrayBuffer>]));
    const before = fill(), after = fill();
    const w = new ShardWriter(dir, SPECS, 4000);
    for (const s of SPECS) w.write(s.name, before.get(s.name)!);
    w.finish();
    const files = readdirSync(dir).sort();
    for (const writeBehind of [false, true]) {
      // 'a' fills a shard of its own, which closes; then the merge fails.
      const next = new ShardWriter(dir, SPECS, 4000, { writeBehind });
      next.write('a', after.get('a')!);
      next.write('b', after.get('b')!);
      next.abort();
      assert.deepEqual(readdirSync(dir).sort(), files, `writeBehind=${writeBehind}`);
      const ckpt = openCheckpointTensors(dir);
      for (const s of SPECS) assert.deepEqual(ckpt.read(s.name), before.get(s.name), `writeBehind=${writeBehind}: ${s.name}`);
      ckpt.close();
    }
  }));

test('ShardWriter: a checkpoint written over another, sharded over one file and back, leaves only its own files', () =>
  inTempDir('shards', (dir) => {
    const rng = new Rng(9);
    for (const [maxShardBytes, writeBehind] of [[4000, false], [1e9, true], [4000, true]] as const) {
      const data = new Map(SPECS.map((s) => [s.name, rng.f32(s.shape.reduce((x, y) => x * y, 1)) as Float32Array<ArrayBuffer>]));
      const w = new ShardWriter(dir, SPECS, maxShardBytes, { writeBehind });
      for (const s of SPECS) w.write(s.name, data.get(s.name)!);
      w.finish();
      const want = w.files.length > 1 ? [...w.files, 'model.safetensors.index.json'] : w.files;
      assert.deepEqual(readdirSync(dir).sort(), want.sort(), `shards of ${maxShardBytes} bytes`);
      const ckpt = openCheckpointTensors(dir);
      for (const s of SPECS) assert.deepEqual(ckpt.read(s.name), data.get(s.name), `shards of ${maxShardBytes} bytes: ${s.name}`);
      ckpt.close();
    }
  }));

test('ShardWriter: temporary shards of writers that are gone are removed; those of running ones and other files are kept', () =>
  inTempDir('shards', (dir) => {
    const gone = spawnSync('true').pid!;
    const stale = [`model.safetensors.tmp-${gone}`, `model-00002-of-00003.safetensors.tmp-${gone}`, `model.safetensors.index.json.tmp-${gone}-a1b2c3`];
    const kept = [`model.safetensors.tmp-${process.ppid}`, `notes.tmp-${gone}`, 'model.safetensors'];
    mkdirSync(dir, { recursive: true });
    for (const f of [...stale, ...kept]) writeFileSync(join(dir, f), 'x');
    new ShardWriter(dir, SPECS, 4000).abort();
    assert.deepEqual(readdirSync(dir).sort(), kept.sort());
  }));

test('WriteBehind: writes larger than a slot go through reused slots in order; close comes after the writes and the flushes', () =>
  inTempDir('shards', (dir) => {
    // Flushing never (the default interval), after every write (closes then wait on running flushes), every 50 bytes.
    for (const flushBytes of [undefined, 1, 50]) {
      const wb = new WriteBehind(2, 16, flushBytes);
      const out = (f: number) => join(dir, `x${f}.bin`);
      const bytes = Uint8Array.from({ length: 203 }, (_, i) => (i * 7) & 255);
      for (let f = 0; f < 3; f++) {
        wb.write(out(f), bytes.subarray(100), 100);
        wb.write(out(f), bytes.subarray(0, 100), 0);
        wb.close(out(f));
      }
      bytes.fill(0); // the writer copied the bytes: changing them now changes nothing
      wb.drain();
      wb.stop();
      for (let f = 0; f < 3; f++) assert.deepEqual(new Uint8Array(readFileSync(out(f))), Uint8Array.from({ length: 203 }, (_, i) => (i * 7) & 255), `flushBytes ${flushBytes}`);
      assert.deepEqual(readdirSync(dir).sort(), ['x0.bin', 'x1.bin', 'x2.bin']);
      for (let f = 0; f < 3; f++) rmSync(out(f));
    }
  }));

test('WriteBehind: a slot handed out is written without a copy, while copied writes (a header) take the other slots; misuse is refused', () =>
  inTempDir('shards', (dir) => {
    const wb = new WriteBehind(2, 16);
    const tmp = join(dir, 'x.tmp');
    const want = Uint8Array.from({ length: 4 + 5 * 12 }, (_, i) => (i * 11 + 3) & 255);
    for (let r = 0; r < 5; r++) {
      const slot = wb.slot();
      assert.equal(slot.length, 16);
      assert.throws(() => wb.slot(), /one slot at a time is handed out/);
      // Filled in two steps around copied writes (two, so the second comes round to the slot handed out) that must
      // not land in it.
      slot.set(want.subarray(4 + 12 * r, 10 + 12 * r));
      if (r === 0) for (const at of [0, 2]) wb.write(tmp, want.subarray(at, at + 2), at);
      slot.set(want.subarray(10 + 12 * r, 16 + 12 * r), 6);
      wb.write(tmp, slot.subarray(0, 12), 4 + 12 * r);
    }
    assert.throws(() => wb.write(tmp, wb.slot().subarray(1, 5), 0), /must be the slot handed out/);
    wb.close(tmp);
    wb.drain();
    wb.stop();
    assert.deepEqual(new Uint8Array(readFileSync(tmp)), want);
  }));

test('WriteBehind: a failed write is reported to the caller with the reason, and stays reported', () =>
  inTempDir('shards', (dir) => {
    const wb = new WriteBehind(2, 16);
    const missing = join(dir, 'no-such-folder', 'x.tmp');
    // The failure surfaces in the call that next waits on the worker: a write needing a busy slot, or drain.
    assert.throws(() => {
      wb.write(missing, new Uint8Array(40), 0);
      wb.drain();
    }, /writing the checkpoint failed: ENOENT/);
    assert.throws(() => wb.drain(), /writing the checkpoint failed: ENOENT/);
    wb.stop();
  }));

test('WriteBehind: a close whose fsync fails (it runs off the write queue) still fails drain, naming the reason', () => {
  const wb = new WriteBehind(2, 16);
  // /dev/null takes writes but not fsync.
  wb.write('/dev/null', new Uint8Array(40), 0);
  wb.close('/dev/null');
  assert.throws(() => wb.drain(), /writing the checkpoint failed: EINVAL.*fsync/);
  wb.stop();
});

/** Waits (up to 10 s) until `ok()` holds; returns whether it does. */
async function waitFor(ok: () => boolean): Promise<boolean> {
  for (let waited = 0; !ok() && waited < 10_000; waited += 10) await sleep(10);
  return ok();
}

test('preallocateStart: each file gets its blocks up to its length (what it held kept); a missing file is skipped; a bad handle is refused', () =>
  inTempDir('prealloc', async (dir) => {
    const native = createRequire(import.meta.url)(nativeAddonPath()) as NativeKernels;
    const held = join(dir, 'held.bin'), empty = join(dir, 'empty.bin');
    writeFileSync(held, 'header');
    writeFileSync(empty, '');
    const lengths = [40 << 20, 3 << 20];
    const h = native.preallocateStart([held, join(dir, 'missing.bin'), empty], Float64Array.from([lengths[0], 1 << 20, lengths[1]]));
    // The second file of the list is missing: skipped, and the third is still allocated.
    assert.ok(await waitFor(() => statSync(empty).size === lengths[1]), 'the file after the missing one is preallocated');
    native.preallocateStop(h);
    native.preallocateStop(h); // again: a no-op
    for (const [file, length] of [[held, lengths[0]], [empty, lengths[1]]] as const) {
      const st = statSync(file);
      assert.equal(st.size, length, file);
      assert.ok(st.blocks * 512 >= length, `${file}: ${st.blocks * 512} bytes allocated, want ${length}`);
    }
    assert.equal(readFileSync(held).subarray(0, 6).toString(), 'header');
    assert.ok(!existsSync(join(dir, 'missing.bin')));
    assert.throws(() => native.preallocateStop({} as never), /handle from preallocateStart/);
    assert.throws(() => native.preallocateStart([held], Float64Array.from([-1])), /lengths\[0\] must be ≥ 0/);
  }));

test('ShardWriter: written behind, every shard is created with its header and preallocated to its full size before any tensor is written', () =>
  inTempDir('shards', async (dir) => {
    const w = new ShardWriter(dir, SPECS, 4000, { writeBehind: true });
    const shards = readdirSync(dir).filter((f) => f.includes('.tmp-')).sort();
    assert.equal(shards.length, 2);
    // Each shard's final size: its header, then its tensors' data.
    const sizes = shards.map((f) => {
      const head = readFileSync(join(dir, f)).subarray(0, 8);
      const headerLength = Number(new DataView(head.buffer, head.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(readFileSync(join(dir, f)).subarray(8, 8 + headerLength).toString()) as Record<string, { data_offsets?: number[] }>;
      return 8 + headerLength + Math.max(...Object.values(header).map((t) => t.data_offsets?.[1] ?? 0));
    });
    assert.ok(await waitFor(() => shards.every((f, i) => statSync(join(dir, f)).size === sizes[i])), `shards preallocated to ${sizes}`);
    w.abort();
    assert.deepEqual(readdirSync(dir), []);
  }));
