/** `peftjs inspect`: what a checkpoint holds — architecture, config summary, parameter count, named parameters. */
import { parseArgs } from 'node:util';
import type { Module } from '../nn/index.js';
import { loadModel, type PretrainedModel } from '../models/index.js';
import { formatAdapterSummary } from '../peft/inspect.js';
import { parseOrUsage, UsageError, type Command } from './command.js';

const usage = `usage: peftjs inspect DIR|FILE.bin [--dtype f32|bf16] [--adapter ADAPTER_DIR]
       peftjs inspect --adapter ADAPTER_DIR

Prints the architecture, a config summary, the parameter count and every module with its parameters
(Hugging Face names, shapes and dtypes). With --adapter, also (or only) a HF PEFT adapter: its config, target
modules, ranks and parameter count.`;

/** 1234567 → '1.23M'. */
function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** The model section: header, config summary, then each module (class) with its own parameters. */
export function describeModel(model: PretrainedModel, source: string): string {
  const c = model.config;
  const params = model.namedParameters();
  const total = params.reduce((a, [, p]) => a + p.size, 0);
  const lines = [
    `${source}: ${model.constructor.name} (model_type ${c.modelType})`,
    `  vocab ${c.vocabSize}, hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}, layers ${c.numLayers}, ` +
      `heads ${c.numHeads} (kv ${c.numKvHeads}, head dim ${c.headDim}), max positions ${c.maxPositions}, ` +
      `tied embeddings ${c.tieWordEmbeddings}, bos ${c.bosTokenId ?? '-'}, eos ${c.eosTokenIds.join('/') || '-'}`,
    `  parameters: ${count(total)} (${total})`,
    '',
  ];
  const width = Math.max(...params.map(([n]) => n.length));
  for (const [name, m] of model.namedModules()) {
    if (name === '') continue;
    const own = (m as Module).namedParameters().filter(([n]) => !n.includes('.'));
    lines.push(`${name}  ${m.constructor.name}`);
    for (const [n, p] of own) lines.push(`  ${`${name}.${n}`.padEnd(width)}  ${p.dtype.padEnd(4)}  [${p.shape.join(', ')}]`);
  }
  return lines.join('\n');
}

const command: Command = {
  summary: 'show a checkpoint: architecture, config, parameter names, shapes and dtypes',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(usage, () =>
      parseArgs({
      args,
      allowPositionals: true,
      options: {
        dtype: { type: 'string' },
        adapter: { type: 'string' },
      },
      }),
    );
    if (positionals.length > 1 || (positionals.length === 0 && !values.adapter)) throw new UsageError(`give exactly one checkpoint\n\n${usage}`);
    const dtype = values.dtype ?? 'f32';
    if (dtype !== 'f32' && dtype !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got '${dtype}'`);
    const sections: string[] = [];
    const source = positionals[0];
    if (source !== undefined) {
      const model = loadModel(source, { dtype });
      sections.push(describeModel(model, source));
      model.dispose();
    }
    if (values.adapter) sections.push(formatAdapterSummary(values.adapter));
    console.log(sections.join('\n\n'));
    return 0;
  },
};

export default command;
