// Read-path benchmark, one command per scenario (or all), references in the same run:
//   npx tsx bench/api.ts --scenario list-first --dataset olist --read-model star
//   npx tsx bench/api.ts --all --dataset 5m --read-model star,wide [--connections 10 --duration 5 --repeats 2]
//     [--load-generator autocannon|wrk]   wrk (C, from Debian's package) leaves more of 2 cores to the server
// Scenarios: list-first, list-deep, get, order, summary-month, mixed. Targets per scenario, run
// back to back and interleaved, `--repeats` times: app:<model> (the real server process, auth
// and metrics on), bare:<model> (same app, auth and metrics off; first read model only unless
// --bare-all), db:<model> (mysql2 loop running the statements the app sent, same concurrency),
// http (bare Fastify returning a constant of the scenario's response size).
// Datasets: olist = oi_bench_olist on the shared server (build: bench/datasets.ts --dataset olist);
// 5m = oi_bench_5m on the private tuned server (bench/datasets.ts --dataset 5m), or --server shared.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import type { SqlValue } from '../src/db/database.js';
import { CursorCodec } from '../src/http/cursor.js';
import { READ_MODELS, type ReadModelName } from '../src/modules/order-items/read-models.js';
import { mintToken, TEST_JWT_SECRET } from '../test/helpers/tokens.js';
import { DATASET_DB, SHARED_SERVER_URL, type DatasetName } from './datasets.js';
import type { DbCeilingSpec } from './db-ceiling.js';
import {
  appendToBenchmarks,
  build,
  commitInfo,
  fmt,
  machineContext,
  median,
  repoRoot,
  runDbCeiling,
  runHttp,
  scrape,
  startServer,
  LOAD_GENERATORS,
  type LoadGenerator,
  type Measurement,
  type ServerProcess,
} from './harness.js';
import { ensurePrivateServer, PRIVATE_SERVER_ARGS } from './private-server.js';

export const SCENARIOS = ['list-first', 'list-deep', 'get', 'order', 'summary-month', 'mixed'] as const;
type Scenario = (typeof SCENARIOS)[number];
type Component = Exclude<Scenario, 'mixed'>;
const MIX: readonly Component[] = ['list-first', 'list-first', 'list-first', 'get', 'get', 'get', 'order', 'order', 'list-deep', 'summary-month'];
const DATA_QUERIES = new Set(['listOrderItems', 'getOrderItem', 'getOrder', 'summarizeOrderItems']);
const DEEP_AFTER = 100_000;

const USAGE = `usage: npx tsx bench/api.ts (--scenario <${'list-first|list-deep|get|order|summary-month|mixed'}> | --all)
  [--dataset olist|5m] [--read-model star,wide] [--server shared|private] [--load-generator autocannon|wrk]
  [--connections 10] [--duration 5] [--repeats 2] [--bare-all | --no-bare] [--no-build] [--no-append]
(see the comment at the top of bench/api.ts and BENCHMARKS.md, "Read path")`;

function usageError(message: string): never {
  console.error(`bench/api.ts: ${message}\n${USAGE}`);
  process.exit(2);
}

let parsed: ReturnType<typeof parseOptions>;
function parseOptions() {
  return parseArgs({
    options: {
      help: { type: 'boolean', default: false },
      scenario: { type: 'string' },
    all: { type: 'boolean', default: false },
    dataset: { type: 'string', default: 'olist' },
    'read-model': { type: 'string', default: 'star,wide' },
    server: { type: 'string' },
    connections: { type: 'string', default: '10' },
    duration: { type: 'string', default: '5' },
    repeats: { type: 'string', default: '2' },
    'bare-all': { type: 'boolean', default: false },
    'no-bare': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'no-append': { type: 'boolean', default: false },
      'load-generator': { type: 'string', default: 'autocannon' },
    },
  });
}
try {
  parsed = parseOptions();
} catch (error) {
  usageError(error instanceof Error ? error.message : String(error));
}
const { values } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const positiveInteger = (name: string, text: string | undefined): number => {
  if (text === undefined || !/^[1-9]\d{0,5}$/.test(text)) usageError(`--${name} must be a positive whole number (got ${JSON.stringify(text)})`);
  return Number(text);
};

const dataset = values.dataset as DatasetName;
if (!(dataset in DATASET_DB)) usageError('--dataset must be olist or 5m');
const models = (values['read-model'] ?? '').split(',').map((m) => m.trim()) as ReadModelName[];
for (const m of models) if (!READ_MODELS.includes(m)) usageError(`unknown read model ${m}`);
const scenarios: Scenario[] = values.all ? [...SCENARIOS] : [values.scenario as Scenario];
for (const s of scenarios) if (!SCENARIOS.includes(s)) usageError(`--scenario must be one of ${SCENARIOS.join(', ')} (or --all)`);
const loadGenerator = values['load-generator'] as LoadGenerator;
if (!LOAD_GENERATORS.includes(loadGenerator)) usageError(`--load-generator must be one of ${LOAD_GENERATORS.join(', ')}`);
const connections = positiveInteger('connections', values.connections);
const duration = positiveInteger('duration', values.duration);
const repeats = positiveInteger('repeats', values.repeats);
const serverKind = values.server ?? (dataset === '5m' ? 'private' : 'shared');
const command = `npx tsx bench/api.ts ${process.argv.slice(2).join(' ')}`;
const QUERY_TIMEOUT_MS = 2000;

const serverUrl = serverKind === 'private' ? await ensurePrivateServer() : SHARED_SERVER_URL;
const databaseUrl = `${serverUrl}/${DATASET_DB[dataset]}`;
const context = machineContext();
const startedAt = new Date().toISOString();
console.error(`[bench] ${command}\n[bench] ${databaseUrl}; load ${context.load}`);

// ---- fixtures: the largest seller, its ids, the deep cursor position ------------------------
const db = await mysql.createConnection({ uri: databaseUrl, dateStrings: true });
const [topRows] = await db.query<RowDataPacket[]>(
  'SELECT seller_id, COUNT(*) AS n FROM order_item_wide GROUP BY seller_id ORDER BY n DESC LIMIT 1',
);
const top = topRows[0];
if (top === undefined) throw new Error(`${databaseUrl} has no items; run bench/datasets.ts first`);
const sellerId = String(top.seller_id);
const sellerItems = Number(top.n);
const deepAfter = Math.min(DEEP_AFTER, sellerItems - 60);
const [deepRows] = await db.query<RowDataPacket[]>(
  `SELECT purchased_at, order_id, order_item_id FROM order_item_wide WHERE seller_id = ?
    ORDER BY purchased_at DESC, order_id DESC, order_item_id DESC LIMIT 1 OFFSET ${deepAfter - 1}`,
  [sellerId],
);
const deep = deepRows[0];
const [ids] = await db.query<RowDataPacket[]>(
  'SELECT order_id, order_item_id FROM order_item_wide WHERE seller_id = ? ORDER BY order_id LIMIT 200',
  [sellerId],
);
const [pidRows] = await db.query<RowDataPacket[]>('SELECT @@pid_file AS f, @@innodb_buffer_pool_size AS bp, VERSION() AS v');
await db.end();
let dbPid: number | undefined;
try {
  const { readFileSync } = await import('node:fs');
  dbPid = Number(readFileSync(String(pidRows[0]?.f), 'utf8').trim());
} catch {
  dbPid = undefined;
}
const dbServerDesc = `MariaDB ${String(pidRows[0]?.v)}, innodb_buffer_pool_size ${(Number(pidRows[0]?.bp) / 2 ** 20).toFixed(0)} MiB${
  serverKind === 'private' ? ` (private tuned mariadbd: ${PRIVATE_SERVER_ARGS.join(' ')})` : ' (shared server, packaged defaults)'
}`;
if (deep === undefined) throw new Error('no deep position');
const cursors = new CursorCodec(TEST_JWT_SECRET);
const filterKey = JSON.stringify([null, null, null, null, null]);
const deepCursor = cursors.encode(sellerId, filterKey, [String(deep.purchased_at), String(deep.order_id), Number(deep.order_item_id)]);

const paths: Record<Component, string[]> = {
  'list-first': ['/v1/order-items?limit=50'],
  'list-deep': [`/v1/order-items?limit=50&cursor=${encodeURIComponent(deepCursor)}`],
  get: ids.map((r) => `/v1/order-items/${String(r.order_id)}/${Number(r.order_item_id)}`),
  order: [...new Set(ids.map((r) => String(r.order_id)))].map((o) => `/v1/orders/${o}`),
  'summary-month': ['/v1/order-items/summary?groupBy=month&from=2017-01-01T00:00:00Z&to=2018-01-01T00:00:00Z'],
};
const scenarioPaths = (s: Scenario): string[] =>
  s === 'mixed' ? MIX.map((c, i) => paths[c][i % paths[c].length] ?? paths[c][0] ?? '/') : paths[s];
const token = mintToken({ sellerId, expiresInSeconds: 6 * 3600 });
const headers = { authorization: `Bearer ${token}` };

// ---- capture the exact statements the app sends, and one response body per component -------
const appEnv = (model: ReadModelName): Record<string, string> => ({
  DATABASE_URL: databaseUrl,
  READ_MODEL: model,
  JWT_SECRET: TEST_JWT_SECRET,
  CURSOR_SECRET: TEST_JWT_SECRET,
  LOG_LEVEL: 'warn',
  RATE_LIMIT_MAX: '1000000000',
  DB_POOL_SIZE: String(connections),
  DB_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
  // Closed-loop throughput runs saturate the server on purpose: shedding would cut the ceiling.
  LOAD_SHED_MAX_CPU_UTILIZATION: '0',
  LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
});
const statements: Record<string, Record<Component, { sql: string; params: SqlValue[] }[]>> = {};
// One answer per component, body and headers: the HTTP ceiling sends the same bytes.
const bodies: Record<string, { body: string; headers: Record<string, string> }> = {};
// Set by Node itself for every response, or by the ceiling's own server.
const TRANSPORT_HEADERS = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);
for (const model of models) {
  const app = await buildApp(loadConfig({ ...appEnv(model), LOG_LEVEL: 'silent' }));
  await app.ready();
  let recorded: { sql: string; params: SqlValue[] }[] = [];
  const original = app.db.select.bind(app.db);
  app.db.select = (async (queryName: string, sql: string, params: SqlValue[]) => {
    if (DATA_QUERIES.has(queryName)) recorded.push({ sql, params: [...params] });
    return original(queryName, sql, params);
  }) as typeof app.db.select;
  const perComponent = {} as Record<Component, { sql: string; params: SqlValue[] }[]>;
  for (const component of Object.keys(paths) as Component[]) {
    perComponent[component] = [];
    for (const [i, url] of paths[component].entries()) {
      recorded = [];
      const response = await app.inject({ method: 'GET', url, headers });
      if (response.statusCode !== 200) throw new Error(`${model} ${url}: ${response.statusCode} ${response.body.slice(0, 200)}`);
      perComponent[component].push(...recorded);
      if (i === 0 && bodies[component] === undefined) {
        const headers = Object.fromEntries(
          Object.entries(response.headers)
            .filter(([name, value]) => !TRANSPORT_HEADERS.has(name) && value !== undefined)
            .map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : String(value)]),
        );
        bodies[component] = { body: response.body, headers };
      }
    }
  }
  statements[model] = perComponent;
  await app.close();
}
const ceilingStatements = (model: ReadModelName, s: Scenario): { sql: string; params: SqlValue[] }[] => {
  const per = statements[model];
  if (per === undefined) throw new Error('no statements');
  if (s !== 'mixed') return per[s];
  return MIX.map((c, i) => per[c][i % per[c].length] ?? per[c][0]).filter((x): x is { sql: string; params: SqlValue[] } => x !== undefined);
};

// ---- servers ---------------------------------------------------------------------------------
if (!values['no-build']) build();
const resultsDir = path.join(repoRoot, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const payloadFile = path.join(os.tmpdir(), `oi-bench-payloads-${process.pid}.json`);
writeFileSync(payloadFile, JSON.stringify(bodies));
const servers = new Map<string, ServerProcess>();
const bareModels = values['no-bare'] ? [] : values['bare-all'] ? models : models.slice(0, 1);
try {
  for (const model of models) {
    servers.set(`app:${model}`, await startServer(`app:${model}`, 'src/server.js', [], appEnv(model), '/healthz', true));
  }
  for (const model of bareModels) {
    servers.set(`bare:${model}`, await startServer(`bare:${model}`, 'bench/app-server.js', ['bare', sellerId], appEnv(model), '/healthz', true));
  }
  const http = await startServer('http', 'bench/app-server.js', ['http', payloadFile], {}, '/const/get', false);
  servers.set('http', http);

  // Warm-up: JIT, pools, prepared statements and the buffer pool, unmeasured.
  for (const [name, server] of servers) {
    if (name === 'http') continue;
    await runHttp({ target: name, scenario: 'warmup', repeat: 0, server, paths: scenarioPaths('mixed'), headers, connections, durationSeconds: 3, loadGenerator });
  }

  const targets = [...models.map((m) => `app:${m}`), ...bareModels.map((m) => `bare:${m}`), ...models.map((m) => `db:${m}`), 'http'];
  const results: Measurement[] = [];
  for (let repeat = 1; repeat <= repeats; repeat += 1) {
    for (const scenario of scenarios) {
      // Rotate the order per repeat so no target always runs first (or after the same neighbour).
      const shift = (repeat - 1) % targets.length;
      for (const target of [...targets.slice(shift), ...targets.slice(0, shift)]) {
        let m: Measurement;
        if (target.startsWith('db:')) {
          const model = target.slice(3) as ReadModelName;
          const spec: DbCeilingSpec = {
            databaseUrl,
            concurrency: connections,
            durationSeconds: duration,
            queryTimeoutMs: QUERY_TIMEOUT_MS,
            statements: ceilingStatements(model, scenario),
          };
          m = await runDbCeiling({ target, scenario, repeat, spec, dbPid });
        } else if (target === 'http') {
          const httpPaths = scenario === 'mixed' ? MIX.map((c) => `/const/${c}`) : [`/const/${scenario}`];
          m = await runHttp({ target, scenario, repeat, server: http, paths: httpPaths, headers, connections, durationSeconds: duration, dbPid, loadGenerator });
        } else {
          const server = servers.get(target);
          if (server === undefined) throw new Error(`no server ${target}`);
          m = await runHttp({ target, scenario, repeat, server, paths: scenarioPaths(scenario), headers, connections, durationSeconds: duration, dbPid, loadGenerator });
        }
        results.push(m);
        console.error(
          `[bench] r${repeat} ${scenario.padEnd(13)} ${target.padEnd(10)} ${fmt(m.rps, 0).padStart(7)} req/s p50 ${fmt(m.p50, 2)} p95 ${fmt(m.p95, 2)} p99 ${fmt(m.p99, 2)} ms err ${m.errors}` +
            `${m.maxRssMb === undefined ? '' : ` rss ${fmt(m.maxRssMb, 0)} MB cpu ${fmt(m.cpuPercent, 0)}%`}${m.dbCpuPercent === undefined ? '' : ` db cpu ${fmt(m.dbCpuPercent, 0)}%`}` +
            `${m.eventLoopP99Ms === undefined ? '' : ` el p99 ${fmt(m.eventLoopP99Ms, 1)} ms`}`,
        );
      }
    }
  }

  // /metrics scrape time after the traffic (every route, status and query label now exists).
  const scrapes: { server: string; medianMs: number; maxMs: number; bytes: number; series: number }[] = [];
  for (const [name, server] of servers) {
    if (!name.startsWith('app:') || server.metricsUrl === undefined) continue;
    const times: number[] = [];
    let bytes = 0;
    let series = 0;
    for (let i = 0; i < 20; i += 1) {
      const s = await scrape(server.metricsUrl);
      times.push(s.ms);
      bytes = s.bytes;
      series = s.body.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
    }
    scrapes.push({ server: name, medianMs: median(times), maxMs: Math.max(...times), bytes, series });
  }

  const file = path.join(resultsDir, `${startedAt.replace(/[:.]/g, '-')}-${dataset}.json`);
  writeFileSync(file, JSON.stringify({ command, startedAt, context, databaseUrl, dbServerDesc, sellerId, sellerItems, deepAfter, results, scrapes }, null, 2));
  const markdown = report({ results, scrapes });
  console.log(markdown);
  if (!values['no-append']) appendToBenchmarks(markdown);
} finally {
  for (const server of servers.values()) await server.stop();
  rmSync(payloadFile, { force: true });
}

function report(input: { results: Measurement[]; scrapes: { server: string; medianMs: number; maxMs: number; bytes: number; series: number }[] }): string {
  const { results, scrapes } = input;
  const of = (scenario: string, target: string): Measurement[] => results.filter((r) => r.scenario === scenario && r.target === target);
  const range = (xs: number[], digits = 0): string =>
    xs.length === 0 ? '–' : `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})`;
  const ratio = (scenario: string, a: string, b: string): number[] => {
    const as = of(scenario, a);
    const bs = of(scenario, b);
    return as.map((x) => x.rps / (bs.find((y) => y.repeat === x.repeat)?.rps ?? Number.NaN)).filter((x) => Number.isFinite(x));
  };
  const targets = [...new Set(results.map((r) => r.target))];
  const lines: string[] = [];
  lines.push(`### ${dataset === 'olist' ? 'Olist' : '5M generated'} — ${models.join(' vs ')} — ${startedAt}`);
  lines.push('');
  lines.push(`- Command: \`${command}\``);
  lines.push(`- Commit: ${commitInfo()}; machine: ${context.machine}`);
  lines.push(`- Database: \`${DATASET_DB[dataset]}\`, ${dbServerDesc}`);
  lines.push(`- Seller: the largest, \`${sellerId}\` (${sellerItems.toLocaleString('en-US')} items); deep page = cursor after ${deepAfter.toLocaleString('en-US')} items; limit 50`);
  lines.push(`- Load: ${loadGenerator === 'wrk' ? 'wrk (one thread)' : 'autocannon'} on loopback, ${connections} connections, ${duration} s per run, ${repeats} interleaved repeats (order rotated), DB pool ${connections}, mysql2 loop concurrency ${connections}; 3 s unmeasured warm-up per server`);
  lines.push(`- Machine load at start (1/5/15 min): ${context.load}; other processes: ${context.others || 'none seen'}`);
  lines.push('');
  lines.push(`req/s and latencies: median over repeats (min–max); latency in ms (${loadGenerator}'s per-response times, or per-statement for \`db:\`); RSS/CPU of the target process (CPU 100% = one core); \`db cpu\` = mariadbd; EL p99 = the server's nodejs_eventloop_lag_p99_seconds over the run (max); bytes/response = what the load generator read per answer, headers included (the \`http\` ceiling sends the app's own answer, headers too).`);
  lines.push('');
  lines.push('| scenario | target | req/s | p50 | p95 | p99 | errors | max RSS MB | CPU % | db cpu % | EL p99 ms | bytes/response |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const s of scenarios) {
    for (const t of targets) {
      const rs = of(s, t);
      if (rs.length === 0) continue;
      const maxOf = (xs: (number | undefined)[]): number | undefined => {
        const ys = xs.filter((x): x is number => x !== undefined);
        return ys.length === 0 ? undefined : Math.max(...ys);
      };
      const medOf = (xs: (number | undefined)[]): number | undefined => {
        const ys = xs.filter((x): x is number => x !== undefined);
        return ys.length === 0 ? undefined : median(ys);
      };
      lines.push(
        `| ${s} | ${t} | ${range(rs.map((r) => r.rps))} | ${fmt(median(rs.map((r) => r.p50)), 2)} | ${fmt(median(rs.map((r) => r.p95)), 2)} | ${fmt(median(rs.map((r) => r.p99)), 2)} | ${rs.reduce((n, r) => n + r.errors, 0)} | ${fmt(maxOf(rs.map((r) => r.maxRssMb)), 0)} | ${fmt(medOf(rs.map((r) => r.cpuPercent)), 0)} | ${fmt(medOf(rs.map((r) => r.dbCpuPercent)), 0)} | ${fmt(maxOf(rs.map((r) => r.eventLoopP99Ms)), 1)} | ${fmt(medOf(rs.map((r) => r.bytesPerResponse)), 0)} |`,
      );
    }
  }
  lines.push('');
  lines.push('Ratios, per repeat (same repeat, back to back), median (min–max):');
  lines.push('');
  // [numerator, denominator] of each ratio column; bare columns only for the models measured bare.
  const ratioColumns: [string, string][] = [
    ...models.map((m): [string, string] => [`app:${m}`, `db:${m}`]),
    ...models.map((m): [string, string] => [`app:${m}`, 'http']),
    ...bareModels.map((m): [string, string] => [`app:${m}`, `bare:${m}`]),
    ...(models.length > 1 ? [[`app:${models[1]}`, `app:${models[0]}`] as [string, string]] : []),
  ];
  lines.push(`| scenario | ${ratioColumns.map(([a, b]) => `${a} / ${b}`).join(' | ')} |`);
  lines.push(`|---|${ratioColumns.map(() => '---').join('|')}|`);
  for (const s of scenarios) lines.push(`| ${s} | ${ratioColumns.map(([a, b]) => range(ratio(s, a, b), 2)).join(' | ')} |`);
  if (scenarios.includes('list-first') && scenarios.includes('list-deep')) {
    lines.push('');
    for (const m of models) {
      const first = of('list-first', `app:${m}`);
      const deepRuns = of('list-deep', `app:${m}`);
      lines.push(
        `Deep page vs first page (app:${m}): p50 ${fmt(median(deepRuns.map((r) => r.p50)), 2)} / ${fmt(median(first.map((r) => r.p50)), 2)} ms = ${fmt(median(deepRuns.map((r) => r.p50)) / median(first.map((r) => r.p50)), 2)}×, p95 ${fmt(median(deepRuns.map((r) => r.p95)) / median(first.map((r) => r.p95)), 2)}×.`,
      );
    }
  }
  lines.push('');
  for (const s of scrapes) {
    lines.push(`/metrics scrape after the traffic (${s.server}): median ${fmt(s.medianMs, 1)} ms, max ${fmt(s.maxMs, 1)} ms over 20 scrapes; ${s.series} series, ${(s.bytes / 1024).toFixed(0)} KiB.`);
  }
  const appRuns = results.filter((r) => r.target.startsWith('app:') || r.target.startsWith('bare:'));
  lines.push('');
  lines.push(
    `API processes: max RSS ${fmt(Math.max(...appRuns.map((r) => r.maxRssMb ?? 0)), 0)} MB; max event-loop p99 ${fmt(Math.max(...appRuns.map((r) => r.eventLoopP99Ms ?? 0)), 1)} ms; errors ${appRuns.reduce((n, r) => n + r.errors, 0)}.`,
  );
  return lines.join('\n');
}
