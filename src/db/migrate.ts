import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/mysql2';
import { migrate } from 'drizzle-orm/mysql2/migrator';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { createPool, databaseName, ensureDatabase } from './client.js';

// src/db/ when run from source, dist/src/db/ when built: the folder sits at the package root
// (or in the working directory, for a build output placed elsewhere).
export const MIGRATIONS_FOLDER =
  [...['../../drizzle', '../../../drizzle'].map((relative) => fileURLToPath(new URL(relative, import.meta.url))), path.resolve('drizzle')].find(
    (folder) => existsSync(`${folder}/meta/_journal.json`),
  ) ?? fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Creates the database if missing and applies pending migrations; safe to run any number of times. */
export async function migrateDatabase(databaseUrl: string): Promise<void> {
  await ensureDatabase(databaseUrl);
  const name = databaseName(databaseUrl);
  // One connection holds the lock, the other runs the migrations.
  const pool = createPool(databaseUrl, { connectionLimit: 2 });
  const lock = await pool.getConnection();
  const lockName = `order-items-migrate:${name}`;
  try {
    // Two runs at once (two deploy jobs) would both create the same tables: the second waits,
    // then finds nothing left to do.
    const [[granted]] = await lock.query<RowDataPacket[]>('SELECT GET_LOCK(?, 300) AS held', [lockName]);
    if (Number(granted?.held) !== 1) throw new Error(`another migration of ${name} has held its lock for 5 minutes`);
    // A column that names no character set takes its table's, and a table its database's: a
    // database created beforehand in latin1 (MariaDB's own default) would store cities in latin1
    // and fail the first batch holding an emoji. New tables are utf8mb4 whoever created the database.
    await lock.query(`ALTER DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await migrate(drizzle({ client: pool }), { migrationsFolder: MIGRATIONS_FOLDER });
    const narrow = await narrowTextColumns(lock, name);
    if (narrow.length > 0) {
      throw new Error(
        `columns of ${name} hold text in a character set narrower than utf8mb4 (${narrow.join(', ')}): ` +
          'convert their tables (ALTER TABLE … CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci), then migrate again',
      );
    }
  } finally {
    await lock.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => undefined);
    lock.release();
    await pool.end();
  }
}

/** Text columns of the database that are neither utf8mb4 nor ascii (ids) nor binary: tables created before migrate set the database's default. */
async function narrowTextColumns(connection: PoolConnection, database: string): Promise<string[]> {
  const [rows] = await connection.query<RowDataPacket[]>(
    `SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME, ' ', CHARACTER_SET_NAME) AS col FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = ? AND CHARACTER_SET_NAME IS NOT NULL AND CHARACTER_SET_NAME NOT IN ('utf8mb4', 'ascii', 'binary')
      ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [database],
  );
  return rows.map((row) => String(row.col));
}

/** How many migrations this version has (drizzle's journal). */
export function expectedMigrationCount(): number {
  const journal = JSON.parse(readFileSync(`${MIGRATIONS_FOLDER}/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

/** Counts the migrations a database has applied (the table exists once it was ever migrated). */
export const APPLIED_MIGRATIONS_SQL = 'SELECT COUNT(*) AS applied FROM __drizzle_migrations';

/** How many of this version's migrations the database has applied (0 when it was never migrated). */
export async function migrationState(pool: Pool): Promise<{ applied: number; expected: number }> {
  const expected = expectedMigrationCount();
  try {
    const [rows] = await pool.query<RowDataPacket[]>(APPLIED_MIGRATIONS_SQL);
    return { applied: Number(rows[0]?.applied ?? 0), expected };
  } catch (error) {
    // 1146 ER_NO_SUCH_TABLE: never migrated; 1049 ER_BAD_DB_ERROR: the database does not exist yet.
    const errno = typeof error === 'object' && error !== null && 'errno' in error ? error.errno : undefined;
    if (errno === 1146 || errno === 1049) return { applied: 0, expected };
    throw error;
  }
}
