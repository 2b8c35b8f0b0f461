// One place for mysql2 pool options, shared by the API, the loader and the tests.
import mysql, { type Pool, type PoolOptions } from 'mysql2/promise';
import type { PoolConnection as CorePoolConnection } from 'mysql2';

export interface PoolSettings {
  /** Upper bound on open connections. */
  connectionLimit?: number;
  /** Requests allowed to wait for a connection; beyond that mysql2 fails at once. */
  queueLimit?: number;
  multipleStatements?: boolean;
  /** Idle connections are closed after this long; keep it under the server's wait_timeout. */
  idleTimeoutMs?: number;
  /** Free connections kept at most (default: one fewer than connectionLimit, see poolOptions). */
  maxIdle?: number;
}

export function databaseName(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_]{1,64}$/.test(name)) {
    throw new Error(`database name "${name}" must be 1-64 letters, digits or underscores`);
  }
  return name;
}

export function poolOptions(databaseUrl: string, settings: PoolSettings = {}): PoolOptions {
  const url = new URL(databaseUrl);
  return {
    host: url.hostname,
    port: url.port === '' ? 3306 : Number(url.port),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: databaseName(databaseUrl),
    // Timestamps stay strings: the schema stores UTC, and no Date round trip can shift them.
    dateStrings: true,
    timezone: 'Z',
    // DECIMAL stays a string so money is never a float.
    decimalNumbers: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    charset: 'utf8mb4_general_ci',
    connectionLimit: settings.connectionLimit ?? 10,
    queueLimit: settings.queueLimit ?? 0,
    waitForConnections: true,
    // Idle connections are closed before the server's wait_timeout (default 8 h) or a proxy's
    // idle cut, so the pool rarely hands out a connection the server already dropped (mysql2
    // does not ping on checkout; Database retries an idempotent read once for the rest).
    // mysql2 runs its idle reaper (idleTimeout) only when maxIdle < connectionLimit: with them
    // equal, idle connections were never closed and DB_IDLE_TIMEOUT_MS did nothing.
    maxIdle: settings.maxIdle ?? Math.max(1, (settings.connectionLimit ?? 10) - 1),
    idleTimeout: settings.idleTimeoutMs ?? 60_000,
    enableKeepAlive: true,
    keepAliveInitialDelay: 10_000,
    connectTimeout: 5_000,
    multipleStatements: settings.multipleStatements ?? false,
  };
}

export function createPool(databaseUrl: string, settings: PoolSettings = {}): Pool {
  const pool = mysql.createPool(poolOptions(databaseUrl, settings));
  // Every session works in UTC so NOW() and CURRENT_TIMESTAMP agree with the stored values.
  pool.on('connection', (connection) => {
    // mysql2 hands this event its callback-API connection, whatever the typing says.
    const core = connection as unknown as CorePoolConnection;
    // A session that could not be put in UTC is not used (its NOW() would be another zone's);
    // without the callback, the refusal would be an unhandled error event, i.e. a crash.
    core.query("SET time_zone = '+00:00'", (error) => {
      if (error !== null) core.destroy();
    });
  });
  return pool;
}

/** Creates the database named in the URL when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const name = databaseName(databaseUrl);
  const { database: _ignored, ...serverOptions } = poolOptions(databaseUrl);
  const connection = await mysql.createConnection(serverOptions);
  try {
    await connection.query(
      `CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } finally {
    await connection.end();
  }
}
