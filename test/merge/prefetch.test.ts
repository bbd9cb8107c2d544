// The read-ahead worker: it brings every tensor's ranges, of several checkpoints at once, into the page cache (checked
// with the native page-cache query on files evicted first with GNU dd).
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

test('Prefetcher: the worker reads every range of every tensor into the page cache, checkpoints side by side', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-prefetch-'));
  try {
    const bytes = 3 << 20;
    const files = ['base', 'a', 'b'].map((name, k) => {
      const path = join(dir, `${name}.safetensors`);
      writeFileSync(path, Uint8Array.from({ length: bytes }, (_, i) => (i * 7 + k) & 0xff));
      // Written back, so that dropping its pages from the page cache below can succeed.
      const fd = openSync(path, 'r');
      fsyncSync(fd);
      closeSync(fd);
      return path;
    });
    // Two tensors per file, the second longer than one read-ahead piece (8 MB) would need: [0, 1 MB) and [1 MB, 3 MB).
    const tensors: FileRange[][] = [0, 1].map((u) => files.map((file) => ({ file, offset: u << 20, length: (u + 1) << 20 })));
    const cached = () => tensors.flat().every((r) => native.pageCached(r.file, r.offset, r.length));
    for (const f of files) spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
    if (tensors.flat().some((r) => native.pageCached(r.file, r.offset, r.length))) return t.skip('cannot evict the files from the page cache here (GNU dd, or a tmpfs)');
    const prefetch = new Prefetcher(tensors, 1 << 30, nativeAddonPath());
    prefetch.at(0);
    for (let waited = 0; !cached() && waited < 20_000; waited += 20) await sleep(20);
    prefetch.close();
    assert.ok(cached(), 'every range is in the page cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
