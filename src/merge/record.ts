/**
 * What a merge leaves beside its weights, as mergekit does: the config it ran, as `mergekit_config.yml` (the name the
 * Hugging Face Hub and merge tooling look for), and a model card, `README.md`, naming the method and the models, in
 * place of the base model's card.
 */
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../io/safetensors.js';
import type { MergeConfig } from './config.js';

/** The config file's name in a merge's output folder. */
const MERGE_CONFIG_NAME = 'mergekit_config.yml';

/** A merged model's card: front matter tagging it a merge, the method, the base, the models and the config. */
function modelCard(config: MergeConfig, out: string): string {
  const base = config.baseModel === null ? '' : ` with \`${config.baseModel}\` as the base`;
  return [
    '---',
    'library_name: transformers',
    'tags:',
    '- merge',
    '- peftjs',
    '---',
    `# ${basename(out)}`,
    '',
    `A merge of pre-trained language models, made with peftjs by the \`${config.mergeMethod}\` method${base}.`,
    '',
    'Models merged:',
    ...config.models.map((m) => `- \`${m.model}\``),
    ...(config.source === undefined ? [] : ['', '## Configuration', '', '```yaml', config.source.trimEnd(), '```']),
    '',
  ].join('\n');
}

/** Writes the config (when its text is known) and the model card into the output folder `out`. */
export function writeMergeRecord(config: MergeConfig, out: string): void {
  const write = (file: string, text: string) => writeFileAtomic(join(out, file), (fd) => writeFileSync(fd, text));
  if (config.source !== undefined) write(MERGE_CONFIG_NAME, config.source);
  write('README.md', modelCard(config, out));
}
