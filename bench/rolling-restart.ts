// Rolling restart benchmark: npx tsx bench/rolling-restart.ts [--rate 100] [--drain-ms 2000]
// Two instances of the real server behind a client-side load balancer that polls /readyz every
// 250 ms and sends only to ready instances (as a Kubernetes Service or an LB health check does).
// Each instance in turn is replaced: a new one starts, becomes ready, joins; the old one gets
// SIGTERM, fails readiness, drains and exits. Open-loop traffic runs throughout; every request
// that does not get its real answer (2xx or 404) counts as lost.
import http from 'node:http';
import { startServer, type ServerProcess } from '../test/reliability/server-process.js';
import { benchDatabase, openLoop, Recorder, round } from './lib/traffic.js';
import { parseCommandLine } from '../src/cli/args.js';

const { values } = parseCommandLine('npm run bench:rolling-restart --', {
  options: {
    rate: { type: 'string', default: '100' },
    'drain-ms': { type: 'string', default: '2000' },
    orders: { type: 'string', default: '10000' },
  },
});
const RATE = Number(values.rate);
const DRAIN_MS = Number(values['drain-ms']);
const POLL_MS = 250;

function ready(baseUrl: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get(`${baseUrl}/readyz`, { agent: false, timeout: 1000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  const { url, targets } = await benchDatabase('oi_bench_reliability', Number(values.orders), true);
  const env: Record<string, string> = {
    LOG_LEVEL: 'warn',
    SHUTDOWN_DRAIN_DELAY_MS: String(DRAIN_MS),
    SHUTDOWN_DEADLINE_MS: '15000',
    // Extra server settings as JSON, e.g. BENCH_SERVER_ENV='{"LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS":"0"}'.
    ...(JSON.parse(process.env.BENCH_SERVER_ENV ?? '{}') as Record<string, string>),
  };
  const warnings: string[] = [];
  const instances: ServerProcess[] = [await startServer(url, env), await startServer(url, env)];
  const inRotation = new Set<string>();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      await Promise.all(
        instances.map(async (instance) => {
          if (await ready(instance.baseUrl)) inRotation.add(instance.baseUrl);
          else inRotation.delete(instance.baseUrl);
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  })();
  let next = 0;
  const pick = (): string | null => {
    const list = [...inRotation];
    if (list.length === 0) return null;
    return list[next++ % list.length] as string;
  };

  const recorder = new Recorder();
  const events: string[] = [];
  const started = performance.now();
  const note = (event: string) => events.push(`${round((performance.now() - started) / 1000, 2)} s: ${event}`);
  let trafficDone = false;
  const traffic = openLoop({
    baseUrl: pick,
    ratePerSecond: () => (trafficDone ? 0 : RATE),
    durationMs: 60_000,
    targets,
    recorder: () => recorder,
  });
  const exits: (number | null)[] = [];
  try {
    await new Promise((resolve) => setTimeout(resolve, 5000));
    for (let i = 0; i < 2; i += 1) {
      const old = instances[0] as ServerProcess;
      const replacement = await startServer(url, env);
      instances.push(replacement);
      while (!inRotation.has(replacement.baseUrl)) await new Promise((resolve) => setTimeout(resolve, 50));
      note(`replacement ${replacement.port} in rotation`);
      old.child.kill('SIGTERM');
      note(`SIGTERM to ${old.port}`);
      const exit = await old.exited;
      exits.push(exit.code);
      note(`${old.port} exited with ${exit.code}`);
      instances.shift();
      warnings.push(...old.log.filter((l) => /"level":(40|50|60)/.test(l)).map((l) => `${old.port}: ${l.slice(0, 300)}`));
      inRotation.delete(old.baseUrl);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    trafficDone = true;
    await traffic;
  } finally {
    trafficDone = true;
    polling = false;
    await poller;
    for (const instance of instances) await instance.stop();
  }
  const lost = recorder.total() - recorder.count('200') - recorder.count('404');
  console.log(
    JSON.stringify({
      ratePerSecond: RATE,
      drainDelayMs: DRAIN_MS,
      requests: recorder.total(),
      byStatus: recorder.byStatus(),
      lost,
      p99Ms: round(recorder.percentile(99, (s) => s === '200' || s === '404')),
      exitCodes: exits,
      events,
      serverWarnings: warnings.slice(0, 10),
    }),
  );
  process.exitCode = lost === 0 && exits.every((code) => code === 0) ? 0 : 1;
}

await main();
