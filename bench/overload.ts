// Overload benchmark: npx tsx bench/overload.ts [--step-seconds 8] [--overload-seconds 20]
// Finds the sustainable rate (highest step whose accepted requests meet p99 <= 250 ms with < 1 %
// refused), then offers 4x that rate open-loop, with the server's shedding as configured and once
// more with shedding off (no event-loop limit, a deep pool queue) for comparison. The server is
// the real one (src/server.ts) in its own process; mixed traffic: list, get, orders, summary.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { startServer } from '../test/reliability/server-process.js';
import { benchDatabase, openLoop, Recorder, round, type Target } from './lib/traffic.js';

const { values } = parseArgs({
  options: {
    'step-seconds': { type: 'string', default: '8' },
    'overload-seconds': { type: 'string', default: '20' },
    orders: { type: 'string', default: '10000' },
    // Skip the search and use this sustainable rate.
    sustainable: { type: 'string' },
    // Server settings of the "shedding on" run (defaults: the server's own).
    'pool-size': { type: 'string' },
    'acquire-timeout-ms': { type: 'string' },
    'skip-no-shed': { type: 'boolean', default: false },
  },
});
const STEP_MS = Number(values['step-seconds']) * 1000;
const OVERLOAD_MS = Number(values['overload-seconds']) * 1000;
const SLO_P99_MS = 250;

function summary(label: string, rate: number, recorder: Recorder, seconds: number): Record<string, unknown> {
  const accepted = [...recorder.latencies.keys()].filter((s) => s.startsWith('2')).reduce((n, s) => n + recorder.count(s), 0);
  return {
    label,
    offeredPerSecond: rate,
    requests: recorder.total(),
    acceptedPerSecond: round(accepted / seconds),
    byStatus: recorder.byStatus(),
    acceptedP50Ms: round(recorder.percentile(50)),
    acceptedP99Ms: round(recorder.percentile(99)),
    refusedP99Ms: round(recorder.percentile(99, (s) => s === '503' || s === '429')),
  };
}

async function run(rate: number, ms: number, baseUrl: string, targets: Target[]): Promise<Recorder> {
  const recorder = new Recorder();
  await openLoop({ baseUrl: () => baseUrl, ratePerSecond: () => rate, durationMs: ms, targets, recorder: () => recorder });
  return recorder;
}

async function main(): Promise<void> {
  console.error(`machine: ${os.cpus().length} CPUs, node ${process.version}`);
  const { url, targets } = await benchDatabase('oi_bench_reliability', Number(values.orders));
  const env: Record<string, string> = { LOG_LEVEL: 'warn', FRESHNESS_CACHE_MS: '1000' };
  if (values['pool-size'] !== undefined) env.DB_POOL_SIZE = values['pool-size'];
  if (values['acquire-timeout-ms'] !== undefined) env.DB_ACQUIRE_TIMEOUT_MS = values['acquire-timeout-ms'];
  console.error(`server settings: ${JSON.stringify(env)}`);

  let server = await startServer(url, env);
  let sustainable = values.sustainable === undefined ? 0 : Number(values.sustainable);
  try {
    await run(50, 5000, server.baseUrl, targets); // warm-up
    for (const rate of values.sustainable === undefined ? [50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200] : []) {
      const recorder = await run(rate, STEP_MS, server.baseUrl, targets);
      const result = summary('step', rate, recorder, STEP_MS / 1000);
      console.log(JSON.stringify(result));
      const refused = recorder.total() - [...recorder.latencies.keys()].filter((s) => s.startsWith('2') || s === '404').reduce((n, s) => n + recorder.count(s), 0);
      if (recorder.percentile(99) > SLO_P99_MS || refused > recorder.total() * 0.01) break;
      sustainable = rate;
    }
    console.log(JSON.stringify({ sustainablePerSecond: sustainable }));
    const overload = 4 * sustainable;
    const shed = await run(overload, OVERLOAD_MS, server.baseUrl, targets);
    console.log(JSON.stringify(summary('4x sustainable, shedding on (defaults)', overload, shed, OVERLOAD_MS / 1000)));
    const rss = server.log.filter((l) => l.includes('"level":50')).length;
    console.log(JSON.stringify({ serverErrorLogLines: rss }));
    await server.stop();
    if (values['skip-no-shed']) return;

    server = await startServer(url, { ...env, LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0', DB_QUEUE_LIMIT: '100000', DB_ACQUIRE_TIMEOUT_MS: '30000' });
    await run(50, 3000, server.baseUrl, targets);
    const noShed = await run(overload, OVERLOAD_MS, server.baseUrl, targets);
    console.log(JSON.stringify(summary('4x sustainable, shedding off', overload, noShed, OVERLOAD_MS / 1000)));
  } finally {
    await server.stop();
  }
}

await main();
