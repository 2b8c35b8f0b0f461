// The gate's controller and the CPU budget it measures against, without a database: the CPU
// signal is driven by burning CPU for real, the cgroup readers by fake cgroup trees on disk.
import http from 'node:http';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cgroupCpuQuotaCores } from '../../src/http/cpu-budget.js';
import { PressureGate, type PressureSignal } from '../../src/http/pressure-gate.js';

const LIMITS = { maxEventLoopDelayMs: 0, maxCpuUtilization: 0, maxInFlight: 0, retryAfterSeconds: 2, corsOrigins: ['https://app.example'] };

function burnCpu(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy on purpose
  }
}

describe('PressureGate controller', () => {
  let gate: PressureGate | undefined;
  afterEach(() => gate?.stop());

  it('shrinks the admitted fraction while the process uses more CPU than allowed', () => {
    gate = new PressureGate({ ...LIMITS, maxCpuUtilization: 0.05 });
    gate.start();
    burnCpu(200);
    gate.sample();
    expect(gate.admittedFraction).toBeLessThan(0.9);
  });

  it('shrinks in proportion to an event-loop stall, then gives the fraction back while the loop is quiet', async () => {
    // The delay signal rather than CPU for the quiet part: other processes of a test run do not
    // move this process's event-loop delay, while its CPU use includes vitest's own work.
    gate = new PressureGate({ ...LIMITS, maxEventLoopDelayMs: 20 });
    gate.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    burnCpu(600);
    // The delay histogram records the stall when its own timer fires, late, after the stall;
    // then the gate's overdue sampling timer runs.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const afterStall = gate.admittedFraction;
    expect(afterStall).toBeLessThan(0.5);
    await new Promise((resolve) => setTimeout(resolve, 350)); // the gate's own timer samples meanwhile
    expect(gate.admittedFraction).toBeGreaterThan(afterStall);
  });

  it('does not shed for a lag the process did not cause: its loop held up while it used no CPU (a busy machine)', async () => {
    gate = new PressureGate({ ...LIMITS, maxEventLoopDelayMs: 20 });
    gate.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The thread blocked without running, as when other processes hold every core.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
    await new Promise((resolve) => setTimeout(resolve, 5));
    gate.sample();
    expect(gate.admittedFraction).toBe(1);
    // The same stall, busy this time, is the process's own: it sheds.
    burnCpu(600);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(gate.admittedFraction).toBeLessThan(0.5);
  });

  it('with every limit at 0, never samples and admits everything', () => {
    gate = new PressureGate(LIMITS);
    gate.start();
    burnCpu(100);
    gate.sample();
    expect(gate.admittedFraction).toBe(1);
  });
});

describe('PressureGate at the door', () => {
  const gate = new PressureGate({ ...LIMITS, maxCpuUtilization: 0.001 });
  let reachedFastify = 0;
  const server = http.createServer(
    gate.guard((_request, response) => {
      reachedFastify += 1;
      response.end('ok');
    }),
  );
  afterAll(async () => {
    gate.stop();
    await new Promise((resolve) => server.close(resolve));
  });

  it('refuses with a complete problem+json 503 (CORS for allowed origins only) and lets health routes through', async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address() as { port: number };
    const base = `http://127.0.0.1:${address.port}`;
    gate.start();
    burnCpu(150);
    gate.sample();
    expect(gate.admittedFraction).toBe(0);

    const allowed = await fetch(`${base}/v1/order-items`, { headers: { origin: 'https://app.example' } });
    expect(allowed.status).toBe(503);
    expect(allowed.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(allowed.headers.get('retry-after')).toBe('2');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(((await allowed.json()) as { status: number }).status).toBe(503);

    const foreign = await fetch(`${base}/v1/order-items`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(503);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    await foreign.text();

    expect(reachedFastify).toBe(0);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz?verbose=1`)).status).toBe(200);
    // The router matches a trailing slash too (audit: /readyz/ was shed).
    expect((await fetch(`${base}/readyz/`)).status).toBe(200);
    expect((await fetch(`${base}/healthz/?x=1`)).status).toBe(200);
    expect((await fetch(`${base}/%68ealthz`)).status).toBe(200);
    expect(reachedFastify).toBe(5);
    expect((await fetch(`${base}/readyzz`)).status).toBe(503);
    expect(reachedFastify).toBe(5);
  });
});

describe('cgroupCpuQuotaCores', () => {
  let dir: string;
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function fakeTree(membership: string, files: Record<string, string>): Promise<{ proc: string; root: string }> {
    dir ??= await mkdtemp(path.join(os.tmpdir(), 'oi-cgroup-'));
    const root = await mkdtemp(path.join(dir, 'root-'));
    for (const [file, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, file)), { recursive: true });
      await writeFile(path.join(root, file), content);
    }
    const proc = path.join(root, 'proc-self-cgroup');
    await writeFile(proc, membership);
    return { proc, root };
  }

  it('reads a v1 cpu quota (cfs_quota_us / cfs_period_us) of the process group', async () => {
    const { proc, root } = await fakeTree('4:memory:/x\n2:cpu,cpuacct:/pod/api\n', {
      'cpu,cpuacct/pod/api/cpu.cfs_quota_us': '50000\n',
      'cpu,cpuacct/pod/api/cpu.cfs_period_us': '100000\n',
    });
    expect(cgroupCpuQuotaCores(proc, root)).toBe(0.5);
  });

  it('reads a v2 cpu.max, and "max" or -1 means no quota', async () => {
    const limited = await fakeTree('0::/pod/api\n', { 'pod/api/cpu.max': '150000 100000\n' });
    expect(cgroupCpuQuotaCores(limited.proc, limited.root)).toBe(1.5);
    const unlimited = await fakeTree('0::/pod/api\n', { 'pod/api/cpu.max': 'max 100000\n' });
    expect(cgroupCpuQuotaCores(unlimited.proc, unlimited.root)).toBeNull();
    const v1Unlimited = await fakeTree('1:cpu:/\n', { 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' });
    expect(cgroupCpuQuotaCores(v1Unlimited.proc, v1Unlimited.root)).toBeNull();
    expect(cgroupCpuQuotaCores(path.join(os.tmpdir(), 'no-such-file'))).toBeNull();
  });
});
