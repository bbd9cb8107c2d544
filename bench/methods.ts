/**
 * `npm run bench:methods [-- --steps N] [--write] [--only TYPE,TYPE]` (until the script line exists:
 * `node --import tsx bench/methods.ts`)
 *
 * Every PEFT method registered in src/peft/registry.ts, on the same base (stories260K-hf, f32), the same task and the
 * same step budget: next-token prediction on templated TinyStories-style text (a held-out split for eval), AdamW,
 * batch 8 × 64 tokens. Per method: trainable parameters, training tokens/s, peak RSS of the process, and the final
 * eval loss and next-token accuracy. Each method runs in its own child process (so the peak RSS is its own and a
 * crash stays in its row); a method that fails prints its error in its row. `--write` puts the table into
 * docs/methods.md between the bench markers.
 *
 * Method settings: LoRA-family methods r = 8 (α = 16) on q/k/v/o/gate/up/down; the others their documented
 * defaults (see CONFIGS); an unlisted method gets `{r: 8, lora_alpha: 16, target_modules: all seven}` with the keys
 * it does not know dropped. The learning rate is per method (vector methods and virtual tokens need larger ones).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, crossEntropy, Generator, manualSeed, noGrad, tensor, tidy } from '../src/engine/index.js';
import { loadCausalLM } from '../src/models/index.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { PeftModel } from '../src/peft/model.js';
import { peftTypes } from '../src/peft/registry.js';
import { setPeftWarningHandler } from '../src/peft/warn.js';

const BASE = fileURLToPath(new URL('../../shared/models/stories260K-hf', import.meta.url));
const DOC = fileURLToPath(new URL('../docs/methods.md', import.meta.url));
const [B, T] = [8, 64];
const ALL7 = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const LORA_LIKE = { r: 8, lora_alpha: 16, target_modules: ALL7 };

/** Per-method config and learning rate; methods not listed use DEFAULT. */
const CONFIGS: Record<string, { config: Record<string, unknown>; lr: number }> = {
  LORA: { config: LORA_LIKE, lr: 5e-3 },
  IA3: { config: {}, lr: 3e-2 },
  PROMPT_TUNING: { config: { num_virtual_tokens: 16, prompt_tuning_init: 'SAMPLE_VOCAB' }, lr: 3e-2 },
  // Li & Liang's reparameterisation: a raw N(0, 1) prefix trains poorly in this budget (eval loss 2.6–3.7 vs 1.0).
  PREFIX_TUNING: { config: { num_virtual_tokens: 16, prefix_projection: true }, lr: 1e-2 },
  BOTTLENECK: { config: {}, lr: 5e-3 },
  SSF: { config: {}, lr: 1e-2 },
  BITFIT: { config: {}, lr: 1e-2 },
  LN_TUNING: { config: {}, lr: 3e-2 },
  // AdaLoRA's rank-budget schedule needs the run's length (filled in with the step budget).
  ADALORA: { config: { ...LORA_LIKE, total_step: null }, lr: 5e-3 },
  // IncreLoRA's growth schedule likewise (ranks grow from init_r 2 to target_r 8 on average).
  INCRELORA: { config: { target_modules: ALL7, init_r: 2, target_r: 8, max_r: 16, lora_alpha: 16, total_step: null, tinit: 5, tfinal: 10, deltaT: 5 }, lr: 5e-3 },
  // RandLoRA's update sums n = in/r full-width bases (scaled as in the paper): 5e-3 diverges, 1e-3 converges.
  RANDLORA: { config: LORA_LIKE, lr: 1e-3 },
};
const DEFAULT = { config: LORA_LIKE, lr: 5e-3 };
/** Methods that need task ids or separately trained adapters: compared on the multi-task bench (docs/multitask.md). */
const MULTITASK_ONLY = ['MTLORA', 'POLY', 'METEORA', 'MULTITASK_PROMPT_TUNING'];

/** Templated stories (names, objects, places the base has not seen in this phrasing), seeded. */
function storyText(n: number, seed: number): string[] {
  const g = new Generator(seed);
  const pick = <X>(xs: readonly X[]) => xs[Math.floor(g.uniform() * xs.length)]!;
  const names = ['Bip', 'Zuzu', 'Momo', 'Tiki', 'Pip', 'Lulu'];
  const things = ['red ball', 'blue kite', 'green hat', 'yellow boat', 'big cake', 'little drum'];
  const places = ['park', 'garden', 'beach', 'forest', 'house', 'pond'];
  return Array.from({ length: n }, () => {
    const [a, t, p] = [pick(names), pick(things), pick(places)];
    return `${a} went to the ${p}. ${a} found a ${t} in the ${p}. ${a} said, "I love my ${t}!" Then ${a} went home with the ${t} and was happy.`;
  });
}

/** Rows of T+1 tokens cut from the concatenated, tokenized stories. */
function rows(texts: string[]): number[][] {
  const tok = loadTokenizer(BASE);
  const ids = texts.flatMap((s) => tok.encode(s));
  const out: number[][] = [];
  for (let i = 0; i + T + 1 <= ids.length; i += T) out.push(ids.slice(i, i + T + 1));
  return out;
}

interface Row {
  method: string;
  trainable?: number;
  percent?: number;
  tokensPerSecond?: number;
  peakRssMiB?: number;
  evalLoss?: number;
  evalAccuracy?: number;
  initialEvalLoss?: number;
  lr?: number;
  error?: string;
}

/** Trains one method `steps` steps and evaluates it (runs in a child process). */
function runOne(method: string, steps: number): Row {
  setPeftWarningHandler(() => {});
  const { config: listed, lr } = CONFIGS[method] ?? DEFAULT;
  const config = 'total_step' in listed ? { ...listed, total_step: steps } : listed;
  const train = rows(storyText(160, 1));
  const evalRows = rows(storyText(24, 2)).slice(0, 16);
  manualSeed(0);
  const model = loadCausalLM(BASE);
  const peft = new PeftModel(model, { ...config, peft_type: method });
  const counts = peft.parameterCounts();
  const batch = (rs: number[][]) => ({
    ids: tensor(rs.flatMap((r) => r.slice(0, T)), [rs.length, T], 'i32'),
    targets: tensor(rs.flatMap((r) => r.slice(1)), [rs.length, T], 'i32'),
  });
  const evaluate = () => {
    model.eval();
    let loss = 0;
    let hits = 0;
    for (let i = 0; i < evalRows.length; i += B)
      tidy(() =>
        noGrad(() => {
          const rs = evalRows.slice(i, i + B);
          const { ids, targets } = batch(rs);
          const logits = model.forward(ids);
          loss += crossEntropy(logits, targets, { reduction: 'sum' }).item();
          const l = logits.toTyped() as Float32Array;
          const V = logits.shape[2]!;
          const t = targets.toTyped() as Int32Array;
          for (let j = 0; j < t.length; j++) {
            let best = 0;
            for (let v = 1; v < V; v++) if (l[j * V + v]! > l[j * V + best]!) best = v;
            if (best === t[j]) hits++;
          }
        }),
      );
    const n = evalRows.length * T;
    return { loss: loss / n, accuracy: hits / n };
  };
  const initial = evaluate();
  const opt = new AdamW(peft.trainableParameters(), { lr });
  model.train();
  const g = new Generator(3);
  const start = performance.now();
  for (let s = 0; s < steps; s++) {
    const rs = Array.from({ length: B }, () => train[Math.floor(g.uniform() * train.length)]!);
    tidy(() => {
      const { ids, targets } = batch(rs);
      crossEntropy(model.forward(ids), targets).backward();
    });
    opt.step();
    opt.zeroGrad();
  }
  const seconds = (performance.now() - start) / 1000;
  const final = evaluate();
  return {
    method,
    trainable: counts.trainable,
    percent: (100 * counts.trainable) / counts.all,
    tokensPerSecond: (steps * B * T) / seconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    evalLoss: final.loss,
    evalAccuracy: final.accuracy,
    initialEvalLoss: initial.loss,
    lr,
  };
}

function table(rowsOut: Row[], steps: number): string {
  const lines = [
    `Base stories260K-hf (f32), ${steps} AdamW steps of ${B}×${T} tokens, eval on ${16 * T} held-out tokens (base model before training: eval loss ${rowsOut.find((r) => r.method === 'LORA')?.initialEvalLoss?.toFixed(3) ?? '?'}).`,
    '',
    '| method | trainable params | % of base | lr | tokens/s | peak RSS (MiB) | eval loss | eval next-token acc. |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rowsOut)
    lines.push(
      r.error
        ? `| ${r.method} | error: ${r.error.replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 160)} | | | | | | |`
        : `| ${r.method} | ${r.trainable!.toLocaleString('en-US')} | ${r.percent!.toFixed(2)} | ${r.lr} | ${Math.round(r.tokensPerSecond!).toLocaleString('en-US')} | ${Math.round(r.peakRssMiB!)} | ${r.evalLoss!.toFixed(3)} | ${(100 * r.evalAccuracy!).toFixed(1)}% |`,
    );
  return lines.join('\n');
}

const START = '<!-- bench:methods:start -->';
const END = '<!-- bench:methods:end -->';
const PAGES_START = '<!-- methods:pages:start -->';
const PAGES_END = '<!-- methods:pages:end -->';

/** `doc` with the text between markers `start` and `end` replaced by `body`. */
function replaceBlock(doc: string, start: string, end: string, body: string): string {
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`bench:methods: ${DOC} lacks the ${start} … ${end} markers`);
  return `${doc.slice(0, a + start.length)}\n${body}\n${doc.slice(b)}`;
}

/** A link list of every docs/methods/*.md page, titled by its first heading. */
function pages(): string {
  const dir = join(dirname(DOC), 'methods');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `- [${(readFileSync(join(dir, f), 'utf8').match(/^#\s+(.+)$/m)?.[1] ?? f).trim()}](methods/${f})`)
    .join('\n');
}

function main(): void {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const steps = Number(flag('--steps') ?? 60);
  const one = flag('--one');
  if (one) {
    let row: Row;
    try {
      row = runOne(one, steps);
    } catch (e) {
      row = { method: one, error: (e as Error).message };
    }
    process.stdout.write(`\n@@ROW ${JSON.stringify(row)}\n`);
    return;
  }
  const only = flag('--only')?.split(',');
  const methods = peftTypes().filter((m) => (!only || only.includes(m)) && !MULTITASK_ONLY.includes(m));
  const out: Row[] = [];
  for (const m of methods) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--one', m, '--steps', String(steps)], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('@@ROW '));
    const row: Row = line
      ? (JSON.parse(line.slice(6)) as Row)
      : { method: m, error: `child exited ${r.status ?? r.signal}: ${(r.stderr || '').trim().split('\n').slice(-1)[0] ?? ''}` };
    out.push(row);
    process.stderr.write(`${m}: ${row.error ? `error: ${row.error}` : `eval loss ${row.evalLoss!.toFixed(3)}, ${Math.round(row.tokensPerSecond!)} tok/s`}\n`);
  }
  const md = table(out, steps);
  console.log(md);
  if (args.includes('--write')) {
    const doc = readFileSync(DOC, 'utf8');
    writeFileSync(DOC, replaceBlock(replaceBlock(doc, START, END, md), PAGES_START, PAGES_END, pages()));
    console.error(`wrote the table into ${DOC}`);
  }
}

main();
