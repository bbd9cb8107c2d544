/**
 * Produces the embedded default base model in assets/default-model/ (see docs/quickstart.md):
 *
 *   node --import tsx scripts/make-default-model.ts [--steps N] [--out DIR]
 *
 * Writes the byte-level tokenizer, config.json, pretrains the tiny Llama from scratch on the synthetic corpus
 * with peftjs's engine (deterministic: fixed seeds, fixed recipe) and writes model.safetensors and a README with
 * the provenance and the measured loss and time.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backend } from '../src/engine/index.js';
import { tensorData } from '../src/peft/format.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { DEFAULT_MODEL_DIR, DEFAULT_RECIPE, MAX_POSITIONS, defaultModelConfig } from '../src/quickstart/default-model.js';
import { pretrain } from '../src/quickstart/pretrain.js';
import { tokenizerConfigJson, tokenizerJson } from '../src/quickstart/tokenizer.js';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const out = flag('out') ?? DEFAULT_MODEL_DIR;
const recipe = { ...DEFAULT_RECIPE, ...(flag('steps') ? { steps: Number(flag('steps')) } : {}) };
mkdirSync(out, { recursive: true });
const config = defaultModelConfig();
const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
writeFileSync(join(out, 'config.json'), json(config));
writeFileSync(join(out, 'tokenizer.json'), json(tokenizerJson()));
writeFileSync(join(out, 'tokenizer_config.json'), json(tokenizerConfigJson(MAX_POSITIONS)));
const tok = loadTokenizer(out);

console.log(`pretraining ${out} on the ${backend().name} backend: ${JSON.stringify(recipe)}`);
const r = pretrain(config, tok, recipe, (line) => console.log(line));
const params = r.model.namedParameters();
writeSafetensors(join(out, 'model.safetensors'), params.map(([n, p]) => [n, tensorData(p)] as const), { format: 'pt' });
const count = params.reduce((s, [, p]) => s + p.size, 0);
console.log(`done: ${count} parameters, loss ${r.firstLoss.toFixed(4)} → ${r.finalLoss.toFixed(4)}, ${r.seconds.toFixed(0)} s`);

const c = config as Record<string, number | string | boolean>;
writeFileSync(
  join(out, 'README.md'),
  `# peftjs default model

A tiny Llama-architecture language model (HF layout: \`config.json\` with \`model_type: llama\`, \`model.safetensors\`,
\`tokenizer.json\`), pretrained from random weights by peftjs itself. It is the base model of \`peftjs quickstart\`.
No third-party weights or data: everything here is produced by \`scripts/make-default-model.ts\`.

- Architecture: ${c.num_hidden_layers} decoder layers, hidden size ${c.hidden_size}, MLP ${c.intermediate_size} (SwiGLU),
  ${c.num_attention_heads} query heads / ${c.num_key_value_heads} key-value heads (GQA), RoPE θ ${c.rope_theta}, RMSNorm, tied
  input/output embeddings, ${count.toLocaleString('en-US')} parameters (float32), up to ${c.max_position_embeddings} positions.
- Tokenizer: byte-level (GPT-2 byte table, no merges): \`<pad>\`=0, \`<s>\`=1 (BOS, prepended), \`</s>\`=2 (EOS), then the
  256 bytes — any text round-trips.
- Corpus: ${recipe.documents.toLocaleString('en-US')} synthetic one-line documents (\`src/quickstart/corpus.ts\`, seed ${recipe.seed},
  ${r.corpusTokens.toLocaleString('en-US')} tokens): filler sentences; sums, capital letters, keyword sentiment and k=v records
  written as JSON, all stated in prose; and \`copy(x)=x\`, \`len(x)=n\`, \`first(x)=c\`, \`last(x)=c\` lines that teach the
  answer format. It holds no record of the quickstart tasks (\`a+b=\`, \`upper(…)=\`, \`mood(…)=\`, \`json(…)=\`).
- Training: full training of every parameter with peftjs's autograd and AdamW (β₂ 0.99, weight decay
  ${recipe.weightDecay}), ${recipe.steps} steps of ${recipe.batchSize}×${recipe.seqLen} packed tokens
  (${r.tokensSeen.toLocaleString('en-US')} tokens), peak lr ${recipe.lr} with ${recipe.warmupSteps} warmup steps and cosine decay
  to 10 %, gradient-norm clip 1. Loss ${r.firstLoss.toFixed(3)} (mean of the first ${r.window} steps) → ${r.finalLoss.toFixed(3)} (last ${r.window} steps).
- Reproduce: \`node --import tsx scripts/make-default-model.ts\` (${r.seconds.toFixed(0)} s on the machine that made this file,
  ${backend().name} backend). The run is deterministic for a given backend and thread count.
`,
);
