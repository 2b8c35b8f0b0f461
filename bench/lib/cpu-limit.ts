// Caps a process's CPU with a Linux cgroup (v1 `cpu` controller or v2 `cpu.max`), so that a
// benchmark can give the server a known, small share of the machine. On a 2-core machine the
// load generator, MariaDB and the API share the same cores: without a cap, the API's capacity
// is so close to the generator's that "4x the sustainable load" cannot be offered at all. With a
// cap, the server saturates well below what the generator can send, which is the situation the
// overload benchmark must create (a real deployment's replica has a fixed CPU budget too).
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A short period keeps each throttling pause short (at most period × (1 − share)). */
const PERIOD_US = 10_000;

export interface CpuLimit {
  /** Fraction of one core the processes in the group may use per period. */
  readonly cores: number;
  add(pid: number): Promise<void>;
  /** Microseconds of throttling so far (the kernel's own count). */
  throttledMs(): Promise<number>;
  remove(): Promise<void>;
}

export async function createCpuLimit(name: string, cores: number): Promise<CpuLimit> {
  if (!(cores > 0)) throw new Error(`CPU limit must be a positive number of cores, got ${cores}`);
  const quotaUs = Math.max(1000, Math.round(cores * PERIOD_US));
  const v1 = '/sys/fs/cgroup/cpu';
  const v2 = '/sys/fs/cgroup';
  if (existsSync(path.join(v1, 'cpu.cfs_quota_us'))) {
    const dir = path.join(v1, name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
    await writeFile(path.join(dir, 'cpu.cfs_quota_us'), String(quotaUs));
    return limitAt(dir, cores, 'throttled_time', 1e-6);
  }
  const controllers = await readFile(path.join(v2, 'cgroup.controllers'), 'utf8').catch(() => '');
  if (controllers.split(/\s+/).includes('cpu')) {
    const dir = path.join(v2, name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'cpu.max'), `${quotaUs} ${PERIOD_US}`);
    return limitAt(dir, cores, 'throttled_usec', 1e-3);
  }
  throw new Error('no writable cgroup cpu controller on this machine (needs root and cgroup v1 cpu or v2 cpu.max)');
}

function limitAt(dir: string, cores: number, throttledKey: string, toMs: number): CpuLimit {
  return {
    cores,
    async add(pid) {
      // cgroup.procs moves every thread of the process; threads it starts later inherit the group.
      await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
    },
    async throttledMs() {
      const stat = await readFile(path.join(dir, 'cpu.stat'), 'utf8');
      const line = stat.split('\n').find((l) => l.startsWith(`${throttledKey} `));
      return line === undefined ? 0 : Number(line.split(' ')[1]) * toMs;
    },
    async remove() {
      // A group can only be removed once empty; its processes have exited by then.
      await rmdir(dir).catch(() => undefined);
    },
  };
}
