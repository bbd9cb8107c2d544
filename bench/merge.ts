/**
 * Out-of-core merge throughput and memory: generates a base and two fine-tuned bf16 checkpoints (~0.5 GB each,
 * llama-shaped, sharded), then runs a linear merge (2 models) and a TIES merge (base + 2 models), each in a fresh
 * process with its inputs cold (evicted from the page cache) right after reading the same inputs cold, one file after
 * another and all at once (this VM's disk speed drifts by 2× within minutes, so each merge is compared with
 * measurements taken just before it). It reports GB/s of checkpoint bytes read against the better of those two read
 * speeds (goal ≥ 80%) and the peak RSS against 3× the largest tensor (in f32, the unit merges compute in) plus one
 * output shard. Since one disk both reads the inputs and writes the output (fsync'd), it also prints the ceiling
 * that sets: bytes read / (read time + write time at the measured speeds); and it runs each merge again with the
 * output in memory (/dev/shm), where the disk only reads. After each cold merge it runs the same merge again with
 * its inputs still in the page cache and its output in memory: that warm merge's GB/s against the disk's read speed
 * is the most any overlap of reading with computing could reach on this machine (the "compute ceiling" column).
 * Reading from the disk costs CPU as well (the kernel's page-cache and interrupt work, on the same cores): each read
 * above also measures the machine's busy CPU seconds per GB, and the "CPU ceiling" is what the cores allow when they
 * do both the warm merge's work and the reading's, spread evenly. Each row is the median of `--repeat` runs
 * (default 3).
 *
 * Run: `npm run bench:merge` (or `node --import tsx bench/merge.ts [--layers N] [--dir DIR] [--repeat N] [--keep]`).
 * Inputs are evicted from the page cache with GNU dd (no root needed); where that fails the numbers are for cached reads
 * and say so.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ShardWriter, type TensorSpec } from '../src/merge/shard-writer.js';
import { fromF32 } from '../src/merge/dtype.js';
import { parseMergeConfig, runMerge } from '../src/merge/config.js';

const HIDDEN = 2048, INTER = 5632, VOCAB = 32000;
const SHARD_BYTES = 256_000_000;

function specs(layers: number): TensorSpec[] {
  const s: TensorSpec[] = [{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [VOCAB, HIDDEN] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) s.push({ name: `${p}self_attn.${proj}.weight`, dtype: 'BF16', shape: [HIDDEN, HIDDEN] });
    s.push({ name: `${p}mlp.gate_proj.weight`, dtype: 'BF16', shape: [INTER, HIDDEN] });
    s.push({ name: `${p}mlp.up_proj.weight`, dtype: 'BF16', shape: [INTER, HIDDEN] });
    s.push({ name: `${p}mlp.down_proj.weight`, dtype: 'BF16', shape: [HIDDEN, INTER] });
    s.push({ name: `${p}input_layernorm.weight`, dtype: 'BF16', shape: [HIDDEN] });
    s.push({ name: `${p}post_attention_layernorm.weight`, dtype: 'BF16', shape: [HIDDEN] });
  }
  s.push({ name: 'model.norm.weight', dtype: 'BF16', shape: [HIDDEN] });
  return s;
}

/** Deterministic pseudo-normal-ish values: the base's are seeded by the tensor index, a model adds a small delta. */
function values(n: number, tensorSeed: number, modelSeed: number): Float32Array {
  const out = new Float32Array(n);
  let a = (tensorSeed * 2654435761) >>> 0 || 1, b = (modelSeed * 40503 + tensorSeed * 97) >>> 0 || 7;
  for (let i = 0; i < n; i++) {
    a ^= a << 13; a ^= a >>> 17; a ^= a << 5; a >>>= 0;
    let v = ((a & 0xffff) - 32768) / 32768 * 0.05;
    if (modelSeed > 0) {
      b ^= b << 13; b ^= b >>> 17; b ^= b << 5; b >>>= 0;
      v += ((b & 0xffff) - 32768) / 32768 * 0.002;
    }
    out[i] = v;
  }
  return out;
}

function generate(dir: string, layers: number, modelSeed: number): void {
  const list = specs(layers);
  const w = new ShardWriter(dir, list, SHARD_BYTES);
  list.forEach((s, t) => w.write(s.name, fromF32(values(s.shape.reduce((x, y) => x * y, 1), t + 1, modelSeed), 'BF16')));
  w.finish();
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], num_hidden_layers: layers, hidden_size: HIDDEN, torch_dtype: 'bfloat16' }));
}

/**
 * Evicts `files` from the page cache after writing dirty pages back (GNU dd's `iflag=nocache count=0` drops a whole
 * file's cached pages; no root needed); false where that fails. Only the checkpoints are evicted: the merge runs with
 * Node, the addon and their libraries cached, as a user's would, and reads its inputs from the disk. (Through run 20
 * the bench dropped the whole page cache, so each cold merge also re-read Node's own pages from the disk.)
 */
function evict(files: string[]): boolean {
  spawnSync('sync');
  return files.every((f) => spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']).status === 0);
}

const shardFiles = (dirs: string[]) => dirs.flatMap((d) => readdirSync(d).filter((x) => x.endsWith('.safetensors')).map((f) => join(d, f)));

/** /proc/stat's clock ticks per second, asked for once (only the parent process reads /proc/stat). */
let tick = 0;

/**
 * The machine's busy CPU time so far, in seconds: user, nice, system, and hard and soft interrupts (where a disk's
 * completions run) over every core, from /proc/stat; NaN where there is none (not Linux).
 */
function busySeconds(): number {
  if (!existsSync('/proc/stat')) return NaN;
  tick ||= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
  const [, user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq) / tick;
}

/** A cold read: its speed (GB/s) and the CPU it cost the machine, in seconds per GB (the kernel's work included). */
interface Read {
  gbps: number;
  cpuPerGB: number;
}

/** Times `read` (which reads `files`) with them evicted from the page cache first. */
function coldRead(files: string[], read: () => void): Read {
  evict(files);
  const bytes = totalBytes(files), t0 = performance.now(), busy0 = busySeconds();
  read();
  const busy = busySeconds() - busy0;
  return { gbps: bytes / 1e9 / ((performance.now() - t0) / 1000), cpuPerGB: busy / (bytes / 1e9) };
}

const totalBytes = (files: string[]) => files.reduce((a, f) => a + statSync(f).size, 0);

/** Every shard under `dirs` read one after the other in 16 MiB reads. */
function sequentialRead(dirs: string[]): Read {
  const buf = Buffer.allocUnsafe(16 << 20), files = shardFiles(dirs);
  return coldRead(files, () => {
    for (const file of files) {
      const fd = openSync(file, 'r');
      while (readSync(fd, buf, 0, buf.length, null) > 0);
      closeSync(fd);
    }
  });
}

/**
 * Every shard under `dirs` read all at once, one `cat` each: a virtual disk serves several streams faster than one,
 * and a merge reads with two (its own and the read-ahead's).
 */
function parallelRead(dirs: string[]): Read {
  const files = shardFiles(dirs);
  return coldRead(files, () => {
    const r = spawnSync('sh', ['-c', 'for f in "$@"; do cat "$f" > /dev/null & done; wait', 'sh', ...files]);
    if (r.status !== 0) throw new Error(`reading the shards failed: ${r.stderr}`);
  });
}

/** Sequential write speed (GB/s) of 256 MB in 16 MiB writes, fsync'd as the shard writer does. */
function writeSpeed(dir: string): number {
  const buf = Buffer.alloc(16 << 20, 1);
  const path = join(dir, 'write-speed.tmp');
  const t0 = performance.now();
  const fd = openSync(path, 'w');
  for (let i = 0; i < 16; i++) writeSync(fd, buf);
  fsyncSync(fd);
  closeSync(fd);
  const s = (performance.now() - t0) / 1000;
  rmSync(path);
  return (16 * buf.length) / 1e9 / s;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

function child(method: string, root: string, outRoot: string): void {
  const base = join(root, 'base'), a = join(root, 'a'), b = join(root, 'b');
  const yaml =
    method === 'linear'
      ? `merge_method: linear\nmodels:\n  - {model: ${a}, parameters: {weight: 1}}\n  - {model: ${b}, parameters: {weight: 1}}\n`
      : `merge_method: ties\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1, density: 0.5}}\n  - {model: ${b}, parameters: {weight: 1, density: 0.5}}\n`;
  const out = join(outRoot, `peftjs-bench-merge-out-${method}`);
  const cpu0 = process.cpuUsage();
  const r = runMerge(parseMergeConfig(yaml), out, { maxShardBytes: SHARD_BYTES });
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ ...r, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n');
  rmSync(out, { recursive: true, force: true });
}

/** Runs a merge in a fresh process (see child) and returns its report. */
function merge(method: string, root: string, outRoot: string): { bytesRead: number; bytesWritten: number; seconds: number; peakRssBytes: number; cpuSeconds: number } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', method, root, outRoot], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${method} merge failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function main(): void {
  const args = process.argv.slice(2);
  const opt = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
  if (args[0] === '--child') return child(args[1], args[2], args[3]);
  const layers = Number(opt('--layers', '4'));
  const root = opt('--dir', join(tmpdir(), 'peftjs-bench-merge'));
  mkdirSync(root, { recursive: true });
  for (const [name, seed] of [['base', 0], ['a', 1], ['b', 2]] as const) {
    const d = join(root, name);
    if (!existsSync(join(d, 'config.json'))) {
      process.stderr.write(`generating ${d} …\n`);
      generate(d, layers, seed);
    }
  }
  const cold = evict(shardFiles(['base', 'a', 'b'].map((d) => join(root, d))));
  const list = specs(layers);
  const largestF32 = Math.max(...list.map((s) => s.shape.reduce((x, y) => x * y, 1) * 4));
  const checkpointBytes = totalBytes(shardFiles([join(root, 'base')]));
  console.log(`checkpoints: 3 × ${(checkpointBytes / 1e9).toFixed(2)} GB bf16, ${layers} layers, largest tensor ${(largestF32 / 4 / 1e6).toFixed(1)}M params`);
  if (!cold) console.log('CACHED — cannot evict the checkpoints from the page cache (GNU dd failed): the read speeds below are for cached reads');
  const write = writeSpeed(root);
  console.log(`disk sequential write (fsync'd): ${write.toFixed(2)} GB/s — every merge writes one checkpoint (${(checkpointBytes / 1e9).toFixed(2)} GB), ${(checkpointBytes / 1e9 / write).toFixed(2)} s of it`);
  // The output goes to the checkpoints' disk (end to end), and to memory (/dev/shm) where there is one: then the disk
  // only reads, and the row shows how fast the merge consumes its inputs.
  const outputs: [string, string][] = [['disk', root], ...(existsSync('/dev/shm') ? [['memory', '/dev/shm'] as [string, string]] : [])];
  const repeat = Number(opt('--repeat', '3'));
  const bound = 3 * largestF32 + SHARD_BYTES;
  console.log(`each row: the median of ${repeat} runs, each merge against the disk read measured just before it (the range of those ratios in brackets)`);
  console.log('| merge | output to | disk read: sequential, parallel | GB read | seconds | GB/s | vs disk (the better read) | disk ceiling | compute ceiling | CPU ceiling (reading: CPU s/GB) | peak RSS | 3×largest(f32)+shard | within |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const method of ['linear', 'ties']) {
    for (const [where, outRoot] of outputs) {
      const inputs = method === 'linear' ? ['a', 'b'] : ['base', 'a', 'b'];
      const dirs = inputs.map((d) => join(root, d));
      const runs = Array.from({ length: repeat }, () => {
        // The disk's best of the two ways to read the same bytes.
        const reads = [sequentialRead(dirs), parallelRead(dirs)];
        const [sequential, parallel] = reads.map((r) => r.gbps), disk = Math.max(sequential, parallel);
        // Reading from this disk costs the machine's cores too: the cheaper of the two reads, per GB.
        const readCpuPerGB = Math.min(...reads.map((r) => r.cpuPerGB));
        evict(shardFiles(dirs));
        const rep = merge(method, root, outRoot);
        // The same merge with its inputs cached and its output in memory: how fast it computes.
        const warm = merge(method, root, outputs[outputs.length - 1][1]);
        const gbps = rep.bytesRead / 1e9 / rep.seconds;
        // The most a merge can reach when the disk reads the inputs and writes the (fsync'd) output one after the other.
        const ceiling = where === 'disk' ? rep.bytesRead / (rep.bytesRead / disk + rep.bytesWritten / write) : disk;
        // With the cores the bound: the warm merge's CPU time plus the reading's, spread over every core.
        const cores = cpus().length, readCpu = (readCpuPerGB * rep.bytesRead) / 1e9;
        const cpuBound = rep.bytesRead / 1e9 / ((warm.cpuSeconds + readCpu) / cores);
        return { sequential, parallel, disk, gbps, ratio: gbps / disk, ceiling: ceiling / disk, compute: warm.bytesRead / 1e9 / warm.seconds / disk, cpu: cpuBound / disk, readCpuPerGB, ...rep };
      });
      const m = (f: (r: (typeof runs)[number]) => number) => median(runs.map(f));
      const ratios = runs.map((r) => r.ratio);
      const rss = Math.max(...runs.map((r) => r.peakRssBytes));
      console.log(
        `| ${method} | ${where} | ${m((r) => r.sequential).toFixed(2)}, ${m((r) => r.parallel).toFixed(2)} GB/s | ${(runs[0].bytesRead / 1e9).toFixed(2)} | ${m((r) => r.seconds).toFixed(2)} | ` +
          `${m((r) => r.gbps).toFixed(2)} | ${pct(m((r) => r.ratio))} (${pct(Math.min(...ratios))}–${pct(Math.max(...ratios))}) | ${pct(m((r) => r.ceiling))} | ${pct(m((r) => r.compute))} | ${pct(m((r) => r.cpu))} (${m((r) => r.readCpuPerGB).toFixed(2)}) | ` +
          `${(rss / 1e9).toFixed(2)} GB | ${(bound / 1e9).toFixed(2)} GB | ${rss <= bound ? 'yes' : 'no'} |`,
      );
    }
  }
  if (!args.includes('--keep')) rmSync(root, { recursive: true, force: true });
}

main();
