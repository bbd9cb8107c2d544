// The native addon's file mappings: windows holding the bytes of any range (page-aligned or not), one after another,
// private to the process, released on demand with the buffer detached, and errors that name the file; its page-cache
// check; and its read-ahead thread's handling of bad input (what it reads: test/merge/prefetch.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeAddonPath, type NativeKernels } from '../../src/engine/backend/native.js';

const native = createRequire(import.meta.url)(nativeAddonPath()) as NativeKernels;

test('mapWindow: any byte range into a window, in place of the last, copy-on-write, the rest zeros; unmap detaches; errors name the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-map-'));
  try {
    const path = join(dir, 'data.bin');
    const bytes = Uint8Array.from({ length: 3 * 4096 + 77 }, (_, i) => (i * 31 + 7) & 0xff);
    writeFileSync(path, bytes);
    // Four 64 KB pages' worth: room for any range of the file, and zeros past it whatever the page size.
    const window = native.reserveWindow(4 << 16);
    const view = new Uint8Array(window);
    assert.ok(window.byteLength >= 4 << 16 && view.every((b) => b === 0), 'a fresh window reads as zeros');
    for (const [offset, length] of [[0, bytes.length], [1, 10], [4095, 2], [4096, 4096], [5000, 7000], [bytes.length - 1, 1], [9, 0], [0, bytes.length], [4096, 10]]) {
      const at = native.mapWindow(window, path, offset, length);
      assert.deepEqual(view.subarray(at, at + length), bytes.subarray(offset, offset + length), `[${offset}, +${length})`);
      // What a longer range left past this one's pages is gone.
      assert.ok(view.subarray(Math.ceil((at + length) / (1 << 16)) * (1 << 16)).every((b) => b === 0), `zeros past [${offset}, +${length})`);
    }
    const at = native.mapWindow(window, path, 100, 50);
    view.fill(0, at, at + 50);
    native.mapWindow(window, path, 0, bytes.length);
    assert.deepEqual(view.subarray(0, bytes.length), bytes, 'writes to a window never reach the file, nor the next mapping');
    assert.deepEqual(new Uint8Array(readFileSync(path)), bytes);
    assert.throws(() => native.mapWindow(window, join(dir, 'missing.bin'), 0, 8), /missing\.bin/);
    assert.throws(() => native.mapWindow(window, path, bytes.length - 4, 8), /data\.bin: bytes \[\d+, \d+\) lie past the end of the file .* truncated/);
    const small = native.reserveWindow(4096);
    assert.throws(() => native.mapWindow(small, path, 0, small.byteLength + 1), /data\.bin: \d+ bytes at 0 do not fit a window of \d+ bytes/);
    for (const w of [window, small]) {
      native.unmap(w);
      assert.equal(w.byteLength, 0, 'detached after unmap');
      native.unmap(w); // a second release is a no-op
    }
    assert.throws(() => native.mapWindow(window, path, 0, 8), /window from reserveWindow/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pageCached: a file just written is in the page cache, a sparse one never read is not; a missing file and a range past the end are named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-cached-'));
  try {
    const written = join(dir, 'written.bin'), sparse = join(dir, 'sparse.bin');
    writeFileSync(written, new Uint8Array(3 * 4096 + 77).fill(7));
    writeFileSync(sparse, new Uint8Array(0));
    truncateSync(sparse, 1 << 20);
    assert.equal(native.pageCached(written, 0, 3 * 4096 + 77), true);
    assert.equal(native.pageCached(written, 5000, 10), true);
    assert.equal(native.pageCached(sparse, 0, 1 << 20), false);
    assert.equal(native.pageCached(sparse, 9, 0), true, 'an empty range');
    assert.throws(() => native.pageCached(join(dir, 'missing.bin'), 0, 8), /missing\.bin/);
    assert.throws(() => native.pageCached(written, 3 * 4096 + 70, 8), /written\.bin: bytes \[\d+, \d+\) lie past the end of the file .* truncated/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readAheadStart: tolerates missing files and ranges past the end (its reads only help), leaves the files as they were; stops twice; arguments checked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-readahead-'));
  try {
    const path = join(dir, 'data.bin');
    const bytes = Uint8Array.from({ length: 3 * 4096 + 77 }, (_, i) => (i * 13 + 5) & 0xff);
    writeFileSync(path, bytes);
    const f64 = (...v: number[]) => Float64Array.from(v);
    // Tensor 0: a missing file and a range past the end; tensor 1: unaligned ranges of the file; tensor 2: none.
    const handle = native.readAheadStart([join(dir, 'missing.bin'), path, path, path], Int32Array.of(2, 2, 0), f64(0, 5000, 1, 4095), f64(8, 1 << 20, 10, 2), 1 << 30);
    native.readAheadAt(handle, 1);
    native.readAheadStop(handle);
    native.readAheadStop(handle);
    assert.deepEqual(new Uint8Array(readFileSync(path)), bytes);
    assert.throws(() => native.readAheadAt({} as never, 0), /readAheadAt: argument 0 must be a handle from readAheadStart/);
    assert.throws(() => native.readAheadStart([path], Int32Array.of(2), f64(0), f64(8), 0), /counts must be ≥ 0 and sum to at most the number of paths/);
    assert.throws(() => native.readAheadStart([path], Int32Array.of(1), f64(-1), f64(8), 0), /offsets\[0\] and lengths\[0\] must be ≥ 0/);
    assert.throws(() => native.readAheadStart([path, path], Int32Array.of(2), f64(0), f64(8), 0), /offsets and lengths must hold a number per path/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
