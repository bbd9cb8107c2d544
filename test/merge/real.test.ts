// Merges of real files: a Hugging Face checkpoint (stories260K in HF Llama layout, tied embeddings) run end to end
// through the CLI, whose merged folder loads and computes the logits of the model it should equal; and a HF PEFT LoRA
// adapter written by Python PEFT, merged in LoRA space.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pj from '../../src/index.js';
import { main } from '../../src/cli/main.js';
import { openCheckpointTensors } from '../../src/io/sharded.js';
import { writeSafetensors, type TensorData } from '../../src/io/safetensors.js';
import { loraDelta, mergeLoraAdapters, readLoraAdapter } from '../../src/merge/adapters.js';
import { inTempDir } from '../helpers/temp.js';

const SHARED = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
const STORIES = join(SHARED, 'stories260K-hf');

/** The largest |a[i] − b[i]|. */
const gap = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

/** The next-token logits of the checkpoint in `dir` for a fixed prompt. */
function logits(dir: string): Float32Array {
  const model = pj.loadCausalLM(dir);
  const out = pj.noGrad(() => model.forward(pj.tensor([1, 403, 407, 261, 378], [1, 5], 'i32')).toTyped()) as Float32Array;
  model.dispose();
  return out;
}

test('a TIES merge of a real checkpoint with one fine-tune of it (density 1) computes as the fine-tune does', () =>
  inTempDir('merge-real', async (tmp) => {
    // The "fine-tune": every floating tensor moved by a small, tensor-specific δ; the other files as the base's.
    const ft = join(tmp, 'ft');
    mkdirSync(ft);
    const base = openCheckpointTensors(STORIES);
    const tensors: [string, TensorData][] = base.names().map((name, k) => {
      const info = base.info(name);
      const data = Float32Array.from(base.read(name) as Float32Array, (x, i) => x + 0.02 * Math.sin(i * 0.37 + k));
      return [name, { dtype: info.dtype, shape: info.shape, data }];
    });
    base.close();
    assert.ok(tensors.every(([, t]) => t.dtype === 'F32'), 'the checkpoint is f32');
    writeSafetensors(join(ft, 'model.safetensors'), tensors);
    copyFileSync(join(STORIES, 'config.json'), join(ft, 'config.json'));
    writeFileSync(join(tmp, 'ties.yaml'), `merge_method: ties\nbase_model: ${STORIES}\nmodels:\n  - {model: ft, parameters: {weight: 1, density: 1}}\n`);
    const out = join(tmp, 'out');
    assert.equal(await main(['merge', join(tmp, 'ties.yaml'), out, '--quiet']), 0);
    // The base's other files (config, tokenizer files, llama2.c's tok512.bin among them, license) come along; its card
    // gives way to the merge's.
    assert.deepEqual(readdirSync(out).sort(), [...new Set([...readdirSync(STORIES), 'README.md', 'mergekit_config.yml'])].sort());
    const [merged, want, original] = [logits(out), logits(ft), logits(STORIES)];
    assert.ok(gap(merged, want) < 1e-4, `merged vs fine-tune: ${gap(merged, want)}`);
    assert.ok(gap(original, want) > 0.1, 'the fine-tune computes differently from the base');
  }));

test('adapter merges of a real HF PEFT LoRA (gpt2, fan_in_fan_out, α 32, r 8): cat and svd keep its ΔW in every module; a saved classifier head is refused, naming it', () =>
  inTempDir('merge-real-lora', (tmp) => {
    const tigrinya = join(SHARED, 'lora-gpt2-tigrinya-causallm');
    const source = readLoraAdapter(tigrinya);
    assert.equal(source.modules.size, 36, 'c_attn, attn.c_proj and mlp.c_proj in 12 blocks');
    for (const combination of ['cat', 'svd'] as const) {
      // Weights summing to 1 over the same adapter: the merge is that adapter's ΔW, now with scale 1.
      const out = join(tmp, combination);
      mergeLoraAdapters([tigrinya, tigrinya], [0.25, 0.75], combination, out);
      const merged = readLoraAdapter(out);
      assert.equal(merged.config.r, combination === 'cat' ? 16 : 8);
      for (const [name, p] of source.modules) {
        const want = loraDelta(p), got = loraDelta(merged.modules.get(name)!);
        const scale = gap(want, new Float32Array(want.length)), off = gap(want, got);
        assert.ok(off < 1e-4 * scale, `${combination} ${name}: ΔW off by ${off} (max |ΔW| ${scale})`);
      }
    }
    const seqcls = join(SHARED, 'lora-gpt2-seqcls-anirudh');
    assert.throws(() => mergeLoraAdapters([seqcls, tigrinya], [1, 1], 'cat', join(tmp, 'x')), /lora-gpt2-seqcls-anirudh: tensor "base_model\.model\.score\.weight" is not a LoRA linear factor/);
  }));
