// Each test file works in a database of its own, created and migrated here and dropped after.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { Pool } from 'mysql2/promise';
import { createPool, databaseName } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';

export const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306';

export interface TestDatabase {
  url: string;
  name: string;
  pool: Pool;
  drop(): Promise<void>;
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const safeLabel = label.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 30);
  const name = `oi_test_${safeLabel}_${randomBytes(4).toString('hex')}`;
  const url = `${SERVER_URL}/${name}`;
  await migrateDatabase(url);
  const pool = createPool(url, { connectionLimit: 4 });
  return {
    url,
    name: databaseName(url),
    pool,
    async drop() {
      await pool.end();
      const admin = await mysql.createConnection({ uri: SERVER_URL });
      try {
        await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await admin.end();
      }
    },
  };
}
