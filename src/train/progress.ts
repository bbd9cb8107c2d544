/** The terminal progress bar (cli-progress on stderr): step, loss, tokens/s, ETA. */
import { SingleBar } from 'cli-progress';

export interface ProgressUpdate {
  step: number;
  loss: number;
  tokensPerSecond: number;
  evalLoss?: number;
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
      ...(u.evalLoss === undefined ? {} : { eval: u.evalLoss.toFixed(4) }),
    });
  }

  stop(): void {
    this.bar.stop();
  }
}
