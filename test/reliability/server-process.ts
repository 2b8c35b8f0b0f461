// Runs the real server (src/server.ts through tsx's loader, one Node process, so signals reach
// the server itself) with its configuration in the environment; collects its log and exit.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_JWT_SECRET } from '../helpers/tokens.js';
import { freePort } from '../helpers/private-mariadb.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  metricsPort: number;
  baseUrl: string;
  log: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  stop(): Promise<void>;
}

export async function startServer(databaseUrl: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'info',
      RATE_LIMIT_MAX: '1000000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => log.push(...chunk.toString().split('\n').filter((l) => l !== '')));
  child.stderr?.on('data', (chunk: Buffer) => log.push(...chunk.toString().split('\n').filter((l) => l !== '')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() }));
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const server: ServerProcess = {
    child,
    port,
    metricsPort,
    baseUrl,
    log,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited during startup:\n${log.join('\n')}`);
    try {
      const response = await fetch(`${baseUrl}/healthz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`server did not start:\n${log.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return server;
}
