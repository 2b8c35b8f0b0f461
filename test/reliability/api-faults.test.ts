// The API against a database that really fails: a private mariadbd that the tests stop, crash
// (SIGKILL), pause (SIGSTOP), lock and restart. Every failure must be a quick 503 problem+json
// with Retry-After, readiness must follow the database, liveness must not, and service must come
// back by itself once the database does.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { buildTestApp } from '../helpers/app.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { PrivateMariaDb } from '../helpers/private-mariadb.js';
import { LOCK_ITEM_TABLES, expectUnavailable, sessionsOn, sleep, timedInject, waitUntil } from './support.js';

const DATABASE = 'oi_reliability';
const QUERY_TIMEOUT_MS = 1000;
const ACQUIRE_TIMEOUT_MS = 500;
const POOL_SIZE = 4;
/** Readiness pings on a connection of its own (src/plugins/db.ts), besides the request pool. */
const READINESS_PROBE_CONNECTIONS = 1;
/** The client gives up QUERY_TIMEOUT_MS + 1 s after sending (server stopped answering). */
const FAIL_FAST_MS = QUERY_TIMEOUT_MS + 1000 + 750;
const RECOVERY_MS = 5000;
const LIST = '/v1/order-items?limit=5';

let server: PrivateMariaDb;
let app: FastifyInstance;
const logLines: string[] = [];

const ok = async (): Promise<boolean> => (await timedInject(app, LIST, SELLERS.alpha)).status === 200;

/** Several requests at once, as traffic would send them. */
async function burst(count: number): Promise<number[]> {
  const responses = await Promise.all(Array.from({ length: count }, () => timedInject(app, LIST, SELLERS.alpha)));
  return responses.map((r) => r.status);
}

async function appSessions(): Promise<number> {
  return server.admin(async (admin) => (await sessionsOn(admin, DATABASE)).length);
}

beforeAll(async () => {
  server = await PrivateMariaDb.start();
  const url = server.url(DATABASE);
  await migrateDatabase(url);
  const pool = createPool(url, { connectionLimit: 2 });
  await seedMarketplace(pool, 40);
  await pool.end();
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  app = await buildTestApp(
    url,
    {
      DB_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
      DB_POOL_SIZE: String(POOL_SIZE),
      LOG_LEVEL: 'info',
    },
    { logStream },
  );
}, 120_000);

afterAll(async () => {
  await app?.close();
  await server?.stop();
});

describe('API under database faults', () => {
  it('detects the engine when the app is ready and logs it', async () => {
    expect(app.db.engine).toBe('mariadb');
    expect(logLines.some((line) => line.includes('database engine: mariadb'))).toBe(true);
    expect((await timedInject(app, LIST, SELLERS.alpha)).status).toBe(200);
    expect((await timedInject(app, '/readyz')).status).toBe(200);
  });

  it('ends an over-budget query on the server (table locked) with 503 and frees its connection', async () => {
    const locker = await mysql.createConnection({ uri: server.url(DATABASE) });
    try {
      await locker.query(LOCK_ITEM_TABLES);
      const routes = [LIST, `/v1/order-items/summary?groupBy=month&from=2017-01-01T00:00:00Z&to=2018-01-01T00:00:00Z`];
      for (const route of routes) {
        const response = await timedInject(app, route, SELLERS.alpha);
        expectUnavailable(response);
        expect(response.body).toContain('time budget');
        // Ended by the server's max_statement_time, before the client-side timeout would fire.
        expect(response.ms).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 50);
        expect(response.ms).toBeLessThan(QUERY_TIMEOUT_MS + 1000);
      }
      // Nothing of the API is left running on the server: its sessions are idle.
      await waitUntil(
        async () => (await server.admin((admin) => sessionsOn(admin, DATABASE))).every((s) => s.Command === 'Sleep'),
        2000,
      );
    } finally {
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      await locker.end();
    }
    expect((await timedInject(app, LIST, SELLERS.alpha)).status).toBe(200);
    expect(await appSessions()).toBeLessThanOrEqual(POOL_SIZE + READINESS_PROBE_CONNECTIONS);
  });

  it('database stopped: fast 503s, readiness fails, liveness holds; recovers by itself after restart', async () => {
    await burst(POOL_SIZE); // a warm pool: its connections go stale when the server stops
    await server.shutdown();

    for (const route of [LIST, `/v1/orders/${'0'.repeat(32)}`]) {
      const response = await timedInject(app, route, SELLERS.alpha);
      expectUnavailable(response);
      expect(response.ms).toBeLessThan(FAIL_FAST_MS);
    }
    const statuses = await burst(8);
    expect(new Set(statuses)).toEqual(new Set([503]));
    const ready = await timedInject(app, '/readyz');
    expectUnavailable(ready);
    expect(ready.ms).toBeLessThan(FAIL_FAST_MS);
    expect((await timedInject(app, '/healthz')).status).toBe(200);

    await server.restart();
    const recoveredIn = await waitUntil(ok, RECOVERY_MS);
    expect(recoveredIn).toBeLessThan(RECOVERY_MS);
    expect((await timedInject(app, '/readyz')).status).toBe(200);
    expect(await burst(8)).toEqual(Array(8).fill(200));
  });

  it('database crashed (SIGKILL) and restarted: no stale pooled connection surfaces as an error', async () => {
    expect(await burst(POOL_SIZE * 2)).toEqual(Array(POOL_SIZE * 2).fill(200));
    await server.kill();
    expectUnavailable(await timedInject(app, LIST, SELLERS.alpha));
    await server.restart();
    // The moment the server accepts connections again, every request succeeds.
    expect(await burst(POOL_SIZE * 2)).toEqual(Array(POOL_SIZE * 2).fill(200));
    expect((await timedInject(app, '/readyz')).status).toBe(200);
  });

  it('database paused (SIGSTOP): requests fail within the time budget, service resumes with the database', async () => {
    expect(await burst(POOL_SIZE)).toEqual(Array(POOL_SIZE).fill(200));
    server.pause();
    try {
      const started = performance.now();
      const responses = await Promise.all(Array.from({ length: 8 }, () => timedInject(app, LIST, SELLERS.alpha)));
      for (const response of responses) {
        expectUnavailable(response);
        expect(response.ms).toBeLessThan(FAIL_FAST_MS);
      }
      expect(performance.now() - started).toBeLessThan(FAIL_FAST_MS);
      const ready = await timedInject(app, '/readyz');
      expectUnavailable(ready);
      expect(ready.ms).toBeLessThan(FAIL_FAST_MS);
      expect((await timedInject(app, '/healthz')).status).toBe(200);
    } finally {
      server.resume();
    }
    const recoveredIn = await waitUntil(ok, RECOVERY_MS);
    expect(recoveredIn).toBeLessThan(RECOVERY_MS);
    expect((await timedInject(app, '/readyz')).status).toBe(200);
  });

  it('leaks no connection: after all the faults the API holds at most its pool on the server', async () => {
    await burst(POOL_SIZE * 4);
    await sleep(200);
    expect(await appSessions()).toBeLessThanOrEqual(POOL_SIZE + READINESS_PROBE_CONNECTIONS);
  });

  it('server wait_timeout below the idle timeout: warned at startup, and stale connections cost no error', async () => {
    await server.admin((admin) => admin.query('SET GLOBAL wait_timeout = 2'));
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const second = await buildTestApp(
      server.url(DATABASE),
      { DB_POOL_SIZE: String(POOL_SIZE), DB_IDLE_TIMEOUT_MS: '60000', LOG_LEVEL: 'info' },
      { logStream: stream },
    );
    try {
      await waitUntil(async () => lines.some((line) => line.includes('wait_timeout')), 2000);
      const request = () => timedInject(second, LIST, SELLERS.alpha);
      expect((await Promise.all(Array.from({ length: POOL_SIZE }, request))).map((r) => r.status)).toEqual(Array(POOL_SIZE).fill(200));
      await sleep(3000); // the server closes every idle connection of the pool
      expect((await Promise.all(Array.from({ length: POOL_SIZE * 2 }, request))).map((r) => r.status)).toEqual(
        Array(POOL_SIZE * 2).fill(200),
      );
    } finally {
      await second.close();
      await server.admin((admin) => admin.query('SET GLOBAL wait_timeout = 28800'));
    }
  });
});
