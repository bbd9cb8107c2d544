/** `peftjs inspect --adapter DIR`: a readable summary of an adapter directory (no base model needed). */
import { configToJson } from './config.js';
import { KEY_PREFIX, readAdapterFiles } from './format.js';

/** One adapted module: its path, rank, and input / output sizes (from the tensor shapes). */
export interface AdapterTarget {
  module: string;
  kind: 'linear' | 'embedding';
  r: number;
  inFeatures: number;
  outFeatures: number;
}

export interface AdapterSummary {
  config: Record<string, unknown>;
  targets: AdapterTarget[];
  /** Other saved tensors (modules_to_save copies, biases) by key. */
  otherTensors: { key: string; shape: number[] }[];
  /** Elements of every tensor in the file — the adapter's trainable-parameter count. */
  parameterCount: number;
  loraParameterCount: number;
}

/** Reads `dir` and describes its adapter. */
export function summarizeAdapter(dir: string): AdapterSummary {
  const { config, tensors } = readAdapterFiles(dir);
  const targets = new Map<string, AdapterTarget>();
  const otherTensors: AdapterSummary['otherTensors'] = [];
  let parameterCount = 0;
  let loraParameterCount = 0;
  for (const [key, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    parameterCount += n;
    const m = key.match(/^(?:base_model\.model\.)?(.*)\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B)$/);
    if (!m) {
      otherTensors.push({ key: key.startsWith(KEY_PREFIX) ? key.slice(KEY_PREFIX.length) : key, shape: [...t.shape] });
      continue;
    }
    loraParameterCount += n;
    const [, module, which] = m as unknown as [string, string, string];
    const kind = which.startsWith('lora_embedding') ? 'embedding' : 'linear';
    const entry = targets.get(module) ?? { module, kind, r: 0, inFeatures: 0, outFeatures: 0 };
    if (which.includes('A')) [entry.r, entry.inFeatures] = t.shape as [number, number];
    else entry.outFeatures = t.shape[0]!;
    targets.set(module, entry);
  }
  return { config: config as unknown as Record<string, unknown>, targets: [...targets.values()], otherTensors, parameterCount, loraParameterCount };
}

/** The text `peftjs inspect --adapter DIR` prints. */
export function formatAdapterSummary(dir: string, s: AdapterSummary = summarizeAdapter(dir)): string {
  const c = s.config;
  const ranks = new Map<number, number>();
  for (const t of s.targets) ranks.set(t.r, (ranks.get(t.r) ?? 0) + 1);
  const lines = [
    `adapter ${dir}`,
    `  peft_type ${c.peft_type}, task_type ${c.task_type ?? '-'}, base model ${c.base_model_name_or_path ?? '-'}`,
    `  r ${c.r}, lora_alpha ${c.lora_alpha}, use_rslora ${c.use_rslora}, lora_dropout ${c.lora_dropout}, bias ${c.bias}, fan_in_fan_out ${c.fan_in_fan_out}`,
    `  target_modules ${JSON.stringify(c.target_modules)}${c.modules_to_save ? `, modules_to_save ${JSON.stringify(c.modules_to_save)}` : ''}`,
    `  ranks: ${[...ranks].map(([r, n]) => `r=${r} on ${n} module(s)`).join(', ')}`,
    `  parameters: ${s.parameterCount.toLocaleString('en-US')} (LoRA ${s.loraParameterCount.toLocaleString('en-US')}, other ${(s.parameterCount - s.loraParameterCount).toLocaleString('en-US')})`,
    `  targets (${s.targets.length}):`,
    ...s.targets.map((t) => `    ${t.module}  ${t.kind} ${t.inFeatures}→${t.outFeatures}  r=${t.r}`),
  ];
  if (s.otherTensors.length) lines.push(`  other tensors (${s.otherTensors.length}):`, ...s.otherTensors.map((o) => `    ${o.key}  [${o.shape.join(', ')}]`));
  lines.push('  config:', ...configToJson(s.config as never).split('\n').map((l) => `    ${l}`));
  return lines.join('\n');
}
