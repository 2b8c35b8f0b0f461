// A private, tuned MariaDB for the 5M-item read benchmarks, clearly separate from the shared
// server (whose 128 MiB buffer pool and global settings are not ours to change). Own data
// directory under /tmp (never in the repo), own port and socket, started detached so that it
// outlives one bench command; `npx tsx bench/datasets.ts --stop-private` stops it by its pid.
import { execFile, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';

const run = promisify(execFile);

export const PRIVATE_PORT = Number(process.env.BENCH_PRIVATE_PORT ?? 3317);
export const PRIVATE_DATADIR = process.env.BENCH_PRIVATE_DATADIR ?? '/tmp/oi-bench-mariadb/data';
const PRIVATE_ROOT = PRIVATE_DATADIR.replace(/\/data$/, '');
const PID_FILE = `${PRIVATE_ROOT}/mariadbd.pid`;
const SOCKET = `${PRIVATE_ROOT}/mariadbd.sock`;
const LOG_FILE = `${PRIVATE_ROOT}/mariadbd.log`;
export const PRIVATE_BUFFER_POOL = process.env.BENCH_PRIVATE_BUFFER_POOL ?? '4G';

/** The tuning, stated in BENCHMARKS.md next to every result obtained against this server. */
export const PRIVATE_SERVER_ARGS = [
  `--innodb-buffer-pool-size=${PRIVATE_BUFFER_POOL}`,
  '--innodb-log-file-size=1G',
  // Bench data is rebuilt from a script: durability is traded for build speed; reads are unaffected.
  '--innodb-flush-log-at-trx-commit=0',
  '--innodb-doublewrite=0',
  '--skip-log-bin',
  '--max-connections=500',
  '--skip-name-resolve',
];

export const privateServerUrl = (): string => `mysql://root@127.0.0.1:${PRIVATE_PORT}`;

async function answers(): Promise<boolean> {
  try {
    const connection = await mysql.createConnection({ host: '127.0.0.1', port: PRIVATE_PORT, user: 'root', connectTimeout: 1000 });
    await connection.end();
    return true;
  } catch {
    return false;
  }
}

/** Starts the private server unless it already answers; returns its server URL (no database). */
export async function ensurePrivateServer(): Promise<string> {
  if (await answers()) return privateServerUrl();
  if (!existsSync(`${PRIVATE_DATADIR}/mysql`)) {
    await run('mkdir', ['-p', PRIVATE_DATADIR]);
    await run('/usr/bin/mariadb-install-db', [
      '--no-defaults',
      `--datadir=${PRIVATE_DATADIR}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      '--user=root',
    ]);
  }
  const log = openSync(LOG_FILE, 'a');
  const child = spawn(
    '/usr/sbin/mariadbd',
    [
      '--no-defaults',
      `--datadir=${PRIVATE_DATADIR}`,
      `--port=${PRIVATE_PORT}`,
      '--bind-address=127.0.0.1',
      `--socket=${SOCKET}`,
      `--pid-file=${PID_FILE}`,
      '--user=root',
      ...PRIVATE_SERVER_ARGS,
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  child.unref();
  for (let i = 0; i < 120; i += 1) {
    if (await answers()) return privateServerUrl();
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`private mariadbd did not start on port ${PRIVATE_PORT}; see ${LOG_FILE}`);
}

/** Stops the private server this script started (by the pid in its own pid file). */
export async function stopPrivateServer(removeData: boolean): Promise<void> {
  if (existsSync(PID_FILE)) {
    const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      for (let i = 0; i < 120 && (await answers()); i += 1) await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  if (removeData) rmSync(PRIVATE_ROOT, { recursive: true, force: true });
}
