// Decorates the app with the Database (pool + time budgets + metrics) and closes it on shutdown.
// The engine (MariaDB or MySQL: the time-budget syntax differs) is detected when the app is
// ready; a database that is down then does not stop startup, the first connection detects it.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { createPool } from '../db/client.js';
import { Database } from '../db/database.js';
import { expectedMigrationCount } from '../db/migrate.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
  }
}

async function dbPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const { config } = options;
  const pool = createPool(config.databaseUrl, {
    connectionLimit: config.db.poolSize,
    // Waiting is bounded in time by Database.acquire and in count here: beyond DB_QUEUE_LIMIT
    // waiters mysql2 refuses at once (QUEUE_LIMIT_REACHED → 503), which sheds load early.
    queueLimit: config.db.queueLimit,
    idleTimeoutMs: config.db.idleTimeoutMs,
  });
  // Readiness on a connection of its own: a request pool that is busy (every connection taken,
  // its queue full) is not a database that is down, and must not take the replica out of the
  // load balancer with every other busy replica at once.
  // No idle connection kept (maxIdle 0: the pool's reaper closes it within a second), so a probe
  // opens a fresh one: a connection the server or a proxy dropped meanwhile cannot fail it, and
  // connecting is part of the check.
  const probePool = createPool(config.databaseUrl, { connectionLimit: 1, queueLimit: 16, maxIdle: 0, idleTimeoutMs: config.db.idleTimeoutMs });
  // A dead server makes mysql2 emit errors on idle connections; they are handled per query.
  for (const each of [pool, probePool]) each.on('connection', (connection) => connection.on('error', () => undefined));
  // The migrations folder ships with the service (Dockerfile); a build run without it serves all
  // the same, its readiness only asking whether the database answers.
  let requiredMigrations: number | undefined;
  try {
    requiredMigrations = expectedMigrationCount();
  } catch (error) {
    app.log.warn({ err: error }, 'no drizzle/ migrations journal found: readiness does not check the schema version');
  }
  const database = new Database(pool, {
    queryTimeoutMs: config.db.queryTimeoutMs,
    acquireTimeoutMs: config.db.acquireTimeoutMs,
    probePool,
    ...(requiredMigrations === undefined ? {} : { requiredMigrations }),
    onMigrationsUnreadable: () =>
      app.log.warn(
        'readiness cannot read __drizzle_migrations (grant SELECT on it: npx tsx scripts/create-db-users.ts); it checks only that the database answers',
      ),
    observe: (queryName, seconds) => app.metrics.dbQueryDuration.observe({ query: queryName }, seconds),
    onEngineDetected: (engine, version) => {
      app.log.info({ engine, version }, `database engine: ${engine} (${version})`);
      // mysql2 does not ping a pooled connection before handing it out: an idle timeout at or
      // above the server's wait_timeout means connections the server already closed.
      database.serverWaitTimeoutSeconds().then(
        (seconds) => {
          if (seconds > 0 && config.db.idleTimeoutMs >= seconds * 1000) {
            app.log.warn(
              { waitTimeoutSeconds: seconds, idleTimeoutMs: config.db.idleTimeoutMs },
              'DB_IDLE_TIMEOUT_MS is not below the server wait_timeout: stale pooled connections will cost a retry',
            );
          }
        },
        () => undefined,
      );
    },
  });
  app.decorate('db', database);
  app.addHook('onReady', async () => {
    try {
      await database.detect();
    } catch (error) {
      app.log.warn({ err: error }, 'database unreachable at startup; the engine is detected at the first connection');
    }
  });
  // A connection still being opened when the pools close (a database that stopped answering)
  // makes end() reject with that connection's error: it is logged, and the shutdown goes on to
  // exit 0, since there is nothing left to close.
  app.addHook('onClose', async () => {
    const closed = await Promise.allSettled([pool.end(), probePool.end()]);
    for (const outcome of closed) {
      if (outcome.status === 'rejected') app.log.warn({ err: outcome.reason }, 'a database connection failed while the pool was closing');
    }
  });
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x', dependencies: ['metrics'] });
