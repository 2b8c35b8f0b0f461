// buildApp(config) assembles the service and returns it without listening: tests build their own
// against their own database; only server.ts listens.
import Fastify, { type FastifyInstance, type FastifyLoggerOptions, type FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';
import { CursorCodec } from './http/cursor.js';
import { createEdgeServer, type EdgeServer } from './http/edge-server.js';
import { PressureGate } from './http/pressure-gate.js';
import { LOG_REDACT_PATHS, serializeRequest } from './http/log-redaction.js';
import { requestIdOf } from './http/request-id.js';
import { validatorFactory } from './http/validators.js';
import freshnessPlugin from './modules/freshness/plugin.js';
import orderItemRoutes from './modules/order-items/routes.js';
import orderRoutes from './modules/orders/routes.js';
import pipelineMonitor from './modules/pipeline/monitor.js';
import pipelineRoutes from './modules/pipeline/routes.js';
import authPlugin from './plugins/auth.js';
import dbPlugin from './plugins/db.js';
import errorsPlugin, { answerClientError, frameworkErrorHandler } from './plugins/errors.js';
import healthPlugin from './plugins/health.js';
import loadSheddingPlugin from './plugins/load-shedding.js';
import metricsPlugin from './plugins/metrics.js';
import openapiPlugin from './plugins/openapi.js';
import repositoriesPlugin from './plugins/repositories.js';
import securityPlugin, { CORS_EXPOSED_HEADERS, responseHeaders } from './plugins/security.js';

type LogDestination = NonNullable<FastifyLoggerOptions['stream']>;

export interface BuildOptions {
  /** Where log lines go instead of stdout (tests capture them). Redaction applies all the same. */
  logStream?: LogDestination;
  /** Log level instead of config.logLevel. */
  logLevel?: string;
  /**
   * Extra logger options (serializers, stream, level). The app's `redact` is always applied and
   * cannot be replaced: a test or caller that customises logging can never turn redaction off.
   */
  logger?: Omit<FastifyLoggerOptions, 'redact'> & Record<string, unknown>;
  /**
   * Benchmarks only (bench/app-server.ts): serves every tenant route as this seller without
   * reading any token, and records no request/query/e2e metrics, to measure what auth and metrics
   * cost. Programmatic only: server.ts never sets it and no environment variable reaches it.
   */
  benchmarkWithoutAuthAndMetricsAsSeller?: string;
}

export const MAX_HEADER_BYTES = 16 * 1024;

/** The pino options of the app: the caller's choices first, then redaction, which always wins. */
export function loggerOptions(config: Config, options: BuildOptions): FastifyLoggerOptions & Record<string, unknown> {
  const callerSerializers = (options.logger?.serializers ?? {}) as Record<string, unknown>;
  return {
    level: options.logLevel ?? config.logLevel,
    ...(options.logger ?? {}),
    ...(options.logStream === undefined ? {} : { stream: options.logStream }),
    serializers: { ...callerSerializers, req: serializeRequest },
    redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' },
  };
}

const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_CHECK_MS = 1_000;
/** The socket's idle timeout exceeds the request timeout by this, so that the 408 is sent first. */
const SOCKET_TIMEOUT_MARGIN_MS = 2 * REQUEST_TIMEOUT_CHECK_MS;

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const gate = new PressureGate({
    ...config.loadShedding,
    corsOrigins: config.corsOrigins,
    corsExposedHeaders: CORS_EXPOSED_HEADERS,
    responseHeaders: responseHeaders(),
  });
  // What the HTTP server refuses before Fastify exists is counted once the metrics are registered.
  let countRefused = (_status: number): void => undefined;
  let edge: EdgeServer | undefined;
  const serverOptions: FastifyServerOptions = {
    logger: loggerOptions(config, options),
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.requestTimeoutMs + SOCKET_TIMEOUT_MARGIN_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // The HTTP server is built here so that the load-shedding gate sees a request before Fastify
    // does; it gets the settings above, which Fastify applies only to a server it builds itself.
    serverFactory: (handler) => {
      edge = createEdgeServer({
        handler: gate.guard(handler),
        maxHeaderBytes: MAX_HEADER_BYTES,
        requestTimeoutMs: config.requestTimeoutMs,
        requestTimeoutCheckMs: REQUEST_TIMEOUT_CHECK_MS,
        keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
        socketTimeoutMs: config.requestTimeoutMs + SOCKET_TIMEOUT_MARGIN_MS,
        onRefused: (status) => countRefused(status),
      });
      return edge.server;
    },
    // The health plugin answers requests that arrive while closing (problem+json, Retry-After).
    return503OnClosing: false,
    genReqId: requestIdOf,
    // Unknown query parameters are refused, not silently dropped: a typo must not widen a query.
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
    schemaController: { compilersFactory: { buildValidator: validatorFactory } },
    // Far above any real parameter (ids are 32 characters): a long one is routed, and its 400 names
    // it; only past this does the router answer 414 on its own.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1000 },
    // What fails before routing (an undecodable URL, an over-long path parameter) and what Node's
    // HTTP parser refuses are answered as problem+json too, with the headers of every response.
    frameworkErrors: frameworkErrorHandler({ origins: config.corsOrigins, exposedHeaders: CORS_EXPOSED_HEADERS }),
    clientErrorHandler: answerClientError,
  };
  const app = Fastify(serverOptions);
  // Bodies are JSON only: without this, Fastify's default text/plain parser hands a string to the
  // body schema (a 400 about a body that is "not an object") instead of the 415 it deserves.
  app.removeContentTypeParser('text/plain');
  if (config.cursorSecret === undefined) {
    app.log.warn('CURSOR_SECRET is not set: pagination cursors are signed with a per-process key and do not survive a restart or cross replicas');
  }
  const cursors = new CursorCodec(config.cursorSecret);

  await app.register(errorsPlugin);
  await app.register(metricsPlugin, { config, recording: options.benchmarkWithoutAuthAndMetricsAsSeller === undefined });
  countRefused = (status) => app.metrics.httpRequestsRefused.inc({ status_code: String(status) });
  // After the drain delay, nothing is served to a connection that has not sent a whole request.
  app.addHook('preClose', async () => edge?.dropConnectionsWithNothingToAnswer());
  await app.register(loadSheddingPlugin, { gate });
  await app.register(dbPlugin, { config });
  gate.databaseQueueFull = () => app.db.waitingForConnection >= config.db.queueLimit;
  await app.register(repositoriesPlugin, { config });
  await app.register(authPlugin, { config, benchmarkSellerId: options.benchmarkWithoutAuthAndMetricsAsSeller });
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
