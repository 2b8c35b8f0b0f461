// How many cores this process may use: the cgroup CPU quota when one is set (a container's CPU
// limit), else the machine's cores. Node 20 does not read the quota itself, and a load shedder that
// measures "busy" against the whole machine would never trip inside a 0.5-core container.
import { readFileSync } from 'node:fs';
import os from 'node:os';

function readTrimmed(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Reads `quota period` of the process's own cgroup (v2 `cpu.max`, v1 `cpu.cfs_*`); null when unlimited. */
export function cgroupCpuQuotaCores(procSelfCgroup = '/proc/self/cgroup', root = '/sys/fs/cgroup'): number | null {
  const membership = readTrimmed(procSelfCgroup);
  if (membership === null) return null;
  for (const line of membership.split('\n')) {
    const [, controllers, groupPath] = line.split(':');
    if (controllers === undefined || groupPath === undefined) continue;
    if (controllers === '') {
      const max = readTrimmed(`${root}${groupPath}/cpu.max`) ?? readTrimmed(`${root}/unified${groupPath}/cpu.max`);
      const [quota, period] = (max ?? '').split(' ');
      if (quota !== undefined && quota !== 'max' && period !== undefined && Number(quota) > 0) return Number(quota) / Number(period);
    } else if (controllers.split(',').includes('cpu')) {
      const dir = `${root}/${controllers}${groupPath}`;
      const quota = Number(readTrimmed(`${dir}/cpu.cfs_quota_us`) ?? -1);
      const period = Number(readTrimmed(`${dir}/cpu.cfs_period_us`) ?? 0);
      if (quota > 0 && period > 0) return quota / period;
    }
  }
  return null;
}

export function availableCores(): number {
  const machine = os.availableParallelism();
  const quota = cgroupCpuQuotaCores();
  return quota === null ? machine : Math.min(quota, machine);
}

/** Fraction (0–1+) of the available cores the process used since the previous call. */
export class CpuUsageMeter {
  private lastCpu = process.cpuUsage();
  private lastAt = performance.now();
  private cores = availableCores();
  private samples = 0;

  /** The cores the process may use, as of the last reading. */
  get availableCores(): number {
    return this.cores;
  }

  utilization(): number {
    // A quota can change under a running process (a resized container): re-read it now and then.
    if (++this.samples % 10 === 0) this.cores = availableCores();
    const cpu = process.cpuUsage();
    const now = performance.now();
    const usedMs = (cpu.user - this.lastCpu.user + cpu.system - this.lastCpu.system) / 1000;
    const elapsedMs = now - this.lastAt;
    this.lastCpu = cpu;
    this.lastAt = now;
    return elapsedMs <= 0 ? 0 : usedMs / (elapsedMs * this.cores);
  }
}
