// buildApp(config) assembles the service and returns it without listening: tests build their own
// against their own database; only server.ts listens.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';
import { CursorCodec } from './http/cursor.js';
import freshnessPlugin from './modules/freshness/plugin.js';
import orderItemRoutes from './modules/order-items/routes.js';
import orderRoutes from './modules/orders/routes.js';
import pipelineMonitor from './modules/pipeline/monitor.js';
import pipelineRoutes from './modules/pipeline/routes.js';
import authPlugin from './plugins/auth.js';
import dbPlugin from './plugins/db.js';
import errorsPlugin from './plugins/errors.js';
import healthPlugin from './plugins/health.js';
import metricsPlugin from './plugins/metrics.js';
import openapiPlugin from './plugins/openapi.js';
import securityPlugin from './plugins/security.js';

export interface BuildOptions {
  /** Overrides the logger built from config (tests pass a stream to read the log output). */
  logger?: FastifyServerOptions['logger'];
}

export const MAX_HEADER_BYTES = 16 * 1024;

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? {
      level: config.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'req.query.cursor'], censor: '[redacted]' },
    },
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.requestTimeoutMs,
    keepAliveTimeout: 5_000,
    return503OnClosing: true,
    // Unknown query parameters are refused, not silently dropped: a typo must not widen a query.
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 100 },
  });
  if (config.cursorSecret === undefined) {
    app.log.warn('CURSOR_SECRET is not set: pagination cursors are signed with a per-process key and do not survive a restart or cross replicas');
  }
  const cursors = new CursorCodec(config.cursorSecret);

  await app.register(errorsPlugin);
  await app.register(metricsPlugin, { config });
  await app.register(dbPlugin, { config });
  await app.register(authPlugin, { config });
  await app.register(securityPlugin, { config });
  await app.register(openapiPlugin);
  await app.register(pipelineMonitor, { config });
  await app.register(freshnessPlugin, { config });
  await app.register(healthPlugin);

  await app.register(orderItemRoutes, { cursors, summaryMaxRangeDays: config.summaryMaxRangeDays });
  await app.register(orderRoutes);
  await app.register(pipelineRoutes, { cursors });
  return app;
}
