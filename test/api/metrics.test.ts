import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { RowDataPacket } from 'mysql2/promise';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, listen } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

let db: TestDatabase;
let app: FastifyInstance;
let metricsUrl: string;

async function scrape(): Promise<string> {
  const response = await fetch(metricsUrl);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
}

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

beforeAll(async () => {
  db = await createTestDatabase('metrics');
  await seedMarketplace(db.pool, 8, new Date(Date.now() - 120_000));
  // Stage reports of an upstream batch whose gold stage took the longest.
  await db.pool.query(
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_in, rows_out, rows_rejected, status) VALUES
     ('fixture-batch-1', 'landing', NOW(3) - INTERVAL 118 SECOND, NOW(3) - INTERVAL 117 SECOND, 10, 9, 1, 'succeeded'),
     ('fixture-batch-1', 'gold', NOW(3) - INTERVAL 110 SECOND, NOW(3) - INTERVAL 50 SECOND, 9, 9, 0, 'succeeded'),
     ('stuck-batch', 'silver', NOW(3) - INTERVAL 30 SECOND, NULL, NULL, NULL, NULL, 'running')`,
  );
  app = await buildTestApp(db.url);
  const port = await app.listenMetrics('127.0.0.1', 0);
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('/metrics', () => {
  it('is served on its own listener, not on the API', async () => {
    await request(app.server).get('/metrics').expect(404);
    expect((await fetch(metricsUrl.replace('/metrics', '/other'))).status).toBe(404);
  });

  it('when data is served, then request, DB read and end-to-end latency are observed with bounded labels', async () => {
    const token = bearer(mintToken({ sellerId: SELLERS.alpha }));
    await request(app.server).get('/v1/order-items?limit=2').set(token).expect(200);
    const item = (await request(app.server).get('/v1/order-items?limit=1').set(token)).body.items[0];
    await request(app.server).get(`/v1/order-items/${item.orderId}/${item.orderItemId}`).set(token).expect(200);
    await request(app.server).get(`/v1/order-items/${'0'.repeat(32)}/1`).set(token).expect(404);
    const text = await scrape();
    expect(sample(text, 'http_request_duration_seconds_count', { route: '/v1/order-items', status_code: '200', method: 'GET' })).toBe(2);
    expect(sample(text, 'http_request_duration_seconds_count', { route: '/v1/order-items/:orderId/:orderItemId', status_code: '404' })).toBe(1);
    // The request time includes the DB read it waited for, and is in seconds.
    const requestSeconds = sample(text, 'http_request_duration_seconds_sum', { route: '/v1/order-items', status_code: '200', method: 'GET' }) ?? Number.NaN;
    const readSeconds = sample(text, 'db_query_duration_seconds_sum', { query: 'listOrderItems' }) ?? Number.NaN;
    expect(requestSeconds).toBeGreaterThanOrEqual(readSeconds);
    // Two local requests spend well under a second outside their reads (milliseconds would not).
    expect(requestSeconds - readSeconds).toBeLessThan(1);
    expect(sample(text, 'db_query_duration_seconds_count', { query: 'listOrderItems' })).toBe(2);
    expect(sample(text, 'db_query_duration_seconds_count', { query: 'getOrderItem' })).toBe(2);
    // Only successful data requests count towards the e2e SLI, and the SLO bucket is exact.
    expect(sample(text, 'order_items_e2e_latency_seconds_count', { route: '/v1/order-items' })).toBe(2);
    expect(sample(text, 'order_items_e2e_latency_seconds_count', { route: '/v1/order-items/:orderId/:orderItemId' })).toBe(1);
    expect(sample(text, 'order_items_e2e_latency_seconds_bucket', { route: '/v1/order-items', le: '900' })).toBe(2);
    expect(sample(text, 'order_items_e2e_latency_seconds_bucket', { route: '/v1/order-items', le: '60' })).toBe(0);
    expect(text).not.toContain(SELLERS.alpha);
    expect(text).not.toContain(item.orderId);
  });

  it('requests answered before routing are counted too: an undecodable URL as unmatched, a parser refusal apart', async () => {
    const before = await scrape();
    const unmatched400 = { route: 'unmatched', status_code: '400', method: 'GET' };
    const countBefore = sample(before, 'http_request_duration_seconds_count', unmatched400) ?? 0;
    await request(app.server).get('/%ff').expect(400);
    await request(app.server).get('/v1/order-items/%ff/1').expect(400);
    // A head over the size limit: Node's parser answers 431, no request object exists.
    const port = Number(new URL(await listen(app)).port);
    const exchange = (raw: string): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.write(raw));
        socket.on('data', () => undefined);
        socket.on('error', () => undefined);
        socket.on('close', () => resolve());
        setTimeout(() => reject(new Error('no close')), 5_000).unref();
      });
    await exchange(`GET / HTTP/1.1\r\nHost: x\r\nCookie: ${'c'.repeat(20_000)}\r\n\r\n`);
    // Refused by the server's own checks before Fastify: two Host lines, an unknown expectation.
    await exchange('GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
    await exchange('GET /healthz HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n');
    const after = await scrape();
    expect(sample(after, 'http_requests_refused_total', { status_code: '400' })).toBe(1);
    expect(sample(after, 'http_requests_refused_total', { status_code: '417' })).toBe(1);
    expect(sample(after, 'http_request_duration_seconds_count', unmatched400)).toBe(countBefore + 2);
    expect(sample(after, 'http_request_duration_seconds_sum', unmatched400)).toBeGreaterThan(0);
    expect(sample(after, 'http_requests_refused_total', { status_code: '431' })).toBe(1);
    expect(after).toMatch(/^# HELP http_requests_refused_total \S/m);
  });

  it('when the monitoring table is read, then stage duration, lag, running age, rejects and freshness are exposed', async () => {
    await app.refreshPipelineMetrics();
    const text = await scrape();
    expect(sample(text, 'order_items_pipeline_stage_duration_seconds', { stage: 'gold' })).toBeCloseTo(60, 0);
    expect(sample(text, 'order_items_pipeline_stage_lag_seconds', { stage: 'gold' })).toBeCloseTo(70, 0);
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'silver' })).toBeGreaterThanOrEqual(29);
    expect(sample(text, 'order_items_pipeline_stage_running_seconds', { stage: 'gold' })).toBe(0);
    expect(sample(text, 'etl_rejected_rows_total', { stage: 'landing' })).toBe(1);
    expect(sample(text, 'order_items_freshness_seconds')).toBeGreaterThanOrEqual(119);
    expect(sample(text, 'order_items_last_staged_batch_timestamp_seconds')).toBeCloseTo((Date.now() - 120_000) / 1000, -1);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('when the API first serves a batch, then first-served is the time since ingestion', async () => {
    await app.firstServed.settled();
    // Set when the stage is recorded, without waiting for the next monitoring-table refresh.
    const recorded = sample(await scrape(), 'order_items_batch_first_served_seconds');
    expect(recorded).toBeGreaterThanOrEqual(119);
    await app.refreshPipelineMetrics();
    const firstServed = sample(await scrape(), 'order_items_batch_first_served_seconds');
    expect(firstServed).toBeGreaterThanOrEqual(119);
    expect(firstServed).toBeLessThan(600);
  });

  it('the stage figures are those of one batch, the one served, never a mix of batches', async () => {
    // One clock reading for every timestamp below: on a loaded machine, NOW() read statement by
    // statement drifts by more than the half second these figures are compared to.
    const [[clock]] = await db.pool.query<RowDataPacket[]>(`SELECT DATE_FORMAT(NOW(3), '%Y-%m-%d %H:%i:%s.%f') AS now`);
    const now = String(clock?.now);
    // A newer batch upstream: its source ran 15 s, its landing is still running, it is not staged.
    await db.pool.query(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('newer-batch', 'test', CAST(? AS DATETIME(3)) - INTERVAL 20 SECOND, 'running')`, [now]);
    await db.pool.query(
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES
       ('newer-batch', 'source', CAST(? AS DATETIME(3)) - INTERVAL 20 SECOND, CAST(? AS DATETIME(3)) - INTERVAL 5 SECOND, 'succeeded'),
       ('newer-batch', 'landing', CAST(? AS DATETIME(3)) - INTERVAL 5 SECOND, NULL, 'running')`,
      [now, now, now],
    );
    const uncached = await buildTestApp(db.url, { FRESHNESS_CACHE_MS: '0' });
    try {
      await uncached.refreshPipelineMetrics();
      let text = await uncached.metrics.registry.metrics();
      // Still the served batch's: its gold, and no source (it reported none), not the newer batch's.
      expect(sample(text, 'order_items_pipeline_stage_duration_seconds', { stage: 'gold' })).toBeCloseTo(60, 0);
      expect(sample(text, 'order_items_pipeline_stage_duration_seconds', { stage: 'source' })).toBeUndefined();
      expect(sample(text, 'order_items_pipeline_stage_lag_seconds', { stage: 'source' })).toBeUndefined();

      // Once the newer batch is staged, every figure is its own, and the older batch's gold is gone.
      await db.pool.query(
        `UPDATE etl_batch_stage SET finished_at = CAST(? AS DATETIME(3)) - INTERVAL 3 SECOND, status = 'succeeded' WHERE batch_id = 'newer-batch' AND stage = 'landing'`,
        [now],
      );
      await db.pool.query(
        `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status)
         VALUES ('newer-batch', 'staging', CAST(? AS DATETIME(3)) - INTERVAL 3 SECOND, CAST(? AS DATETIME(3)) - INTERVAL 1 SECOND, 'succeeded')`,
        [now, now],
      );
      await uncached.refreshPipelineMetrics();
      text = await uncached.metrics.registry.metrics();
      expect(sample(text, 'order_items_pipeline_stage_duration_seconds', { stage: 'source' })).toBeCloseTo(15, 0);
      expect(sample(text, 'order_items_pipeline_stage_lag_seconds', { stage: 'source' })).toBeCloseTo(15, 0);
      expect(sample(text, 'order_items_pipeline_stage_lag_seconds', { stage: 'staging' })).toBeCloseTo(19, 0);
      expect(sample(text, 'order_items_pipeline_stage_duration_seconds', { stage: 'gold' })).toBeUndefined();
      const durations = ['source', 'landing', 'staging'].map((stage) => sample(text, 'order_items_pipeline_stage_duration_seconds', { stage }) ?? Number.NaN);
      expect(durations.reduce((sum, seconds) => sum + seconds, 0)).toBeCloseTo(19, 0);
    } finally {
      await uncached.close();
    }
  });

  it('requests to paths no route serves are labelled unmatched, never with their URL', async () => {
    const token = bearer(mintToken({ sellerId: SELLERS.alpha }));
    for (const path of ['/nope', `/nope/${SELLERS.beta}?access_token=secret`, '/v1/order-items/x/y/z']) {
      await request(app.server).get(path).set(token).expect(404);
    }
    const text = await scrape();
    const routes = new Set([...text.matchAll(/^http_request_duration_seconds_count\{[^}]*route="([^"]*)"/gm)].map((match) => match[1]));
    expect(routes.has('unmatched')).toBe(true);
    for (const route of routes) expect(route === 'unmatched' || route?.startsWith('/v1/') || route?.startsWith('/'), route).toBe(true);
    expect([...routes].filter((route) => route?.includes('nope') || route?.includes('/x/y'))).toEqual([]);
    expect(text).not.toContain(SELLERS.beta);
    expect(text).not.toContain('secret');
  });

  it('a batch served many times is recorded as first served once (no write per request)', async () => {
    const token = bearer(mintToken({ sellerId: SELLERS.alpha }));
    // The newest staged batch may be one this app has not served yet: its one write comes first.
    await request(app.server).get('/v1/order-items?limit=1').set(token).expect(200);
    await app.firstServed.settled();
    const writes = (): number => sample(text, 'db_query_duration_seconds_count', { query: 'recordFirstServed' }) ?? 0;
    let text = await scrape();
    const before = writes();
    expect(before).toBeGreaterThan(0);
    for (let n = 0; n < 5; n += 1) {
      await request(app.server).get('/v1/order-items?limit=1').set(token).expect(200);
      await app.firstServed.settled();
    }
    text = await scrape();
    expect(writes()).toBe(before);
  });

  it('the rejected-rows counter follows a stage\'s running total forward only (a lower total is not counted)', async () => {
    const counted = async (): Promise<number | undefined> => sample(await scrape(), 'etl_rejected_rows_total', { stage: 'unit-stage' });
    app.metrics.setRejectedRowsTotal('unit-stage', 10);
    expect(await counted()).toBe(10);
    // A re-reported run with fewer rejects (a corrected report) takes nothing back and adds nothing.
    app.metrics.setRejectedRowsTotal('unit-stage', 5);
    expect(await counted()).toBe(10);
    app.metrics.setRejectedRowsTotal('unit-stage', 12);
    expect(await counted()).toBe(12);
  });

  it('every metric has HELP and TYPE, and names follow the Prometheus conventions', async () => {
    const text = await scrape();
    const names = new Set(text.split('\n').filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ')[2] as string));
    expect(names.size).toBeGreaterThan(10);
    for (const name of names) {
      expect(text, name).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
      expect(name).toMatch(/^[a-z_][a-z0-9_]*$/);
      const type = text.match(new RegExp(`^# TYPE ${name} (\\w+)`, 'm'))?.[1];
      if (type === 'counter') expect(name).toMatch(/_total$/);
      if (type === 'histogram') expect(name).toMatch(/_seconds$|_bytes$/);
    }
  });

  it('each app has its own registry', async () => {
    const other = await buildTestApp(db.url);
    try {
      expect(other.metrics.registry).not.toBe(app.metrics.registry);
      const otherText = await other.metrics.registry.metrics();
      expect(sample(otherText, 'db_query_duration_seconds_count', { query: 'listOrderItems' })).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('a HEAD request gets the freshness header but is not data served: no e2e sample, no first-served stage', async () => {
    await db.pool.query(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('head-batch', 'test', NOW(3) - INTERVAL 1 SECOND, 'succeeded')`);
    await db.pool.query(
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES ('head-batch', 'staging', NOW(3) - INTERVAL 1 SECOND, NOW(3), 'succeeded')`,
    );
    const probed = await buildTestApp(db.url, { FRESHNESS_CACHE_MS: '0' });
    const apiRows = async (): Promise<number> => {
      const [rows] = await db.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM etl_batch_stage WHERE batch_id = 'head-batch' AND stage = 'api'`);
      return Number(rows[0]?.n);
    };
    try {
      const token = bearer(mintToken({ sellerId: SELLERS.alpha }));
      const head = await request(probed.server).head('/v1/order-items?limit=1').set(token).expect(200);
      expect(head.headers['x-data-freshness']).toContain('head-batch');
      await probed.firstServed.settled();
      expect(await apiRows()).toBe(0);
      expect(sample(await probed.metrics.registry.metrics(), 'order_items_e2e_latency_seconds_count', { route: '/v1/order-items' })).toBeUndefined();
      // Control: a GET is served data.
      await request(probed.server).get('/v1/order-items?limit=1').set(token).expect(200);
      await probed.firstServed.settled();
      expect(await apiRows()).toBe(1);
      expect(sample(await probed.metrics.registry.metrics(), 'order_items_e2e_latency_seconds_count', { route: '/v1/order-items' })).toBe(1);
    } finally {
      await probed.close();
    }
  });
});
