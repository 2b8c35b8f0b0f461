// Command-line options the same way for every command of the project: `--help` (or `-h`) prints
// the usage and exits 0 before anything runs, and an unknown or malformed option prints what is
// wrong and the usage and exits 2, instead of a stack trace (or, worse, of running anyway).
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** `usage: <command> [--name <value>] [--flag] …`, from the options themselves (defaults shown). */
export function usageOf(command: string, config: ParseArgsConfig, summary?: string): string {
  const parts = Object.entries(config.options ?? {}).map(([name, option]) => {
    const shown = option.type === 'boolean' ? `--${name}` : `--${name} <value>`;
    const fallback = option.default === undefined || option.type === 'boolean' ? '' : ` (default ${String(option.default)})`;
    return `[${shown}${fallback}]`;
  });
  return [`usage: ${[command, ...parts].join(' ')}`, ...(summary === undefined ? [] : [summary])].join('\n');
}

export function parseCommandLine<T extends ParseArgsConfig>(command: string, config: T, summary?: string): ReturnType<typeof parseArgs<T>> {
  const usage = usageOf(command, config, summary);
  const args = config.args ?? process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  try {
    return parseArgs<T>(config);
  } catch (error) {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n${usage}\n`);
    process.exit(2);
  }
}
