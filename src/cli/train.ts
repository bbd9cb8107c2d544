/** `peftjs train --config run.yaml [--field value ...]`: fine-tune an adapter (see src/train). */
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { ConfigError, configFromArgs, flagHelp } from '../train/config.js';
import { formatTaskEvals } from '../train/progress.js';
import { peftConfig, train, type TrainResult } from '../train/trainer.js';

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const num = (x: number | undefined, d = 4) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));

/** `lora r=8 lora_alpha=16 target_modules=q_proj,v_proj`: the method and the fields that configure it. */
function describeAdapter(r: TrainResult): string {
  const config = peftConfig(r.config);
  const show = (v: unknown) => (Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const fields = Object.entries(config).filter(([k]) => !['peft_type', 'task_type', 'base_model_name_or_path'].includes(k));
  return [String(config.peft_type).toLowerCase(), ...fields.map(([k, v]) => `${k}=${show(v)}`)].join(' ');
}

/** The one-screen summary printed after training. */
export function summary(r: TrainResult): string {
  const c = r.config;
  const e0 = r.firstEval;
  const e1 = r.finalEval;
  const d = r.data;
  const status = r.interrupted ? 'interrupted (checkpoint saved; continue with --resume)' : r.stoppedEarly ? 'stopped early' : 'done';
  return [
    `peftjs train: ${status}`,
    `  model      ${c.model}  (${r.precision})`,
    `  adapter    ${describeAdapter(r)}  trainable ${r.trainableParameters.toLocaleString('en-US')} / ${r.allParameters.toLocaleString('en-US')}`,
    `  data       ${d.trainRows} train rows, ${d.evalRows} eval rows (seq ${c.seqLen})` +
      (d.skipped.length ? `, ${d.skipped.length} skipped` : '') +
      (d.truncated.examples ? `, ${d.truncated.examples} truncated` : ''),
    `  steps      ${r.steps}/${r.totalSteps}  batch ${c.batchSize}x${c.gradAccum}  lr ${c.lr} (${c.schedule})`,
    `  loss       ${num(r.firstLoss)} -> ${num(r.finalLoss)}`,
    e1 ? `  eval loss  ${num(e0?.loss)} -> ${num(e1.loss)}  (perplexity ${num(e1.perplexity, 2)})` + (e1.exactMatch === undefined ? '' : `  exact match ${(100 * e1.exactMatch).toFixed(1)}%`) : '  eval       (no eval data)',
    ...(e1?.tasks ? [`  per task   ${formatTaskEvals(e1.tasks)}`] : []),
    `  speed      ${Math.round(r.tokensPerSecond).toLocaleString('en-US')} tokens/s, ${r.seconds.toFixed(1)} s, peak RSS ${mib(r.peakRssBytes)}`,
    `  output     ${r.output}  (adapter, ${c.taskField ? 'tasks.json, ' : ''}metrics.jsonl, loss_curve.svg, ${r.checkpoint})`,
  ].join('\n');
}

const command: Command = {
  summary: 'fine-tune a LoRA adapter on your data',
  usage: [
    'usage: peftjs train --config run.yaml [--field value ...]',
    '       peftjs train --model DIR --data FILE --output DIR [options]',
    '',
    'Every config field is also a flag (YAML keys may be camelCase or snake_case); flags override the file.',
    'Ctrl-C saves a checkpoint and exits; --resume continues from the newest checkpoint in --output.',
    '',
    'options:',
    '  --config <file>                  YAML (or JSON) config file',
    flagHelp(),
  ].join('\n'),

  async run(args: string[]): Promise<number> {
    let cfg;
    try {
      cfg = configFromArgs(args);
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(e.message);
      throw e;
    }
    const stop = new AbortController();
    const onSigint = () => {
      if (stop.signal.aborted) process.exit(130);
      process.stderr.write('\npeftjs train: interrupted — saving a checkpoint after this step (Ctrl-C again to quit now)\n');
      stop.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const result = await train(cfg, { signal: stop.signal });
      console.log(summary(result));
      return result.interrupted ? 130 : 0;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};

export default command;
