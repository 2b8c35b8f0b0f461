// The pipeline gauges against the audit's findings: series that must be absent without data, the
// api stage's "staged but not served" age, stalls older than any window, and clamped freshness.
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

let db: TestDatabase;
let app: FastifyInstance;

async function scrape(): Promise<string> {
  await app.refreshPipelineMetrics();
  return app.metrics.registry.metrics();
}

/** The value of the one sample line of `name` with these labels, or undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function stageBatch(batchId: string, ingestedMinutesAgo: number, stagedMinutesAgo: number): Promise<void> {
  await db.pool.query(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES (?, 'test', NOW(3) - INTERVAL ? SECOND, 'succeeded')`, [
    batchId,
    ingestedMinutesAgo * 60,
  ]);
  await db.pool.query(
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status)
     VALUES (?, 'staging', NOW(3) - INTERVAL ? SECOND, NOW(3) - INTERVAL ? SECOND, 'succeeded')`,
    [batchId, stagedMinutesAgo * 60 + 10, stagedMinutesAgo * 60],
  );
}

async function serve(batchId: string, minutesAgo: number): Promise<void> {
  await db.pool.query(
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status)
     VALUES (?, 'api', NOW(3) - INTERVAL ? SECOND, NOW(3) - INTERVAL ? SECOND, 'succeeded')`,
    [batchId, minutesAgo * 60, minutesAgo * 60],
  );
}

beforeAll(async () => {
  db = await createTestDatabase('pipeline_metrics');
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('pipeline gauges', () => {
  it('when no batch was ever staged or served, then the freshness, last-staged and first-served series are absent (not 0)', async () => {
    const text = await scrape();
    for (const name of ['order_items_freshness_seconds', 'order_items_last_staged_batch_timestamp_seconds', 'order_items_batch_first_served_seconds']) {
      // The metric is declared, but has no sample line at all.
      expect(text, name).toContain(`# TYPE ${name} gauge`);
      expect(text.split('\n').filter((line) => line.startsWith(name)), name).toEqual([]);
    }
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'api' })).toBe(0);
  });

  it('when batches are staged but not served, then stage api runs since the staging end of the oldest one; first served stays absent', async () => {
    await stageBatch('b-old', 40, 30);
    await stageBatch('b-new', 25, 20);
    const text = await scrape();
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'api' })).toBeGreaterThanOrEqual(1799);
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'api' })).toBeLessThan(1830);
    expect(sample(text, 'order_items_freshness_seconds')).toBeGreaterThanOrEqual(1499);
    expect(sample(text, 'order_items_last_staged_batch_timestamp_seconds')).toBeCloseTo((Date.now() - 25 * 60_000) / 1000, -1);
    expect(sample(text, 'order_items_batch_first_served_seconds')).toBeUndefined();
  });

  it('when a newer batch was served, then older unserved batches are superseded (they never will be served) and api is not running', async () => {
    await serve('b-new', 15);
    const text = await scrape();
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'api' })).toBe(0);
    expect(sample(text, 'order_items_batch_first_served_seconds')).toBeCloseTo(600, -1);
  });

  it('when a batch is staged after the newest served one, then api runs since its staging end', async () => {
    await stageBatch('b-next', 6, 5);
    const text = await scrape();
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'api' })).toBeGreaterThanOrEqual(299);
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'api' })).toBeLessThan(330);
  });

  it('when a stage has been running for months, then its age is reported, not that of a newer run', async () => {
    await db.pool.query(
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, status) VALUES
       ('b-stuck-old', 'gold', '2026-01-01 00:00:00.000', 'running'),
       ('b-stuck-new', 'gold', NOW(3) - INTERVAL 60 SECOND, 'running')`,
    );
    const text = await scrape();
    const expected = (Date.now() - Date.UTC(2026, 0, 1)) / 1000;
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'gold' })).toBeGreaterThan(expected - 60);
  });

  it('when the newest staged batch claims an ingestion in the future, then freshness, first served and e2e latency are never negative', async () => {
    await seedMarketplace(db.pool, 4, new Date(Date.now() - 60 * 60_000));
    await db.pool.query(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('b-future', 'test', NOW(3) + INTERVAL 10 MINUTE, 'succeeded')`);
    await db.pool.query(
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status)
       VALUES ('b-future', 'staging', NOW(3) - INTERVAL 1 SECOND, NOW(3), 'succeeded')`,
    );
    await request(app.server).get('/v1/order-items?limit=1').set(bearer(mintToken({ sellerId: SELLERS.alpha }))).expect(200);
    await app.firstServed.settled();
    // Set by the first-served recorder itself, before any refresh.
    const recorded = await app.metrics.registry.metrics();
    expect(sample(recorded, 'order_items_batch_first_served_seconds')).toBe(0);
    const text = await scrape();
    expect(sample(text, 'order_items_freshness_seconds')).toBe(0);
    expect(sample(text, 'order_items_batch_first_served_seconds')).toBe(0);
    expect(sample(text, 'order_items_e2e_latency_seconds_sum', { route: '/v1/order-items' })).toBe(0);
  });
});

describe('a refresh where one read fails (audit: one slow query froze every pipeline gauge)', () => {
  it('when etl_batch is write-locked, then the running-stage ages still move and each failed part is counted', async () => {
    // Its own timer stays out of the way: only the refresh below reads while the table is locked.
    const fast = await buildTestApp(db.url, { DB_QUERY_TIMEOUT_MS: '300', DB_ACQUIRE_TIMEOUT_MS: '1000', PIPELINE_METRICS_REFRESH_MS: '3600000' });
    await fast.refreshPipelineMetrics().catch(() => undefined);
    const failuresBefore = async (part: string): Promise<number> =>
      sample(await fast.metrics.registry.metrics(), 'order_items_pipeline_refresh_failures_total', { part }) ?? 0;
    const finishedBefore = await failuresBefore('finishedStages');
    const unservedBefore = await failuresBefore('unservedBatch');
    const locker = await db.pool.getConnection();
    try {
      await db.pool.query(
        `INSERT INTO etl_batch_stage (batch_id, stage, started_at, status) VALUES ('b-locked-run', 'bronze', NOW(3) - INTERVAL 40 SECOND, 'running')`,
      );
      await locker.query('LOCK TABLES etl_batch WRITE');
      await expect(fast.refreshPipelineMetrics()).rejects.toThrow(/parts failed/);
      const text = await fast.metrics.registry.metrics();
      expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'bronze' })).toBeGreaterThanOrEqual(39);
      expect(sample(text, 'order_items_pipeline_refresh_failures_total', { part: 'runningStages' })).toBe(0);
      expect(sample(text, 'order_items_pipeline_refresh_failures_total', { part: 'finishedStages' })).toBe(finishedBefore + 1);
      expect(sample(text, 'order_items_pipeline_refresh_failures_total', { part: 'unservedBatch' })).toBe(unservedBefore + 1);
    } finally {
      await locker.query('UNLOCK TABLES');
      locker.release();
      await fast.close();
    }
  });
});

describe('the api-stage wait over a long history (audit: without a served batch, every refresh read the whole history)', () => {
  let history: TestDatabase;
  afterAll(async () => {
    await history?.drop();
  });

  const apiWait = async (): Promise<number | undefined> => {
    const probe = await buildTestApp(history.url, { PIPELINE_METRICS_REFRESH_MS: '3600000' });
    try {
      await probe.refreshPipelineMetrics();
      return sample(await probe.metrics.registry.metrics(), 'order_items_pipeline_stage_running_seconds', { stage: 'api' });
    } finally {
      await probe.close();
    }
  };
  const addBatch = async (batchId: string, daysAgo: number, staged: boolean, servedDaysAgo?: number): Promise<void> => {
    await history.pool.query(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES (?, 'test', NOW(3) - INTERVAL ? SECOND, 'succeeded')`, [
      batchId,
      daysAgo * 86_400,
    ]);
    if (staged) {
      await history.pool.query(
        `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES (?, 'staging', NOW(3) - INTERVAL ? SECOND, NOW(3) - INTERVAL ? SECOND, 'succeeded')`,
        [batchId, daysAgo * 86_400, daysAgo * 86_400],
      );
    }
    if (servedDaysAgo !== undefined) {
      await history.pool.query(
        `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES (?, 'api', NOW(3) - INTERVAL ? SECOND, NOW(3) - INTERVAL ? SECOND, 'succeeded')`,
        [batchId, servedDaysAgo * 86_400, servedDaysAgo * 86_400],
      );
    }
  };

  it('a staged batch waiting since the last one served is found behind 1,000 newer batches that never staged', async () => {
    history = await createTestDatabase('pipeline_metrics_history');
    await addBatch('b-served', 11, true, 10.5);
    await addBatch('b-waiting', 10, true);
    await history.pool.query(
      `INSERT INTO etl_batch (batch_id, source, created_at, status)
       SELECT CONCAT('b-failed-', seq), 'test', NOW(3) - INTERVAL 9 DAY + INTERVAL seq MINUTE, 'failed' FROM seq_1_to_1000`,
    );
    const wait = await apiWait();
    expect(wait).toBeGreaterThan(10 * 86_400 - 60);
    expect(wait).toBeLessThan(10 * 86_400 + 60);
    // Once it is served, nothing waits.
    await history.pool.query(
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES ('b-waiting', 'api', NOW(3), NOW(3), 'succeeded')`,
    );
    expect(await apiWait()).toBe(0);
  });
});
