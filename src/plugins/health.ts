// Liveness says the process is up; readiness says it can serve data (the database answers).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { z } from 'zod';
import { defineRoute } from '../http/route.js';
import { sendProblem, DATABASE_RETRY_AFTER_SECONDS } from './errors.js';

const Health = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });

declare module 'fastify' {
  interface FastifyInstance {
    /** Set during graceful shutdown so load balancers stop sending traffic first. */
    draining: boolean;
  }
}

async function healthPlugin(app: FastifyInstance): Promise<void> {
  app.decorate('draining', false);
  // Once close() has begun, a request still arriving on an open connection (a pipelined one, or
  // one racing the close) gets the same 503 problem document as any other, with Retry-After and
  // every usual header: Fastify's own closing answer (return503OnClosing) has neither.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // A callback hook: an async one costs a promise and a microtask on every request.
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) {
      done();
      return;
    }
    reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS)).header('connection', 'close');
    sendProblem(reply, 'unavailable', 503, 'shutting down');
  });
  // While draining, every response asks the client to close its keep-alive connection, so no
  // client keeps a socket to a replica that is about to stop listening.
  app.addHook('onSend', async (_request, reply) => {
    if (app.draining) reply.header('connection', 'close');
  });
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/healthz',
      operationId: 'getHealth',
      summary: 'Liveness: the process is up',
      tags: ['health'],
      access: { kind: 'public' },
      responses: { 200: { description: 'The process is up', schema: Health } },
    },
    async () => ({ status: 'ok' as const }),
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/readyz',
      operationId: 'getReadiness',
      summary: 'Readiness: the database answers, migrated to this version',
      tags: ['health'],
      access: { kind: 'public' },
      responses: {
        200: { description: 'Ready to serve', schema: Health },
        503: { description: 'Not ready (database unreachable, not migrated to this version, or shutting down)' },
      },
    },
    async (request, reply) => {
      if (app.draining) {
        reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
        return sendProblem(reply, 'unavailable', 503, 'shutting down');
      }
      try {
        await app.db.ping();
        return { status: 'ok' as const };
      } catch (error) {
        request.log.warn({ err: error }, 'readiness check failed');
        reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
        return sendProblem(reply, 'unavailable', 503, 'the data store is unavailable');
      }
    },
  );
}

export default fp(healthPlugin, { name: 'health', fastify: '5.x', dependencies: ['db', 'errors'] });
