import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { openCheckpointTensors } from '../../src/io/sharded.js';

function readW(dir: string): Float32Array {
  const src = openCheckpointTensors(dir);
  const w = src.read('w') as Float32Array;
  src.close();
  return w;
}

test('peftjs merge CONFIG --out DIR runs a config with relative paths; bad configs exit 1 naming the key', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'peftjs-merge-cli-'));
  try {
    for (const [name, v] of [['m1', 1], ['m2', 5]] as const) {
      writeSafetensors(join(tmp, `${name}.safetensors`), { w: { dtype: 'F32', shape: [3], data: new Float32Array([v, 2 * v, 0]) } });
    }
    writeFileSync(join(tmp, 'cfg.yaml'), 'merge_method: linear\nmodels:\n  - {model: m1.safetensors, parameters: {weight: 3}}\n  - {model: m2.safetensors, parameters: {weight: 1}}\n');
    const out = join(tmp, 'out');
    assert.equal(await main(['merge', join(tmp, 'cfg.yaml'), '--out', out, '--quiet']), 0);
    const src = openCheckpointTensors(out);
    assert.deepEqual(src.read('w'), new Float32Array([2, 4, 0]));
    src.close();
    writeFileSync(join(tmp, 'bad.yaml'), 'merge_method: linear\nmodels: [{model: m1.safetensors, parameters: {weight: 1}}]\nlayer_stack: 1\n');
    // A checkpoint with another tensor: the merge's own error, its "merge: " said once after the command's name.
    writeSafetensors(join(tmp, 'm3.safetensors'), { v: { dtype: 'F32', shape: [3], data: new Float32Array(3) } });
    writeFileSync(join(tmp, 'apart.yaml'), 'merge_method: linear\nmodels:\n  - {model: m1.safetensors, parameters: {weight: 1}}\n  - {model: m3.safetensors, parameters: {weight: 1}}\n');
    const errors: string[] = [];
    const orig = console.error;
    console.error = (m: string) => errors.push(m);
    try {
      assert.equal(await main(['merge', join(tmp, 'bad.yaml'), '--out', out]), 1);
      assert.equal(await main(['merge', join(tmp, 'apart.yaml'), '--out', join(tmp, 'out2')]), 1);
    } finally {
      console.error = orig;
    }
    assert.match(errors[0], /bad\.yaml: merge config: layer_stack: unsupported key/);
    assert.match(errors[1], /^peftjs merge: \S*m3\.safetensors has tensor "v", which \S*m1\.safetensors lacks/);
    assert.equal(await main(['merge', join(tmp, 'cfg.yaml')]).catch(() => -1), 2, 'missing --out is a usage error');
    assert.equal(await main(['merge', join(tmp, 'none.yaml'), out]).catch(() => -1), 2, 'a missing config file is a usage error');
    // mergekit-yaml's order: the output folder after the config; given both ways, it is a usage error.
    const second = join(tmp, 'out-positional');
    assert.equal(await main(['merge', join(tmp, 'cfg.yaml'), second, '--quiet']), 0);
    assert.deepEqual(readW(second), readW(out));
    assert.equal(await main(['merge', join(tmp, 'cfg.yaml'), second, '--out', out]).catch(() => -1), 2);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
