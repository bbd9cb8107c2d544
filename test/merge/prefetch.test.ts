// The read-ahead thread: it brings every tensor's ranges, of several checkpoints at once, into the page cache, no
// further ahead of the merge than it is allowed (checked with the native page-cache query on files evicted first with
// GNU dd).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { nativeAddonPath, type NativeKernels } from '../../src/engine/backend/native.js';
import { Prefetcher, type FileRange } from '../../src/merge/prefetch.js';

const native = createRequire(import.meta.url)(nativeAddonPath()) as NativeKernels;

/** Files of `bytes` each, written back to disk (so that their pages can be dropped from the page cache) in `dir`. */
function checkpoints(dir: string, names: string[], bytes: number): string[] {
  return names.map((name, k) => {
    const path = join(dir, `${name}.safetensors`);
    writeFileSync(path, Uint8Array.from({ length: bytes }, (_, i) => (i * 7 + k) & 0xff));
    const fd = openSync(path, 'r');
    fsyncSync(fd);
    closeSync(fd);
    return path;
  });
}

const cached = (ranges: readonly FileRange[]) => ranges.every((r) => native.pageCached(r.file, r.offset, r.length));

/** Drops the files' pages from the page cache; false where that cannot be done here. */
function evict(files: string[], ranges: readonly FileRange[]): boolean {
  for (const f of files) spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
  return !ranges.some((r) => native.pageCached(r.file, r.offset, r.length));
}

async function waitFor(ok: () => boolean): Promise<boolean> {
  for (let waited = 0; !ok() && waited < 20_000; waited += 20) await sleep(20);
  return ok();
}

test('Prefetcher: the read-ahead reads every range of every tensor into the page cache, checkpoints side by side', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-prefetch-'));
  try {
    const files = checkpoints(dir, ['base', 'a', 'b'], 3 << 20);
    // Two tensors per file, the second longer than one read-ahead piece (8 MB) would need: [0, 1 MB) and [1 MB, 3 MB).
    const tensors: FileRange[][] = [0, 1].map((u) => files.map((file) => ({ file, offset: u << 20, length: (u + 1) << 20 })));
    if (!evict(files, tensors.flat())) return t.skip('cannot evict the files from the page cache here (GNU dd, or a tmpfs)');
    const prefetch = new Prefetcher(tensors, 1 << 30, native);
    prefetch.at(0);
    const all = await waitFor(() => cached(tensors.flat()));
    prefetch.close();
    assert.ok(all, 'every range is in the page cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Prefetcher: the read-ahead stays within its bytes ahead of the tensor the merge is on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-prefetch-'));
  try {
    const files = checkpoints(dir, ['first', 'second', 'third'], 1 << 20);
    // A tensor per file; one tensor ahead allowed (1 MB).
    const tensors: FileRange[][] = files.map((file) => [{ file, offset: 0, length: 1 << 20 }]);
    if (!evict(files, tensors.flat())) return t.skip('cannot evict the files from the page cache here (GNU dd, or a tmpfs)');
    const prefetch = new Prefetcher(tensors, 1 << 20, native);
    try {
      assert.ok(await waitFor(() => cached([...tensors[0], ...tensors[1]])), 'the tensor the merge is on and the next are read');
      await sleep(300);
      assert.ok(!cached(tensors[2]), 'the tensor two ahead is not read before the merge moves on');
      prefetch.at(1);
      assert.ok(await waitFor(() => cached(tensors[2])), 'it is read once the merge reaches the next tensor');
    } finally {
      prefetch.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
