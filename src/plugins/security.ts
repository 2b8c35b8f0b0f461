// Transport-level hardening: security headers, a CORS allowlist, and a rate limit per tenant.
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';

const UNLIMITED_PATHS = new Set(['/healthz', '/readyz']);

/** One bucket per seller (or per service subject); a caller without either is counted by address. */
export function rateLimitKey(request: FastifyRequest): string {
  if (request.tenant !== null) return `tenant:${request.tenant.sellerId}`;
  if (request.principal?.subject !== undefined) return `subject:${request.principal.subject}`;
  return `ip:${request.ip}`;
}

async function securityPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const { config } = options;
  await app.register(helmet, {
    // A JSON API: nothing may frame, sniff or script its responses.
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginResourcePolicy: { policy: 'same-site' },
  });
  await app.register(cors, {
    origin: config.corsOrigins.length === 0 ? false : [...config.corsOrigins],
    methods: ['GET', 'PUT'],
    allowedHeaders: ['authorization', 'content-type'],
    exposedHeaders: ['x-data-freshness', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'],
    maxAge: 600,
  });
  await app.register(rateLimit, {
    global: true,
    // After authentication, so the key is the verified tenant and not something a caller picks.
    hook: 'preHandler',
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: rateLimitKey,
    allowList: (request) => UNLIMITED_PATHS.has(request.routeOptions.url ?? ''),
    addHeadersOnExceeding: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true },
    addHeaders: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true, 'retry-after': true },
  });
}

export default fp(securityPlugin, { name: 'security', fastify: '5.x' });
