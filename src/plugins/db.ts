// Decorates the app with the Database (pool + time budgets + metrics) and closes it on shutdown.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { createPool } from '../db/client.js';
import { Database } from '../db/database.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
  }
}

async function dbPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const { config } = options;
  const pool = createPool(config.databaseUrl, {
    connectionLimit: config.db.poolSize,
    // Waiting is bounded in time by Database.acquire; this bounds it in count too.
    queueLimit: config.db.poolSize * 50,
  });
  // A dead server makes mysql2 emit errors on idle connections; they are handled per query.
  pool.on('connection', (connection) => connection.on('error', () => undefined));
  const database = new Database(pool, {
    queryTimeoutMs: config.db.queryTimeoutMs,
    acquireTimeoutMs: config.db.acquireTimeoutMs,
    observe: (queryName, seconds) => app.metrics.dbQueryDuration.observe({ query: queryName }, seconds),
  });
  app.decorate('db', database);
  app.addHook('onClose', async () => {
    await pool.end();
  });
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x', dependencies: ['metrics'] });
