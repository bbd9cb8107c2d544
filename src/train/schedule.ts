/** Learning-rate schedules: linear warmup, then linear decay, cosine decay or constant. */

export type ScheduleKind = 'linear' | 'cosine' | 'constant';

export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  kind: ScheduleKind;
  warmupSteps: number;
  totalSteps: number;
  /** Floor of the decay as a fraction of `lr` (default 0). */
  minLrRatio?: number;
}

/**
 * The learning rate of optimizer step `step` (0-based). Warmup ramps `lr·(step+1)/warmup` — the first step
 * already moves, unlike a ramp from 0 — then linear/cosine decay from `lr` at the end of warmup to
 * `lr·minLrRatio` at `totalSteps`.
 */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.kind === 'constant') return o.lr;
  const floor = o.lr * (o.minLrRatio ?? 0);
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  const shape = o.kind === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return floor + (o.lr - floor) * shape;
}
