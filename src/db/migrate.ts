import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/mysql2';
import { migrate } from 'drizzle-orm/mysql2/migrator';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { createPool, ensureDatabase } from './client.js';

// src/db/ when run from source, dist/src/db/ when built: the folder sits at the package root
// (or in the working directory, for a build output placed elsewhere).
export const MIGRATIONS_FOLDER =
  [...['../../drizzle', '../../../drizzle'].map((relative) => fileURLToPath(new URL(relative, import.meta.url))), path.resolve('drizzle')].find(
    (folder) => existsSync(`${folder}/meta/_journal.json`),
  ) ?? fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Creates the database if missing and applies pending migrations; safe to run any number of times. */
export async function migrateDatabase(databaseUrl: string): Promise<void> {
  await ensureDatabase(databaseUrl);
  const pool = createPool(databaseUrl, { connectionLimit: 1 });
  try {
    await migrate(drizzle({ client: pool }), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await pool.end();
  }
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
