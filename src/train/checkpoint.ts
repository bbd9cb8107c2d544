/**
 * Training checkpoints: `<output>/checkpoint-<step>/` holds the adapter in the HF PEFT format plus what a resumed
 * run needs to continue exactly as an uninterrupted one would — the AdamW moments (`optimizer.safetensors`, f32,
 * bit-exact) and `trainer_state.json` (step, data position, random-generator state, early-stopping state).
 *
 * Atomicity: a checkpoint is written in full into a hidden temporary folder, fsynced, and then renamed into place
 * in one step, so a kill at any moment leaves either no new checkpoint or a complete one, and the earlier
 * checkpoints untouched. Old checkpoints beyond the limit are removed only after the new one is in place.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeSafetensors, SafetensorsFile, type TensorData } from '../io/safetensors.js';
import type { Tensor } from '../engine/index.js';
import type { LoaderPosition } from './data/split.js';

export const TRAINER_STATE_NAME = 'trainer_state.json';
export const OPTIMIZER_NAME = 'optimizer.safetensors';

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
}

/** AdamW moments per trainable parameter name. */
export type OptimizerMoments = Map<string, { m: Tensor<'f32'>; v: Tensor<'f32'> }>;

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
export function saveCheckpoint(output: string, state: TrainerState, moments: OptimizerMoments, writeAdapter: (dir: string) => void, keep: number): string {
  mkdirSync(output, { recursive: true });
  const final = join(output, checkpointName(state.step));
  const tmp = join(output, `.tmp-${checkpointName(state.step)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeAdapter(tmp);
  const tensors: [string, TensorData][] = [];
  for (const [name, { m, v }] of moments) {
    tensors.push([`${name}.exp_avg`, { dtype: 'F32', shape: m.shape, data: m.data.subarray(0, m.size) as TensorData['data'] }]);
    tensors.push([`${name}.exp_avg_sq`, { dtype: 'F32', shape: v.shape, data: v.data.subarray(0, v.size) as TensorData['data'] }]);
  }
  writeSafetensors(join(tmp, OPTIMIZER_NAME), tensors, { format: 'pt' });
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

/** Reads a checkpoint's trainer state and optimizer moments (as plain arrays keyed by parameter name). */
export function loadCheckpoint(dir: string): { state: TrainerState; moments: Map<string, { m: Float32Array; v: Float32Array }> } {
  const statePath = join(dir, TRAINER_STATE_NAME);
  if (!existsSync(statePath)) throw new Error(`resume: ${dir} is not a complete checkpoint (no ${TRAINER_STATE_NAME})`);
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  const file = SafetensorsFile.open(join(dir, OPTIMIZER_NAME));
  const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  try {
    for (const n of file.names()) {
      if (!n.endsWith('.exp_avg')) continue;
      const name = n.slice(0, -'.exp_avg'.length);
      moments.set(name, { m: file.read(n) as Float32Array, v: file.read(`${name}.exp_avg_sq`) as Float32Array });
    }
  } finally {
    file.close();
  }
  return { state, moments };
}
