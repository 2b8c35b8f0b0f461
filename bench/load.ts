// Loader benchmark:
//   npx tsx bench/load.ts [--items N] [--dir <folder>] [--server shared|tuned|both] [--repeat N] [--writers N] [--digest]
//                         [--chunk-size N] [--staging load-data|insert] [--skip-olist] [--skip-synthetic] [--verbose]
//                         [--buffer-pool 4G] [--no-append]
// For each server, migrates a fresh database oi_bench_load, loads the real Olist folder (when
// present: fresh, then reload) and a synthetic dataset (generated once into /tmp and reused,
// or --dir; 3,000 sellers with the generator's Zipf-like skew, as the read benchmark's 5M
// dataset), and reports items/s, wall time and peak RSS sampled every 100 ms during each load,
// as JSON lines and (unless --no-append) as a section at the end of BENCHMARKS.md's "Loader".
// `--staging insert` measures the loader's fallback for servers that refuse LOAD DATA LOCAL.
//
// Servers: `shared` = BENCH_DATABASE_SERVER_URL (default the shared MariaDB at 127.0.0.1:3306,
// packaged defaults); `tuned` = a private mariadbd started here with TUNED_SETTINGS on its own
// port, socket and data directory under /tmp, stopped and removed at the end (`--buffer-pool`
// overrides its innodb_buffer_pool_size). For the tuned server each result also gives mariadbd's
// CPU time during the load and the size of the tables afterwards: where the time went.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { generateDataset } from '../src/generate/generate.js';
import { FILES } from '../src/loader/contract.js';
import { loadBatch, type LoadSummary } from '../src/loader/load-batch.js';
import type { StagingMethod } from '../src/loader/upsert.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { PrivateMariaDb } from '../test/helpers/private-mariadb.js';
import { appendToBenchmarks, commitInfo, machineContext } from './harness.js';
import { parseCommandLine } from '../src/cli/args.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHARED_URL = process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306';
const DATABASE = 'oi_bench_load';
const ITEMS_PER_ORDER = 1.27; // the generator's mean, measured
/** As many sellers as the read benchmark's 5M dataset (bench/datasets.ts). */
const SYNTHETIC_SELLERS = 3_000;

/** The private server's settings: what a tuned staging database would run with. */
export const TUNED_SETTINGS = [
  '--innodb-buffer-pool-size=4G',
  '--innodb-log-file-size=1G',
  '--innodb-log-buffer-size=64M',
  '--innodb-flush-log-at-trx-commit=2',
  '--innodb-io-capacity=2000',
  '--skip-log-bin',
  '--local-infile=1',
  '--max-allowed-packet=64M',
];

const { values } = parseCommandLine('npm run bench:load --', {
  options: {
    items: { type: 'string', default: '5000000' },
    dir: { type: 'string' },
    server: { type: 'string', default: 'shared' },
    repeat: { type: 'string', default: '1' },
    'chunk-size': { type: 'string' },
    writers: { type: 'string' },
    staging: { type: 'string', default: 'load-data' },
    'skip-olist': { type: 'boolean', default: false },
    'skip-synthetic': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    'buffer-pool': { type: 'string' },
    // Tuned server only: performance_schema on, and after each load the statements that took the
    // server's time, by digest (performance_schema costs a few percent: not for headline numbers).
    digest: { type: 'boolean', default: false },
    'no-append': { type: 'boolean', default: false },
  },
});
const targetItems = Number(values.items);
const repeat = Number(values.repeat);
const chunkSize = values['chunk-size'] === undefined ? undefined : Number(values['chunk-size']);
const writers = values.writers === undefined ? undefined : Number(values.writers);
if (values.staging !== 'load-data' && values.staging !== 'insert') throw new Error('--staging: load-data or insert');
const staging: StagingMethod = values.staging;
const log = values.verbose ? (m: string) => console.error(`[loader] ${m}`) : undefined;

interface BenchServer {
  name: string;
  url: string;
  /** mariadbd's pid when it is ours (its CPU time is then read from /proc), else undefined. */
  pid?: number;
}

const tunedSettings = (): string[] => [
  ...(values['buffer-pool'] === undefined
    ? TUNED_SETTINGS
    : TUNED_SETTINGS.map((s) => (s.startsWith('--innodb-buffer-pool-size=') ? `--innodb-buffer-pool-size=${values['buffer-pool']}` : s))),
  ...(values.digest ? ['--performance-schema=ON', '--performance-schema-digests-size=2000', '--max-digest-length=4096', '--performance-schema-max-digest-length=4096'] : []),
];

/** Clears the statement digests of a performance_schema server. */
async function resetDigests(url: string): Promise<void> {
  const connection = await mysql.createConnection({ uri: url });
  try {
    await connection.query('TRUNCATE TABLE performance_schema.events_statements_summary_by_digest');
  } finally {
    await connection.end();
  }
}

/** The statements that took the server's time since resetDigests, heaviest first. */
async function printDigests(url: string): Promise<void> {
  const connection = await mysql.createConnection({ uri: url });
  try {
    const [rows] = await connection.query<RowDataPacket[]>(
      `SELECT COUNT_STAR AS calls, SUM_TIMER_WAIT / 1e12 AS seconds, SUM_ROWS_AFFECTED AS affected,
              SUM_ROWS_EXAMINED AS examined, SUM_ROWS_SENT AS sent, DIGEST_TEXT AS text
         FROM performance_schema.events_statements_summary_by_digest
        ORDER BY SUM_TIMER_WAIT DESC LIMIT 25`,
    );
    const total = rows.reduce((n, r) => n + Number(r.seconds), 0);
    console.error(`statement digests (top 25, ${total.toFixed(1)} s of statement time in all):`);
    for (const r of rows) {
      const text = String(r.text).replace(/\s+/g, ' ');
      console.error(
        `${Number(r.seconds).toFixed(1).padStart(8)} s ${String(r.calls).padStart(8)} calls ${String(r.affected).padStart(10)} affected ${String(r.examined).padStart(11)} examined  ${text.slice(0, 260)}`,
      );
    }
  } finally {
    await connection.end();
  }
}

/** user + system CPU seconds of a process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100; // USER_HZ on Linux
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Data and index size of the tables the items file writes, in MiB, after a load. */
async function tableSizes(url: string): Promise<Record<string, { dataMiB: number; indexMiB: number }>> {
  const connection = await mysql.createConnection({ uri: url });
  try {
    const [rows] = await connection.query<RowDataPacket[]>(
      `SELECT table_name AS name, data_length AS data, index_length AS idx FROM information_schema.tables
        WHERE table_schema = DATABASE() AND table_name IN ('fact_order_item', 'order_item_wide', 'fact_order', 'dim_customer', 'dim_product')
        ORDER BY table_name`,
    );
    const mib = (n: unknown) => Math.round(Number(n) / 2 ** 20);
    return Object.fromEntries(rows.map((r) => [String(r.name), { dataMiB: mib(r.data), indexMiB: mib(r.idx) }]));
  } finally {
    await connection.end();
  }
}

async function resetDatabase(serverUrl: string): Promise<string> {
  const admin = await mysql.createConnection({ uri: serverUrl });
  try {
    await admin.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  } finally {
    await admin.end();
  }
  const url = `${serverUrl}/${DATABASE}`;
  await migrateDatabase(url);
  return url;
}

interface Measurement {
  server: string;
  label: string;
  staging: StagingMethod;
  items: number;
  rowsAllFiles: number;
  rejected: number;
  wallSeconds: number;
  itemsPerSecond: number;
  rowsPerSecond: number;
  peakRssMiB: number;
  loaderCpuSeconds: number;
  serverCpuSeconds: number | null;
  tables: Awaited<ReturnType<typeof tableSizes>> | undefined;
}
const measurements: Measurement[] = [];

async function measured(server: BenchServer, url: string, label: string, run: () => Promise<LoadSummary>): Promise<void> {
  if (values.digest && server.pid !== undefined) await resetDigests(url);
  const serverCpuBefore = server.pid === undefined ? undefined : await cpuSeconds(server.pid);
  const ownCpuBefore = process.cpuUsage();
  let peakRss = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 100);
  const started = performance.now();
  const summary = await run();
  const seconds = (performance.now() - started) / 1000;
  clearInterval(timer);
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const serverCpu = server.pid === undefined || serverCpuBefore === undefined ? undefined : (await cpuSeconds(server.pid)) - serverCpuBefore;
  const items = summary.files[FILES.items];
  const rows = Object.values(summary.files).reduce((n, f) => n + f.read, 0);
  const rejected = Object.values(summary.files).reduce((n, f) => n + f.rejected, 0);
  const result: Measurement = {
    server: server.name,
    label,
    staging,
    items: items.loaded,
    rowsAllFiles: rows,
    rejected,
    wallSeconds: Number(seconds.toFixed(2)),
    itemsPerSecond: Math.round(items.loaded / seconds),
    rowsPerSecond: Math.round(rows / seconds),
    peakRssMiB: Math.round(peakRss / 1024 / 1024),
    loaderCpuSeconds: Number(((ownCpu.user + ownCpu.system) / 1e6).toFixed(1)),
    serverCpuSeconds: serverCpu === undefined ? null : Number(serverCpu.toFixed(1)),
    tables: server.pid === undefined ? undefined : await tableSizes(url),
  };
  measurements.push(result);
  console.log(JSON.stringify(result));
  if (values.digest && server.pid !== undefined) await printDigests(url);
}

async function syntheticDir(): Promise<string> {
  if (values.dir !== undefined) return path.resolve(values.dir);
  const orders = Math.ceil(targetItems / ITEMS_PER_ORDER);
  const sellers = SYNTHETIC_SELLERS;
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
  return dir;
}

async function benchServer(server: BenchServer): Promise<void> {
  const serverUrl = server.url;
  const olist = path.resolve(repoRoot, '../shared/data/olist');
  for (let run = 1; run <= repeat; run += 1) {
    if (!values['skip-olist'] && existsSync(olist)) {
      const url = await resetDatabase(serverUrl);
      await measured(server, url, `olist (fresh database) run ${run}`, () => loadBatch({ databaseUrl: url, dir: olist, chunkSize, writers, staging, log }));
      await measured(server, url, `olist (reload, all upserts) run ${run}`, () =>
        loadBatch({ databaseUrl: url, dir: olist, chunkSize, writers, staging, log }),
      );
    }
    if (!values['skip-synthetic']) {
      const dir = await syntheticDir();
      const url = await resetDatabase(serverUrl);
      await measured(server, url, `synthetic ${path.basename(dir)} (fresh database) run ${run}`, () =>
        loadBatch({ databaseUrl: url, dir, chunkSize, writers, staging, log }),
      );
    }
  }
}

/** The run as a BENCHMARKS.md section: the command, commit, machine, then one row per load. */
function markdown(command: string, startedAt: Date, context: ReturnType<typeof machineContext>, serverSettings: string | undefined): string {
  const num = (n: number): string => n.toLocaleString('en-US');
  const lines = [
    `### Loader — ${startedAt.toISOString()}`,
    '',
    `- Command: \`${command}\``,
    `- Commit: ${commitInfo()}; machine: ${context.machine}`,
    ...(serverSettings === undefined ? [] : [`- Private tuned mariadbd: ${serverSettings}`]),
    `- Machine load at start (1/5/15 min): ${context.load}`,
    '',
    '| server | load | items | rows (all files) | rejected | wall s | items/s | rows/s | peak RSS MiB | loader CPU s | mariadbd CPU s |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...measurements.map(
      (m) =>
        `| ${m.server} | ${m.label} | ${num(m.items)} | ${num(m.rowsAllFiles)} | ${num(m.rejected)} | ${m.wallSeconds} | ${num(m.itemsPerSecond)} | ${num(m.rowsPerSecond)} | ${m.peakRssMiB} | ${m.loaderCpuSeconds} | ${m.serverCpuSeconds ?? '–'} |`,
    ),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const command = `npx tsx bench/load.ts ${process.argv.slice(2).join(' ')}`;
  const startedAt = new Date();
  const context = machineContext();
  let serverSettings: string | undefined;
  console.error(`machine: ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, node ${process.version}`);
  if (values.server === 'shared' || values.server === 'both') await benchServer({ name: 'shared (packaged defaults)', url: SHARED_URL });
  if (values.server === 'tuned' || values.server === 'both') {
    const settings = tunedSettings();
    serverSettings = settings.join(' ');
    // A private mariadbd on its own port and data directory, removed on stop.
    const tuned = await PrivateMariaDb.start({ args: settings });
    console.error(`tuned server: mariadbd pid ${tuned.pid}, port ${tuned.port}, ${settings.join(' ')}`);
    try {
      await benchServer({ name: 'private tuned', url: tuned.serverUrl, pid: tuned.pid });
    } finally {
      await tuned.stop();
    }
  }
  if (!values['no-append'] && measurements.length > 0) {
    appendToBenchmarks(markdown(command, startedAt, context, serverSettings), '## Loader');
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
