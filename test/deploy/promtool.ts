// Runs promtool (Debian package `prometheus`) and amtool (`prometheus-alertmanager`) for the tests.
// A missing promtool is a test failure, not a skip: CI installs it (.ci/run).
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from './expressions.js';

export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for assertion messages. */
  output: string;
}

export const PROMTOOL_MISSING =
  'promtool was not found on PATH. Install the Debian package `prometheus` ' +
  '(apt-get install -y --no-install-recommends prometheus), which ships /usr/bin/promtool.';

function run(tool: string, args: readonly string[], missing: string): ToolResult {
  const r = spawnSync(tool, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(missing);
    throw r.error;
  }
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    output: `$ ${tool} ${args.join(' ')}\n${r.stdout}${r.stderr}`,
  };
}

export function promtool(...args: string[]): ToolResult {
  return run('promtool', args, PROMTOOL_MISSING);
}

export function hasTool(tool: string): boolean {
  const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  return !r.error;
}

export function amtool(...args: string[]): ToolResult {
  return run(
    'amtool',
    args,
    'amtool was not found on PATH. Install the Debian package `prometheus-alertmanager`.',
  );
}
