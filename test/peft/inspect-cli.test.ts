// `peftjs inspect --adapter DIR` prints the adapter's config, targets, ranks and parameter count.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.js';

it('peftjs inspect --adapter on a real PEFT adapter', async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  let code: number;
  try {
    code = await main(['inspect', '--adapter', '../shared/models/lora-gpt2-seqcls-anirudh']);
  } finally {
    console.log = log;
  }
  assert.equal(code, 0);
  const text = lines.join('\n');
  assert.match(text, /peft_type LORA, task_type SEQ_CLS, base model gpt2/);
  assert.match(text, /target_modules \["c_attn"\]/);
  assert.match(text, /r=8 on 12 module\(s\)/);
  // 12 × (8·768 + 2304·8) LoRA + the 6×768 score head = 299,520
  assert.match(text, /parameters: 299,520 \(LoRA 294,912, other 4,608\)/);
  assert.match(text, /transformer\.h\.11\.attn\.c_attn {2}linear 768→2304 {2}r=8/);
});
