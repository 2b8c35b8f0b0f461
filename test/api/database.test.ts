// The Database wrapper's request path, on a pool of one connection: any connection it fails to
// give back shows up as the next statement timing out while waiting for it.
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/client.js';
import { Database, DatabaseUnavailableError, QueryTimeoutError, type SqlValue } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

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
