// The monitoring story in one command: a batch goes through every stage with its times reported,
// users read it, then MySQL reads are slowed down. The metrics and the batch timeline must show
// that the delay sits in the database read, not in the pipeline.
//   npm run scenario:slow-read [-- --seconds 10]
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSigner } from 'fast-jwt';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/client.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { generateDataset } from '../src/generate/generate.js';
import { loadBatch } from '../src/loader/load-batch.js';
import { parseCommandLine } from '../src/cli/args.js';

const { values } = parseCommandLine('npm run scenario:slow-read --', { options: { seconds: { type: 'string', default: '8' } } }, 'the monitoring story: a batch through its stages, traffic, then slowed MySQL reads (SCENARIO_DATABASE, SCENARIO_SERVER_URL)');
const phaseMs = Number(values.seconds) * 1000;
const server = process.env.SCENARIO_SERVER_URL ?? 'mysql://root@127.0.0.1:3306';
const databaseName = process.env.SCENARIO_DATABASE ?? 'oi_scenario_slow_read';
// The scenario drops and recreates its database: a name without "scenario" in it is refused, so
// that SCENARIO_DATABASE=order_items cannot wipe the real one.
if (!/^[A-Za-z0-9_]{1,64}$/.test(databaseName) || !databaseName.includes('scenario')) {
  process.stderr.write('error: SCENARIO_DATABASE: letters, digits and _ only, and containing "scenario" (the database is dropped and recreated)\n');
  process.exit(2);
}
const databaseUrl = `${server}/${databaseName}`;
const secret = 'scenario-secret-0123456789abcdef0123456789';

const admin = await mysql.createConnection({ uri: server });
await admin.query(`DROP DATABASE IF EXISTS \`${databaseName}\``);
await admin.end();
await migrateDatabase(databaseUrl);

// 1. A batch is ingested, the loader lands and stages it (it writes its own landing and staging
// stages), its upstream source stage reports through the API, and the API records first-served.
const dir = await mkdtemp(join(tmpdir(), 'oi-scenario-'));
// Removed however the script ends, a failure included.
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
await generateDataset({ out: dir, sellers: 10, orders: 20_000, seed: 7 });
const ingestedAt = Date.now() - 8_000;
const config = loadConfig({
  ...(process.env.READ_MODEL === undefined ? {} : { READ_MODEL: process.env.READ_MODEL }),
  DATABASE_URL: databaseUrl,
  JWT_SECRET: secret,
  LOG_LEVEL: 'silent',
  PIPELINE_METRICS_REFRESH_MS: '1000',
  DB_POOL_SIZE: '8',
  RATE_LIMIT_MAX: '1000000',
  // The traffic comes from this same process: its CPU would read as overload and be shed.
  LOAD_SHED_MAX_CPU_UTILIZATION: '0',
  LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
});
const app = await buildApp(config);
await app.listen({ host: '127.0.0.1', port: 0 });
const metricsPort = await app.listenMetrics('127.0.0.1', 0);
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('no address');
const base = `http://127.0.0.1:${address.port}`;
const sign = createSigner({ key: secret, expiresIn: 3600_000 });

const summary = await loadBatch({ databaseUrl, dir, source: 'scenario', ingestedAt: new Date(ingestedAt) });
const ops = `Bearer ${sign({ sub: 'etl', scope: 'pipeline:write pipeline:read' })}`;
const upstream: [string, number, number][] = [['source', 1, 6]];
for (const [stage, start, end] of upstream) {
  const response = await fetch(`${base}/v1/pipeline/batches/${summary.batchId}/stages/${stage}`, {
    method: 'PUT',
    headers: { authorization: ops, 'content-type': 'application/json' },
    body: JSON.stringify({ startedAt: new Date(ingestedAt + start * 1000).toISOString(), finishedAt: new Date(ingestedAt + end * 1000).toISOString(), status: 'succeeded', rowsIn: 1000, rowsOut: 1000 }),
  });
  if (!response.ok) throw new Error(`PUT ${stage}: ${response.status} ${await response.text()}`);
}

const pool = createPool(databaseUrl, { connectionLimit: 2 });
const [sellers] = await pool.query<RowDataPacket[]>('SELECT seller_id FROM fact_order_item GROUP BY seller_id ORDER BY COUNT(*) DESC LIMIT 4');
const tokens = sellers.map((row) => `Bearer ${sign({ tenant_id: String(row.seller_id), scope: 'order-items:read' })}`);

async function traffic(ms: number, concurrency = 8): Promise<Record<number, number>> {
  const end = Date.now() + ms;
  const served: Record<number, number> = {};
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (Date.now() < end) {
        const token = tokens[worker % tokens.length] as string;
        const path = worker % 4 === 3 ? '/v1/order-items/summary?groupBy=month' : '/v1/order-items?limit=50';
        const response = await fetch(base + path, { headers: { authorization: token } });
        await response.arrayBuffer();
        served[response.status] = (served[response.status] ?? 0) + 1;
      }
    }),
  );
  return served;
}

type Histogram = Map<number, number>;
async function histogram(name: string, labels: Record<string, string>): Promise<Histogram> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const buckets: Histogram = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1] ?? '+Inf';
    buckets.set(le === '+Inf' ? Infinity : Number(le), (buckets.get(le === '+Inf' ? Infinity : Number(le)) ?? 0) + Number(line.split(' ').at(-1)));
  }
  return buckets;
}
function quantile(after: Histogram, before: Histogram, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total === 0) return Number.NaN;
  let previous = 0;
  let previousCount = 0;
  for (const bound of bounds) {
    const count = (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
    if (count >= q * total) {
      if (bound === Infinity) return previous;
      return previous + ((bound - previous) * (q * total - previousCount)) / Math.max(1, count - previousCount);
    }
    previous = bound;
    previousCount = count;
  }
  return previous;
}
async function snapshot(): Promise<{ http: Histogram; db: Histogram }> {
  return {
    http: await histogram('http_request_duration_seconds', { route: '/v1/order-items', status_code: '200' }),
    db: await histogram('db_query_duration_seconds', { query: 'listOrderItems' }),
  };
}
const ms = (seconds: number): string => `${(seconds * 1000).toFixed(1)} ms`;

// 2. Baseline traffic.
const t0 = await snapshot();
const baselineServed = await traffic(phaseMs);
const t1 = await snapshot();

// 3. Slow MySQL reads: another session holds a write lock on the tables the API reads, again and
// again, as a long maintenance statement would; every read of them waits, whatever READ_MODEL is.
const locker = await mysql.createConnection({ uri: databaseUrl });
let locking = true;
const lockLoop = (async () => {
  while (locking) {
    await locker.query('LOCK TABLES fact_order_item WRITE, order_item_wide WRITE, order_item_daily_summary WRITE');
    await new Promise((resolve) => setTimeout(resolve, 150));
    await locker.query('UNLOCK TABLES');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
})();
const slowServed = await traffic(phaseMs);
locking = false;
await lockLoop;
await locker.end();
const t2 = await snapshot();

await app.refreshPipelineMetrics();
const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
const gauge = (name: string, stage: string): string => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{stage="${stage}"}`));
  return line === undefined ? '-' : `${Number(line.split(' ').at(-1)).toFixed(1)} s`;
};
const batch = (await (await fetch(`${base}/v1/pipeline/batches/${summary.batchId}`, { headers: { authorization: ops } })).json()) as {
  stages: { stage: string; durationSeconds: number | null; gapSeconds: number | null }[];
  endToEndSeconds: number;
  slowestStep: unknown;
};

console.log(`\nREAD_MODEL=${config.readModel}`);
console.log(`\nBatch ${summary.batchId}: pipeline stages (from GET /v1/pipeline/batches/{id} and /metrics)`);
console.log('stage     duration  gap-before  order_items_pipeline_stage_duration_seconds');
for (const stage of batch.stages) {
  console.log(`${stage.stage.padEnd(9)} ${String(stage.durationSeconds ?? '-').padStart(7)} s ${String(stage.gapSeconds ?? '-').padStart(9)} s  ${gauge('order_items_pipeline_stage_duration_seconds', stage.stage)}`);
}
console.log(`end to end (ingestion → first served): ${batch.endToEndSeconds} s; slowest step: ${JSON.stringify(batch.slowestStep)}`);
console.log('\nGET /v1/order-items             responses  HTTP p50     HTTP p99     DB read p50  DB read p99  DB share of p50');
const row = (label: string, served: Record<number, number>, a: { http: Histogram; db: Histogram }, b: { http: Histogram; db: Histogram }): void => {
  const httpP50 = quantile(b.http, a.http, 0.5);
  const dbP50 = quantile(b.db, a.db, 0.5);
  console.log(
    `${label.padEnd(31)} ${JSON.stringify(served).padStart(8)}   ${ms(httpP50).padStart(10)}   ${ms(quantile(b.http, a.http, 0.99)).padStart(10)}   ${ms(dbP50).padStart(10)}   ${ms(quantile(b.db, a.db, 0.99)).padStart(10)}   ${((dbP50 / httpP50) * 100).toFixed(0)}%`,
  );
};
row('baseline', baselineServed, t0, t1);
row('slow MySQL read injected', slowServed, t1, t2);
console.log('\n(quantiles interpolated from the histogram buckets scraped from /metrics, per phase)');

await pool.end();
await app.close();
