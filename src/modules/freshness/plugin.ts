// Decorates the app with the freshness tracker and the helper every data route calls to stamp
// its response and feed the end-to-end latency SLI.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { FRESHNESS_HEADER, FreshnessTracker, freshnessAt, freshnessHeader, type Freshness, type NewestBatch } from './tracker.js';

declare module 'fastify' {
  interface FastifyInstance {
    freshness: FreshnessTracker;
    /**
     * Called once per successful data response, with the newest batch read before the data:
     * sets the freshness header and, unless the request is a HEAD, observes the end-to-end
     * latency and notes the first-served stage.
     */
    markServed(request: FastifyRequest, reply: FastifyReply, newest: NewestBatch | null): Freshness | null;
  }
}

async function freshnessPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const tracker = new FreshnessTracker(app.db, options.config.freshnessCacheMs);
  app.decorate('freshness', tracker);
  app.metrics.setFreshnessSource(() => tracker.lastKnown());

  app.decorate('markServed', (request: FastifyRequest, reply: FastifyReply, newest: NewestBatch | null) => {
    if (newest === null) return null;
    const now = Date.now();
    const freshness = freshnessAt(newest, now);
    reply.header(FRESHNESS_HEADER, freshnessHeader(freshness));
    // A HEAD answer carries no data: a probe sending HEAD must not count as a user served, nor
    // mark a batch first served.
    if (request.method === 'HEAD') return freshness;
    // Clamped: an ingestion time ahead of this clock (a pipeline host's skew) is not a negative age.
    app.metrics.e2eLatency.observe({ route: request.routeOptions.url ?? 'unmatched' }, Math.max(0, (now - newest.ingestedAtMs) / 1000));
    app.firstServed.note(newest.batchId, now);
    return freshness;
  });
}

export default fp(freshnessPlugin, { name: 'freshness', fastify: '5.x', dependencies: ['db', 'metrics'] });
