/** The shape of one CLI command: each lives in `src/cli/<name>.ts` and default-exports a `Command`. */
export interface Command {
  /** One line for `peftjs help`. */
  summary: string;
  /** Full usage text for `peftjs <name> --help`. */
  usage: string;
  /** Runs the command with its own arguments; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** A user-facing error: printed without a stack trace, exit code 2. */
export class UsageError extends Error {}

/** Runs an argument parser (e.g. node:util `parseArgs`), turning its errors into a UsageError followed by `usage`. */
export function parseOrUsage<T>(usage: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${usage}`);
  }
}
