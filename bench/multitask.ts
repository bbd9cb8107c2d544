/**
 * bench:multitask — multi-task adaptation methods on the quickstart's four built-in tasks (add, upper, mood, json)
 * with the embedded default model: separate per-task LoRAs, one LoRA on the mixture, MTLoRA, MoE-LoRA, SMoRA,
 * MHR (Poly with n_splits > 1), and a MeteoRA gate over the separate LoRAs (loaded back from their HF PEFT files),
 * scored by per-task exact match on held-out examples. MeteoRA is evaluated without task ids and compared with
 * picking the right LoRA by hand. Prints one markdown table (and writes it to bench/results/multitask.md).
 *
 *   npm run bench:multitask            (node --import tsx bench/multitask.ts [--quick] [--steps N])
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { manualSeed } from '../src/engine/index.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { loadCausalLM, type CausalLM } from '../src/models/index.js';
import { PeftModel } from '../src/peft/model.js';
import { meteoraFromLoras } from '../src/peft/meteora/index.js';
import { DEFAULT_MODEL_DIR } from '../src/quickstart/default-model.js';
import { makeSplit, TASKS } from '../src/quickstart/tasks.js';
import { chooseFirstTokenExpert, evaluateTasks, TaskMixture, taskExactMatch, trainMultitask, type TaskData, type MultitaskTrainOptions } from '../src/multitask/index.js';

const quick = process.argv.includes('--quick');
const stepsArg = process.argv.indexOf('--steps');
const MIX_STEPS = stepsArg > 0 ? Number(process.argv[stepsArg + 1]) : quick ? 20 : 300;
const TASK_STEPS = Math.max(10, Math.round(MIX_STEPS * 0.5));
const GATE_STEPS = Math.max(10, MIX_STEPS);
const N_EVAL = quick ? 10 : 50;
const log = (line: string) => process.stderr.write(`  ${line}\n`);

const tok = loadTokenizer(DEFAULT_MODEL_DIR);
const tasks: TaskData[] = TASKS.map((t) => ({ name: t.name, ...makeSplit(t, { nTrain: Math.min(400, t.inputCount - N_EVAL), nEval: N_EVAL, seed: 0 }) }));
const mixture = (subset: TaskData[] = tasks) => new TaskMixture(tok, subset, { temperature: 1, seed: 0 });
const out = join(tmpdir(), `peftjs-bench-multitask-${process.pid}`);
const common: Omit<MultitaskTrainOptions, 'steps'> = { batchSize: 16, lr: 4e-3, warmupSteps: 10, evalExamples: N_EVAL, log, logEvery: 100 };
const ALL_LINEAR = 'all-linear';

interface Row {
  method: string;
  acc: number[];
  trainable: number;
  tokensPerSecond: number;
  seconds: number;
}
const rows: Row[] = [];

function fresh(): CausalLM {
  manualSeed(0);
  return loadCausalLM(DEFAULT_MODEL_DIR);
}

/** Trains `config` on the whole mixture and records its row. */
function mixed(method: string, config: Record<string, unknown>, opts: Partial<MultitaskTrainOptions> = {}): PeftModel<CausalLM> {
  process.stderr.write(`${method}\n`);
  const peft = new PeftModel(fresh(), { task_type: 'CAUSAL_LM', target_modules: ALL_LINEAR, ...config });
  const r = trainMultitask(peft, tok, mixture(), { ...common, steps: MIX_STEPS, ...opts });
  rows.push({ method, acc: r.scores.map((s) => s.exactMatch), trainable: r.trainableParameters, tokensPerSecond: r.tokensPerSecond, seconds: r.seconds });
  return peft;
}

// 1. Separate LoRAs, one per task, saved in the HF PEFT format (MeteoRA's experts).
process.stderr.write('separate LoRAs\n');
const sep: Row = { method: `separate LoRAs (r=8, ${TASK_STEPS} steps each)`, acc: [], trainable: 0, tokensPerSecond: 0, seconds: 0 };
const loraDirs: string[] = [];
let tokSum = 0;
for (const t of tasks) {
  const peft = new PeftModel(fresh(), { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 8, lora_alpha: 16, target_modules: ALL_LINEAR });
  const r = trainMultitask(peft, tok, mixture([t]), { ...common, steps: TASK_STEPS });
  const dir = join(out, 'lora', t.name);
  peft.save(dir);
  loraDirs.push(dir);
  sep.acc.push(r.scores[0]!.exactMatch);
  sep.trainable += r.trainableParameters;
  sep.seconds += r.seconds;
  tokSum += r.tokensPerSecond;
}
sep.tokensPerSecond = tokSum / tasks.length;
rows.push(sep);

// 2. The mixture methods.
mixed(`LoRA on the mixture (r=8)`, { peft_type: 'LORA', r: 8, lora_alpha: 16 });
mixed(`MTLoRA (shared r=8 + task r=4)`, { peft_type: 'MTLORA', r: 8, lora_alpha: 16, task_r: 4, task_alpha: 8, n_tasks: tasks.length });
mixed(`MoE-LoRA (4 experts r=4, top-2)`, { peft_type: 'MOELORA', r: 4, lora_alpha: 8, num_experts: 4, top_k: 2, router_aux_loss_coef: 0.01 });
mixed(`SMoRA (r=16, top-8 ranks)`, { peft_type: 'SMORA', r: 16, lora_alpha: 16, top_k: 8, router_aux_loss_coef: 0.01 });
mixed(`MHR (Poly: 4 skills r=4, 4 heads)`, { peft_type: 'POLY', r: 4, n_tasks: tasks.length, n_skills: 4, n_splits: 4 }, { lr: 1e-2 });

// 3. MeteoRA: the separate LoRAs as frozen experts, only the per-token gates train; evaluated without task ids.
// Each gate reads the token and the causal mean of the tokens before it (the context that names the task), is
// trained to pick the task's LoRA (task ids in training only) and routes top-1; the first position, where no context
// exists yet, then gets the expert with the lowest training loss (chooseFirstTokenExpert).
process.stderr.write('MeteoRA gate\n');
const model = fresh();
const met = meteoraFromLoras(model, loraDirs, { names: tasks.map((t) => t.name), topK: 1, gateSupervisionCoef: 1 });
const g = trainMultitask(met, tok, mixture(), { ...common, steps: GATE_STEPS, lr: 3e-2, taskIds: 'train-only' });
const first = chooseFirstTokenExpert(met, mixture());
log(`first-position expert: ${tasks[first.expert]!.name} (training loss per expert ${first.losses.map((l) => l.toFixed(3)).join(', ')})`);
const gateAcc = evaluateTasks(met.model, tok, mixture(), false, N_EVAL).map((s) => s.exactMatch);
rows.push({ method: `MeteoRA gate over the separate LoRAs (top-1, context-aware, no task id)`, acc: gateAcc, trainable: g.trainableParameters, tokensPerSecond: g.tokensPerSecond, seconds: g.seconds });

// The same separate LoRAs picked by hand, in one model (the gate's target).
const byHand = new PeftModel(fresh(), { peft_type: 'LORA', r: 8, target_modules: ALL_LINEAR }, 'unused');
tasks.forEach((t, i) => byHand.loadAdapter(loraDirs[i]!, t.name));
const handAcc = tasks.map((t) => {
  byHand.setAdapter(t.name);
  return taskExactMatch(byHand.model, tok, t.eval.slice(0, N_EVAL), null).accuracy;
});
rmSync(out, { recursive: true, force: true });

const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const lines = [
  `| method | ${tasks.map((t) => t.name).join(' | ')} | mean | trainable params | train tokens/s | train s |`,
  `|---|${tasks.map(() => '---:').join('|')}|---:|---:|---:|---:|`,
  ...rows.map((r) => `| ${r.method} | ${r.acc.map(pct).join(' | ')} | ${pct(mean(r.acc))} | ${r.trainable.toLocaleString('en-US')} | ${Math.round(r.tokensPerSecond).toLocaleString('en-US')} | ${r.seconds.toFixed(0)} |`),
  `| (separate LoRAs reloaded and picked by hand) | ${handAcc.map(pct).join(' | ')} | ${pct(mean(handAcc))} | | | |`,
];
const gate = rows[rows.length - 1]!;
const gap = 100 * (mean(handAcc) - mean(gate.acc));
const summary = `MeteoRA gate vs the right LoRA by hand: ${pct(mean(gate.acc))} vs ${pct(mean(handAcc))} mean exact match (gap ${gap.toFixed(1)} points).`;
const text = [`Multi-task methods on the quickstart tasks (${N_EVAL} held-out examples per task; mixture ${MIX_STEPS} steps, batch 16, temperature-1 sampling)`, '', ...lines, '', summary].join('\n');
console.log(text);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/multitask.md', text + '\n');
