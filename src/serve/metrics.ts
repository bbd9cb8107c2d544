/**
 * Prometheus metrics in the text exposition format (version 0.0.4): counters, gauges and histograms with labels,
 * rendered by `/metrics`.
 */

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Family {
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  render(name: string): string[];
}

/** A monotonically increasing count per label set. */
export class Counter implements Family {
  readonly type = 'counter';
  private readonly values = new Map<string, number>();
  constructor(readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    const k = labelText(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  render(name: string): string[] {
    return [...this.values].map(([k, v]) => `${name}${k} ${v}`);
  }
}

/** A value read when rendered. */
export class Gauge implements Family {
  readonly type = 'gauge';
  constructor(
    readonly help: string,
    private readonly read: () => number,
  ) {}

  render(name: string): string[] {
    return [`${name} ${this.read()}`];
  }
}

/** Observations counted into cumulative buckets (`le` upper bounds), with their sum and count. */
export class Histogram implements Family {
  readonly type = 'histogram';
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.buckets.forEach((b, i) => {
      if (v <= b) this.counts[i]!++;
    });
    this.sum += v;
    this.count++;
  }

  render(name: string): string[] {
    return [
      ...this.buckets.map((b, i) => `${name}_bucket{le="${b}"} ${this.counts[i]}`),
      `${name}_bucket{le="+Inf"} ${this.count}`,
      `${name}_sum ${this.sum}`,
      `${name}_count ${this.count}`,
    ];
  }
}

/** A named set of metric families. */
export class Registry {
  private readonly families = new Map<string, Family>();

  add<F extends Family>(name: string, family: F): F {
    this.families.set(name, family);
    return family;
  }

  /** The exposition text. */
  render(): string {
    const lines: string[] = [];
    for (const [name, f] of this.families) lines.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.render(name));
    return lines.join('\n') + '\n';
  }
}
