// Database.transaction re-runs its work on a fresh transaction after a deadlock or a lock-wait
// timeout (the server picked this transaction as the victim; nothing is wrong with it).
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/client.js';
import { Database, QueryTimeoutError } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let testDb: TestDatabase;
let database: Database;
let pool: ReturnType<typeof createPool>;
const observed: { name: string; outcome: string }[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase('transaction');
  pool = createPool(testDb.url, { connectionLimit: 4 });
  database = new Database(pool, {
    queryTimeoutMs: 2000,
    acquireTimeoutMs: 1000,
    observe: (name, _seconds, outcome) => observed.push({ name, outcome }),
  });
  await testDb.pool.query('CREATE TABLE t_retry (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB');
  await testDb.pool.query('INSERT INTO t_retry VALUES (1, 0), (2, 0)');
});

afterAll(async () => {
  await pool?.end();
  await testDb?.drop();
});

const serverError = (errno: number, code: string): Error => Object.assign(new Error(code), { errno, code });

describe('Database.transaction', () => {
  it.each([
    [1213, 'ER_LOCK_DEADLOCK'],
    [1205, 'ER_LOCK_WAIT_TIMEOUT'],
  ])('when the work fails with errno %i (%s), then it is re-run on a fresh transaction and its result returned', async (errno, code) => {
    let runs = 0;
    observed.length = 0;
    const result = await database.transaction('retried', async (tx) => {
      runs += 1;
      // The first run's write must be rolled back, or the second one hits a duplicate key.
      await tx.write('INSERT INTO t_retry VALUES (?, 0)', [100 + errno]);
      if (runs === 1) throw serverError(errno, code);
      return 'done';
    });
    expect(result).toBe('done');
    expect(runs).toBe(2);
    const [rows] = await testDb.pool.query('SELECT COUNT(*) AS n FROM t_retry WHERE id = ?', [100 + errno]);
    expect(rows).toEqual([{ n: 1 }]);
    expect(observed).toEqual([{ name: 'retried', outcome: 'ok' }]);
  });

  it('when the work keeps deadlocking, then it gives up after a few attempts with the server error', async () => {
    let runs = 0;
    await expect(
      database.transaction('always', async () => {
        runs += 1;
        throw serverError(1213, 'ER_LOCK_DEADLOCK');
      }),
    ).rejects.toMatchObject({ errno: 1213 });
    expect(runs).toBeGreaterThan(1);
    expect(runs).toBeLessThanOrEqual(5);
  });

  it('when the work fails otherwise, then it runs once', async () => {
    let runs = 0;
    await expect(
      database.transaction('once', async () => {
        runs += 1;
        throw new Error('not a lock conflict');
      }),
    ).rejects.toThrow('not a lock conflict');
    expect(runs).toBe(1);
  });

  it('when two transactions really deadlock, then both commit', async () => {
    // Each locks one row, then wants the other's: the server kills one of them with 1213.
    let arrived = 0;
    let release: () => void = () => undefined;
    const bothLocked = new Promise<void>((resolve) => {
      release = resolve;
    });
    const cross = (first: number, second: number) =>
      database.transaction('cross', async (tx) => {
        await tx.select<RowDataPacket>('SELECT v FROM t_retry WHERE id = ? FOR UPDATE', [first]);
        arrived += 1;
        if (arrived === 2) release();
        await Promise.race([bothLocked, new Promise((resolve) => setTimeout(resolve, 500))]);
        await tx.write('UPDATE t_retry SET v = v + 1 WHERE id = ?', [second]);
        return second;
      });
    expect(await Promise.all([cross(1, 2), cross(2, 1)])).toEqual([2, 1]);
    const [rows] = await testDb.pool.query('SELECT id, v FROM t_retry WHERE id IN (1, 2) ORDER BY id');
    expect(rows).toEqual([
      { id: 1, v: 1 },
      { id: 2, v: 1 },
    ]);
  });
});

describe('Database.transaction, a statement stuck on a row lock (audit: the request never got an answer)', () => {
  it('fails as a timeout at its budget, without waiting for the lock (no ROLLBACK queued behind it), and nothing it wrote is kept', async () => {
    await testDb.pool.query('CREATE TABLE t_locked (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB');
    await testDb.pool.query('INSERT INTO t_locked VALUES (1, 0)');
    const shortPool = createPool(testDb.url, { connectionLimit: 2 });
    const short = new Database(shortPool, { queryTimeoutMs: 300, acquireTimeoutMs: 1000 });
    const locker = await testDb.pool.getConnection();
    let release: NodeJS.Timeout | undefined;
    try {
      await locker.query('START TRANSACTION');
      await locker.query('SELECT * FROM t_locked WHERE id = 1 FOR UPDATE');
      // Released after 3 s: past it, the answer waited for the lock.
      release = setTimeout(() => void locker.query('COMMIT'), 3_000);
      const started = Date.now();
      await expect(
        short.transaction('blocked', async (tx) => {
          await tx.write('INSERT INTO t_locked VALUES (2, 0)', []);
          await tx.write('UPDATE t_locked SET v = v + 1 WHERE id = 1', []);
        }),
      ).rejects.toBeInstanceOf(QueryTimeoutError);
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      clearTimeout(release);
      await locker.query('COMMIT');
      locker.release();
    }
    // The abandoned session's transaction is rolled back by the server once its statement ends.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const [rows] = await testDb.pool.query('SELECT id, v FROM t_locked ORDER BY id');
    expect(rows).toEqual([{ id: 1, v: 0 }]);
    // The pool still serves: the stuck connection was dropped, not handed out again.
    await expect(short.transaction('after', async (tx) => tx.write('UPDATE t_locked SET v = 5 WHERE id = 1', []))).resolves.toBeDefined();
    await shortPool.end();
  });
});
