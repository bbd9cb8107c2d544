/** Training metrics: a `metrics.jsonl` stream (one JSON object per line) and resident-memory readings. */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

/** One line of metrics.jsonl: a training step (`loss`, `lr`, ...) or an evaluation (`eval_loss`, ...). */
export interface MetricsRecord {
  step: number;
  [key: string]: number | string | undefined;
}

export class MetricsLog {
  constructor(readonly path: string) {}

  append(rec: MetricsRecord): void {
    appendFileSync(this.path, JSON.stringify(rec) + '\n');
  }

  /** Every record so far (a torn last line, from a kill mid-write, is ignored). */
  read(): MetricsRecord[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8')
      .split('\n')
      .flatMap((line) => {
        try {
          return line ? [JSON.parse(line) as MetricsRecord] : [];
        } catch {
          return [];
        }
      });
  }

  /** Keeps only records up to `step` (a resumed run rewrites what came after its checkpoint). */
  truncateAfter(step: number): void {
    const kept = this.read().filter((r) => r.step <= step);
    writeFileSync(this.path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}

/** Peak resident set size of this process so far, in bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}
