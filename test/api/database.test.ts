// The Database wrapper's request path, on a pool of one connection: any connection it fails to
// give back shows up as the next statement timing out while waiting for it.
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/client.js';
import { Database, DatabaseUnavailableError, isConnectionError, QueryTimeoutError, type SqlValue } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startStallingProxy, type StallingProxy } from '../helpers/stalling-proxy.js';
import { buildTestApp } from '../helpers/app.js';
import { SELLERS } from '../helpers/fixtures.js';
import { mintToken } from '../helpers/tokens.js';

let testDb: TestDatabase;
let database: Database;
let pool: ReturnType<typeof createPool>;
const observed: { name: string; outcome: string }[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase('database');
  pool = createPool(testDb.url, { connectionLimit: 1 });
  database = new Database(pool, {
    queryTimeoutMs: 1000,
    acquireTimeoutMs: 500,
    observe: (name, _seconds, outcome) => observed.push({ name, outcome }),
  });
});

afterAll(async () => {
  await pool?.end();
  await testDb?.drop();
});

const one = async (value: SqlValue): Promise<unknown> =>
  (await database.select<RowDataPacket & { v: unknown }>('probe', 'SELECT ? AS v', [value]))[0]?.v;

describe('Database.select', () => {
  it('answers before and after the engine is known, with the time budget applied', async () => {
    expect(database.engine).toBeUndefined();
    expect(await one('first')).toBe('first');
    expect(database.engine).toBe('mariadb');
    expect(await one('second')).toBe('second');
    await expect(database.select('slow', 'SELECT SLEEP(3) AS v', [])).rejects.toBeInstanceOf(QueryTimeoutError);
    expect(await one('after the timeout')).toBe('after the timeout');
  });

  it('gives the connection back when the statement fails, and when mysql2 refuses a bind value', async () => {
    await expect(database.select('broken', 'SELECT no_such_column FROM dim_seller', [])).rejects.toMatchObject({ code: 'ER_BAD_FIELD_ERROR' });
    // A value the types forbid, as a caller bypassing them would send it: mysql2 throws at once.
    const refused = [undefined] as unknown as SqlValue[];
    await expect(database.select('refused', 'SELECT ? AS v', refused)).rejects.toThrow(/undefined/);
    expect(await one('still served')).toBe('still served');
  });

  it('times out waiting for a connection the pool does not have', async () => {
    const held = await pool.getConnection();
    try {
      await expect(one('waits')).rejects.toBeInstanceOf(DatabaseUnavailableError);
    } finally {
      held.release();
    }
    expect(await one('served again')).toBe('served again');
  });

  it('reports every statement to the observer with its outcome', () => {
    expect(observed).toContainEqual({ name: 'probe', outcome: 'ok' });
    expect(observed).toContainEqual({ name: 'broken', outcome: 'error' });
    expect(observed).toContainEqual({ name: 'slow', outcome: 'error' });
  });
});

describe('isConnectionError: what answers 503 (retry later) rather than 500', () => {
  it.each([
    ['a connection mysql2 marks fatal, without a code', Object.assign(new Error("Can't add new command when connection is in closed state"), { fatal: true }), true],
    ['a statement queued on a socket being closed', Object.assign(new Error('write after end'), { code: 'ERR_STREAM_WRITE_AFTER_END' }), true],
    ['an expired password', Object.assign(new Error('You must SET PASSWORD'), { code: 'ER_MUST_CHANGE_PASSWORD', errno: 1820 }), true],
    ['a statement the server refused (control)', Object.assign(new Error('syntax'), { code: 'ER_PARSE_ERROR', errno: 1064, fatal: false }), false],
  ])('%s → %s', (_label, error, expected) => {
    expect(isConnectionError(error)).toBe(expected);
  });
});

describe('Database.select, the server stops answering', () => {
  let proxy: StallingProxy;
  let proxiedPool: ReturnType<typeof createPool>;
  let proxied: Database;

  beforeAll(async () => {
    proxy = await startStallingProxy({ host: '127.0.0.1', port: 3306 });
    proxiedPool = createPool(proxy.through(testDb.url), { connectionLimit: 1 });
    proxied = new Database(proxiedPool, { queryTimeoutMs: 500, acquireTimeoutMs: 500 });
  });

  afterAll(async () => {
    proxy?.resume();
    await proxiedPool?.end().catch(() => undefined);
    await proxy?.close();
  });

  const probe = async (sql: string, value: string): Promise<unknown> =>
    (await proxied.select<RowDataPacket & { v: unknown }>('probe', sql, [value]))[0]?.v;

  it('fails a statement new to the connection (its PREPARE unanswered) at the deadline, then serves again', async () => {
    expect(await probe('SELECT ? AS v', 'warm')).toBe('warm');
    proxy.stall();
    try {
      for (const sql of ['SELECT ? AS v, 1 AS never_prepared', 'SELECT ? AS v']) {
        const started = performance.now();
        await expect(probe(sql, 'stalled')).rejects.toBeInstanceOf(DatabaseUnavailableError);
        // The deadline is the 500 ms budget + 1 s.
        expect(performance.now() - started).toBeLessThan(2_500);
      }
    } finally {
      proxy.resume();
    }
    expect(await probe('SELECT ? AS v', 'answered again')).toBe('answered again');
  });

  it('fails a transaction whose BEGIN is unanswered at the deadline, then serves again', async () => {
    expect(await probe('SELECT ? AS v', 'warm')).toBe('warm'); // the pool's one connection is open
    proxy.stall();
    try {
      const started = performance.now();
      const work = proxied.transaction('stalled', async (tx) => tx.select('SELECT ? AS v', ['in tx']));
      await expect(work).rejects.toBeInstanceOf(DatabaseUnavailableError);
      expect(performance.now() - started).toBeLessThan(2_500);
    } finally {
      proxy.resume();
    }
    expect(await probe('SELECT ? AS v', 'answered again')).toBe('answered again');
  });
});

describe('closing the app while a connection is still being opened (audit: SIGTERM then exited 1)', () => {
  it('app.close() resolves: the connection that fails while the pools close is only logged', async () => {
    const proxy = await startStallingProxy({ host: '127.0.0.1', port: 3306 });
    proxy.stall();
    const app = await buildTestApp(proxy.through(testDb.url), { DB_ACQUIRE_TIMEOUT_MS: '300', DB_QUERY_TIMEOUT_MS: '300' });
    try {
      // Readiness gives up on its probe connection after 2 s; the connection attempt goes on.
      expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
      expect((await app.inject({ method: 'GET', url: '/v1/order-items', headers: { authorization: `Bearer ${mintToken({ sellerId: SELLERS.alpha })}` } })).statusCode).toBe(503);
      await expect(app.close()).resolves.toBeUndefined();
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });
});

// Audit: mysql2 reaps idle connections only when maxIdle < connectionLimit; with the two equal,
// DB_IDLE_TIMEOUT_MS did nothing and connections lived until the server's wait_timeout cut them.
describe('idle pooled connections', () => {
  const open = (pool: ReturnType<typeof createPool>): number =>
    (pool.pool as unknown as { _allConnections: { length: number } })._allConnections.length;

  it('are closed after the idle timeout', async () => {
    const pool = createPool(testDb.url, { connectionLimit: 3, idleTimeoutMs: 300 });
    try {
      await Promise.all([1, 2, 3].map(() => pool.query('SELECT SLEEP(0.05)')));
      expect(open(pool)).toBe(3);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(open(pool)).toBe(0);
      await pool.query('SELECT 1');
    } finally {
      await pool.end();
    }
  });
});
