// Transport-level hardening: security headers (and the request id), a CORS allowlist, and a rate
// limit per tenant.
import type { IncomingMessage, ServerResponse } from 'node:http';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest, preParsingHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
import type { Config } from '../config.js';
import { badRequest, HttpProblem, type InvalidParam } from '../http/problem.js';
import { REQUEST_ID_HEADER } from '../http/request-id.js';
import { hookList } from '../http/route.js';

const UNLIMITED_PATHS = new Set(['/healthz', '/readyz']);

/**
 * One bucket per seller, per other token holder (its subject, or the token), and per address for
 * the anonymous callers of public routes.
 */
export function rateLimitKey(request: FastifyRequest): string {
  if (request.tenant !== null) return `tenant:${request.tenant.sellerId}`;
  if (request.principal !== null) return request.principal.caller;
  return `ip:${request.ip}`;
}

/** The path of the first number in `value` that is not finite, or null. */
function nonFiniteAt(value: unknown, path: string, depth = 0): string | null {
  if (typeof value === 'number') return Number.isFinite(value) ? null : path;
  if (depth > 8 || value === null || typeof value !== 'object') return null;
  for (const [key, inner] of Object.entries(value)) {
    const found = nonFiniteAt(inner, path === '' ? key : `${path}.${key}`, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

// A JSON API: nothing may frame, sniff or script its responses.
const HELMET_OPTIONS: HelmetOptions = {
  contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginResourcePolicy: { policy: 'same-site' },
};

/**
 * The headers helmet sets for these options, computed once. Our options do not depend on the
 * request, and @fastify/helmet rebuilt the helmet middleware (re-parsing the CSP) on every
 * request: ~7% of the API's CPU under load.
 */
function securityHeaders(options: HelmetOptions = HELMET_OPTIONS): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]): void {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    },
    removeHeader(name: string): void {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error !== undefined && error !== null) throw error;
  });
  return Object.freeze(headers);
}

let standardHeaders: Readonly<Record<string, string>> | undefined;

/** The response headers a browser script of an allowed origin may read. */
export const CORS_EXPOSED_HEADERS = [
  'x-data-freshness',
  REQUEST_ID_HEADER,
  'retry-after',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  // The Bearer challenge says why a token was refused (expired, wrong audience...).
  'www-authenticate',
  'allow',
] as const;

/**
 * The headers every response carries besides its `x-request-id`: the security headers, and
 * `Cache-Control: no-store` (tenant data must not be kept by any cache, shared or private: OWASP
 * REST; a route may still set its own policy). Set by this plugin's onRequest hook, and by the
 * answers written before any hook runs (a URL Fastify cannot route, a request Node cannot parse).
 */
export function responseHeaders(): Readonly<Record<string, string>> {
  standardHeaders ??= Object.freeze({ ...securityHeaders(), 'cache-control': 'no-store' });
  return standardHeaders;
}

const INPUT_PARTS: [keyof Pick<FastifyRequest, 'query' | 'params' | 'body'>, InvalidParam['in']][] = [
  ['query', 'query'],
  ['params', 'path'],
  ['body', 'body'],
];

async function securityPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const { config } = options;
  // ajv's type coercion turns the strings "Infinity", "-Infinity" and "1e400" into infinite
  // numbers for `type: integer|number`, and then skips minimum/maximum (it checks them only for
  // finite numbers): `limit=-Infinity` would pass validation and reach SQL. Validated input
  // therefore holds no infinite number, whatever the schema says.
  app.addHook('preHandler', (request, _reply, done) => {
    for (const [part, where] of INPUT_PARTS) {
      const path = nonFiniteAt(request[part], '');
      if (path !== null) {
        done(badRequest({ name: path, in: where, reason: 'must be a finite number' }));
        return;
      }
    }
    done();
  });
  // Fastify reads a body as sent, whatever Content-Encoding says: plain JSON labelled gzip would be
  // accepted, a gzip body refused as malformed JSON. No coding is supported: 415, as RFC 9110
  // §15.5.16 says for a content coding the server does not accept. Only on routes that read a
  // body (elsewhere it is never parsed, and a GET, a 404 or a 405 keeps its own answer), so the
  // data routes carry no hook for it.
  const refuseContentCoding: preParsingHookHandler = (request, _reply, payload, done) => {
    const coding = request.headers['content-encoding'];
    const hasBody = request.headers['transfer-encoding'] !== undefined || (request.headers['content-length'] ?? '0') !== '0';
    if (hasBody && coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
      done(new HttpProblem('unsupportedMediaType', 415, 'request bodies must not be content-encoded (Content-Encoding is not supported)'));
      return;
    }
    done(null, payload);
  };
  app.addHook('onRoute', (route) => {
    if (route.schema?.body === undefined) return;
    route.preParsing = [refuseContentCoding, ...hookList(route.preParsing)];
  });
  const headers = responseHeaders();
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(headers);
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
  await app.register(cors, {
    origin: config.corsOrigins.length === 0 ? false : [...config.corsOrigins],
    methods: ['GET', 'PUT'],
    allowedHeaders: ['authorization', 'content-type'],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    maxAge: 600,
    // An OPTIONS request without Access-Control-Request-Method is answered like a preflight
    // rather than with the plugin's own text/plain 400.
    strictPreflight: false,
  });
  await app.register(rateLimit, {
    global: true,
    // After authentication (onRequest), so the key is the verified tenant and not something a
    // caller picks; before validation, so that invalid requests count too.
    hook: 'preValidation',
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: rateLimitKey,
    allowList: (request) => UNLIMITED_PATHS.has(request.routeOptions.url ?? ''),
    addHeadersOnExceeding: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true },
    addHeaders: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true, 'retry-after': true },
  });
}

export default fp(securityPlugin, { name: 'security', fastify: '5.x' });
