// npm run load -- --dir <folder> [--source <name>] [--ingested-at <ISO>] [--chunk-size <n>]
// stdout: exactly one line of JSON (the summary); stderr: progress and errors.
// Exit codes: 0 loaded; 1 the batch failed (marked failed in etl_batch) or the database is
// unreachable; 2 bad arguments, configuration or folder (nothing written).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadDatabaseUrl } from '../config.js';
import { LoadError, loadBatch } from './load-batch.js';

const USAGE = 'usage: npm run load -- --dir <folder> [--source <name>] [--ingested-at <ISO 8601>] [--chunk-size <n>] [--stall-timeout <seconds>]';

function fail(message: string, code: number): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let values: { dir?: string; source?: string; 'ingested-at'?: string; 'chunk-size'?: string; 'stall-timeout'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        dir: { type: 'string' },
        source: { type: 'string' },
        'ingested-at': { type: 'string' },
        'chunk-size': { type: 'string' },
        'stall-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`, 2);
  }
  if (values.help === true) {
    process.stderr.write(`${USAGE}\n`);
    return;
  }
  if (values.dir === undefined || values.dir === '') fail(`--dir is required\n${USAGE}`, 2);
  let chunkSize: number | undefined;
  if (values['chunk-size'] !== undefined) {
    chunkSize = Number(values['chunk-size']);
    if (!/^\d+$/.test(values['chunk-size'])) fail(`--chunk-size must be a positive integer`, 2);
  }

  let stallTimeoutMs: number | undefined;
  if (values['stall-timeout'] !== undefined) {
    if (!/^\d{1,6}(?:\.\d{1,3})?$/.test(values['stall-timeout']) || Number(values['stall-timeout']) < 0.1) {
      fail('--stall-timeout must be a number of seconds, at least 0.1', 2);
    }
    stallTimeoutMs = Math.round(Number(values['stall-timeout']) * 1000);
  }

  let databaseUrl: string;
  try {
    databaseUrl = loadDatabaseUrl();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }

  // A load stopped by Ctrl-C or a supervisor still marks its batch failed (SIGKILL cannot: the
  // next batch takes over its leftover work, see docs/loader.md).
  const interrupt = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => interrupt.abort(signal));
  try {
    const summary = await loadBatch({
      signal: interrupt.signal,
      databaseUrl,
      // `npm run` starts scripts in the package's folder; a relative --dir means the caller's.
      dir: path.resolve(process.env.INIT_CWD ?? process.cwd(), values.dir),
      source: values.source,
      ingestedAt: values['ingested-at'],
      chunkSize,
      stallTimeoutMs,
      log: (message) => process.stderr.write(`[loader] ${message}\n`),
    });
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } catch (error) {
    if (error instanceof LoadError) fail(error.message, error.kind === 'input' ? 2 : 1);
    throw error;
  }
}

main().catch((error: unknown) => {
  // Unexpected: still one readable line, the stack only on demand.
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error: unexpected failure: ${message}\n`);
  if (process.env.LOADER_DEBUG === '1' && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`);
  process.exit(1);
});
