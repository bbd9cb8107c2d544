/** `peftjs merge config.yaml --out DIR` (or `… config.yaml DIR`, as mergekit-yaml): a streamed merge from a mergekit-style YAML config. */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { parseMergeConfig, runMerge } from '../merge/index.js';

const usage = `usage: peftjs merge CONFIG.yaml --out DIR [--shard-size SIZE] [--seed N] [--quiet]
       peftjs merge CONFIG.yaml DIR [options]            (mergekit-yaml's order)

Merges checkpoints (safetensors, single-file or sharded) as the config says, tensor by tensor, writing DIR in
shards, with the config (mergekit_config.yml) and a model card (README.md) beside them. The config follows
mergekit's schema: merge_method (linear, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs,
breadcrumbs_ties, slerp, fisher, regmean), models with parameters, base_model, parameters (per-tensor filters,
per-layer gradients), dtype. Relative model paths are relative to the config.

  --out DIR          output folder (required, here or as the second argument)
  --shard-size SIZE  largest output shard, e.g. 2GB, 500MB (default 5GB)
  --seed N           seed of the random methods (dare_*), default 0
  --quiet            no progress lines`;

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?$/i.exec(s);
  if (!m) throw new UsageError(`--shard-size: cannot read ${JSON.stringify(s)} (e.g. 2GB, 500MB)`);
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[(m[2] ?? 'B').toUpperCase() as 'B'];
  return Math.round(Number(m[1]) * unit);
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

const merge: Command = {
  summary: 'merge models (TIES, DARE, SLERP, Fisher, RegMean, …) from a mergekit-style YAML config',
  usage,
  async run(args) {
    let config: string | undefined, out: string | undefined, positional: string | undefined, shard: number | undefined, seed = 0, quiet = false;
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      const value = () => {
        if (i + 1 >= args.length) throw new UsageError(`${a} needs a value`);
        return args[++i];
      };
      if (a === '--out') out = value();
      else if (a === '--shard-size') shard = parseSize(value());
      else if (a === '--seed') seed = Number(value());
      else if (a === '--quiet') quiet = true;
      else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}\n\n${usage}`);
      else if (config === undefined) config = a;
      else if (positional === undefined) positional = a;
      else throw new UsageError(`unexpected argument ${a}`);
    }
    if (!config) throw new UsageError(`a config file is required\n\n${usage}`);
    if (out !== undefined && positional !== undefined) throw new UsageError(`the output folder is given twice (${positional} and --out ${out})`);
    out ??= positional;
    if (!out) throw new UsageError('an output folder is required: --out DIR, or DIR after the config');
    if (!Number.isInteger(seed)) throw new UsageError('--seed must be an integer');
    const parsed = parseMergeConfig(readFileSync(config, 'utf8'), dirname(config));
    const report = runMerge(parsed, out, {
      maxShardBytes: shard,
      seed,
      onProgress: quiet
        ? undefined
        : (p) => process.stderr.write(`\r[${p.index}/${p.total}] ${gb(p.bytesRead)} / ${gb(p.bytesTotal)} read  ${p.name.slice(0, 60).padEnd(60)}`),
    });
    if (!quiet) process.stderr.write('\n');
    console.log(
      `merged ${report.tensors} tensors with ${parsed.mergeMethod} into ${out} (${report.files.length} file(s), ${gb(report.bytesWritten)}) ` +
        `in ${report.seconds.toFixed(1)} s — ${(report.bytesRead / 1e9 / report.seconds).toFixed(2)} GB/s read, peak RSS ${gb(report.peakRssBytes)}`,
    );
    return 0;
  },
};

export default merge;
