// Shedding, deterministically: (1) a pool of one whose connection is held by a blocked query, so
// the next request's bounded wait runs out, and a queue limit that refuses waiters at once;
// (2) an event loop blocked on purpose with a tiny delay limit; (3) an in-flight limit reached by
// a request held on a table lock. Each must answer 503 problem+json with Retry-After, quickly,
// and never shed the health routes. (2) and (3) are refused by the gate in front of Fastify, so
// they go over a real socket: app.inject would bypass the gate.
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, listen } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { LOCK_ITEM_TABLES, expectUnavailable, sleep, timedFetch, timedInject, waitUntil } from './support.js';

const LIST = '/v1/order-items?limit=5';
const ORDER = `/v1/orders/${'0'.repeat(32)}`;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('shedding');
  await seedMarketplace(db.pool, 10);
});
afterAll(async () => {
  await db?.drop();
});

describe('bounded wait for a connection', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildTestApp(db.url, {
      DB_POOL_SIZE: '1',
      DB_QUEUE_LIMIT: '1',
      DB_ACQUIRE_TIMEOUT_MS: '500',
      DB_QUERY_TIMEOUT_MS: '3000',
      LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
      // One query per request once the freshness lookup is cached.
      FRESHNESS_CACHE_MS: '600000',
    });
    await waitUntil(async () => (await timedInject(app, LIST, SELLERS.alpha)).status === 200, 5000);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a held pool answers 503 + Retry-After after the acquire timeout, and refuses waiters beyond the queue limit at once', async () => {
    const locker = await mysql.createConnection({ uri: db.url });
    try {
      await locker.query(LOCK_ITEM_TABLES);
      // Holds the only connection: its query waits for the table lock.
      const holder = timedInject(app, ORDER, SELLERS.alpha);
      await sleep(100);
      const [waiter, refused] = await Promise.all([timedInject(app, ORDER, SELLERS.alpha), (async () => {
        await sleep(20);
        return timedInject(app, ORDER, SELLERS.alpha);
      })()]);
      expectUnavailable(waiter);
      expect(waiter.ms).toBeGreaterThanOrEqual(450);
      expect(waiter.ms).toBeLessThan(1500);
      // The queue (limit 1) is taken by the waiter: the third request does not wait at all.
      expectUnavailable(refused);
      expect(refused.ms).toBeLessThan(150);
      expect((await timedInject(app, '/healthz')).status).toBe(200);
      // Audit: readiness went through the same busy pool and took a healthy replica out of the
      // balancer. Busy is not down: the database still answers on the probe's own connection.
      const queued = timedInject(app, ORDER, SELLERS.alpha);
      await sleep(20);
      const ready = await timedInject(app, '/readyz');
      expect(ready.status).toBe(200);
      expect(ready.ms).toBeLessThan(400);
      expectUnavailable(await queued);
      await locker.query('UNLOCK TABLES');
      expect((await holder).status).toBe(404); // the all-zero order does not exist: a real answer
    } finally {
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      await locker.end();
    }
    expect((await timedInject(app, LIST, SELLERS.alpha)).status).toBe(200);
  });

  // Audit: under a database-bound overload the pool refused thousands of requests per second
  // after routing and authentication, CPU the admitted requests then lacked.
  it('while the pool queue is full, the gate refuses at the door (reason dbQueue), never the health routes, and admits again after', async () => {
    const baseUrl = await listen(app);
    const before = await shedCount(app, 'dbQueue');
    const locker = await mysql.createConnection({ uri: db.url });
    try {
      await locker.query(LOCK_ITEM_TABLES);
      const holder = timedFetch(baseUrl, ORDER, SELLERS.alpha);
      await sleep(100);
      const waiter = timedFetch(baseUrl, ORDER, SELLERS.alpha);
      await sleep(50);
      expect(app.db.waitingForConnection).toBe(1);
      const refused = await timedFetch(baseUrl, ORDER, SELLERS.alpha);
      expectUnavailable(refused);
      expect(await shedCount(app, 'dbQueue')).toBe(before + 1);
      expect((await timedFetch(baseUrl, '/healthz')).status).toBe(200);
      expect((await timedFetch(baseUrl, '/readyz')).status).toBe(200);
      expectUnavailable(await waiter);
      await locker.query('UNLOCK TABLES');
      expect((await holder).status).toBe(404);
    } finally {
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      await locker.end();
    }
    expect(app.db.waitingForConnection).toBe(0);
    expect((await timedFetch(baseUrl, LIST, SELLERS.alpha)).status).toBe(200);
    expect(await shedCount(app, 'dbQueue')).toBe(before + 1);
  });
});

async function shedCount(app: FastifyInstance, reason: string): Promise<number> {
  const text = await app.metrics.registry.getSingleMetricAsString('http_requests_shed_total');
  const line = text.split('\n').find((l) => l.startsWith(`http_requests_shed_total{reason="${reason}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('event-loop pressure', () => {
  let app: FastifyInstance;
  let baseUrl: string;
  beforeAll(async () => {
    app = await buildTestApp(db.url, { LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '10', LOAD_SHED_RETRY_AFTER_SECONDS: '3' });
    baseUrl = await listen(app);
    await sleep(300); // a few quiet samples (every 100 ms) after ready
  });
  afterAll(async () => {
    await app?.close();
  });

  it('sheds at the door with 503 + Retry-After while the loop lags, keeps health routes up, and recovers', async () => {
    expect((await timedFetch(baseUrl, LIST, SELLERS.alpha)).status).toBe(200);
    // A loop that keeps lagging, as CPU-heavy requests or a GC storm would cause: 150 ms
    // synchronous stalls every 50 ms, until the assertions are done.
    const stall = setInterval(() => {
      const until = performance.now() + 150;
      while (performance.now() < until) {
        // busy on purpose
      }
    }, 50);
    try {
      await waitUntil(async () => {
        const text = await app.metrics.registry.getSingleMetricAsString('http_admitted_ratio');
        return /^http_admitted_ratio 0$/m.test(text);
      }, 3000, 20);
      const shed = await timedFetch(baseUrl, LIST, SELLERS.alpha);
      expectUnavailable(shed);
      expect(shed.headers['retry-after']).toBe('3');
      expect(shed.headers['cache-control']).toBe('no-store');
      expect(JSON.parse(shed.body)).toEqual({
        type: 'https://order-items-api.dev/problems/service-unavailable',
        title: 'Service unavailable',
        status: 503,
        detail: 'the service is overloaded; retry after the delay in Retry-After',
      });
      // Refused before authentication: a request without a token is refused the same way, not 401.
      expectUnavailable(await timedFetch(baseUrl, LIST));
      expect((await timedFetch(baseUrl, '/healthz')).status).toBe(200);
    } finally {
      clearInterval(stall);
    }
    expect(await shedCount(app, 'eventLoopDelay')).toBeGreaterThanOrEqual(2);
    // Quiet samples give the admitted fraction back step by step (0.1 per 100 ms).
    await waitUntil(async () => (await timedFetch(baseUrl, LIST, SELLERS.alpha)).status === 200, 3000, 50);
    await sleep(1200);
    for (let i = 0; i < 20; i += 1) expect((await timedFetch(baseUrl, LIST, SELLERS.alpha)).status).toBe(200);
  });
});

describe('in-flight limit', () => {
  let app: FastifyInstance;
  let baseUrl: string;
  beforeAll(async () => {
    app = await buildTestApp(db.url, { LOAD_SHED_MAX_IN_FLIGHT: '1', FRESHNESS_CACHE_MS: '600000', CORS_ORIGINS: 'https://app.example' });
    baseUrl = await listen(app);
    await waitUntil(async () => (await timedFetch(baseUrl, LIST, SELLERS.alpha)).status === 200, 5000);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('refuses at once while the limit is reached, never the health routes, and admits again after', async () => {
    const locker = await mysql.createConnection({ uri: db.url });
    try {
      await locker.query(LOCK_ITEM_TABLES);
      const holder = timedFetch(baseUrl, ORDER, SELLERS.alpha); // waits on the lock: 1 in flight
      await sleep(200);
      const refused = await timedFetch(baseUrl, LIST, SELLERS.beta);
      expectUnavailable(refused);
      expect(refused.ms).toBeLessThan(150);
      expect(await shedCount(app, 'inFlight')).toBe(1);
      // A refusal is a response like any other: request id, security headers, and a Retry-After
      // a browser page of an allowed origin can read.
      const fromPage = await fetch(`${baseUrl}${LIST}`, { headers: { origin: 'https://app.example', 'x-request-id': 'mine-123' } });
      await fromPage.text();
      expect(fromPage.status).toBe(503);
      expect(fromPage.headers.get('x-request-id')).toBe('mine-123');
      expect(fromPage.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
      expect(fromPage.headers.get('strict-transport-security')).not.toBeNull();
      expect(fromPage.headers.get('access-control-allow-origin')).toBe('https://app.example');
      expect(fromPage.headers.get('access-control-expose-headers')).toMatch(/retry-after/);
      expect(refused.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect((await timedFetch(baseUrl, '/healthz')).status).toBe(200);
      expect((await timedFetch(baseUrl, '/readyz')).status).toBe(200);
      await locker.query('UNLOCK TABLES');
      expect((await holder).status).toBe(404);
    } finally {
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      await locker.end();
    }
    // The slot is released when the held response closes.
    expect((await timedFetch(baseUrl, LIST, SELLERS.beta)).status).toBe(200);
  });

  it('a request queued behind another on a connection that dies frees its slot too', async () => {
    const port = Number(new URL(baseUrl).port);
    // The first request is refused at once and closes the connection (two Host lines): Node never
    // emits 'close' for the response queued behind it, only for its request.
    for (let n = 0; n < 3; n += 1) {
      await new Promise<void>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.write(`GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET ${LIST} HTTP/1.1\r\nHost: x\r\n\r\n`);
        });
        socket.on('data', () => undefined);
        socket.on('error', () => undefined);
        socket.on('close', () => resolve());
      });
    }
    await sleep(100);
    expect((await timedFetch(baseUrl, LIST, SELLERS.beta)).status).toBe(200);
  });
});
