// Load shedding: the app's side of the PressureGate (src/http/pressure-gate.ts), which refuses
// requests with 503 problem+json and Retry-After in the HTTP server's own handler, before
// Fastify does any work for them. This plugin starts its sampling once the app is ready (the
// event loop is blocked while the app builds: those samples say nothing about traffic), stops
// it on close, and exports what it does to Prometheus.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge } from 'prom-client';
import { PRESSURE_SIGNALS, type PressureGate } from '../http/pressure-gate.js';

async function loadSheddingPlugin(app: FastifyInstance, options: { gate: PressureGate }): Promise<void> {
  const { gate } = options;
  const shed = new Counter({
    name: 'http_requests_shed_total',
    help: 'Requests refused with 503 by load shedding, before routing, by the pressure signal that tripped',
    labelNames: ['reason'] as const,
    registers: [app.metrics.registry],
  });
  // Every reason exported from the start at 0: a rate over a series that appears only on the
  // first refusal misses that refusal, and dashboards show "no data" instead of 0.
  for (const reason of PRESSURE_SIGNALS) shed.inc({ reason }, 0);
  new Gauge({
    name: 'http_admitted_ratio',
    help: 'Fraction of incoming requests the CPU and event-loop signals admit (1 = none shed by them; in-flight refusals are counted in http_requests_shed_total{reason="inFlight"})',
    registers: [app.metrics.registry],
    collect() {
      this.set(gate.admittedFraction);
    },
  });
  gate.onShed = (reason) => shed.inc({ reason });
  app.addHook('onReady', async () => gate.start());
  app.addHook('onClose', async () => gate.stop());
}

export default fp(loadSheddingPlugin, { name: 'load-shedding', fastify: '5.x', dependencies: ['metrics'] });
