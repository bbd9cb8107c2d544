/**
 * `peftjs <command> [options]`: dispatches to `src/cli/<command>.ts`. Adding a command is adding that file and
 * its name to `COMMANDS`.
 */
import type { Command } from './command.js';
import { UsageError } from './command.js';

const COMMANDS = ['generate', 'inspect', 'train', 'quickstart', 'merge', 'serve'] as const;

async function load(name: string): Promise<Command | null> {
  if (!(COMMANDS as readonly string[]).includes(name)) return null;
  try {
    return ((await import(`./${name}.js`)) as { default: Command }).default;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(`${name}.`)) return null;
    throw e;
  }
}

async function help(): Promise<string> {
  const lines = ['usage: peftjs <command> [options]   (peftjs <command> --help for details)', '', 'commands:'];
  for (const name of COMMANDS) {
    const c = await load(name);
    if (c) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  }
  return lines.join('\n');
}

/** Runs the CLI with `argv` (without the node and script paths); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(await help());
    return name ? 0 : 1;
  }
  const cmd = await load(name);
  if (!cmd) {
    console.error(`peftjs: unknown command '${name}'\n\n${await help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(cmd.usage);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    // Library errors name their module (`merge: …`); said once after the command's own name.
    const message = (e as Error).message.replace(new RegExp(`^${name}: `), '');
    if (e instanceof UsageError) {
      console.error(`peftjs ${name}: ${message}`);
      return 2;
    }
    console.error(`peftjs ${name}: ${message}`);
    if (process.env.PEFTJS_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}
