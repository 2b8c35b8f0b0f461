// One prom-client Registry per app. Labels are bounded: route templates, query names, stages;
// never a tenant id or a raw URL. /metrics is served by a separate listener so it is never public.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config.js';

const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DB_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** What the pipeline-metrics timer reads, each on its own (src/modules/pipeline/monitor.ts). */
export const PIPELINE_REFRESH_PARTS = ['finishedStages', 'runningStages', 'unservedBatch', 'rejectedRows', 'freshness'] as const;
export type PipelineRefreshPart = (typeof PIPELINE_REFRESH_PARTS)[number];
// 900 s is deploy/slo.yaml's freshness threshold: its bucket must exist whatever
// SLO_FRESHNESS_SECONDS adds (test/deploy/rules.test.ts keeps the two in step).
const E2E_BASE_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400, 604800];

export function e2eBuckets(sloSeconds: number): number[] {
  return [...new Set([...E2E_BASE_BUCKETS, sloSeconds])].sort((a, b) => a - b);
}

export class AppMetrics {
  readonly registry = new Registry();
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly httpRequestsRefused: Counter<'status_code'>;
  readonly dbQueryDuration: Histogram<'query'>;
  readonly e2eLatency: Histogram<'route'>;
  readonly stageDuration: Gauge<'stage'>;
  readonly stageLag: Gauge<'stage'>;
  readonly stageRunning: Gauge<'stage'>;
  readonly batchFirstServed: Gauge;
  readonly freshness: Gauge;
  readonly lastStagedBatchTimestamp: Gauge;
  readonly rejectedRows: Counter<'stage'>;
  readonly pipelineRefreshFailures: Counter<'part'>;
  #freshnessSource: () => { ingestedAtMs: number } | null = () => null;
  readonly #rejectedRowsSeen = new Map<string, number>();

  constructor(sloFreshnessSeconds: number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.httpRequestDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from request received to response sent, by route template.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    // No route, no method worth a label, no start time: what is refused before Fastify is counted apart.
    this.httpRequestsRefused = new Counter({
      name: 'http_requests_refused_total',
      help: 'Requests refused before routing, by the HTTP parser (not HTTP/1.1, head too large, not received in time) or the server (no Host or two, an unknown Expect), by answer status.',
      labelNames: ['status_code'],
      registers,
    });
    this.dbQueryDuration = new Histogram({
      name: 'db_query_duration_seconds',
      help: 'Time spent in MySQL per repository query (the database read time of a request).',
      labelNames: ['query'],
      buckets: DB_BUCKETS,
      registers,
    });
    this.e2eLatency = new Histogram({
      name: 'order_items_e2e_latency_seconds',
      help: 'End-to-end latency per successful data request: serve time minus the ingestion time of the newest staged batch it read.',
      labelNames: ['route'],
      buckets: e2eBuckets(sloFreshnessSeconds),
      registers,
    });
    this.stageDuration = new Gauge({
      name: 'order_items_pipeline_stage_duration_seconds',
      help: 'Duration of each finished stage of the batch being served (the newest whose staging succeeded).',
      labelNames: ['stage'],
      registers,
    });
    this.stageLag = new Gauge({
      name: 'order_items_pipeline_stage_lag_seconds',
      help: 'Time from ingestion to the end of each finished stage, for the batch being served (the newest whose staging succeeded).',
      labelNames: ['stage'],
      registers,
    });
    this.stageRunning = new Gauge({
      name: 'order_items_pipeline_stage_running_seconds',
      help:
        'Age of the oldest started but unfinished run of each stage (0 when none); for stage api, time since staging ended for the oldest staged batch not served yet.',
      labelNames: ['stage'],
      registers,
    });
    this.batchFirstServed = new Gauge({
      name: 'order_items_batch_first_served_seconds',
      help: 'Time from ingestion to first served request, for the newest batch the API has served (absent before any).',
      registers,
    });
    // A gauge without labels starts at 0: "served 0 s after ingestion" is a lie before any batch
    // was served, so the series stays absent until there is a value.
    this.batchFirstServed.remove();
    const metrics = this;
    // Absent, not 0, while no batch has been staged: 0 would read as perfectly fresh data and
    // keep absence-based alerts (OrderItemsNoNewBatch) quiet.
    this.freshness = new Gauge({
      name: 'order_items_freshness_seconds',
      help: 'Age of the newest batch whose staging stage succeeded (absent before any).',
      registers,
      collect() {
        const newest = metrics.#freshnessSource();
        if (newest === null) this.remove();
        // An ingestion time ahead of this clock must not make the data look younger than new.
        else this.set(Math.max(0, (Date.now() - newest.ingestedAtMs) / 1000));
      },
    });
    this.lastStagedBatchTimestamp = new Gauge({
      name: 'order_items_last_staged_batch_timestamp_seconds',
      help: 'Unix time of the ingestion of the newest batch whose staging stage succeeded (absent before any).',
      registers,
      collect() {
        const newest = metrics.#freshnessSource();
        if (newest === null) this.remove();
        else this.set(newest.ingestedAtMs / 1000);
      },
    });
    this.rejectedRows = new Counter({
      name: 'etl_rejected_rows_total',
      help: 'Rows rejected by the data contract, per pipeline stage, as reported in the monitoring table.',
      labelNames: ['stage'],
      registers,
    });
    this.pipelineRefreshFailures = new Counter({
      name: 'order_items_pipeline_refresh_failures_total',
      help: 'Failed reads of the monitoring table by the pipeline-metrics timer, per part; the gauges of a failing part keep their last value.',
      labelNames: ['part'],
      registers,
    });
    for (const part of PIPELINE_REFRESH_PARTS) this.pipelineRefreshFailures.inc({ part }, 0);
  }

  /** The freshness gauges read the cached newest batch at scrape time, never the database. */
  setFreshnessSource(source: () => { ingestedAtMs: number } | null): void {
    this.#freshnessSource = source;
  }

  /** The monitoring table holds a running total; the counter only ever moves forward by the difference. */
  setRejectedRowsTotal(stage: string, total: number): void {
    const seen = this.#rejectedRowsSeen.get(stage);
    if (seen === undefined) this.rejectedRows.inc({ stage }, total);
    else if (total > seen) this.rejectedRows.inc({ stage }, total - seen);
    else return;
    this.#rejectedRowsSeen.set(stage, total);
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: AppMetrics;
    /** Starts the separate /metrics listener; closed with the app. Returns the bound port. */
    listenMetrics(host: string, port: number): Promise<number>;
  }
}

async function metricsPlugin(app: FastifyInstance, options: { config: Config; recording?: boolean }): Promise<void> {
  const metrics = new AppMetrics(options.config.sloFreshnessSeconds);
  app.decorate('metrics', metrics);

  if (options.recording === false) {
    // Benchmark baseline only (BuildOptions.benchmarkWithoutAuthAndMetricsAsSeller): the
    // per-request and per-query observations are no-ops; process metrics still collect.
    metrics.dbQueryDuration.observe = () => undefined;
    metrics.e2eLatency.observe = () => undefined;
  } else {
    // Fastify times every reply that has an onResponse hook from before the first onRequest
    // hook, so no timer of our own is needed. A callback hook: an async one costs a promise and a
    // microtask on every request.
    app.addHook('onResponse', (request, reply, done) => {
      metrics.httpRequestDuration.observe(
        { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
      done();
    });
  }

  let server: Server | undefined;
  app.decorate('listenMetrics', async (host: string, port: number) => {
    server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      metrics.registry.metrics().then(
        (body) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (error: unknown) => {
          app.log.error({ err: error }, 'metrics collection failed');
          response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
        },
      );
    });
    const listening = server;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(port, host, () => resolve());
    });
    return (listening.address() as AddressInfo).port;
  });
  app.addHook('onClose', async () => {
    if (server === undefined) return;
    const closing = server;
    await new Promise<void>((resolve) => closing.close(() => resolve()));
  });
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x' });
