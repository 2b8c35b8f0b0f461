// Shared by the reliability benchmarks: a seeded benchmark database, the real server as a child
// process, and an open-loop traffic generator (requests are sent on a schedule whatever the
// latency, as independent users would; closed-loop tools slow down with the server and hide
// overload) that records latency per status.
import http from 'node:http';
import mysql from 'mysql2/promise';
import { generateDataset } from '../../src/generate/generate.js';
import { loadBatch } from '../../src/loader/load-batch.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { mintToken } from '../../test/helpers/tokens.js';

export const SERVER_URL = process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306';

export interface Target {
  sellerId: string;
  orderId: string;
  orderItemId: number;
}

/** A fresh database with a generated dataset; returns its URL, the dataset folder and sample keys. */
export async function benchDatabase(
  name: string,
  orders = 20_000,
  reuse = false,
): Promise<{ url: string; dir: string; targets: Target[] }> {
  const url = `${SERVER_URL}/${name}`;
  const dir = `/tmp/oi-bench-reliability-${orders}`;
  await generateDataset({ out: dir, sellers: 100, orders, seed: 3 });
  const admin = await mysql.createConnection({ uri: SERVER_URL });
  const [existing] = await admin.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'fact_order_item'",
    [name],
  );
  const keep = reuse && Number(existing[0]?.n) > 0;
  if (!keep) await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await admin.end();
  if (!keep) {
    await migrateDatabase(url);
    await loadBatch({ databaseUrl: url, dir });
  }
  const conn = await mysql.createConnection({ uri: url });
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT seller_id, order_id, order_item_id FROM fact_order_item ORDER BY CRC32(order_id) LIMIT 500',
  );
  await conn.end();
  return {
    url,
    dir,
    targets: rows.map((r) => ({ sellerId: String(r.seller_id), orderId: String(r.order_id), orderItemId: Number(r.order_item_id) })),
  };
}

export type Mix = 'list' | 'get' | 'summary' | 'orders';
const MIX: Mix[] = ['list', 'list', 'list', 'get', 'get', 'orders', 'orders', 'summary'];

export function requestFor(targets: Target[], n: number, tokens: Map<string, string>): { path: string; kind: Mix; token: string } {
  const target = targets[n % targets.length] as Target;
  let token = tokens.get(target.sellerId);
  if (token === undefined) {
    token = mintToken({ sellerId: target.sellerId, expiresInSeconds: 24 * 3600 });
    tokens.set(target.sellerId, token);
  }
  const kind = MIX[n % MIX.length] as Mix;
  const path =
    kind === 'list'
      ? '/v1/order-items?limit=20'
      : kind === 'get'
        ? `/v1/order-items/${target.orderId}/${target.orderItemId}`
        : kind === 'orders'
          ? `/v1/orders/${target.orderId}`
          : '/v1/order-items/summary?groupBy=month&from=2017-01-01T00:00:00Z&to=2018-07-01T00:00:00Z';
  return { path, kind, token };
}

export class Recorder {
  readonly latencies = new Map<string, number[]>();
  count(status: string): number {
    return this.latencies.get(status)?.length ?? 0;
  }
  record(status: string, ms: number): void {
    let list = this.latencies.get(status);
    if (list === undefined) this.latencies.set(status, (list = []));
    list.push(ms);
  }
  total(): number {
    let n = 0;
    for (const list of this.latencies.values()) n += list.length;
    return n;
  }
  byStatus(): Record<string, number> {
    return Object.fromEntries([...this.latencies].map(([status, list]) => [status, list.length]));
  }
  /** Percentile (0-100) of the latencies of the given statuses. */
  percentile(p: number, statuses: (s: string) => boolean = (s) => s.startsWith('2')): number {
    const all: number[] = [];
    for (const [status, list] of this.latencies) if (statuses(status)) all.push(...list);
    if (all.length === 0) return Number.NaN;
    all.sort((a, b) => a - b);
    return all[Math.min(all.length - 1, Math.ceil((p / 100) * all.length) - 1)] as number;
  }
}

export interface OpenLoopOptions {
  /** Where each request goes (a load balancer picks here); null = nowhere ready. */
  baseUrl: () => string | null;
  ratePerSecond: () => number;
  durationMs: number;
  targets: Target[];
  recorder: (at: number) => Recorder;
  /** Client-side cap on outstanding requests; beyond it a request counts as "client-overflow". */
  maxInFlight?: number;
}

/** Sends requests at the given rate for the given time; resolves when all have answered. */
export async function openLoop(options: OpenLoopOptions): Promise<void> {
  // Idle sockets are dropped after 4 s, before the server's 5 s keep-alive timeout: otherwise a
  // request sent on a socket the server is closing at that instant fails with ECONNRESET (a
  // client-side race every HTTP client must avoid, not a server fault).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512, timeout: 4000 });
  const tokens = new Map<string, string>();
  const maxInFlight = options.maxInFlight ?? 2000;
  let inFlight = 0;
  let n = 0;
  const started = performance.now();
  const pending = new Set<Promise<void>>();
  const tickMs = 5;
  let owed = 0;
  let lastTick = started;
  while (performance.now() - started < options.durationMs) {
    // What the schedule owes since the last tick, from the real elapsed time (timers run late).
    const now = performance.now();
    owed += (options.ratePerSecond() * (now - lastTick)) / 1000;
    lastTick = now;
    while (owed >= 1) {
      owed -= 1;
      const sentAt = performance.now();
      const recorder = options.recorder(sentAt);
      const base = options.baseUrl();
      if (base === null) {
        recorder.record('no-backend', 0);
        continue;
      }
      if (inFlight >= maxInFlight) {
        recorder.record('client-overflow', 0);
        continue;
      }
      const { path, token } = requestFor(options.targets, n++, tokens);
      inFlight += 1;
      const done = new Promise<void>((resolve) => {
        const request = http.get(`${base}${path}`, { agent, headers: { authorization: `Bearer ${token}` } }, (response) => {
          response.resume();
          response.on('end', () => {
            recorder.record(String(response.statusCode), performance.now() - sentAt);
            resolve();
          });
        });
        request.setTimeout(30_000, () => request.destroy(new Error('client timeout')));
        request.on('error', (error: NodeJS.ErrnoException) => {
          recorder.record(`error:${error.code ?? error.message}`, performance.now() - sentAt);
          resolve();
        });
      }).finally(() => {
        inFlight -= 1;
        pending.delete(done);
      });
      pending.add(done);
    }
    await new Promise((resolve) => setTimeout(resolve, tickMs));
  }
  await Promise.all(pending);
  agent.destroy();
}

export function round(value: number, digits = 1): number {
  return Number.isFinite(value) ? Number(value.toFixed(digits)) : value;
}
