// A real Prometheus (Debian package) scrapes the running app and evaluates the generated rules;
// every dashboard and rule expression must evaluate without error, and return data where the
// traffic below makes data exist.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { freePort } from '../helpers/private-mariadb.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';
import { allExpressions, RULES_FILE } from './expressions.js';
import { hasTool } from './promtool.js';

let db: TestDatabase;
let app: FastifyInstance;
let prometheus: ChildProcess | undefined;
let prometheusUrl: string;
let workDir: string | undefined;


interface QueryResult {
  status: string;
  error?: string;
  data?: { result: unknown[] };
}

async function query(expr: string): Promise<QueryResult> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await response.json()) as QueryResult;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 40_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function traffic(rounds: number): Promise<void> {
  const seller = bearer(mintToken({ sellerId: SELLERS.alpha }));
  for (let round = 0; round < rounds; round += 1) {
    const page = await request(app.server).get('/v1/order-items?limit=3').set(seller).expect(200);
    const item = page.body.items[0];
    await request(app.server).get(`/v1/order-items/${item.orderId}/${item.orderItemId}`).set(seller).expect(200);
    await request(app.server).get(`/v1/orders/${item.orderId}`).set(seller).expect(200);
    await request(app.server).get('/v1/order-items/summary?groupBy=month').set(seller).expect(200);
    await request(app.server).get(`/v1/orders/${'f'.repeat(32)}`).set(seller).expect(404);
    await request(app.server).get('/v1/order-items?limit=999').set(seller).expect(400);
  }
}

beforeAll(async () => {
  expect(hasTool('prometheus'), 'prometheus is missing: install the Debian package prometheus (.ci/run does)').toBe(true);
  db = await createTestDatabase('prometheus');
  await seedMarketplace(db.pool, 12, new Date(Date.now() - 60_000));
  await db.pool.query(
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_in, rows_out, rows_rejected, status)
     SELECT 'fixture-batch-1', s.stage, NOW(3) - INTERVAL s.start SECOND, NOW(3) - INTERVAL s.finish SECOND, 10, 9, 1, 'succeeded'
       FROM (SELECT 'source' AS stage, 59 AS start, 55 AS finish UNION ALL SELECT 'landing', 55, 50 UNION ALL SELECT 'bronze', 50, 45
             UNION ALL SELECT 'silver', 45, 40 UNION ALL SELECT 'gold', 40, 30) s`,
  );
  app = await buildTestApp(db.url, { PIPELINE_METRICS_REFRESH_MS: '500' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const metricsPort = await app.listenMetrics('127.0.0.1', 0);

  const dir = mkdtempSync(join(tmpdir(), 'oi-prometheus-'));
  workDir = dir;
  // Rule groups evaluate every second here, so recorded series exist within the test's time.
  writeFileSync(join(dir, 'slo.rules.yml'), readFileSync(RULES_FILE, 'utf8').replace(/interval: \S+/g, 'interval: 1s'));
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: ['${join(dir, 'slo.rules.yml')}']
scrape_configs:
  - job_name: order-items-api
    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]
`,
  );
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: 'ignore' },
  );
  await until('prometheus to be ready', async () => (await fetch(`${prometheusUrl}/-/ready`)).ok);
  // A series first seen at some value has no rate until it grows: create every series, let
  // Prometheus see them, then send the traffic that gives them a rate.
  await traffic(1);
  await until('two scrapes of the app', async () => {
    const result = await query('count_over_time(http_request_duration_seconds_count{job="order-items-api"}[1m]) >= 2');
    return (result.data?.result.length ?? 0) > 0;
  });
  // Traffic between scrapes, so that every counter has a rate.
  await traffic(3);
  await until('a few scrapes with traffic', async () => {
    const result = await query('sum(rate(http_request_duration_seconds_count{job="order-items-api"}[1m])) > 0');
    return (result.data?.result.length ?? 0) > 0;
  });
  await traffic(3);
  await until('the recording rules', async () => ((await query('slo:sli_error:ratio_rate30d')).data?.result.length ?? 0) >= 3);
}, 90_000);

afterAll(async () => {
  if (prometheus !== undefined && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus?.once('exit', resolve));
    prometheus.kill('SIGTERM');
    await exited;
  }
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
  await app?.close();
  await db?.drop();
});

// Series that exist only when something is wrong: with healthy traffic they are rightly empty.
// (The 5xx ratio panel is not one: it shows 0 per route, not "No data", when nothing fails.)
const EMPTY_WHEN_HEALTHY = /ALERTS|up == 0|absent\(/;

describe('Prometheus against the running app', () => {
  it('scrapes the app', async () => {
    const up = await query('up{job="order-items-api"}');
    expect(up.data?.result).toEqual([expect.objectContaining({ value: [expect.any(Number), '1'] })]);
  });

  const expressions = allExpressions({ interval: '15s', rateInterval: '1m', range: '6h' });
  it.each(expressions.map((e) => [e.name, e] as const))('%s evaluates', async (_name, expression) => {
    const result = await query(expression.expr);
    expect(result.error, expression.expr).toBeUndefined();
    expect(result.status).toBe('success');
    if (expression.alert === undefined && !EMPTY_WHEN_HEALTHY.test(expression.expr)) {
      expect(result.data?.result.length, `no data for ${expression.expr}`).toBeGreaterThan(0);
    }
  });
});
