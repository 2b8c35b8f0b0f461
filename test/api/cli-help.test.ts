// Every command answers --help with its usage and does nothing else, and refuses an unknown
// option with exit 2 and the usage (not a stack trace, and not by running anyway).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { SERVER_URL } from '../helpers/database.js';

const run = promisify(execFile);
const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

async function command(script: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

describe('command-line --help and unknown options', () => {
  it('db:migrate --help prints its usage and creates no database', async () => {
    const name = `oi_test_help_${randomBytes(4).toString('hex')}`;
    const result = await command('src/cli/migrate.ts', ['--help'], { DATABASE_URL: `${SERVER_URL}/${name}` });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: npm run db:migrate/);
    const admin = await mysql.createConnection({ uri: SERVER_URL });
    try {
      const [rows] = await admin.query<RowDataPacket[]>('SHOW DATABASES LIKE ?', [name]);
      expect(rows).toEqual([]);
    } finally {
      await admin.end();
    }
  });

  it('openapi --help leaves openapi.yaml alone', async () => {
    const before = statSync(path.join(root, 'openapi.yaml')).mtimeMs;
    const result = await command('scripts/write-openapi.ts', ['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: npm run openapi -- \[--check\]/);
    expect(statSync(path.join(root, 'openapi.yaml')).mtimeMs).toBe(before);
  });

  it.each([
    ['scripts/demo.ts', /^usage: npm run demo -- \[--dir <value>\]/],
    ['bench/soak.ts', /^usage: npm run bench:soak -- \[--minutes <value> \(default 30\)\]/],
  ])('%s: --help prints the usage; an unknown option exits 2 with the usage', async (script, usage) => {
    const help = await command(script, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(usage);
    const bad = await command(script, ['--no-such-option']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: Unknown option '--no-such-option'/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});
