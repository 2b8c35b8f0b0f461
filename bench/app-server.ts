// Server processes for the read benchmarks, besides the real one (dist src/server.js):
//   node app-server.js bare <sellerId>      the same app (buildApp, same config from the
//                                          environment) with auth and metrics off, serving as one
//                                          seller: the "metrics and auth off" baseline
//   node app-server.js http <payloads.json> the HTTP ceiling: bare Fastify, GET /const/<name>
//                                          returns the app's answer of the scenario, body and headers, as a constant
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';

const [mode, argument] = process.argv.slice(2);
const host = '127.0.0.1';
const port = Number(process.env.PORT ?? 0);

if (mode === 'bare') {
  if (argument === undefined) throw new Error('bare needs a seller id');
  const config = loadConfig(process.env);
  const app = await buildApp(config, { benchmarkWithoutAuthAndMetricsAsSeller: argument });
  await app.listen({ host, port });
  await app.listenMetrics(host, Number(process.env.METRICS_PORT ?? 0));
} else if (mode === 'http') {
  if (argument === undefined) throw new Error('http needs a payload file');
  const payloads = JSON.parse(readFileSync(argument, 'utf8')) as Record<string, { body: string; headers: Record<string, string> }>;
  const app = Fastify({ logger: false, keepAliveTimeout: 5_000 });
  app.get<{ Params: { name: string } }>('/const/:name', async (request, reply) => {
    const payload = payloads[request.params.name];
    if (payload === undefined) return reply.code(404).send();
    // The app's own headers (security, freshness, request id, rate limit): the same bytes on the wire.
    return reply.headers(payload.headers).send(payload.body);
  });
  await app.listen({ host, port });
} else {
  throw new Error('mode must be bare or http');
}
