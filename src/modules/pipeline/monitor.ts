// Pipeline figures for Prometheus come from the monitoring table on a timer, never per scrape,
// so a scrape costs no query however often Prometheus asks.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { sqlTimestampToMs } from '../../http/timestamps.js';
import { FirstServedRecorder } from './first-served.js';
import { newestFinishedStages, oldestUnservedStagedBatch, rejectedRowsByStage, runningStages } from './repository.js';
import { PIPELINE_STAGES } from '../../db/schema.js';

declare module 'fastify' {
  interface FastifyInstance {
    firstServed: FirstServedRecorder;
    /** Reads the monitoring table into the pipeline gauges now (the timer does it periodically). */
    refreshPipelineMetrics(): Promise<void>;
  }
}

async function pipelineMonitorPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const { metrics } = app;
  // The first-served gauge moves as soon as this replica records a batch, not a refresh later.
  const onRecorded = (batchId: string, servedAtMs: number): void => {
    const newest = app.freshness.lastKnown();
    if (newest?.batchId === batchId) metrics.batchFirstServed.set(Math.max(0, (servedAtMs - newest.ingestedAtMs) / 1000));
  };
  app.decorate('firstServed', new FirstServedRecorder(app.db, app.log, onRecorded));

  async function refresh(): Promise<void> {
    const now = Date.now();
    const [finished, running, unservedSince, rejected] = await Promise.all([
      newestFinishedStages(app.db),
      runningStages(app.db),
      oldestUnservedStagedBatch(app.db),
      rejectedRowsByStage(app.db),
      // Keeps the freshness gauge current even when no data request comes in.
      app.freshness.newest(),
    ]);
    for (const row of finished) {
      const ingested = sqlTimestampToMs(row.created_at);
      const started = sqlTimestampToMs(row.started_at);
      const done = sqlTimestampToMs(row.finished_at);
      if (row.stage === 'api') {
        metrics.batchFirstServed.set(Math.max(0, (done - ingested) / 1000));
      }
      metrics.stageDuration.set({ stage: row.stage }, (done - started) / 1000);
      metrics.stageLag.set({ stage: row.stage }, (done - ingested) / 1000);
    }
    const runningByStage = new Map(running.map((row) => [row.stage, sqlTimestampToMs(row.oldest_started_at)]));
    // Stage api is only ever written finished (first served): it "runs" from the end of staging
    // until the first request serves the batch, which is what its stall alert watches.
    if (unservedSince === null) runningByStage.delete('api');
    else runningByStage.set('api', sqlTimestampToMs(unservedSince));
    for (const stage of PIPELINE_STAGES) {
      const oldest = runningByStage.get(stage);
      metrics.stageRunning.set({ stage }, oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000));
    }
    for (const row of rejected) metrics.setRejectedRowsTotal(row.stage, Number(row.total));
  }
  app.decorate('refreshPipelineMetrics', refresh);

  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    refresh().catch((error: unknown) => app.log.warn({ err: error }, 'pipeline metrics refresh failed'));
  };
  app.addHook('onReady', async () => {
    tick();
    timer = setInterval(tick, options.config.pipelineMetricsRefreshMs);
    timer.unref();
  });
  app.addHook('onClose', async () => {
    if (timer !== undefined) clearInterval(timer);
    await app.firstServed.settled();
  });
}

export default fp(pipelineMonitorPlugin, { name: 'pipeline-monitor', fastify: '5.x', dependencies: ['db', 'metrics'] });
