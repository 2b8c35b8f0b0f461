// Overload bound by the database rather than the API's CPU: closed-loop keep-alive clients on one
// data route, first at a concurrency the server handles, then at 4x, against the real server
// process with its default settings (plus any `KEY=value` overrides). Reports, per run, the
// answers by status as the clients saw them and the share of accepted (200) answers the server
// itself timed at or under 250 ms (the latency SLO), read from /metrics before and after.
//   npx tsx bench/db-bound-overload.ts [--clients 64,256] [--seconds 12] [--path <url>] [KEY=value ...]
// Needs the Olist bench database (npx tsx bench/datasets.ts --dataset olist).
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mintToken, TEST_JWT_SECRET } from '../test/helpers/tokens.js';
import { parseCommandLine } from '../src/cli/args.js';

const { values, positionals } = parseCommandLine('npx tsx bench/db-bound-overload.ts', {
  allowPositionals: true,
  options: {
    clients: { type: 'string', default: '64,256' },
    seconds: { type: 'string', default: '12' },
    path: { type: 'string', default: '/v1/order-items/summary?groupBy=category' },
    seller: { type: 'string', default: '6560211a19b47992c3666cc44a7e94c0' },
  },
});
const overrides = Object.fromEntries(positionals.map((p) => p.split('=', 2) as [string, string]));
const port = 4601;
const metricsPort = 4602;
const token = mintToken({ sellerId: values.seller, expiresInSeconds: 3600 });

const server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
  env: {
    ...process.env,
    DATABASE_URL: 'mysql://root@127.0.0.1:3306/oi_bench_olist',
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'error',
    RATE_LIMIT_MAX: '100000000',
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    ...overrides,
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
for (let i = 0; ; i += 1) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
  } catch {
    if (i > 100) throw new Error('the server did not start');
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}

/** Server-side count of 200 answers on the route, at or under 250 ms and in all. */
async function accepted(): Promise<{ fast: number; all: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const route = new URL(values.path, 'http://x').pathname;
  const bucket = (le: string): number =>
    text
      .split('\n')
      .filter((l) => l.startsWith('http_request_duration_seconds_bucket{') && l.includes(`route="${route}"`) && l.includes('status_code="200"') && l.includes(`le="${le}"`))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return { fast: bucket('0.25'), all: bucket('+Inf') };
}

async function closedLoop(clients: number, seconds: number): Promise<Map<string, number[]>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const latencies = new Map<string, number[]>();
  const end = Date.now() + seconds * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const record = (key: string): void => {
        const list = latencies.get(key) ?? [];
        list.push(performance.now() - started);
        latencies.set(key, list);
        resolve();
      };
      http
        .get({ host: '127.0.0.1', port, path: values.path, agent, headers: { authorization: `Bearer ${token}` } }, (response) => {
          response.resume();
          response.on('end', () => record(String(response.statusCode)));
        })
        .on('error', (error: NodeJS.ErrnoException) => record(`error ${error.code ?? ''}`));
    });
  await Promise.all(Array.from({ length: clients }, async () => {
    while (Date.now() < end) await one();
  }));
  agent.destroy();
  return latencies;
}

const quantile = (sorted: number[], q: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0).toFixed(0);
console.log(`path ${values.path}; overrides ${JSON.stringify(overrides)}; ${values.seconds} s per run, after a 3 s warm-up`);
console.log('| clients | answers seen by the clients (count, p50 / p99 ms) | accepted answers ≤ 250 ms, server-side |');
console.log('|---|---|---|');
try {
  for (const clients of values.clients.split(',').map(Number)) {
    await closedLoop(clients, 3);
    const before = await accepted();
    const seen = await closedLoop(clients, Number(values.seconds));
    const after = await accepted();
    const answers = [...seen].map(([status, list]) => {
      list.sort((a, b) => a - b);
      return `${list.length} × ${status} (${quantile(list, 0.5)} / ${quantile(list, 0.99)})`;
    });
    const fast = after.fast - before.fast;
    const all = after.all - before.all;
    console.log(`| ${clients} | ${answers.join(', ')} | ${fast} of ${all} (${((100 * fast) / Math.max(1, all)).toFixed(1)} %) |`);
  }
} finally {
  server.kill('SIGTERM');
}
