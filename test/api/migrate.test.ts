// npm run db:migrate against databases it did not create, and run twice at once.
import { randomBytes } from 'node:crypto';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { expectedMigrationCount, migrateDatabase } from '../../src/db/migrate.js';
import { SERVER_URL } from '../helpers/database.js';

const created: string[] = [];
const newName = (label: string): string => {
  const name = `oi_test_migrate_${label}_${randomBytes(4).toString('hex')}`;
  created.push(name);
  return name;
};

async function admin<T>(work: (conn: mysql.Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection({ uri: SERVER_URL });
  try {
    return await work(conn);
  } finally {
    await conn.end();
  }
}

afterAll(async () => {
  await admin(async (conn) => {
    for (const name of created) await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  });
});

describe('migrateDatabase', () => {
  it('a database created beforehand in latin1 gets utf8mb4 tables, and stores what the contract accepts (an emoji city)', async () => {
    const name = newName('latin1');
    await admin((conn) => conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET latin1`));
    await migrateDatabase(`${SERVER_URL}/${name}`);
    await admin(async (conn) => {
      const [[city]] = await conn.query<RowDataPacket[]>(
        "SELECT CHARACTER_SET_NAME AS charset FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'dim_seller' AND COLUMN_NAME = 'city'",
        [name],
      );
      expect(city?.charset).toBe('utf8mb4');
      await conn.query(
        `INSERT INTO \`${name}\`.dim_seller (seller_id, zip_code_prefix, city, state, batch_id) VALUES (?, '01000', 'Kraków 🙂', 'SP', 'b')`,
        ['a'.repeat(32)],
      );
    });
  });

  it('a table left in latin1 by an earlier setup stops the migration with a message saying what to convert', async () => {
    const name = newName('narrow');
    await migrateDatabase(`${SERVER_URL}/${name}`);
    await admin((conn) => conn.query(`ALTER TABLE \`${name}\`.dim_seller CONVERT TO CHARACTER SET latin1`));
    await expect(migrateDatabase(`${SERVER_URL}/${name}`)).rejects.toThrow(/dim_seller\.city latin1.*CONVERT TO CHARACTER SET utf8mb4/);
  });

  it('two runs at once on a new database both succeed, and the migrations are applied once', async () => {
    const name = newName('concurrent');
    const url = `${SERVER_URL}/${name}`;
    await Promise.all([migrateDatabase(url), migrateDatabase(url), migrateDatabase(url)]);
    const [[row]] = await admin((conn) => conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${name}\`.__drizzle_migrations`));
    expect(Number(row?.n)).toBe(expectedMigrationCount());
  });
});
