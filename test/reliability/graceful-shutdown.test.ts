// SIGTERM to the real server process: readiness fails first while service continues for the
// drain delay, then new connections are refused, in-flight requests finish, the pool closes and
// the process exits 0; past the deadline it exits 1 rather than hang.
import http from 'node:http';
import net from 'node:net';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';
import { startServer, type ServerProcess } from './server-process.js';
import { LOCK_ITEM_TABLES, sleep } from './support.js';

const ORDER = `/v1/orders/${'0'.repeat(32)}`;
let db: TestDatabase;
let server: ServerProcess | undefined;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on a fresh connection (no agent), so "refused" means the listener is closed. */
function get(baseUrl: string, route: string, sellerId?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${baseUrl}${route}`, { agent: false, headers: sellerId === undefined ? {} : bearer(mintToken({ sellerId })) }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('error', reject);
  });
}

/** Ids of the server sessions on the test database, the asking one excluded. */
async function sessions(): Promise<number[]> {
  const admin = await mysql.createConnection({ uri: db.url });
  try {
    const [rows] = await admin.query<mysql.RowDataPacket[]>(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
      [db.name],
    );
    return rows.map((row) => Number(row.id));
  } finally {
    await admin.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase('shutdown');
  await seedMarketplace(db.pool, 10);
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});
afterAll(async () => {
  await db?.drop();
});

describe('graceful shutdown on SIGTERM', () => {
  it('fails readiness first, finishes in-flight work, refuses new connections, closes the pool, exits 0', async () => {
    const drainMs = 1000;
    const before = new Set(await sessions()); // the test's own pool
    const running = await startServer(db.url, {
      SHUTDOWN_DRAIN_DELAY_MS: String(drainMs),
      SHUTDOWN_DEADLINE_MS: '10000',
      DB_QUERY_TIMEOUT_MS: '8000',
      FRESHNESS_CACHE_MS: '600000',
    });
    server = running;
    expect((await get(running.baseUrl, '/readyz')).status).toBe(200);
    expect((await get(running.baseUrl, '/v1/order-items?limit=1', SELLERS.alpha)).status).toBe(200);

    const locker = await mysql.createConnection({ uri: db.url });
    try {
      await locker.query(LOCK_ITEM_TABLES);
      const inFlight = get(running.baseUrl, ORDER, SELLERS.alpha);
      await sleep(300); // the request is in the handler, its query waiting for the lock
      const signalledAt = performance.now();
      running.child.kill('SIGTERM');
      await sleep(100);

      // During the drain delay: not ready, still serving, and asking clients to disconnect.
      const ready = await get(running.baseUrl, '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(Number(ready.headers['retry-after'])).toBeGreaterThan(0);
      const live = await get(running.baseUrl, '/healthz');
      expect(live.status).toBe(200);
      expect(live.headers.connection).toBe('close');

      // After the drain delay the listener is closed: new connections are refused.
      await sleep(drainMs + 300);
      await expect(get(running.baseUrl, '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(running.child.exitCode).toBeNull(); // still waiting for the in-flight request

      await locker.query('UNLOCK TABLES');
      const answer = await inFlight;
      expect(answer.status).toBe(404); // a real answer: the all-zero order does not exist
      const exit = await running.exited;
      expect(exit.code).toBe(0);
      expect(exit.at - signalledAt).toBeLessThan(10_000);
    } finally {
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      await locker.end();
    }
    const log = running.log.join('\n');
    expect(log).toContain('shutting down: readiness now fails');
    expect(log).toContain('shutdown complete');
    // The pool closed with the process: no session of it is left on the server.
    expect((await sessions()).filter((id) => !before.has(id))).toEqual([]);
  });

  it('exits 1 at the deadline when in-flight work does not finish', async () => {
    const running = await startServer(db.url, {
      SHUTDOWN_DRAIN_DELAY_MS: '0',
      SHUTDOWN_DEADLINE_MS: '1500',
      DB_QUERY_TIMEOUT_MS: '20000',
      FRESHNESS_CACHE_MS: '600000',
    });
    server = running;
    expect((await get(running.baseUrl, '/v1/order-items?limit=1', SELLERS.alpha)).status).toBe(200);
    const locker = await mysql.createConnection({ uri: db.url });
    try {
      await locker.query(LOCK_ITEM_TABLES);
      const inFlight = get(running.baseUrl, ORDER, SELLERS.alpha).catch((error: unknown) => error);
      await sleep(300);
      const signalledAt = performance.now();
      running.child.kill('SIGTERM');
      const exit = await running.exited;
      expect(exit.code).toBe(1);
      expect(exit.at - signalledAt).toBeGreaterThanOrEqual(1400);
      expect(exit.at - signalledAt).toBeLessThan(4000);
      await inFlight;
      expect(running.log.join('\n')).toContain('shutdown deadline passed');
    } finally {
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      await locker.end();
    }
  });
});

// Audit: SIGTERM waited to its deadline (and exited 1) while any connection had sent nothing, or
// only part of a request: Node's request timeout stops once the server closes.
describe('closing with connections that have nothing to answer', () => {
  it('does not wait for them: a preconnect, a head still arriving, a body still arriving', async () => {
    const { buildTestApp, listen } = await import('../helpers/app.js');
    const app = await buildTestApp(db.url);
    const port = Number(new URL(await listen(app)).port);
    const writer = mintToken({ scope: 'pipeline:write' });
    const sockets = [
      '',
      'GET /healthz HTTP/1.1\r\nHost: x\r\n',
      `PUT /v1/pipeline/batches/b/stages/landing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${writer}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"st`,
    ].map((bytes) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
      socket.on('error', () => undefined);
      return socket;
    });
    const closedSockets = Promise.all(sockets.map((socket) => new Promise((resolve) => socket.on('close', resolve))));
    try {
      await sleep(300);
      const started = performance.now();
      await app.close();
      expect(performance.now() - started).toBeLessThan(2_000);
      await closedSockets;
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});

// Audit: a request arriving while the app closes got Fastify's own 503 ({"error": …}), without
// problem+json, Retry-After, X-Request-Id or no-store.
describe('a request that arrives while the app is closing', () => {
  it('gets the 503 problem document with Retry-After and the usual headers', async () => {
    const { buildTestApp, listen } = await import('../helpers/app.js');
    const app = await buildTestApp(db.url, { DB_QUERY_TIMEOUT_MS: '5000' });
    const baseUrl = await listen(app);
    const locker = await mysql.createConnection({ uri: db.url });
    const socket = net.connect(Number(new URL(baseUrl).port), '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const ended = new Promise((resolve) => socket.on('close', resolve));
    const head = (path: string): string =>
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${bearer(mintToken({ sellerId: SELLERS.alpha })).authorization}\r\n\r\n`;
    try {
      await locker.query(LOCK_ITEM_TABLES);
      // In flight and held by the lock: the connection stays open through close().
      socket.write(head(ORDER));
      await sleep(150);
      const closed = app.close();
      await sleep(100);
      // Pipelined on the same connection: handled while the app is closing.
      socket.write(head('/v1/order-items?limit=1'));
      await sleep(100);
      await locker.query('UNLOCK TABLES');
      await closed;
      await ended;
    } finally {
      socket.destroy();
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      await locker.end();
      await app.close().catch(() => undefined);
    }
    const responses = received.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/^HTTP\/1\.1 404 /);
    const second = responses[1] ?? '';
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(second).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(second).toMatch(/\r\nretry-after: \d+\r\n/i);
    expect(second).toMatch(/\r\ncache-control: no-store\r\n/i);
    expect(second).toMatch(/\r\nx-request-id: \S+\r\n/i);
    expect(second).toMatch(/"status":503/);
  });
});
