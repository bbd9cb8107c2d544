/**
 * Training checkpoints: `<output>/checkpoint-<step>/` holds the adapter in the HF PEFT format (usable as is) plus
 * what a resumed run needs to continue exactly as an uninterrupted one would, all bit-exact:
 * - `parameters.safetensors`: the trainable parameters as training holds them, under their parameter names. The
 *   export can differ from them (AdaLoRA / IncreLoRA save only the kept / active components), so a resume reads these;
 * - `optimizer.safetensors`: the AdamW moments (f32);
 * - `method_state.safetensors`: the method's training-hook state, when it has one (AdaLoRA's importance averages and
 *   rank masks): its arrays as tensors, its JSON values in the metadata (`values`);
 * - `trainer_state.json`: step, data position, random-generator state, early-stopping state.
 *
 * Atomicity: a checkpoint is written in full into a hidden temporary folder, fsynced, and then renamed into place
 * in one step, so a kill at any moment leaves either no new checkpoint or a complete one, and the earlier
 * checkpoints untouched. Old checkpoints beyond the limit are removed only after the new one is in place.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeSafetensors, SafetensorsFile, type TensorData } from '../io/safetensors.js';
import type { Tensor } from '../engine/index.js';
import type { HooksState } from '../peft/registry.js';
import type { LoaderPosition } from './data/split.js';

export const TRAINER_STATE_NAME = 'trainer_state.json';
export const OPTIMIZER_NAME = 'optimizer.safetensors';
export const PARAMETERS_NAME = 'parameters.safetensors';
export const METHOD_STATE_NAME = 'method_state.safetensors';

/** What `trainer_state.json` holds. */
export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** Where the training batches continue. */
  position: LoaderPosition;
  /** `globalGenerator` state (dropout) after `step`. */
  rng: number[];
  /** Target tokens trained on so far. */
  tokensSeen: number;
  /** Best value of the early-stopping metric so far and evaluations since it improved. */
  best: number | null;
  badEvals: number;
  /** The run's configuration, for reference (a resumed run may change e.g. maxSteps). */
  config: Record<string, unknown>;
  /** Multi-task runs: the task names by id (a resumed run must have the same; `position` then holds per-task state). */
  tasks?: string[];
}

/** AdamW moments per trainable parameter name. */
export type OptimizerMoments = Map<string, { m: Tensor<'f32'>; v: Tensor<'f32'> }>;

/** What a checkpoint saves besides the adapter export. */
export interface CheckpointContents {
  state: TrainerState;
  moments: OptimizerMoments;
  /** The trainable parameters by name. */
  parameters: [string, Tensor<'f32'>][];
  /** The method's training-hook state (absent: the hooks have none). */
  method?: HooksState;
}

/** A checkpoint as read back: arrays keyed by parameter name. */
export interface LoadedCheckpoint {
  state: TrainerState;
  moments: Map<string, { m: Float32Array; v: Float32Array }>;
  /** Null for a checkpoint written before parameters were saved (its adapter export then holds them). */
  parameters: Map<string, Float32Array> | null;
  method: HooksState | null;
}

/** A tensor's f32 contents as a safetensors entry (no copy). */
function f32Entry(t: Tensor<'f32'>): TensorData {
  return { dtype: 'F32', shape: t.shape, data: t.data.subarray(0, t.size) as TensorData['data'] };
}

/** Every tensor of a safetensors file (f32), by name, and its metadata. */
function readF32File(path: string): { arrays: Map<string, Float32Array>; metadata: Record<string, string> } {
  const file = SafetensorsFile.open(path);
  try {
    return { arrays: new Map(file.names().map((n) => [n, file.read(n) as Float32Array])), metadata: file.metadata };
  } finally {
    file.close();
  }
}

function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, (fd) => {
    const bytes = Buffer.from(JSON.stringify(value, null, 2) + '\n');
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
  });
}

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/** Complete checkpoints in `output` (a folder named checkpoint-N holding trainer state), oldest first. */
export function listCheckpoints(output: string): { step: number; path: string }[] {
  if (!existsSync(output)) return [];
  return readdirSync(output)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(output, m[0], TRAINER_STATE_NAME)))
    .map((m) => ({ step: Number(m[1]), path: join(output, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Writes `checkpoint-<state.step>` into `output` atomically. `writeAdapter(dir)` writes the adapter files into
 * the (temporary) folder. Keeps the newest `keep` checkpoints.
 */
export function saveCheckpoint(output: string, contents: CheckpointContents, writeAdapter: (dir: string) => void, keep: number): string {
  const { state, moments, parameters, method } = contents;
  mkdirSync(output, { recursive: true });
  const final = join(output, checkpointName(state.step));
  const tmp = join(output, `.tmp-${checkpointName(state.step)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeAdapter(tmp);
  const tensors: [string, TensorData][] = [];
  for (const [name, { m, v }] of moments) tensors.push([`${name}.exp_avg`, f32Entry(m)], [`${name}.exp_avg_sq`, f32Entry(v)]);
  writeSafetensors(join(tmp, OPTIMIZER_NAME), tensors, { format: 'pt' });
  writeSafetensors(join(tmp, PARAMETERS_NAME), parameters.map(([name, p]) => [name, f32Entry(p)] as const), { format: 'pt' });
  if (method)
    writeSafetensors(
      join(tmp, METHOD_STATE_NAME),
      [...method.arrays].map(([name, a]): [string, TensorData] => [name, { dtype: 'F32', shape: [a.length], data: a as TensorData['data'] }]),
      { format: 'pt', values: JSON.stringify(method.values) },
    );
  // The state file goes last: a folder with it is complete.
  writeJson(join(tmp, TRAINER_STATE_NAME), state);
  if (existsSync(final)) {
    // Re-saving a step (after a resume): move the old one aside first; a rename cannot replace a non-empty folder.
    const old = `${final}.old-${process.pid}`;
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else renameSync(tmp, final);
  const all = listCheckpoints(output);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.path, { recursive: true, force: true });
  return final;
}

/** Reads a checkpoint's trainer state, optimizer moments, parameters and method state. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const statePath = join(dir, TRAINER_STATE_NAME);
  if (!existsSync(statePath)) throw new Error(`resume: ${dir} is not a complete checkpoint (no ${TRAINER_STATE_NAME})`);
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  const optimizer = readF32File(join(dir, OPTIMIZER_NAME)).arrays;
  const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  for (const [n, m] of optimizer) {
    if (!n.endsWith('.exp_avg')) continue;
    const name = n.slice(0, -'.exp_avg'.length);
    moments.set(name, { m, v: optimizer.get(`${name}.exp_avg_sq`)! });
  }
  const paramsPath = join(dir, PARAMETERS_NAME);
  const parameters = existsSync(paramsPath) ? readF32File(paramsPath).arrays : null;
  const methodPath = join(dir, METHOD_STATE_NAME);
  let method: HooksState | null = null;
  if (existsSync(methodPath)) {
    const { arrays, metadata } = readF32File(methodPath);
    method = { values: JSON.parse(metadata.values ?? '{}') as Record<string, unknown>, arrays };
  }
  return { state, moments, parameters, method };
}
