// npm run generate -- --out <folder> --sellers N --orders N --seed S
// Writes the six Olist-layout CSV files; prints one line of JSON (the counts) on stdout.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generateDataset, MAX_SEED } from './generate.js';

const USAGE = 'usage: npm run generate -- --out <folder> --sellers <n> --orders <n> [--seed <0..4294967295>]';

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function integer(name: string, value: string | undefined, fallback?: number): number {
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    fail(`--${name} is required`);
  }
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) fail(`--${name} must be a non-negative integer (got "${value}")`);
  return Number(value);
}

async function main(): Promise<void> {
  let values: { out?: string; sellers?: string; orders?: string; seed?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        help: { type: 'boolean', short: 'h' },
        out: { type: 'string' },
        sellers: { type: 'string' },
        orders: { type: 'string' },
        seed: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.out === undefined || values.out === '') fail('--out is required');
  const sellers = integer('sellers', values.sellers);
  const orders = integer('orders', values.orders);
  const seed = integer('seed', values.seed, 1);
  if (sellers < 1 || orders < 1) fail('--sellers and --orders must be at least 1');
  // The generator's state is 32 bits: a larger seed would silently repeat a smaller one's data.
  if (seed > MAX_SEED) fail(`--seed must be at most ${MAX_SEED} (got ${seed})`);
  const started = Date.now();
  // npm runs scripts from the package root: a relative --out means the caller's folder, as for load --dir.
  const out = path.resolve(process.env.INIT_CWD ?? process.cwd(), values.out);
  const result = await generateDataset({ out, sellers, orders, seed });
  process.stdout.write(`${JSON.stringify({ ...result, durationMs: Date.now() - started })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
