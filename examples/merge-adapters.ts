/**
 * A real adapter merge: the quickstart trains one LoRA adapter per task on the tiny base model (here `add` and
 * `upper`); the two adapters are merged in LoRA space — exactly (`cat`, rank 16) and with TIES on the true
 * deltas then SVD back to rank 8 (`ties_svd`) — and every model is scored by exact match on both tasks'
 * held-out examples. Prints the table recorded in docs/merging.md.
 *
 * Run: `node --import tsx examples/merge-adapters.ts [--steps N] [--out DIR]`
 */
import { join } from 'node:path';
import { loadCausalLM } from '../src/models/index.js';
import { PeftModel } from '../src/peft/index.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { DEFAULT_MODEL_DIR } from '../src/quickstart/default-model.js';
import { exactMatch, runQuickstart } from '../src/quickstart/run.js';
import { makeSplit, taskByName } from '../src/quickstart/tasks.js';
import { mergeLoraAdapters, type AdapterCombination } from '../src/merge/index.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const out = opt('--out', 'peftjs-merge-example');
const steps = Number(opt('--steps', '600'));
const TASKS = ['add', 'upper'];
const SEED = 0, N_EVAL = 50;

const trained = await runQuickstart({ out, tasks: TASKS, steps, seed: SEED, nEval: N_EVAL, progress: false, print: () => {} });
const adapters = trained.tasks.map((t) => t.adapterDir);

const merged: [string, AdapterCombination, object][] = [
  ['cat (exact, r=16)', 'cat', {}],
  ['ties_svd (density 0.5, r=8)', 'ties_svd', { density: 0.5, rank: 8 }],
];
const models: [string, string][] = trained.tasks.map((t) => [`${t.task} adapter alone`, t.adapterDir]);
for (const [label, combination, opts] of merged) {
  const dir = join(out, 'merged', combination);
  mergeLoraAdapters(adapters, [1, 1], combination, dir, opts);
  models.push([label, dir]);
}

const tok = loadTokenizer(DEFAULT_MODEL_DIR);
// The held-out split the quickstart evaluated on (same task, sizes and seed).
const evals = TASKS.map((name) => {
  const task = taskByName(name);
  return makeSplit(task, { nTrain: Math.min(400, task.inputCount - N_EVAL), nEval: N_EVAL, seed: SEED }).eval;
});
console.log(`| model | ${TASKS.join(' | ')} |`);
console.log(`|---|${TASKS.map(() => '---').join('|')}|`);
const base = loadCausalLM(DEFAULT_MODEL_DIR);
console.log(`| base | ${evals.map((e) => `${(100 * exactMatch(base, tok, e).accuracy).toFixed(0)}%`).join(' | ')} |`);
base.dispose();
for (const [label, dir] of models) {
  const model = loadCausalLM(DEFAULT_MODEL_DIR);
  PeftModel.fromPretrained(model, dir);
  console.log(`| ${label} | ${evals.map((e) => `${(100 * exactMatch(model, tok, e).accuracy).toFixed(0)}%`).join(' | ')} |`);
  model.dispose();
}
