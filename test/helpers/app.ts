// Builds the app the way server.ts does, against a test database, with a test key.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildOptions } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { TEST_JWT_SECRET } from './tokens.js';

export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'silent',
    FRESHNESS_CACHE_MS: '0',
    RATE_LIMIT_MAX: '100000',
    // Two test files share two cores: an event-loop stall there is the test runner's, not an
    // overload to shed. The shedding tests turn it back on.
    LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
    LOAD_SHED_MAX_CPU_UTILIZATION: '0',
    // Likewise a statement (a PREPARE included) or a new connection slowed by the other test
    // files is not a database failure: the time budgets are generous here, and the tests of the
    // budgets set their own.
    DB_QUERY_TIMEOUT_MS: '10000',
    DB_ACQUIRE_TIMEOUT_MS: '5000',
    ...env,
  });
}

export async function buildTestApp(databaseUrl: string, env: Record<string, string> = {}, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp(testConfig(databaseUrl, env), options);
  await app.ready();
  return app;
}

/** Listens on 127.0.0.1:<random> and returns the base URL: for what app.inject bypasses. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${address.port}`;
}

/** A request id the app made (randomUUID), as opposed to one a caller sent. */
/** The headers every response carries (security headers and no-store), whatever answered it. */
export const STANDARD_RESPONSE_HEADERS = [
  'cache-control',
  'content-security-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'referrer-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-frame-options',
] as const;

export const GENERATED_REQUEST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
