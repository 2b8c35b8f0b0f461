// Overload benchmark: npx tsx bench/overload.ts [--step-seconds 8] [--overload-seconds 20] [--api-cpu 0.25]
// Finds the sustainable rate (highest step whose requests meet p99 <= 250 ms with < 1 % refused,
// shedding off), then offers 4x that rate open-loop to a warmed-up server with its shedding as
// configured, and once more with shedding off (and a deep pool queue) for comparison. The server is
// the real one (src/server.ts) in its own process; mixed traffic: list, get, orders, summary.
// --api-cpu caps the server process at that many cores (cgroup; needs root): on a 2-core machine
// the generator cannot offer 4x an uncapped server's capacity, so the cap is what makes the
// overload real (see bench/lib/cpu-limit.ts).
import os from 'node:os';
import { startServer, type ServerProcess } from '../test/reliability/server-process.js';
import { createCpuLimit, type CpuLimit } from './lib/cpu-limit.js';
import { benchDatabase, openLoop, Recorder, round, type Target } from './lib/traffic.js';
import { parseCommandLine } from '../src/cli/args.js';

const { values } = parseCommandLine('npm run bench:overload --', {
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
    'api-cpu': { type: 'string' },
    'warmup-seconds': { type: 'string', default: '30' },
    // More server settings for the "shedding on" run, e.g. --server-env LOAD_SHED_MAX_IN_FLIGHT=40
    'server-env': { type: 'string', multiple: true, default: [] },
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

/** What the server itself counted: shed at the door vs answered by Fastify, and its CPU. */
async function serverMetrics(server: ServerProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  const sum = (pattern: RegExp): number =>
    text
      .split('\n')
      .filter((line) => pattern.test(line))
      .reduce((total, line) => total + Number(line.split(' ').at(-1)), 0);
  return {
    shedAtTheDoor: sum(/^http_requests_shed_total\{/),
    answered2xx: sum(/^http_request_duration_seconds_count\{.*status_code="2/),
    answered503: sum(/^http_request_duration_seconds_count\{.*status_code="503/),
    cpuSeconds: round(sum(/^process_cpu_seconds_total /), 2),
  };
}

async function main(): Promise<void> {
  console.error(`machine: ${os.cpus().length} CPUs, node ${process.version}`);
  const { url, targets } = await benchDatabase('oi_bench_reliability', Number(values.orders));
  const env: Record<string, string> = { LOG_LEVEL: 'warn', FRESHNESS_CACHE_MS: '1000' };
  if (values['pool-size'] !== undefined) env.DB_POOL_SIZE = values['pool-size'];
  if (values['acquire-timeout-ms'] !== undefined) env.DB_ACQUIRE_TIMEOUT_MS = values['acquire-timeout-ms'];
  for (const setting of values['server-env']) {
    const [key, ...rest] = setting.split('=');
    if (key === undefined || key === '' || rest.length === 0) throw new Error(`--server-env expects KEY=VALUE, got "${setting}"`);
    env[key] = rest.join('=');
  }
  console.error(`server settings: ${JSON.stringify(env)}`);

  const cpuLimit: CpuLimit | undefined =
    values['api-cpu'] === undefined ? undefined : await createCpuLimit(`oi-bench-api-${process.pid}`, Number(values['api-cpu']));
  if (cpuLimit !== undefined) console.error(`server CPU capped at ${cpuLimit.cores} core(s)`);
  const start = async (extraEnv: Record<string, string>): Promise<ServerProcess> => {
    const started = await startServer(url, extraEnv);
    if (cpuLimit !== undefined && started.child.pid !== undefined) await cpuLimit.add(started.child.pid);
    return started;
  };

  const SHEDDING_OFF = { LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0', LOAD_SHED_MAX_CPU_UTILIZATION: '0', LOAD_SHED_MAX_IN_FLIGHT: '0' };
  // Warm-up: a cold server (code not yet optimised by the JIT) costs about twice the CPU per
  // request, which under a CPU cap halves its capacity (and trips CPU-based shedding).
  const warmUp = async (target: ServerProcess, rate: number): Promise<void> => {
    await run(Math.min(50, rate), 5000, target.baseUrl, targets);
    await run(rate, Number(values['warmup-seconds']) * 1000, target.baseUrl, targets);
  };

  let server: ServerProcess | undefined;
  try {
    // The sustainable rate is the server's own capacity: measured with shedding off, so that
    // refusals do not stand in for capacity.
    let sustainable = values.sustainable === undefined ? 0 : Number(values.sustainable);
    if (values.sustainable === undefined) {
      server = await start({ ...env, ...SHEDDING_OFF });
      await run(50, 5000, server.baseUrl, targets);
      for (const rate of [50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200]) {
        const recorder = await run(rate, STEP_MS, server.baseUrl, targets);
        console.log(JSON.stringify(summary('step (shedding off)', rate, recorder, STEP_MS / 1000)));
        const refused = recorder.total() - [...recorder.latencies.keys()].filter((s) => s.startsWith('2') || s === '404').reduce((n, s) => n + recorder.count(s), 0);
        if (recorder.percentile(99) > SLO_P99_MS || refused > recorder.total() * 0.01) break;
        sustainable = rate;
      }
      await server.stop();
    }
    console.log(JSON.stringify({ sustainablePerSecond: sustainable }));
    const overload = 4 * sustainable;

    server = await start(env);
    await warmUp(server, sustainable / 2);
    const before = await serverMetrics(server);
    const shed = await run(overload, OVERLOAD_MS, server.baseUrl, targets);
    console.log(JSON.stringify(summary('4x sustainable, shedding on', overload, shed, OVERLOAD_MS / 1000)));
    const after = await serverMetrics(server);
    const during = Object.fromEntries(Object.entries(after).map(([key, value]) => [key, round(value - (before[key] ?? 0), 2)]));
    console.log(JSON.stringify({ serverCountedDuringOverload: during }));
    const errorLines = server.log.filter((l) => l.includes('"level":50')).length;
    console.log(JSON.stringify({ serverErrorLogLines: errorLines }));
    await server.stop();
    if (values['skip-no-shed']) return;

    server = await start({ ...env, ...SHEDDING_OFF, DB_QUEUE_LIMIT: '100000', DB_ACQUIRE_TIMEOUT_MS: '30000' });
    await warmUp(server, sustainable / 2);
    const noShed = await run(overload, OVERLOAD_MS, server.baseUrl, targets);
    console.log(JSON.stringify(summary('4x sustainable, shedding off', overload, noShed, OVERLOAD_MS / 1000)));
  } finally {
    await server?.stop();
    if (cpuLimit !== undefined) {
      console.log(JSON.stringify({ serverThrottledMs: Math.round(await cpuLimit.throttledMs()) }));
      await cpuLimit.remove();
    }
  }
}

await main();
