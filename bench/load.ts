// Loader benchmark: npx tsx bench/load.ts [--items N] [--skip-olist] [--skip-synthetic]
// Migrates a fresh database oi_bench_load, loads the real Olist folder (when present) and a
// synthetic dataset (generated once into /tmp and reused), and reports items/s, wall time and
// peak RSS sampled every 100 ms during each load.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { generateDataset } from '../src/generate/generate.js';
import { FILES } from '../src/loader/contract.js';
import { loadBatch, type LoadSummary } from '../src/loader/load-batch.js';
import { migrateDatabase } from '../src/db/migrate.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_URL = process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306';
const DATABASE = 'oi_bench_load';
const ITEMS_PER_ORDER = 1.27; // the generator's mean, measured

const { values } = parseArgs({
  options: {
    items: { type: 'string', default: '5000000' },
    'skip-olist': { type: 'boolean', default: false },
    'skip-synthetic': { type: 'boolean', default: false },
  },
});
const targetItems = Number(values.items);

async function resetDatabase(): Promise<string> {
  const admin = await mysql.createConnection({ uri: SERVER_URL });
  try {
    await admin.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  } finally {
    await admin.end();
  }
  const url = `${SERVER_URL}/${DATABASE}`;
  await migrateDatabase(url);
  return url;
}

async function measured(label: string, run: () => Promise<LoadSummary>): Promise<void> {
  let peakRss = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 100);
  const started = performance.now();
  const summary = await run();
  const seconds = (performance.now() - started) / 1000;
  clearInterval(timer);
  const items = summary.files[FILES.items];
  const rows = Object.values(summary.files).reduce((n, f) => n + f.read, 0);
  const rejected = Object.values(summary.files).reduce((n, f) => n + f.rejected, 0);
  console.log(
    JSON.stringify({
      label,
      items: items.loaded,
      rowsAllFiles: rows,
      rejected,
      wallSeconds: Number(seconds.toFixed(2)),
      itemsPerSecond: Math.round(items.loaded / seconds),
      rowsPerSecond: Math.round(rows / seconds),
      peakRssMiB: Math.round(peakRss / 1024 / 1024),
    }),
  );
}

async function main(): Promise<void> {
  console.error(`machine: ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, node ${process.version}`);
  const olist = path.resolve(repoRoot, '../shared/data/olist');
  if (!values['skip-olist'] && existsSync(olist)) {
    const url = await resetDatabase();
    await measured('olist (fresh database)', () => loadBatch({ databaseUrl: url, dir: olist }));
    await measured('olist (reload, all upserts)', () => loadBatch({ databaseUrl: url, dir: olist }));
  }
  if (!values['skip-synthetic']) {
    const orders = Math.ceil(targetItems / ITEMS_PER_ORDER);
    const sellers = Math.max(50, Math.round(orders / 300));
    const dir = path.join(os.tmpdir(), `oi-bench-${orders}-${sellers}-1`);
    const marker = path.join(dir, '.complete');
    if (!existsSync(marker)) {
      const started = performance.now();
      const result = await generateDataset({ out: dir, orders, sellers, seed: 1 });
      await writeFile(marker, JSON.stringify(result));
      console.error(`generated ${result.items} items in ${((performance.now() - started) / 1000).toFixed(1)} s into ${dir}`);
    } else {
      console.error(`reusing ${dir}: ${await readFile(marker, 'utf8')}`);
    }
    const url = await resetDatabase();
    await measured(`synthetic ${orders} orders, ${sellers} sellers (fresh database)`, () =>
      loadBatch({ databaseUrl: url, dir }),
    );
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
