// Shared machinery of the read benchmarks: build once, start server processes, drive load with
// autocannon or wrk, sample the server's RSS/CPU from /proc, read its event-loop delay from /metrics,
// run the mysql2 ceiling in a child process, and append results to BENCHMARKS.md.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { freePort } from '../test/helpers/private-mariadb.js';
import type { DbCeilingSpec, LoopResult } from './db-ceiling.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BUILD_DIR = path.join(repoRoot, '.tmp/bench-dist');
const CLK_TCK = 100;

/** Compiles src and bench once (the same JavaScript for every server variant). */
export function build(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json', '--outDir', BUILD_DIR, '--noEmit', 'false', '--sourceMap', 'false'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
}

export interface ServerProcess {
  name: string;
  pid: number;
  url: string;
  metricsUrl: string | undefined;
  stop(): Promise<void>;
}


async function waitFor(url: string, child: ChildProcess, seconds = 30): Promise<void> {
  for (let i = 0; i < seconds * 10; i += 1) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before answering ${url}`);
    try {
      const response = await fetch(url);
      if (response.status < 500) return;
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no answer from ${url}`);
}

export async function startServer(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  probePath: string,
  withMetrics: boolean,
): Promise<ServerProcess> {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawn(process.execPath, [path.join(BUILD_DIR, script), ...args], {
    env: { ...process.env, ...env, HOST: '127.0.0.1', PORT: String(port), METRICS_HOST: '127.0.0.1', METRICS_PORT: String(metricsPort) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}${probePath}`, child);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name} has no pid`);
  return {
    name,
    pid,
    url,
    metricsUrl: withMetrics ? `http://127.0.0.1:${metricsPort}/metrics` : undefined,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** RSS and CPU of one process, sampled from /proc every 200 ms. */
export class ProcSampler {
  #timer: NodeJS.Timeout | undefined;
  #first: { ticks: number; at: number } | undefined;
  #last: { ticks: number; at: number } | undefined;
  maxRssMb = 0;

  constructor(private readonly pid: number) {}

  #sample(): void {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      this.maxRssMb = Math.max(this.maxRssMb, rssKb / 1024);
      const point = { ticks, at: performance.now() };
      this.#first ??= point;
      this.#last = point;
    } catch {
      // process gone
    }
  }

  start(): void {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 200);
  }

  stop(): { maxRssMb: number; cpuPercent: number } {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#sample();
    const first = this.#first;
    const last = this.#last;
    const cpuPercent =
      first === undefined || last === undefined || last.at === first.at ? 0 : (((last.ticks - first.ticks) / CLK_TCK) * 1000 * 100) / (last.at - first.at);
    return { maxRssMb: this.maxRssMb, cpuPercent };
  }
}

export interface Measurement {
  target: string;
  scenario: string;
  repeat: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  requests: number;
  maxRssMb?: number;
  cpuPercent?: number;
  dbCpuPercent?: number;
  eventLoopP99Ms?: number;
  bytesPerResponse?: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

/** Reads one metric value from a Prometheus text body (first series of that name). */
export function metricValue(body: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(body);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export async function scrape(metricsUrl: string): Promise<{ body: string; ms: number; bytes: number }> {
  const started = performance.now();
  const response = await fetch(metricsUrl);
  const body = await response.text();
  return { body, ms: performance.now() - started, bytes: Buffer.byteLength(body) };
}

export const LOAD_GENERATORS = ['autocannon', 'wrk'] as const;
export type LoadGenerator = (typeof LOAD_GENERATORS)[number];

interface LoadResult {
  requests: number;
  durationSeconds: number;
  bytes: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
}

type Load = (url: string, paths: readonly string[], headers: Record<string, string>, connections: number, durationSeconds: number) => Promise<LoadResult>;

const luaString = (text: string): string => JSON.stringify(text);

/**
 * wrk (C, one thread) as the load generator. On a 2-core machine autocannon's own CPU (a Node
 * process parsing every response) is taken from the server under test and from MariaDB, which the
 * database ceiling's loop does not pay. Same closed loop: `connections` requests in flight.
 */
const loadWithWrk: Load = async (url, paths, headers, connections, durationSeconds) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oi-wrk-'));
  const script = path.join(dir, 'paths.lua');
  writeFileSync(
    script,
    [
      `local paths = { ${paths.map(luaString).join(', ')} }`,
      'local n = 0',
      ...Object.entries(headers).map(([name, value]) => `wrk.headers[${luaString(name)}] = ${luaString(value)}`),
      'request = function()',
      '  n = n + 1',
      '  return wrk.format("GET", paths[((n - 1) % #paths) + 1])',
      'end',
      'done = function(summary, latency, requests)',
      '  local e = summary.errors',
      '  io.write(string.format("WRK_RESULT %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration, summary.bytes,',
      '    latency:percentile(50), latency:percentile(95), latency:percentile(99),',
      '    e.connect + e.read + e.write + e.timeout, e.status))',
      'end',
      '',
    ].join('\n'),
  );
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        'wrk',
        ['-t1', `-c${connections}`, `-d${durationSeconds}s`, '--timeout', '10s', '-s', script, url],
        { maxBuffer: 1 << 20 },
        (error, out) => (error === null ? resolve(out) : reject(error)),
      );
    });
    const match = /^WRK_RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(stdout);
    if (match === null) throw new Error(`wrk printed no result:\n${stdout}`);
    const [requests = 0, durationUs = 0, bytes = 0, p50Us = 0, p95Us = 0, p99Us = 0, socketErrors = 0, statusErrors = 0] = match.slice(1).map(Number);
    return {
      requests,
      durationSeconds: durationUs / 1e6,
      bytes,
      p50: p50Us / 1000,
      p95: p95Us / 1000,
      p99: p99Us / 1000,
      errors: socketErrors + statusErrors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

const loadWithAutocannon: Load = async (url, paths, headers, connections, durationSeconds) => {
  let next = 0;
  const latencies: number[] = [];
  let bytes = 0;
  let bad = 0;
  const instance = autocannon({
    url,
    connections,
    duration: durationSeconds,
    headers,
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => ({ ...request, path: paths[next++ % paths.length] ?? '/' }),
      },
    ],
  });
  instance.on('response', (_client, statusCode, resBytes, responseTime) => {
    latencies.push(responseTime);
    bytes += resBytes;
    if (statusCode >= 400) bad += 1;
  });
  const result = await instance;
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    durationSeconds: result.duration,
    bytes,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    errors: result.errors + result.timeouts + bad,
  };
};

/** One load run against `paths` (rotated), with the server process sampled. */
export async function runHttp(options: {
  target: string;
  scenario: string;
  repeat: number;
  server: ServerProcess;
  paths: readonly string[];
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
  dbPid?: number | undefined;
  loadGenerator?: LoadGenerator;
}): Promise<Measurement> {
  const { server, paths } = options;
  // Reset the event-loop delay histogram (prom-client resets it at every collection).
  if (server.metricsUrl !== undefined) await scrape(server.metricsUrl);
  const sampler = new ProcSampler(server.pid);
  const dbSampler = options.dbPid === undefined ? undefined : new ProcSampler(options.dbPid);
  sampler.start();
  dbSampler?.start();
  const load = options.loadGenerator === 'wrk' ? loadWithWrk : loadWithAutocannon;
  const result = await load(server.url, paths, options.headers, options.connections, options.durationSeconds);
  const usage = sampler.stop();
  const dbUsage = dbSampler?.stop();
  let eventLoopP99Ms: number | undefined;
  if (server.metricsUrl !== undefined) {
    const lag = metricValue((await scrape(server.metricsUrl)).body, 'nodejs_eventloop_lag_p99_seconds');
    eventLoopP99Ms = lag === undefined ? undefined : lag * 1000;
  }
  return {
    target: options.target,
    scenario: options.scenario,
    repeat: options.repeat,
    rps: result.requests / result.durationSeconds,
    p50: result.p50,
    p95: result.p95,
    p99: result.p99,
    errors: result.errors,
    requests: result.requests,
    maxRssMb: usage.maxRssMb,
    cpuPercent: usage.cpuPercent,
    ...(dbUsage === undefined ? {} : { dbCpuPercent: dbUsage.cpuPercent }),
    ...(eventLoopP99Ms === undefined ? {} : { eventLoopP99Ms }),
    bytesPerResponse: result.requests === 0 ? 0 : result.bytes / result.requests,
  };
}

/** The mysql2 loop in its own process. */
export async function runDbCeiling(options: {
  target: string;
  scenario: string;
  repeat: number;
  spec: DbCeilingSpec;
  dbPid?: number | undefined;
}): Promise<Measurement> {
  const specFile = path.join(os.tmpdir(), `oi-db-ceiling-${process.pid}.json`);
  writeFileSync(specFile, JSON.stringify(options.spec));
  const child = spawn(process.execPath, [path.join(BUILD_DIR, 'bench/db-ceiling.js'), specFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = child.pid;
  const sampler = pid === undefined ? undefined : new ProcSampler(pid);
  const dbSampler = options.dbPid === undefined ? undefined : new ProcSampler(options.dbPid);
  sampler?.start();
  dbSampler?.start();
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  rmSync(specFile, { force: true });
  const usage = sampler?.stop();
  const dbUsage = dbSampler?.stop();
  if (code !== 0) throw new Error(`db ceiling exited with ${code}`);
  const result = JSON.parse(out.trim()) as LoopResult;
  const latencies = result.latenciesMs.sort((a, b) => a - b);
  return {
    target: options.target,
    scenario: options.scenario,
    repeat: options.repeat,
    rps: result.requests / result.seconds,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    errors: result.errors,
    requests: result.requests,
    ...(usage === undefined ? {} : { maxRssMb: usage.maxRssMb, cpuPercent: usage.cpuPercent }),
    ...(dbUsage === undefined ? {} : { dbCpuPercent: dbUsage.cpuPercent }),
  };
}

/** What else the machine was doing when the run started (the VM is shared). */
export function machineContext(): { machine: string; load: string; others: string } {
  const cpus = os.cpus();
  const machine = `${cpus.length} vCPU (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.type()} ${os.release()}`;
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' / ');
  let others = '';
  try {
    others = execFileSync('ps', ['-eo', 'pid,pcpu,etimes,args', '--sort=-pcpu'], { encoding: 'utf8' })
      .split('\n')
      .slice(1)
      .filter((line) => /vitest|tsx|node |mariadbd|autocannon/.test(line) && !line.includes(String(process.pid)))
      .slice(0, 8)
      .map((line) => line.trim().replace(/\s+/g, ' ').slice(0, 140))
      .join('; ');
  } catch {
    others = 'unknown';
  }
  return { machine, load, others };
}

export function commitInfo(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: repoRoot, encoding: 'utf8' }).trim() !== '';
    return `${sha}${dirty ? ' + uncommitted working tree' : ''}`;
  } catch {
    return 'unknown';
  }
}

/**
 * Adds a run's section at the end of its part of BENCHMARKS.md (`## Read path` for bench/api.ts),
 * before the next part, so that runs stay with the part they belong to, newest last.
 */
export function appendToBenchmarks(markdown: string, heading = '## Read path', intro = 'Runs appended by `bench/api.ts`, newest last.'): void {
  const file = path.join(repoRoot, 'BENCHMARKS.md');
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(`\n${heading}\n`);
  if (start === -1) {
    appendFileSync(file, `\n${heading}\n\n${intro}\n\n${markdown.trim()}\n`);
    return;
  }
  const next = text.indexOf('\n## ', start + heading.length + 1);
  const end = next === -1 ? text.length : next + 1;
  const before = text.slice(0, end).replace(/\n*$/, '\n');
  writeFileSync(file, `${before}\n${markdown.trim()}\n${next === -1 ? '' : `\n${text.slice(end)}`}`);
}

export const fmt = (value: number | undefined, digits = 1): string =>
  value === undefined || Number.isNaN(value) ? '–' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
