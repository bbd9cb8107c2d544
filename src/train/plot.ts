/**
 * The loss curve as a small hand-written SVG: training loss per step (faint), its moving average, and the eval
 * loss at each evaluation (dots joined by a line), on shared axes.
 */
export interface Series {
  label: string;
  color: string;
  points: readonly [number, number][];
  /** Draw the points as dots too. */
  dots?: boolean;
  opacity?: number;
}

/** A centered moving average over `window` points. */
export function smooth(points: readonly [number, number][], window: number): [number, number][] {
  const half = Math.floor(window / 2);
  return points.map(([x], i) => {
    const lo = Math.max(0, i - half);
    const hi = Math.min(points.length, i + half + 1);
    let s = 0;
    for (let j = lo; j < hi; j++) s += points[j]![1];
    return [x, s / (hi - lo)];
  });
}

/** "Nice" tick values (1, 2, 5 × 10^k steps) covering [lo, hi]. */
function ticks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const escape = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** An SVG line chart of `series` (x: step, y: loss). */
export function lineChartSvg(series: readonly Series[], title: string, width = 720, height = 420): string {
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  const pad = { l: 60, r: 20, t: 36, b: 44 };
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const x0 = Math.min(...xs, 0);
  const x1 = Math.max(...xs, 1);
  let y0 = Math.min(...ys, Infinity);
  let y1 = Math.max(...ys, -Infinity);
  if (!Number.isFinite(y0)) [y0, y1] = [0, 1];
  const margin = (y1 - y0) * 0.05 || 0.5;
  y0 -= margin;
  y1 += margin;
  const px = (x: number) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (width - pad.l - pad.r);
  const py = (y: number) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
  ];
  for (const t of ticks(y0, y1, 6)) {
    parts.push(`<line x1="${pad.l}" x2="${width - pad.r}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${pad.l - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  }
  for (const t of ticks(x0, x1, 8)) parts.push(`<text x="${px(t).toFixed(1)}" y="${height - pad.b + 16}" text-anchor="middle">${t}</text>`);
  parts.push(
    `<rect x="${pad.l}" y="${pad.t}" width="${width - pad.l - pad.r}" height="${height - pad.t - pad.b}" fill="none" stroke="#888"/>`,
    `<text x="${width / 2}" y="${height - 8}" text-anchor="middle">step</text>`,
    `<text x="14" y="${height / 2}" text-anchor="middle" transform="rotate(-90 14 ${height / 2})">loss</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    if (pts.length === 0) return;
    const d = pts.map(([x, y], j) => `${j ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5" stroke-opacity="${s.opacity ?? 1}"/>`);
    if (s.dots) for (const [x, y] of pts) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = pad.t + 14 + i * 16;
    parts.push(`<line x1="${width - pad.r - 150}" x2="${width - pad.r - 130}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${width - pad.r - 124}" y="${ly}">${escape(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** The training/eval loss chart of a metrics log. */
export function lossCurveSvg(records: readonly { step: number; [k: string]: unknown }[], title = 'peftjs training'): string {
  const train = records.filter((r) => typeof r.loss === 'number').map((r) => [r.step, r.loss as number] as [number, number]);
  const evals = records.filter((r) => typeof r.eval_loss === 'number').map((r) => [r.step, r.eval_loss as number] as [number, number]);
  const window = Math.max(1, Math.round(train.length / 25));
  return lineChartSvg(
    [
      { label: 'train loss', color: '#1f77b4', points: train, opacity: 0.3 },
      { label: `train (avg ${window})`, color: '#1f77b4', points: smooth(train, window) },
      { label: 'eval loss', color: '#d62728', points: evals, dots: true },
    ],
    title,
  );
}
