// Soak: npx tsx bench/soak.ts [--minutes 30] [--rate 80] [--orders 10000]
// The real server in its own process under open-loop mixed traffic (list, get, orders, summary)
// for the given time, while the loader CLI writes a new batch of the same folder after another
// (every row an upsert, so the tables keep changing under the reads). Every minute: requests,
// statuses, p50/p99 of answered requests, the server's RSS (/proc) and event-loop delay (its own
// /metrics: nodejs_eventloop_lag_*). Ends with the verdict: non-429/503 errors and RSS growth
// after the first (warm-up) minute.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { repoRoot, startServer } from '../test/reliability/server-process.js';
import { benchDatabase, openLoop, Recorder, round } from './lib/traffic.js';
import { parseCommandLine } from '../src/cli/args.js';

const { values } = parseCommandLine('npm run bench:soak --', {
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '80' },
    orders: { type: 'string', default: '10000' },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return round(kb / 1024);
}

async function eventLoop(metricsPort: number): Promise<{ p99Ms: number; maxMs: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
  return { p99Ms: round(read('nodejs_eventloop_lag_p99_seconds')), maxMs: round(read('nodejs_eventloop_lag_max_seconds')) };
}

function runLoader(databaseUrl: string, dir: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/loader/cli.ts', '--dir', dir], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', DATABASE_URL: databaseUrl },
      stdio: 'ignore',
    });
    child.on('exit', (code) => resolve(code));
  });
}

async function main(): Promise<void> {
  const { url, dir, targets } = await benchDatabase('oi_bench_reliability', Number(values.orders), true);
  const server = await startServer(url, { LOG_LEVEL: 'warn' });
  const pid = server.child.pid as number;
  const minutes: Recorder[] = [];
  const started = performance.now();
  const recorderAt = (at: number): Recorder => {
    const minute = Math.floor((at - started) / 60_000);
    while (minutes.length <= minute) minutes.push(new Recorder());
    return minutes[minute] as Recorder;
  };
  let loading = true;
  const loads: (number | null)[] = [];
  const loader = (async () => {
    while (loading) {
      loads.push(await runLoader(url, dir));
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
  })();
  const samples: { minute: number; rssMiB: number; eventLoopP99Ms: number; eventLoopMaxMs: number }[] = [];
  const sampler = setInterval(() => {
    const minute = samples.length + 1;
    void Promise.all([rssMiB(pid), eventLoop(server.metricsPort)]).then(([rss, loop]) => {
      samples.push({ minute, rssMiB: rss, eventLoopP99Ms: loop.p99Ms, eventLoopMaxMs: loop.maxMs });
      const r = minutes[minute - 1];
      console.error(`minute ${minute}: ${r?.total() ?? 0} requests ${JSON.stringify(r?.byStatus() ?? {})} RSS ${rss} MiB loop p99 ${loop.p99Ms} ms`);
    });
  }, 60_000);
  try {
    await openLoop({ baseUrl: () => server.baseUrl, ratePerSecond: () => RATE, durationMs: MINUTES * 60_000, targets, recorder: recorderAt });
  } finally {
    clearInterval(sampler);
    loading = false;
    await loader;
    await server.stop();
  }
  const rows = minutes.slice(0, MINUTES).map((r, i) => ({
    minute: i + 1,
    requests: r.total(),
    byStatus: r.byStatus(),
    p50Ms: round(r.percentile(50, (s) => s === '200' || s === '404')),
    p99Ms: round(r.percentile(99, (s) => s === '200' || s === '404')),
    ...(samples[i] ?? {}),
  }));
  for (const row of rows) console.log(JSON.stringify(row));
  const all = new Recorder();
  for (const r of minutes) for (const [status, list] of r.latencies) for (const ms of list) all.record(status, ms);
  const errors = Object.entries(all.byStatus()).filter(([s]) => !['200', '404', '429', '503'].includes(s));
  const warm = samples[0]?.rssMiB ?? Number.NaN;
  const last = samples.at(-1)?.rssMiB ?? Number.NaN;
  console.log(
    JSON.stringify({
      minutes: MINUTES,
      ratePerSecond: RATE,
      requests: all.total(),
      byStatus: all.byStatus(),
      nonShedErrors: errors,
      p50Ms: round(all.percentile(50, (s) => s === '200' || s === '404')),
      p99Ms: round(all.percentile(99, (s) => s === '200' || s === '404')),
      loaderRuns: loads.length,
      loaderExitCodes: [...new Set(loads)],
      rssAfterWarmupMiB: warm,
      rssEndMiB: last,
      rssGrowthPercent: round(((last - warm) / warm) * 100),
    }),
  );
}

await main();
