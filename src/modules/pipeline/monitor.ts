// Pipeline figures for Prometheus come from the monitoring table on a timer, never per scrape,
// so a scrape costs no query however often Prometheus asks.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { sqlTimestampToMs } from '../../http/timestamps.js';
import { PIPELINE_REFRESH_PARTS, type PipelineRefreshPart } from '../../plugins/metrics.js';
import { FirstServedRecorder } from './first-served.js';
import { RejectedRowsTally } from './rejected-rows-tally.js';
import { firstUnservedStagedBatch, listStagesOf, newestServedBatch, runningStages } from './repository.js';
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

  // Each figure is read and set on its own: one slow or failing query (a large history, a lock)
  // must not freeze the others, above all the running-stage ages the stall alert watches.
  async function refresh(): Promise<void> {
    const parts: Record<PipelineRefreshPart, () => Promise<void>> = {
      finishedStages: refreshFinishedStages,
      runningStages: refreshRunningStages,
      unservedBatch: refreshUnservedBatch,
      rejectedRows: refreshRejectedRows,
      // Keeps the freshness gauge current even when no data request comes in.
      freshness: async () => void (await app.freshness.newest()),
    };
    const outcomes = await Promise.allSettled(PIPELINE_REFRESH_PARTS.map((part) => parts[part]()));
    const failures: unknown[] = [];
    outcomes.forEach((outcome, index) => {
      const part = PIPELINE_REFRESH_PARTS[index];
      if (outcome.status === 'fulfilled' || part === undefined) return;
      metrics.pipelineRefreshFailures.inc({ part });
      failures.push(outcome.reason);
    });
    if (failures.length > 0) {
      throw new AggregateError(failures, `pipeline metrics refresh: ${failures.length} of ${PIPELINE_REFRESH_PARTS.length} parts failed`);
    }
  }

  // The figures of one batch, the one being served (the newest staged): a stacked bar of per-stage
  // durations then adds up to that batch's time, and its lag lines are cumulative. Taking each
  // stage's newest run instead mixed batches (a newer batch's slow `source` beside an older
  // batch's `gold`): a bar that was no batch's time.
  async function refreshFinishedStages(): Promise<void> {
    const served = await app.freshness.newest();
    const stages = served === null ? [] : await listStagesOf(app.db, [served.batchId]);
    // Reset and set with no await between them: a scrape never sees a half-updated batch, and a
    // stage this batch did not report keeps no value from another one.
    metrics.stageDuration.reset();
    metrics.stageLag.reset();
    if (served === null) return;
    for (const row of stages) {
      if (row.finished_at === null) continue;
      const started = sqlTimestampToMs(row.started_at);
      const done = sqlTimestampToMs(row.finished_at);
      metrics.stageDuration.set({ stage: row.stage }, (done - started) / 1000);
      metrics.stageLag.set({ stage: row.stage }, (done - served.ingestedAtMs) / 1000);
    }
  }

  async function refreshRunningStages(): Promise<void> {
    const now = Date.now();
    const running = new Map((await runningStages(app.db)).map((row) => [row.stage, sqlTimestampToMs(row.oldest_started_at)]));
    for (const stage of PIPELINE_STAGES) {
      if (stage === 'api') continue;
      const oldest = running.get(stage);
      metrics.stageRunning.set({ stage }, oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000));
    }
  }

  // Stage api is only ever written finished (first served): it "runs" from the end of staging
  // until the first request serves the batch, which is what its stall alert watches.
  async function refreshUnservedBatch(): Promise<void> {
    const now = Date.now();
    const served = await newestServedBatch(app.db);
    if (served !== null) {
      metrics.batchFirstServed.set(Math.max(0, (sqlTimestampToMs(served.first_served_at) - sqlTimestampToMs(served.created_at)) / 1000));
    }
    const unservedSince = await firstUnservedStagedBatch(app.db, served);
    metrics.stageRunning.set({ stage: 'api' }, unservedSince === null ? 0 : Math.max(0, (now - sqlTimestampToMs(unservedSince)) / 1000));
  }

  const rejectedRows = new RejectedRowsTally(app.db);
  async function refreshRejectedRows(): Promise<void> {
    for (const [stage, total] of await rejectedRows.totals()) metrics.setRejectedRowsTotal(stage, total);
  }
  app.decorate('refreshPipelineMetrics', refresh);

  let timer: NodeJS.Timeout | undefined;
  // A tick that comes while the previous refresh still runs is skipped: refreshes piling up on a
  // slow database would only take connections from the requests.
  let running = false;
  const tick = (): void => {
    if (running) return;
    running = true;
    refresh()
      .catch((error: unknown) => {
        const causes = error instanceof AggregateError ? error.errors : [error];
        app.log.warn({ err: error, causes: causes.map((cause) => (cause instanceof Error ? cause.message : String(cause))) }, 'pipeline metrics refresh failed');
      })
      .finally(() => {
        running = false;
      });
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
