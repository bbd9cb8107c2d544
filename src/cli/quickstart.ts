/** `peftjs quickstart`: the tour on the embedded default model (see src/quickstart/run.ts). */
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { runQuickstart, type QuickstartOptions } from '../quickstart/run.js';
import { TASK_NAMES } from '../quickstart/tasks.js';

const usage = `usage: peftjs quickstart [--out DIR] [--steps N] [--tasks a,b] [--seed S]

Shows the embedded default model (assets/default-model) failing the built-in tasks, trains one LoRA adapter per
task, shows each adapter's exact-match accuracy, saves the adapters in the HF PEFT format, generates a sample
answer per task and prints a summary table.

  --out DIR     output folder (default ./peftjs-quickstart)
  --steps N     LoRA training steps per task (default 200)
  --tasks a,b   tasks to run (default all: ${TASK_NAMES.join(',')})
  --seed S      seed of the data, LoRA init and batch order (default 0)
  --no-progress no progress bars`;

function parse(args: readonly string[]): QuickstartOptions {
  const o: QuickstartOptions = {};
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || v.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`${flag} needs an integer ≥ ${min}, got ${v === undefined ? 'nothing' : `"${v}"`}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const value = () => inline ?? args[++i];
    switch (flag) {
      case '--out': {
        const v = value();
        if (!v) throw new UsageError('--out needs a folder');
        o.out = v;
        break;
      }
      case '--steps':
        o.steps = int('--steps', value(), 1);
        break;
      case '--seed':
        o.seed = int('--seed', value(), 0);
        break;
      case '--tasks': {
        const names = (value() ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        const bad = names.filter((n) => !TASK_NAMES.includes(n));
        if (names.length === 0 || bad.length) throw new UsageError(`--tasks: ${bad.length ? `unknown task(s) ${bad.join(', ')}` : 'no task given'}; tasks: ${TASK_NAMES.join(', ')}`);
        o.tasks = names;
        break;
      }
      case '--no-progress':
        o.progress = false;
        break;
      default:
        throw new UsageError(`unknown option ${flag}\n\n${usage}`);
    }
  }
  return o;
}

const command: Command = {
  summary: 'train one LoRA adapter per built-in task on the embedded default model, in about 2 minutes',
  usage,
  async run(args) {
    await runQuickstart(parse(args));
    return 0;
  },
};

export default command;
