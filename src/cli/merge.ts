/** `peftjs merge config.yaml --out DIR` (or `… config.yaml DIR`, as mergekit-yaml): a streamed merge from a mergekit-style YAML config. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { SingleBar } from 'cli-progress';
import { MergeConfigError, parseMergeConfig, runMerge, type MergeProgress } from '../merge/index.js';

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

/** The merge's progress bar (cli-progress on stderr), over the bytes read: GB, GB/s, ETA, the tensor just merged. */
function progressBar(): { update: (p: MergeProgress) => void; stop: () => void } {
  const bar = new SingleBar({
    format: 'merge |{bar}| {read} / {all} GB | {speed} GB/s | ETA {eta_formatted} | {tensor}',
    stream: process.stderr,
    hideCursor: true,
    etaBuffer: 20,
    fps: 5,
  });
  const started = performance.now();
  let begun = false;
  return {
    // The merge runs synchronously, so the bar redraws from these calls rather than from its timer.
    update: (p) => {
      const payload = { read: (p.bytesRead / 1e9).toFixed(2), all: (p.bytesTotal / 1e9).toFixed(2), speed: (p.bytesRead / 1e6 / (performance.now() - started)).toFixed(2), tensor: p.name.length > 48 ? `…${p.name.slice(-47)}` : p.name };
      if (!begun) bar.start(p.bytesTotal, p.bytesRead, payload);
      else bar.update(p.bytesRead, payload);
      begun = true;
    },
    stop: () => {
      if (begun) bar.stop();
    },
  };
}

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
    if (!existsSync(config)) throw new UsageError(`the config file ${config} does not exist`);
    let parsed;
    try {
      parsed = parseMergeConfig(readFileSync(config, 'utf8'), dirname(config));
    } catch (e) {
      // The problem names the key; the file is named here.
      throw e instanceof MergeConfigError ? new MergeConfigError(`${config}: ${e.message}`) : e;
    }
    const bar = quiet ? null : progressBar();
    let report;
    try {
      report = runMerge(parsed, out, { maxShardBytes: shard, seed, onProgress: bar?.update });
    } finally {
      bar?.stop();
    }
    console.log(
      `merged ${report.tensors} tensors with ${parsed.mergeMethod} into ${out} (${report.files.length} file(s), ${gb(report.bytesWritten)}) ` +
        `in ${report.seconds.toFixed(1)} s — ${(report.bytesRead / 1e9 / report.seconds).toFixed(2)} GB/s read, peak RSS ${gb(report.peakRssBytes)}`,
    );
    return 0;
  },
};

export default merge;
