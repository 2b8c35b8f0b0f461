// Load shedding: when the event loop lags (or is saturated), new requests are answered at once
// with 503 problem+json and Retry-After instead of queueing behind the backlog, so latency of the
// requests that are accepted stays bounded. Health routes are never shed: an overloaded replica
// is still alive, and its readiness says whether it can take traffic.
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter } from 'prom-client';
import type { Config } from '../config.js';
import { HttpProblem } from '../http/problem.js';

const NEVER_SHED = new Set(['/healthz', '/readyz']);
/** How often the event-loop delay and utilisation are sampled. */
const SAMPLE_INTERVAL_MS = 250;

async function loadSheddingPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const { maxEventLoopDelayMs, maxEventLoopUtilization, retryAfterSeconds } = options.config.loadShedding;
  if (maxEventLoopDelayMs === 0 && maxEventLoopUtilization === 0) return;
  const shed = new Counter({
    name: 'http_requests_shed_total',
    help: 'Requests refused with 503 by load shedding, by the pressure signal that tripped',
    labelNames: ['reason'] as const,
    registers: [app.metrics.registry],
  });
  // Building the app blocks the event loop (schema compilation, module loading); the samples
  // taken then say nothing about the traffic, so shedding is armed two samples after ready.
  let armedAt = Number.POSITIVE_INFINITY;
  app.addHook('onReady', async () => {
    armedAt = performance.now() + 2 * SAMPLE_INTERVAL_MS;
  });
  await app.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    maxEventLoopUtilization,
    eventLoopUtilizationMode: 'interval',
    sampleInterval: SAMPLE_INTERVAL_MS,
    retryAfter: retryAfterSeconds,
    pressureHandler: (request, reply, type) => {
      if (performance.now() < armedAt || NEVER_SHED.has(request.routeOptions.url ?? '')) return undefined;
      shed.inc({ reason: type });
      request.log.debug({ pressure: type }, 'request shed under load');
      return Promise.reject(
        new HttpProblem('unavailable', 503, 'the service is overloaded; retry after the delay in Retry-After', undefined, {
          'retry-after': String(retryAfterSeconds),
        }),
      );
    },
  });
}

export default fp(loadSheddingPlugin, { name: 'load-shedding', fastify: '5.x', dependencies: ['metrics', 'errors'] });
