// A MariaDB server of the test's own: own port, own data directory under /tmp, started with
// `mariadbd --no-defaults`, so a test may stop, kill, pause (SIGSTOP) and restart it without
// touching the shared instance. Every server started here is killed and its directory removed
// when stop() runs, and in any case when the test process exits.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';

const run = promisify(execFile);

const MARIADBD = ['/usr/sbin/mariadbd', '/usr/bin/mariadbd', '/usr/sbin/mysqld'].find((p) => existsSync(p)) ?? 'mariadbd';
const INSTALL_DB = ['/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db'].find((p) => existsSync(p)) ?? 'mariadb-install-db';
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/** Every live server of this process, killed synchronously on exit whatever happened. */
const live = new Set<PrivateMariaDb>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const server of live) server.killNow();
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PrivateMariaDbOptions {
  /** Extra server options, e.g. `--wait-timeout=2`. */
  args?: string[];
}

// One initialised data directory per MariaDB build, shared by every test process and run and
// copied for each server: mariadb-install-db takes seconds, a copy milliseconds. It lives at a
// fixed path, so there is one (~110 MB) per build, not one per test process: a copy per process,
// removed on exit, was left behind whenever the test runner killed its worker (40 of them, 4.5 GB,
// in a day of runs).
let template: Promise<string> | undefined;
async function templateDir(): Promise<string> {
  template ??= (async () => {
    const { stdout } = await run(MARIADBD, ['--version']);
    const build = createHash('sha256').update(`${MARIADBD} ${stdout}`).digest('hex').slice(0, 12);
    const dir = path.join(os.tmpdir(), `oi-mariadb-template-${build}${IS_ROOT ? '' : `-${process.getuid?.() ?? ''}`}`);
    const complete = path.join(dir, 'oi-template-complete');
    if (existsSync(complete)) return dir;
    const building = await mkdtemp(path.join(os.tmpdir(), 'oi-mariadb-template-building-'));
    try {
      await run(INSTALL_DB, [
        '--no-defaults',
        `--datadir=${building}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...(IS_ROOT ? ['--user=root'] : []),
      ]);
      await writeFile(path.join(building, 'oi-template-complete'), '');
      // Atomic: another process that built one at the same time wins, and this copy goes.
      await rename(building, dir).catch(async (error: unknown) => {
        if (!existsSync(complete)) throw error;
      });
    } finally {
      await rm(building, { recursive: true, force: true });
    }
    return dir;
  })();
  return template;
}

export class PrivateMariaDb {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  /** Initialises a data directory, starts the server and waits until it accepts connections. */
  static async start(options: PrivateMariaDbOptions = {}): Promise<PrivateMariaDb> {
    installExitHook();
    const source = await templateDir();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'oi-mariadb-'));
    await cp(source, dataDir, { recursive: true });
    const server = new PrivateMariaDb(dataDir, await freePort(), options.args ?? []);
    live.add(server);
    try {
      await server.startProcess();
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** mysql://root@127.0.0.1:<port> (no database). */
  get serverUrl(): string {
    return `mysql://root@127.0.0.1:${this.port}`;
  }

  url(database: string): string {
    return `${this.serverUrl}/${database}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  private async startProcess(): Promise<void> {
    // Internal temporary tables of its own: in the shared /tmp, one run saw a server fail on
    // "Error on delete of '/tmp/#sql-temptable-…'" (a file it had made was gone).
    const tmpDir = path.join(this.dataDir, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    const child = spawn(
      MARIADBD,
      [
        '--no-defaults',
        `--datadir=${this.dataDir}`,
        `--port=${this.port}`,
        '--bind-address=127.0.0.1',
        `--socket=${path.join(this.dataDir, 'mariadb.sock')}`,
        `--pid-file=${path.join(this.dataDir, 'mariadb.pid')}`,
        `--log-error=${path.join(this.dataDir, 'error.log')}`,
        `--tmpdir=${tmpDir}`,
        '--skip-log-bin',
        '--innodb-buffer-pool-size=64M',
        '--innodb-log-file-size=16M',
        '--innodb-flush-log-at-trx-commit=2',
        '--max-connections=200',
        ...(IS_ROOT ? ['--user=root'] : []),
        ...this.extraArgs,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    await this.waitReady(30_000);
  }

  /** Polls until a connection succeeds. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child === undefined) throw new Error(`mariadbd exited during startup; see ${this.dataDir}/error.log`);
      try {
        const conn = await mysql.createConnection({ host: '127.0.0.1', port: this.port, user: 'root', connectTimeout: 1000 });
        await conn.end();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Clean shutdown (SIGTERM) and wait for exit. */
  async shutdown(): Promise<void> {
    this.resume();
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** A crash: SIGKILL, no shutdown packets to clients. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Starts the server again on the same port and data directory. */
  async restart(): Promise<void> {
    if (this.child !== undefined) await this.shutdown();
    await this.startProcess();
  }

  /** SIGSTOP: the port still accepts TCP connections, nothing answers. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Stops the server (SIGKILL: nothing here needs to survive) and removes the data directory. */
  async stop(): Promise<void> {
    await this.kill();
    live.delete(this);
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** Synchronous last resort for process exit. */
  killNow(): void {
    if (this.child !== undefined) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGKILL');
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async admin<T>(work: (conn: mysql.Connection) => Promise<T>): Promise<T> {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: this.port, user: 'root', multipleStatements: true });
    try {
      return await work(conn);
    } finally {
      await conn.end();
    }
  }
}
