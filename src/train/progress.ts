/** The terminal progress bar (cli-progress on stderr): step, loss, tokens/s, ETA. */
import { SingleBar } from 'cli-progress';
import type { TaskEval } from './trainer.js';

export interface ProgressUpdate {
  step: number;
  loss: number;
  tokensPerSecond: number;
  evalLoss?: number;
  /** Multi-task runs: the last evaluation per task. */
  evalTasks?: readonly TaskEval[];
}

export class ProgressBar {
  private readonly bar: SingleBar;

  constructor(total: number, start: number) {
    this.bar = new SingleBar({
      format: 'train |{bar}| step {value}/{total} | loss {loss} | eval {eval} | {tps} tok/s | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 20,
      fps: 5,
      noTTYOutput: false,
    });
    this.bar.start(total, start, { loss: '-', eval: '-', tps: '-' });
  }

  update(u: ProgressUpdate): void {
    this.bar.update(u.step, {
      loss: u.loss.toFixed(4),
      tps: Math.round(u.tokensPerSecond).toLocaleString('en-US'),
      ...(u.evalLoss === undefined ? {} : { eval: u.evalLoss.toFixed(4) + (u.evalTasks ? ` [${formatTaskEvals(u.evalTasks)}]` : '') }),
    });
  }

  stop(): void {
    this.bar.stop();
  }
}

/** `a 1.234 50%, b 2.345`: each task's eval loss (and exact match). */
export function formatTaskEvals(tasks: readonly TaskEval[]): string {
  return tasks.map((t) => `${t.task} ${t.loss.toFixed(3)}${t.exactMatch === undefined ? '' : ` ${(100 * t.exactMatch).toFixed(0)}%`}`).join(', ');
}
