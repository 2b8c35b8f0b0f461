// buildApp(config) assembles the service and returns it without listening: tests build their own
// against their own database; only server.ts listens.
import http from 'node:http';
import AjvCompiler from '@fastify/ajv-compiler';
import Fastify, { type FastifyInstance, type FastifyLoggerOptions, type FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';
import { CursorCodec } from './http/cursor.js';
import { PressureGate } from './http/pressure-gate.js';
import { requestIdOf } from './http/request-id.js';
import freshnessPlugin from './modules/freshness/plugin.js';
import orderItemRoutes from './modules/order-items/routes.js';
import orderRoutes from './modules/orders/routes.js';
import pipelineMonitor from './modules/pipeline/monitor.js';
import pipelineRoutes from './modules/pipeline/routes.js';
import authPlugin from './plugins/auth.js';
import dbPlugin from './plugins/db.js';
import errorsPlugin, { answerClientError, answerFrameworkError, answerMissingHost } from './plugins/errors.js';
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

/**
 * Paths pino censors in every log line: the bearer token and cookies wherever request headers
 * are logged (Fastify's `req` serializer, or a `headers` object logged by hand), and cursors.
 */
export const LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  '*.headers.authorization',
  '*.headers.cookie',
  'req.query.cursor',
];

/** Query parameters a caller might put a credential in (wrongly): their values are never logged. */
const SECRET_QUERY_PARAMETER = /^(?:access_?token|id_?token|refresh_?token|token|jwt|bearer|auth|authorization|api_?key|key|secret|password|code|cursor)$/i;
/** A value shaped like a JWS (header.payload.signature, header starting `{"`): censored whatever its name. */
const JWS_LIKE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The URL as logged: the path, and the query with the values of credential-like parameters (by
 * name, or by shape) censored. `redact` paths cannot reach inside the URL string, and a token a
 * client sent as `?access_token=` (refused: only the header is read) would otherwise be logged.
 */
export function urlForLog(url: string): string {
  const mark = url.indexOf('?');
  if (mark === -1) return url;
  const query = url
    .slice(mark + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      if (equals === -1) return pair;
      const name = pair.slice(0, equals);
      let value = pair.slice(equals + 1);
      try {
        value = decodeURIComponent(value.replaceAll('+', ' '));
      } catch {
        // Undecodable: judged as it is.
      }
      let decodedName = name;
      try {
        decodedName = decodeURIComponent(name);
      } catch {
        // idem
      }
      return SECRET_QUERY_PARAMETER.test(decodedName) || JWS_LIKE.test(value) ? `${name}=[redacted]` : pair;
    })
    .join('&');
  return `${url.slice(0, mark)}?${query}`;
}

interface LoggedRequest {
  method: string;
  url: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/** Fastify's request serializer, with the URL as urlForLog writes it. */
function serializeRequest(request: LoggedRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: urlForLog(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

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

/** Fastify's own validator factory (ajv), built with the server's `ajv` options. */
const buildAjvValidator = AjvCompiler();

/**
 * The validators of the routes: query, path and header values are text and are coerced to the
 * types their schemas declare (`limit=5` → 5), as Fastify does by default; a JSON body states its
 * own types, so it is validated as sent: `"rowsIn": "5"` is a string, not the integer 5.
 */
const validatorFactory: NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator'] = (
  externalSchemas,
  ajvOptions,
) => {
  const coercing = buildAjvValidator(externalSchemas, ajvOptions);
  // JTD mode never coerces; this app uses JSON Schema, where coercion is an option.
  if (ajvOptions?.mode === 'JTD') return coercing;
  const exact = buildAjvValidator(externalSchemas, {
    ...ajvOptions,
    customOptions: { ...ajvOptions?.customOptions, coerceTypes: false },
  });
  return (route) => {
    if (route.httpPart === 'body') return exact(route);
    const validate = coercing(route);
    const integers = integerProperties(route.schema);
    if (integers.length === 0) return validate;
    // ajv coerces an integer the way Number() reads one: `1e2`, `0x10`, `+5`, ` 50`, `007` and
    // `1.0` would all pass. Query and path integers are decimal digits, as the OpenAPI document's
    // `integer` tells a client; checked here, in validation, so after authentication and the
    // rate limit like every other invalid input.
    const strict = ((data: Record<string, unknown> | undefined) => {
      for (const name of integers) {
        const value = data?.[name];
        if (value === undefined || (typeof value === 'string' && DECIMAL_INTEGER.test(value))) continue;
        strict.errors = [
          { keyword: 'decimalInteger', instancePath: `/${name}`, schemaPath: `#/properties/${name}/type`, params: {}, message: 'must be an integer written in decimal digits' },
        ];
        return false;
      }
      const valid = validate(data);
      strict.errors = validate.errors ?? null;
      return valid;
    }) as typeof validate;
    return strict;
  };
};

const DECIMAL_INTEGER = /^(?:0|[1-9][0-9]*)$/;

/** The names of a query or path schema's integer properties. */
function integerProperties(schema: unknown): string[] {
  const properties = typeof schema === 'object' && schema !== null ? (schema as { properties?: unknown }).properties : undefined;
  if (typeof properties !== 'object' || properties === null) return [];
  return Object.entries(properties as Record<string, { type?: unknown }>)
    .filter(([, property]) => property.type === 'integer')
    .map(([name]) => name);
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const gate = new PressureGate({
    ...config.loadShedding,
    corsOrigins: config.corsOrigins,
    corsExposedHeaders: CORS_EXPOSED_HEADERS,
    responseHeaders: responseHeaders(),
  });
  const serverOptions: FastifyServerOptions = {
    logger: loggerOptions(config, options),
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.requestTimeoutMs + SOCKET_TIMEOUT_MARGIN_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // The HTTP server is built here so that the load-shedding gate sees a request before Fastify
    // does; it gets the settings above, which Fastify applies only to a server it builds itself.
    serverFactory: (handler) => {
      const guarded = gate.guard(handler);
      const server = http.createServer(
        {
          // Stated rather than inherited from Node's default: larger request heads get 431.
          maxHeaderSize: MAX_HEADER_BYTES,
          // A request not received in time gets a 408 (clientErrorHandler): Node checks at this
          // interval (30 s by default), and the socket's idle timeout comes later, or it would
          // close the connection without a word first.
          requestTimeout: config.requestTimeoutMs,
          headersTimeout: config.requestTimeoutMs,
          connectionsCheckingInterval: REQUEST_TIMEOUT_CHECK_MS,
          // Node's own answer to a missing Host is an empty 400: answered below instead.
          requireHostHeader: false,
        },
        (request, response) => {
          if (request.headers.host === undefined && request.httpVersion === '1.1') answerMissingHost(request, response);
          else guarded(request, response);
        },
      );
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      server.setTimeout(config.requestTimeoutMs + SOCKET_TIMEOUT_MARGIN_MS);
      return server;
    },
    return503OnClosing: true,
    genReqId: requestIdOf,
    // Unknown query parameters are refused, not silently dropped: a typo must not widen a query.
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
    schemaController: { compilersFactory: { buildValidator: validatorFactory } },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 100 },
    // What fails before routing (an undecodable URL, an over-long path parameter) and what Node's
    // HTTP parser refuses are answered as problem+json too, with the headers of every response.
    frameworkErrors: answerFrameworkError,
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
  await app.register(loadSheddingPlugin, { gate });
  await app.register(dbPlugin, { config });
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
