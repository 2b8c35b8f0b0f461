// The API's only door to MySQL: every statement has a name (its metric label), a server-side time
// budget, a bounded wait for a connection, and one retry when a pooled connection turns out dead.
import type { PoolConnection as CorePoolConnection, QueryResult } from 'mysql2';
import type { Pool, PoolConnection, RowDataPacket, ResultSetHeader } from 'mysql2/promise';
import { APPLIED_MIGRATIONS_SQL } from './migrate.js';

export type SqlValue = string | number | null;
export type Engine = 'mariadb' | 'mysql';

export interface Transaction {
  select<T extends RowDataPacket>(sql: string, params: SqlValue[]): Promise<T[]>;
  write(sql: string, params: SqlValue[]): Promise<ResultSetHeader>;
}

export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError';
}
/** The database answers, but its schema is older than this version's (readiness only). */
export class SchemaNotReadyError extends Error {
  override readonly name = 'SchemaNotReadyError';
}
export class QueryTimeoutError extends Error {
  override readonly name = 'QueryTimeoutError';
}

export interface QueryObserver {
  (queryName: string, seconds: number, outcome: 'ok' | 'error'): void;
}

export interface DatabaseOptions {
  queryTimeoutMs: number;
  acquireTimeoutMs: number;
  /**
   * A pool of its own for ping(): readiness asks whether the database answers, and must not wait
   * behind (or be refused by) the queue of a busy request pool. Without it, ping() uses the pool.
   */
  probePool?: Pool;
  /**
   * ping() also requires this many applied migrations (`expectedMigrationCount()`): a replica in
   * front of a database not yet migrated to its version (or never migrated) is not ready, as it
   * could serve none of its routes.
   */
  requiredMigrations?: number;
  /** Called once when the account may not read __drizzle_migrations: readiness skips that check. */
  onMigrationsUnreadable?: () => void;
  observe?: QueryObserver;
  /** Called once, when the engine is first known (at startup, or at the first connection). */
  onEngineDetected?: (engine: Engine, version: string) => void;
}

// Errors that mean "the connection or the server is gone", not "the query is wrong".
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_NORMAL_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_CLIENT_INTERACTION_TIMEOUT',
  'ER_ACCESS_DENIED_ERROR',
  // An expired password (the login passes, every statement then fails): the account cannot work.
  'ER_MUST_CHANGE_PASSWORD',
  'ER_BAD_DB_ERROR',
  'ER_NO_SUCH_TABLE',
  'POOL_CLOSED',
  // A statement queued on a connection being closed (its session setup failed, see client.ts).
  'ERR_STREAM_WRITE_AFTER_END',
  'QUEUE_LIMIT_REACHED',
]);
// A pooled connection the server already dropped (wait_timeout, restart, proxy idle cut) fails
// with one of these on first use; an idempotent read is then retried once on another connection.
const RETRYABLE_ON_FRESH_CONNECTION = new Set([
  'ECONNRESET',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CLIENT_INTERACTION_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
]);
// MariaDB ER_STATEMENT_TIMEOUT (1969) and MySQL ER_QUERY_TIMEOUT (3024).
const TIMEOUT_ERRNOS = new Set([1969, 3024]);
const INTERRUPTED_ERRNO = 1317;
// ER_TABLEACCESS_DENIED_ERROR: "SELECT command denied to user … for table …".
const TABLE_ACCESS_DENIED_ERRNO = 1142;

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}
function errorNumber(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && 'errno' in error && typeof error.errno === 'number'
    ? error.errno
    : undefined;
}

export function isConnectionError(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  const code = errorCode(error);
  if (code !== undefined && CONNECTION_ERROR_CODES.has(code)) return true;
  // mysql2 marks `fatal` what leaves the connection unusable, some of it without a code ("Can't
  // add new command when connection is in closed state").
  return typeof error === 'object' && error !== null && 'fatal' in error && error.fatal === true;
}

/** Whether a connection can go back to the pool after this statement error (not lost, not stuck). */
function keepsConnection(error: unknown): boolean {
  return !isConnectionError(error) && errorCode(error) !== 'PROTOCOL_SEQUENCE_TIMEOUT';
}

/** How long readiness waits for its probe connection at least (see ping). */
const PROBE_CONNECT_WAIT_MS = 2_000;

export class Database {
  #engine: Engine | undefined;
  #migrationsUnreadable = false;
  readonly #budgetedSql = new Map<string, string>();

  constructor(
    readonly pool: Pool,
    private readonly options: DatabaseOptions,
  ) {}

  get engine(): Engine | undefined {
    return this.#engine;
  }

  /**
   * Requests in the request pool's wait queue right now: mysql2's own queue, the one DB_QUEUE_LIMIT
   * bounds, so "full" means exactly what makes the pool refuse. A waiter whose acquire timed out
   * stays in it until a connection frees (mysql2 has no cancel), and counts as the pool counts it.
   */
  get waitingForConnection(): number {
    const core = this.pool.pool as unknown as { _connectionQueue?: { length: number } };
    return core._connectionQueue?.length ?? 0;
  }

  /** Runs a named, read-only statement under the time budget. */
  async select<T extends RowDataPacket>(queryName: string, sql: string, params: SqlValue[]): Promise<T[]> {
    const [rows] = await this.run(queryName, sql, params, true);
    return rows as T[];
  }

  /** Runs a named write. Writes are not retried: the caller knows whether they are idempotent. */
  async write(queryName: string, sql: string, params: SqlValue[]): Promise<ResultSetHeader> {
    const [result] = await this.run(queryName, sql, params, false);
    return result as ResultSetHeader;
  }

  /**
   * Runs `work` in one transaction on one connection; rolled back when it throws. Statements
   * inside are timed under the transaction's name (one observation per call, retries included).
   *
   * When the server picks the transaction as a deadlock victim (ER_LOCK_DEADLOCK, 1213) or a lock
   * wait times out (ER_LOCK_WAIT_TIMEOUT, 1205), the transaction is rolled back and `work` runs
   * again from the start on a fresh transaction, up to 5 attempts in all, after a short jittered
   * backoff. `work` must therefore be safe to re-run: it may only touch the database through `tx`
   * (rolled back with the failed attempt) and must not have other side effects, nor carry state
   * from one run to the next.
   */
  async transaction<T>(queryName: string, work: (tx: Transaction) => Promise<T>): Promise<T> {
    const MAX_ATTEMPTS = 5;
    const BACKOFF_BASE_MS = 10;
    // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK: the statement was fine, the timing was not.
    const RETRYABLE_ERRNOS = new Set([1205, 1213]);
    const isRetryable = (error: unknown): boolean => RETRYABLE_ERRNOS.has(errorNumber(error) ?? 0);

    const attempt = async (): Promise<T> => {
      let connection: PoolConnection | undefined;
      let healthy = true;
      let rolledBack = true;
      try {
        connection = await this.acquire();
        const active = connection;
        // BEGIN and COMMIT have the statements' deadline too: a server that stops answering
        // there would otherwise hold the request until the client gives up.
        await this.withinDeadline(active, active.beginTransaction());
        const tx: Transaction = {
          select: async <R extends RowDataPacket>(sql: string, params: SqlValue[]) => {
            const [rows] = await this.withinDeadline(active, active.execute({ sql, timeout: this.options.queryTimeoutMs }, params));
            return rows as R[];
          },
          write: async (sql: string, params: SqlValue[]) => {
            const [result] = await this.withinDeadline(active, active.execute({ sql, timeout: this.options.queryTimeoutMs }, params));
            return result as ResultSetHeader;
          },
        };
        try {
          const result = await work(tx);
          await this.withinDeadline(active, active.commit());
          return result;
        } catch (error) {
          if (keepsConnection(error)) {
            // Bounded like every statement: a ROLLBACK to a server that stopped answering must not
            // hold the request.
            await this.withinDeadline(active, active.rollback()).catch(() => {
              rolledBack = false;
            });
          } else {
            // No ROLLBACK: a statement the client stopped waiting for (its timeout) may still run on
            // the server, a lock wait for instance, and a ROLLBACK would queue behind it. The
            // connection is dropped instead, and the server rolls back the session's transaction.
            rolledBack = false;
          }
          throw error;
        }
      } catch (error) {
        healthy = keepsConnection(error) && rolledBack;
        throw this.translate(error);
      } finally {
        if (connection !== undefined) {
          if (healthy) connection.release();
          else connection.destroy();
        }
      }
    };

    const started = process.hrtime.bigint();
    let outcome: 'ok' | 'error' = 'error';
    try {
      for (let attempts = 1; ; attempts += 1) {
        try {
          const result = await attempt();
          outcome = 'ok';
          return result;
        } catch (error) {
          if (attempts >= MAX_ATTEMPTS || !isRetryable(error)) throw error;
          // Full jitter: the transactions that collided must not collide again in step.
          const ceilingMs = BACKOFF_BASE_MS * 2 ** (attempts - 1);
          await new Promise<void>((resolve) => setTimeout(resolve, 1 + Math.random() * ceilingMs));
        }
      }
    } finally {
      this.options.observe?.(queryName, Number(process.hrtime.bigint() - started) / 1e9, outcome);
    }
  }

  /** Readiness: a connection and one round trip, each bounded in time. */
  async ping(): Promise<void> {
    // A new connection may take longer than a request may wait for a pooled one (TLS, a remote
    // server): readiness must not fail on the probe's first connect after an idle period.
    const probeWaitMs = Math.max(this.options.acquireTimeoutMs, PROBE_CONNECT_WAIT_MS);
    const connection = await this.acquire(this.options.probePool ?? this.pool, probeWaitMs).catch((error: unknown) => {
      throw this.translate(error);
    });
    let healthy = true;
    try {
      if (this.#engine === undefined) await this.detectEngine(connection);
      const { requiredMigrations } = this.options;
      const applied = requiredMigrations === undefined || this.#migrationsUnreadable ? undefined : await this.appliedMigrations(connection);
      if (applied === undefined) {
        await connection.query({ sql: 'SELECT 1', timeout: this.options.queryTimeoutMs });
      } else if (requiredMigrations !== undefined && applied < requiredMigrations) {
        throw new SchemaNotReadyError(`the database has ${applied} of this version's ${requiredMigrations} migrations: run npm run db:migrate`);
      }
    } catch (error) {
      healthy = false;
      throw this.translate(error);
    } finally {
      if (healthy) connection.release();
      else connection.destroy();
    }
  }

  /**
   * The migrations the database has applied, or undefined when this account may not read them
   * (grants made before readiness checked them): readiness then only asks whether the database
   * answers, as it did, rather than keeping every replica out of service.
   */
  private async appliedMigrations(connection: PoolConnection): Promise<number | undefined> {
    try {
      const [rows] = await connection.query<RowDataPacket[]>({ sql: APPLIED_MIGRATIONS_SQL, timeout: this.options.queryTimeoutMs });
      return Number(rows[0]?.applied ?? 0);
    } catch (error) {
      if (errorNumber(error) !== TABLE_ACCESS_DENIED_ERRNO) throw error;
      this.#migrationsUnreadable = true;
      this.options.onMigrationsUnreadable?.();
      return undefined;
    }
  }

  private async run(
    queryName: string,
    sql: string,
    params: SqlValue[],
    isRead: boolean,
  ): Promise<[unknown, unknown]> {
    const started = process.hrtime.bigint();
    let outcome: 'ok' | 'error' = 'error';
    try {
      const result = await this.runOnce(sql, params, isRead).catch((error: unknown) => {
        const code = errorCode(error);
        if (isRead && code !== undefined && RETRYABLE_ON_FRESH_CONNECTION.has(code)) {
          return this.runOnce(sql, params, isRead);
        }
        throw error;
      });
      outcome = 'ok';
      return result;
    } catch (error) {
      throw this.translate(error);
    } finally {
      this.options.observe?.(queryName, Number(process.hrtime.bigint() - started) / 1e9, outcome);
    }
  }

  // The hot path of every request. It talks to mysql2's callback API: its promise wrapper
  // captures a stack trace on every call (Error.captureStackTrace was ~4% of the API's CPU under
  // load) and wraps each connection in a new object; neither is of use here, since every error is
  // translated and none reaches a client with its stack.
  private async runOnce(sql: string, params: SqlValue[], isRead: boolean): Promise<[unknown, unknown]> {
    if (this.#engine === undefined) return this.runOnceDetectingEngine(sql, params, isRead);
    const connection = await this.acquireCore();
    const text = isRead ? this.budgeted(this.#engine, sql) : sql;
    return new Promise<[unknown, unknown]>((resolve, reject) => {
      let settled = false;
      const deadline = setTimeout(() => {
        settled = true;
        connection.destroy();
        reject(this.stalled());
      }, this.deadlineMs);
      try {
        connection.execute<QueryResult>({ sql: text, timeout: this.deadlineMs }, params, (error, result, fields) => {
          if (settled) return; // past the deadline: the connection is already destroyed
          settled = true;
          clearTimeout(deadline);
          if (error === null) {
            connection.release();
            resolve([result, fields]);
            return;
          }
          if (keepsConnection(error)) connection.release();
          else connection.destroy();
          reject(error);
        });
      } catch (error) {
        // mysql2 refuses some bind values (undefined, functions) by throwing before it sends anything.
        settled = true;
        clearTimeout(deadline);
        connection.release();
        reject(error);
      }
    });
  }

  private async runOnceDetectingEngine(sql: string, params: SqlValue[], isRead: boolean): Promise<[unknown, unknown]> {
    const connection = await this.acquire();
    let healthy = true;
    try {
      const engine = this.#engine ?? (await this.detectEngine(connection));
      const text = isRead ? withTimeBudget(engine, sql, this.options.queryTimeoutMs) : sql;
      return await this.withinDeadline(connection, connection.execute({ sql: text, timeout: this.deadlineMs }, params));
    } catch (error) {
      healthy = keepsConnection(error);
      throw error;
    } finally {
      if (healthy) connection.release();
      else connection.destroy();
    }
  }

  /**
   * The client-side deadline of a statement, for a server that stopped answering (paused, or a
   * network that drops packets): longer than the server-side budget, so that the server normally
   * ends the statement itself. mysql2's own `timeout` does not cover the PREPARE that execute()
   * sends first for a statement new to the connection, which then waited forever.
   */
  private get deadlineMs(): number {
    return this.options.queryTimeoutMs + 1000;
  }

  private stalled(): DatabaseUnavailableError {
    return new DatabaseUnavailableError(`the database did not answer within ${this.deadlineMs} ms`);
  }

  /** `work` on `connection`, or DatabaseUnavailableError at the deadline (the connection destroyed). */
  private async withinDeadline<T>(connection: PoolConnection, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        connection.destroy();
        reject(this.stalled());
      }, this.deadlineMs);
    });
    // Once the deadline won, the statement's own failure (the connection destroyed) has no reader.
    work.catch(() => undefined);
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The statement text with its time budget, built once per statement rather than per request. */
  private budgeted(engine: Engine, sql: string): string {
    let text = this.#budgetedSql.get(sql);
    if (text === undefined) {
      text = withTimeBudget(engine, sql, this.options.queryTimeoutMs);
      // Repositories build their statements from a bounded set of shapes; the bound only guards
      // against a caller that would not.
      if (this.#budgetedSql.size >= 1000) this.#budgetedSql.clear();
      this.#budgetedSql.set(sql, text);
    }
    return text;
  }

  /**
   * Reads the server version once and picks the time-budget syntax. Called at startup; when the
   * database is down then, the first query that gets a connection does it instead.
   */
  async detect(): Promise<Engine> {
    if (this.#engine !== undefined) return this.#engine;
    const connection = await this.acquire().catch((error: unknown) => {
      throw this.translate(error);
    });
    try {
      return await this.detectEngine(connection);
    } catch (error) {
      throw this.translate(error);
    } finally {
      connection.release();
    }
  }

  /** The server's wait_timeout in seconds (the pool's idle timeout must stay below it). */
  async serverWaitTimeoutSeconds(): Promise<number> {
    const rows = await this.select<RowDataPacket & { wait_timeout: number | string }>(
      'serverWaitTimeout',
      'SELECT @@SESSION.wait_timeout AS wait_timeout',
      [],
    );
    return Number(rows[0]?.wait_timeout ?? 0);
  }

  private async detectEngine(connection: PoolConnection): Promise<Engine> {
    const [rows] = await connection.query<RowDataPacket[]>({ sql: 'SELECT VERSION() AS version', timeout: this.options.queryTimeoutMs });
    const version = String(rows[0]?.version ?? '');
    const engine: Engine = /mariadb/i.test(version) ? 'mariadb' : 'mysql';
    if (this.#engine === undefined) {
      this.#engine = engine;
      this.options.onEngineDetected?.(engine, version);
    }
    return engine;
  }

  /** mysql2 has no acquire timeout: a request must not wait forever for a busy pool. */
  private acquire(pool: Pool = this.pool, waitMs = this.options.acquireTimeoutMs): Promise<PoolConnection> {
    return new Promise<PoolConnection>((resolve, reject) => {
      const release = (connection: PoolConnection): void => connection.release();
      const settle = this.acquireTimer(resolve, reject, release, waitMs);
      pool.getConnection().then(
        (connection) => settle(null, connection),
        (error: unknown) => settle(error, undefined),
      );
    });
  }

  /** acquire() on mysql2's callback pool, for the request hot path (runOnce). */
  private acquireCore(): Promise<CorePoolConnection> {
    return new Promise<CorePoolConnection>((resolve, reject) => {
      const release = (connection: CorePoolConnection): void => connection.release();
      const settle = this.acquireTimer(resolve, reject, release, this.options.acquireTimeoutMs);
      this.pool.pool.getConnection((error, connection) => settle(error, connection));
    });
  }

  /** Bounds the wait for a pooled connection; a connection that arrives after the timeout goes back. */
  private acquireTimer<C>(
    resolve: (connection: C) => void,
    reject: (error: unknown) => void,
    release: (connection: C) => void,
    waitMs: number,
  ): (error: unknown, connection: C | undefined) => void {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new DatabaseUnavailableError('timed out waiting for a database connection'));
    }, waitMs);
    return (error, connection) => {
      if (settled) {
        if (connection !== undefined && error === null) release(connection);
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (connection !== undefined && (error === null || error === undefined)) {
        resolve(connection);
        return;
      }
      // mysql2 gives these two plain Errors without a code.
      const message = error instanceof Error ? error.message : '';
      if (message === 'Queue limit reached.') {
        reject(new DatabaseUnavailableError('too many requests waiting for a database connection', { cause: error }));
      } else if (message === 'Pool is closed.') {
        reject(new DatabaseUnavailableError('the connection pool is closed', { cause: error }));
      } else if (isConnectionError(error)) {
        reject(error); // translated by the caller, and retried once where it may be a stale socket
      } else {
        // Opening the connection failed on any other server answer at login (1698, 1044, 1227...):
        // no statement ran, and the client should retry later, not see an internal error.
        reject(new DatabaseUnavailableError('could not open a database connection', { cause: error }));
      }
    };
  }

  private translate(error: unknown): unknown {
    const errno = errorNumber(error);
    if (errorCode(error) === 'PROTOCOL_SEQUENCE_TIMEOUT' || (errno !== undefined && TIMEOUT_ERRNOS.has(errno))) {
      return new QueryTimeoutError('query exceeded its time budget', { cause: error });
    }
    if (errno === INTERRUPTED_ERRNO) return new QueryTimeoutError('query was interrupted', { cause: error });
    if (isConnectionError(error) && !(error instanceof DatabaseUnavailableError)) {
      return new DatabaseUnavailableError('database unavailable', { cause: error });
    }
    return error;
  }
}

/**
 * MySQL 8 honours the MAX_EXECUTION_TIME optimizer hint; MariaDB ignores it and needs
 * SET STATEMENT max_statement_time. Both make the server abort the statement and free the
 * connection, which a client-side timeout alone does not.
 */
export function withTimeBudget(engine: Engine, sql: string, budgetMs: number): string {
  if (engine === 'mariadb') {
    return `SET STATEMENT max_statement_time=${(budgetMs / 1000).toFixed(3)} FOR ${sql}`;
  }
  return sql.replace(/^\s*SELECT\b/i, `SELECT /*+ MAX_EXECUTION_TIME(${Math.round(budgetMs)}) */`);
}
