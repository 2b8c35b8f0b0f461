import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { FIXTURE_BATCH, SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

let db: TestDatabase;
let app: FastifyInstance;
const writer = bearer(mintToken({ scope: 'pipeline:write' }));
const reader = bearer(mintToken({ scope: 'pipeline:read' }));

const put = (batchId: string, stage: string, body: Record<string, unknown>, headers = writer) =>
  request(app.server).put(`/v1/pipeline/batches/${batchId}/stages/${stage}`).set(headers).send(body);

beforeAll(async () => {
  db = await createTestDatabase('pipeline');
  await seedMarketplace(db.pool, 6);
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('PUT /v1/pipeline/batches/{batchId}/stages/{stage}', () => {
  it('when a stage reports first, then the batch is created with its ingestion time and the call is idempotent', async () => {
    const body = { startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsIn: 10, ingestedAt: '2026-01-01T09:59:00Z', source: 'spark:orders' };
    const created = await put('b-1', 'source', body).expect(201);
    expect(created.body).toMatchObject({ stage: 'source', status: 'running', startedAt: '2026-01-01T10:00:00.000Z', finishedAt: null, rowsIn: 10 });
    await put('b-1', 'source', body).expect(200);
    const [stages] = await db.pool.query("SELECT COUNT(*) AS n FROM etl_batch_stage WHERE batch_id = 'b-1'");
    expect(stages).toEqual([{ n: 1 }]);
    const [batches] = await db.pool.query("SELECT source, created_at, status FROM etl_batch WHERE batch_id = 'b-1'");
    expect(batches).toEqual([{ source: 'spark:orders', created_at: '2026-01-01 09:59:00.000', status: 'running' }]);
  });

  it('when a running stage finishes, then it is updated; once finished, the same report is accepted and a different one is 409', async () => {
    const finished = { startedAt: '2026-01-01T10:00:00Z', finishedAt: '2026-01-01T10:02:30Z', status: 'succeeded', rowsIn: 10, rowsOut: 9, rowsRejected: 1 };
    const response = await put('b-1', 'source', finished).expect(200);
    expect(response.body).toMatchObject({ durationSeconds: 150, rowsOut: 9, rowsRejected: 1, status: 'succeeded' });
    await put('b-1', 'source', finished).expect(200);
    const changed = await put('b-1', 'source', { ...finished, rowsOut: 8 }).expect(409);
    expect(changed.headers['content-type']).toMatch(/problem\+json/);
  });

  it.each([
    [{ startedAt: '2026-01-01T10:00:00Z', finishedAt: '2026-01-01T09:00:00Z', status: 'succeeded' }, 'finishedAt'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'succeeded' }, 'finishedAt'],
    [{ startedAt: 'not a date', status: 'running' }, 'startedAt'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'done' }, 'status'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsIn: -1 }, 'rowsIn'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'running', extra: 1 }, 'extra'],
    // JSON states its own types: a number in a string is a string (query and path values are text
    // and stay coerced).
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsIn: '5' }, 'rowsIn'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsOut: '9' }, 'rowsOut'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsRejected: '1' }, 'rowsRejected'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsIn: [5] }, 'rowsIn'],
    [{ startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsIn: true }, 'rowsIn'],
  ])('when the report is invalid (%j), then 400 names %s', async (body, field) => {
    const response = await put('b-2', 'landing', body).expect(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body.invalidParams[0].name).toBe(field);
  });

  it('when a numeric field is a JSON integer, then it is accepted as such (control)', async () => {
    const response = await put('b-ints', 'landing', { startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsIn: 5, rowsOut: 4, rowsRejected: 1 }).expect(201);
    expect(response.body).toMatchObject({ rowsIn: 5, rowsOut: 4, rowsRejected: 1 });
  });

  it('when a numeric field is a string, then nothing is stored', async () => {
    await put('b-string-rows', 'landing', { startedAt: '2026-01-01T10:00:00Z', status: 'running', rowsIn: '5' }).expect(400);
    const [rows] = await db.pool.query("SELECT COUNT(*) AS n FROM etl_batch WHERE batch_id = 'b-string-rows'");
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('when the stage is unknown or is the API’s own, then 400 naming stage', async () => {
    for (const stage of ['platinum', 'api', 'SOURCE', 'x'.repeat(32)]) {
      const response = await put('b-2', stage, { startedAt: '2026-01-01T10:00:00Z', status: 'running' }).expect(400);
      expect(response.body.invalidParams[0]).toMatchObject({ name: 'stage', in: 'path' });
      expect(response.body.invalidParams[0].reason).toBe('must be one of source, landing, bronze, silver, gold, staging');
    }
  });

  it.each(['source', 'landing', 'bronze', 'silver', 'gold', 'staging'])('when stage is %s, then the report is accepted', async (stage) => {
    await put('b-every-stage', stage, { startedAt: '2026-01-01T10:00:00Z', status: 'running' }).expect(201);
  });

  it.each([
    ['text/plain', 'rowsIn=5'],
    ['text/plain; charset=utf-8', JSON.stringify({ startedAt: '2026-01-01T10:00:00Z', status: 'running' })],
    ['application/x-www-form-urlencoded', 'startedAt=2026-01-01T10%3A00%3A00Z&status=running'],
    ['application/xml', '<report/>'],
  ])('when the body is %s, then 415 problem+json', async (contentType, body) => {
    const response = await request(app.server)
      .put('/v1/pipeline/batches/b-media/stages/landing')
      .set(writer)
      .set('content-type', contentType)
      .send(body)
      .expect(415);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ status: 415, title: 'Unsupported media type', type: expect.stringMatching(/unsupported-media-type$/) });
    expect(response.body).not.toHaveProperty('invalidParams');
    const [rows] = await db.pool.query("SELECT COUNT(*) AS n FROM etl_batch WHERE batch_id = 'b-media'");
    expect(rows).toEqual([{ n: 0 }]);
  });

  const report = JSON.stringify({ startedAt: '2026-01-01T10:00:00Z', status: 'running' });
  it.each([
    ['gzip', 'plain JSON labelled gzip', Buffer.from(report)],
    ['gzip', 'a real gzip body', gzipSync(report)],
    ['br', 'plain JSON labelled br', Buffer.from(report)],
    ['gzip, identity', 'a list of codings', Buffer.from(report)],
  ])('when the body has Content-Encoding: %s (%s), then 415 problem+json and nothing is stored', async (coding, _label, body) => {
    const response = await request(app.server)
      .put('/v1/pipeline/batches/b-coded/stages/landing')
      .set(writer)
      .set('content-type', 'application/json')
      .set('content-encoding', coding)
      .send(body)
      .expect(415);
    expect(response.body).toMatchObject({ status: 415, detail: expect.stringMatching(/content-encoded/) });
    const [rows] = await db.pool.query("SELECT COUNT(*) AS n FROM etl_batch WHERE batch_id = 'b-coded'");
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('a route that reads no body keeps its own answer whatever Content-Encoding says (GET 200, unknown path 404, wrong method 405)', async () => {
    await request(app.server).get('/v1/pipeline/batches').set(reader).set('content-encoding', 'gzip').set('content-type', 'application/json').send('{}').expect(200);
    await request(app.server).post('/v1/nope').set('content-encoding', 'gzip').set('content-type', 'application/json').send('{}').expect(404);
    await request(app.server).delete('/v1/pipeline/batches').set(reader).set('content-encoding', 'gzip').set('content-type', 'application/json').send('{}').expect(405);
  });

  it('when the body has Content-Encoding: identity, then it is read as sent (control)', async () => {
    await request(app.server)
      .put('/v1/pipeline/batches/b-identity/stages/landing')
      .set(writer)
      .set('content-type', 'application/json')
      .set('content-encoding', 'identity')
      .send(report)
      .expect(201);
  });

  it('when the body is over the body limit, then 413 problem+json', async () => {
    const response = await put('b-big', 'landing', { startedAt: '2026-01-01T10:00:00Z', status: 'running', source: 'x'.repeat(20_000) }).expect(413);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ status: 413, title: 'Payload too large' });
  });

  it('when the token lacks pipeline:write, then 403, even with a tenant claim', async () => {
    const body = { startedAt: '2026-01-01T10:00:00Z', status: 'running' };
    await put('b-3', 'bronze', body, reader).expect(403);
    await put('b-3', 'bronze', body, bearer(mintToken({ sellerId: SELLERS.alpha }))).expect(403);
    await put('b-3', 'bronze', body, bearer(mintToken({ sellerId: SELLERS.alpha, scope: 'order-items:read pipeline:read' }))).expect(403);
  });

  it('when rowsRejected is more than rowsIn, then 400 names rowsRejected and nothing is stored; equal is accepted (control)', async () => {
    const body = { startedAt: '2026-01-02T10:00:00Z', finishedAt: '2026-01-02T10:01:00Z', status: 'succeeded', rowsIn: 10, rowsRejected: 11 };
    const refused = await put('b-rej', 'bronze', body).expect(400);
    expect(refused.body.invalidParams).toEqual([{ name: 'rowsRejected', in: 'body', reason: 'must not be more than rowsIn (10)' }]);
    const [rows] = await db.pool.query("SELECT COUNT(*) AS n FROM etl_batch_stage WHERE batch_id = 'b-rej'");
    expect(rows).toEqual([{ n: 0 }]);
    await put('b-rej', 'bronze', { ...body, rowsRejected: 10 }).expect(201);
  });

  it('when a stage follows another, then the PUT answer measures its gap from that stage’s end, as GET does', async () => {
    const ingestedAt = '2026-01-03T09:58:00Z';
    await put('b-gap', 'silver', { startedAt: '2026-01-03T10:00:00Z', finishedAt: '2026-01-03T10:03:12Z', status: 'succeeded', ingestedAt }).expect(201);
    const gold = await put('b-gap', 'gold', { startedAt: '2026-01-03T10:04:00Z', status: 'running' }).expect(201);
    expect(gold.body.gapSeconds).toBe(48);
    const batch = await request(app.server).get('/v1/pipeline/batches/b-gap').set(reader).expect(200);
    expect(batch.body.stages.find((s: { stage: string }) => s.stage === 'gold').gapSeconds).toBe(48);
  });

  it('when the same report comes again, then it is 200 even if what was stored breaks a later rule (rowsRejected > rowsIn, written by SQL)', async () => {
    await db.pool.query(
      `INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('b-legacy', 'sql', '2026-01-04 09:00:00.000', 'running')`,
    );
    await db.pool.query(
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_in, rows_rejected, status)
       VALUES ('b-legacy', 'bronze', '2026-01-04 10:00:00.000', '2026-01-04 10:01:00.000', 5, 6, 'succeeded')`,
    );
    await put('b-legacy', 'bronze', { startedAt: '2026-01-04T10:00:00Z', finishedAt: '2026-01-04T10:01:00Z', status: 'succeeded', rowsIn: 5, rowsRejected: 6 }).expect(200);
  });

  it('when a stage fails, then the batch is failed', async () => {
    await put('b-4', 'silver', { startedAt: '2026-01-02T10:00:00Z', finishedAt: '2026-01-02T10:01:00Z', status: 'failed' }).expect(201);
    const [rows] = await db.pool.query("SELECT status FROM etl_batch WHERE batch_id = 'b-4'");
    expect(rows).toEqual([{ status: 'failed' }]);
  });

  it('when a batch has failed, then a later successful staging report does not make it succeeded', async () => {
    await put('b-4f', 'silver', { startedAt: '2026-01-02T10:00:00Z', finishedAt: '2026-01-02T10:01:00Z', status: 'failed' }).expect(201);
    await put('b-4f', 'staging', { startedAt: '2026-01-02T10:02:00Z', finishedAt: '2026-01-02T10:03:00Z', status: 'succeeded' }).expect(201);
    const [rows] = await db.pool.query("SELECT status FROM etl_batch WHERE batch_id = 'b-4f'");
    expect(rows).toEqual([{ status: 'failed' }]);
  });

  it('when staging succeeds on a batch that has not failed, then the batch is succeeded (control)', async () => {
    await put('b-4s', 'silver', { startedAt: '2026-01-02T10:00:00Z', finishedAt: '2026-01-02T10:01:00Z', status: 'succeeded' }).expect(201);
    await put('b-4s', 'staging', { startedAt: '2026-01-02T10:02:00Z', finishedAt: '2026-01-02T10:03:00Z', status: 'succeeded' }).expect(201);
    const [rows] = await db.pool.query("SELECT status FROM etl_batch WHERE batch_id = 'b-4s'");
    expect(rows).toEqual([{ status: 'succeeded' }]);
  });
});

describe('the contract of PUT /v1/pipeline/batches/{batchId}/stages/{stage}', () => {
  type Operation = { parameters: { name: string; in: string; schema: Record<string, unknown> }[]; responses: Record<string, { content?: Record<string, unknown> }> };
  const operation = (): Operation => {
    const document = app.openapiDocument() as { paths: Record<string, Record<string, Operation>> };
    const found = document.paths['/v1/pipeline/batches/{batchId}/stages/{stage}']?.put;
    if (found === undefined) throw new Error('reportStage is not in the document');
    return found;
  };

  it('documents stage as exactly the stages the server accepts (api is not one)', () => {
    const stage = operation().parameters.find((p) => p.name === 'stage' && p.in === 'path');
    expect(stage?.schema).toMatchObject({ type: 'string', enum: ['source', 'landing', 'bronze', 'silver', 'gold', 'staging'] });
  });

  it('documents 413 (body too large) and 415 (not JSON) as problems', () => {
    const { responses } = operation();
    for (const status of ['413', '415']) {
      expect(Object.keys(responses[status]?.content ?? {}), status).toEqual(['application/problem+json']);
    }
  });

  it('documents the numeric fields as integers (no strings)', () => {
    const document = app.openapiDocument() as { components: { schemas: Record<string, { properties: Record<string, { type?: unknown }> }> } };
    const report = document.components.schemas.StageReport;
    for (const field of ['rowsIn', 'rowsOut', 'rowsRejected']) expect(report?.properties[field]?.type, field).toBe('integer');
  });
});

describe('GET /v1/pipeline/batches', () => {
  it('when stages were reported, then the batch shows each stage in pipeline order, the gaps, the total and the slowest step', async () => {
    const stages: [string, string, string][] = [
      ['source', '2026-02-01T00:00:10Z', '2026-02-01T00:01:00Z'],
      ['landing', '2026-02-01T00:01:30Z', '2026-02-01T00:02:00Z'],
      ['gold', '2026-02-01T00:05:00Z', '2026-02-01T00:06:00Z'],
      ['staging', '2026-02-01T00:20:00Z', '2026-02-01T00:21:00Z'],
    ];
    for (const [stage, startedAt, finishedAt] of [...stages].reverse()) {
      await put('b-timeline', stage, { startedAt, finishedAt, status: 'succeeded', ingestedAt: '2026-02-01T00:00:00Z' }).expect(201);
    }
    const response = await request(app.server).get('/v1/pipeline/batches/b-timeline').set(reader).expect(200);
    expect(response.body.stages.map((s: { stage: string }) => s.stage)).toEqual(['source', 'landing', 'gold', 'staging']);
    expect(response.body.stages.map((s: { gapSeconds: number }) => s.gapSeconds)).toEqual([10, 30, 180, 840]);
    expect(response.body.stages.map((s: { lagSeconds: number }) => s.lagSeconds)).toEqual([60, 120, 360, 1260]);
    expect(response.body).toMatchObject({ ingestedAt: '2026-02-01T00:00:00.000Z', status: 'succeeded', endToEndSeconds: 1260 });
    expect(response.body.slowestStep).toEqual({ stage: 'staging', kind: 'gap', seconds: 840 });
  });

  it('when listing, then batches come newest ingestion first and pages chain through a cursor', async () => {
    const first = await request(app.server).get('/v1/pipeline/batches?limit=2').set(reader).expect(200);
    const all = [...first.body.batches];
    let cursor = first.body.nextCursor as string | null;
    while (cursor !== null) {
      const next = await request(app.server).get(`/v1/pipeline/batches?limit=2&cursor=${encodeURIComponent(cursor)}`).set(reader).expect(200);
      all.push(...next.body.batches);
      cursor = next.body.nextCursor;
    }
    const [rows] = await db.pool.query('SELECT batch_id FROM etl_batch ORDER BY created_at DESC, batch_id DESC');
    expect(all.map((b: { batchId: string }) => b.batchId)).toEqual((rows as { batch_id: string }[]).map((r) => r.batch_id));
  });

  it('when the batch does not exist, then 404; when the token is a data token, then 403', async () => {
    await request(app.server).get('/v1/pipeline/batches/nope').set(reader).expect(404);
    await request(app.server).get('/v1/pipeline/batches').set(bearer(mintToken({ sellerId: SELLERS.alpha }))).expect(403);
    await request(app.server).get('/v1/pipeline/batches').set(writer).expect(403);
  });
});

describe('the API’s own stage', () => {
  it('when data from a batch is served many times, then stage api is recorded once, with the first time', async () => {
    const token = bearer(mintToken({ sellerId: SELLERS.alpha }));
    const before = Date.now();
    await Promise.all(Array.from({ length: 10 }, () => request(app.server).get('/v1/order-items?limit=1').set(token).expect(200)));
    await app.firstServed.settled();
    await request(app.server).get('/v1/order-items/summary?groupBy=day').set(token).expect(200);
    await app.firstServed.settled();
    const [rows] = await db.pool.query("SELECT started_at, finished_at, status FROM etl_batch_stage WHERE batch_id = ? AND stage = 'api'", [FIXTURE_BATCH]);
    const recorded = rows as { started_at: string; finished_at: string; status: string }[];
    expect(recorded).toHaveLength(1);
    expect(recorded[0]?.status).toBe('succeeded');
    const servedAt = Date.parse(`${recorded[0]?.finished_at.replace(' ', 'T')}Z`);
    expect(servedAt).toBeGreaterThanOrEqual(before - 5);
    expect(servedAt).toBeLessThanOrEqual(Date.now());
    // The stage runs from the moment the batch was servable (staging finished) until first served,
    // so its duration is the wait for the first user, not 0.
    // (Never after the serve time: the fixture's staging end and the app's clock may differ by a millisecond.)
    const [staging] = await db.pool.query("SELECT finished_at FROM etl_batch_stage WHERE batch_id = ? AND stage = 'staging'", [FIXTURE_BATCH]);
    const stagedAt = String((staging as { finished_at: string }[])[0]?.finished_at);
    const servedAtText = String(recorded[0]?.finished_at);
    expect(recorded[0]?.started_at).toBe(stagedAt < servedAtText ? stagedAt : servedAtText);
  });

  it('when another replica recorded an earlier first-served time, then the earliest is kept', async () => {
    const { recordFirstServed } = await import('../../src/modules/pipeline/repository.js');
    await recordFirstServed(app.db, 'b-replicas', '2026-03-01 00:00:05.000');
    await recordFirstServed(app.db, 'b-replicas', '2026-03-01 00:00:02.000');
    await recordFirstServed(app.db, 'b-replicas', '2026-03-01 00:00:09.000');
    const [rows] = await db.pool.query("SELECT started_at, finished_at FROM etl_batch_stage WHERE batch_id = 'b-replicas'");
    expect(rows).toEqual([{ started_at: '2026-03-01 00:00:02.000', finished_at: '2026-03-01 00:00:02.000' }]);
  });
});

describe('concurrent first reports of a batch (audit: deadlock on INSERT IGNORE INTO etl_batch)', () => {
  it('when 20 reports of different stages for a new batch arrive at once, then every one succeeds and one row per stage is created', async () => {
    const stages = ['source', 'landing', 'bronze', 'silver', 'gold', 'staging'];
    const body = { startedAt: '2026-11-28T20:00:00Z', status: 'running' };
    // A few new batches: the deadlock showed on ~40% of the responses, one batch is not always enough.
    for (const batchId of ['b-race-1', 'b-race-2', 'b-race-3']) {
      const responses = await Promise.all(Array.from({ length: 20 }, (_, n) => put(batchId, stages[n % stages.length] as string, body)));
      const statuses = responses.map((r) => r.status);
      expect(statuses.filter((s) => s !== 200 && s !== 201), JSON.stringify(responses.map((r) => r.body))).toEqual([]);
      expect(statuses.filter((s) => s === 201)).toHaveLength(stages.length);
      const [rows] = await db.pool.query('SELECT COUNT(*) AS n FROM etl_batch_stage WHERE batch_id = ?', [batchId]);
      expect(rows).toEqual([{ n: stages.length }]);
    }
  });
});

describe('pipeline times (audit: out-of-range, non-RFC 3339 and future times)', () => {
  const count = async (batchId: string): Promise<number> => {
    const [rows] = await db.pool.query('SELECT COUNT(*) AS n FROM etl_batch WHERE batch_id = ?', [batchId]);
    return Number((rows as { n: number }[])[0]?.n);
  };
  const inMinutes = (minutes: number): string => new Date(Date.now() + minutes * 60_000).toISOString();

  it.each([
    [{ startedAt: '2026-01-01T00:00:00Z', status: 'running', ingestedAt: '9999-12-31T23:59:59-01:00' }, 'ingestedAt'],
    [{ startedAt: '1000-01-01T00:30:00+01:00', status: 'running', ingestedAt: '2026-01-01T00:00:00Z' }, 'startedAt'],
    [{ startedAt: '0999-12-31T23:59:59Z', status: 'running' }, 'startedAt'],
    [{ startedAt: '1969-12-31T23:59:59Z', status: 'running' }, 'startedAt'],
    [{ startedAt: '2026-01-01T00:00:00Z', finishedAt: '9999-12-31T23:30:00-01:00', status: 'succeeded' }, 'finishedAt'],
  ])('when a time is out of range once converted to UTC (%j), then 400 names %s and nothing is stored', async (body, field) => {
    const response = await put('b-range', 'source', body).expect(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body.invalidParams[0]).toMatchObject({ name: field, in: 'body' });
    expect(await count('b-range')).toBe(0);
    await request(app.server).get('/v1/pipeline/batches').set(reader).expect(200);
  });

  it.each(['2026-11-28', '2026-11-28T10:00Z', '2026-11-28T10:00:00'])('when a time is short of an RFC 3339 date-time (%s), then 400 says what to send', async (startedAt) => {
    const response = await put('b-short', 'source', { startedAt, status: 'running' }).expect(400);
    expect(response.body.invalidParams[0]).toMatchObject({ name: 'startedAt', in: 'body' });
    expect(response.body.invalidParams[0].reason).toMatch(/RFC 3339 date-time with an offset, e\.g\. 2026-11-28T10:00:00Z/);
  });

  it('when a time is the earliest accepted instant (given with an offset), then it is stored as such (control)', async () => {
    await put('b-range-edge', 'source', { startedAt: '2026-01-01T00:00:00Z', status: 'running', ingestedAt: '1970-01-01T01:00:00+01:00' }).expect(201);
    const [rows] = await db.pool.query("SELECT created_at FROM etl_batch WHERE batch_id = 'b-range-edge'");
    expect(rows).toEqual([{ created_at: '1970-01-01 00:00:00.000' }]);
    await request(app.server).get('/v1/pipeline/batches/b-range-edge').set(reader).expect(200);
  });

  it('when the server would clamp the ingestion time (non-strict sql_mode), then the insert fails instead of storing a zero date', async () => {
    const { Database } = await import('../../src/db/database.js');
    const { createPool } = await import('../../src/db/client.js');
    const { insertBatch } = await import('../../src/modules/pipeline/repository.js');
    const pool = createPool(db.url, { connectionLimit: 1 });
    try {
      const lax = new Database(pool, { queryTimeoutMs: 2000, acquireTimeoutMs: 1000 });
      await expect(
        lax.transaction('test', async (tx) => {
          await tx.write("SET SESSION sql_mode = ''", []);
          await insertBatch(tx, 'b-zero-date', 'test', '+010000-01-01 00:59:59.000');
        }),
      ).rejects.toThrow();
    } finally {
      await pool.end();
    }
    expect(await count('b-zero-date')).toBe(0);
  });

  const bad = [
    '2026-11-28',
    '2026-11-28T10:00:00',
    '2026-01-01 00:00:00Z',
    '2026-01-01T00:00Z',
    '2026-01-01T00:00:00+0000',
    '2026-01-01T00:00:00+00',
    '2026-01-01T00:00:00.Z',
    '2026-02-30T00:00:00Z',
    '2026-01-01T24:00:00Z',
    '2026-01-01T00:00:00+24:00',
    '20260101T000000Z',
    ' 2026-01-01T00:00:00Z',
  ];
  it.each(bad.flatMap((text) => ['startedAt', 'finishedAt', 'ingestedAt'].map((field) => [text, field] as const)))(
    'when a time is not an RFC 3339 date-time (%s in %s), then 400 names the field',
    async (text, field) => {
      const body: Record<string, unknown> = { startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:01:00Z', status: 'succeeded', ingestedAt: '2026-01-01T00:00:00Z' };
      body[field] = text;
      const response = await put('b-rfc3339', 'bronze', body).expect(400);
      expect(response.body.invalidParams[0]).toMatchObject({ name: field, in: 'body' });
      expect(await count('b-rfc3339')).toBe(0);
    },
  );

  it.each([
    ['2026-01-01T01:00:00+01:00', '2026-01-01T00:00:00.000Z', 1],
    ['2026-01-01t00:00:00z', '2026-01-01T00:00:00.000Z', 2],
    ['2025-12-31T19:30:00.123456-04:30', '2026-01-01T00:00:00.123Z', 3],
    ['2026-01-01T00:00:00-00:00', '2026-01-01T00:00:00.000Z', 4],
    // RFC 3339 puts no limit on the fraction's digits (Java's Instant prints up to 9, others more).
    ['2026-01-01T00:00:00.1234567890123+00:00', '2026-01-01T00:00:00.123Z', 5],
  ])('when a time is RFC 3339 (%s), then it is accepted as %s', async (text, stored, n) => {
    const batchId = `b-rfc-ok-${n}`;
    const response = await put(batchId, 'silver', { startedAt: text, status: 'running', ingestedAt: '2025-12-31T00:00:00Z' }).expect(201);
    expect(response.body.startedAt).toBe(stored);
  });

  it.each(['startedAt', 'finishedAt', 'ingestedAt'])('when %s is 10 minutes in the future, then 400 names it and nothing is stored', async (field) => {
    const body: Record<string, unknown> = { startedAt: inMinutes(-2), finishedAt: inMinutes(-1), status: 'succeeded', ingestedAt: inMinutes(-3) };
    body[field] = inMinutes(10);
    if (field === 'startedAt') body.finishedAt = inMinutes(11);
    const response = await put('b-future', 'gold', body).expect(400);
    expect(response.body.invalidParams[0]).toMatchObject({ name: field, in: 'body' });
    expect(await count('b-future')).toBe(0);
  });

  it('when times are within the clock-skew allowance (1 min ahead), then they are accepted (control)', async () => {
    await put('b-skew', 'gold', { startedAt: inMinutes(-1), finishedAt: inMinutes(1), status: 'succeeded', ingestedAt: inMinutes(1) }).expect(201);
  });

  it('when a stage finished before the batch was ingested, then 400 names finishedAt, for a new and for an existing batch', async () => {
    const early = { startedAt: '2026-01-01T08:00:00Z', finishedAt: '2026-01-01T09:00:00Z', status: 'succeeded', ingestedAt: '2026-01-01T10:00:00Z' };
    const response = await put('b-before-ingestion', 'landing', early).expect(400);
    expect(response.body.invalidParams[0]).toMatchObject({ name: 'finishedAt', in: 'body' });
    expect(await count('b-before-ingestion')).toBe(0);
    await put('b-before-ingestion', 'source', { startedAt: '2026-01-01T10:00:00Z', status: 'running', ingestedAt: '2026-01-01T10:00:00Z' }).expect(201);
    const existing = await put('b-before-ingestion', 'landing', { ...early, ingestedAt: undefined }).expect(400);
    expect(existing.body.invalidParams[0]).toMatchObject({ name: 'finishedAt', in: 'body' });
    const [rows] = await db.pool.query("SELECT stage FROM etl_batch_stage WHERE batch_id = 'b-before-ingestion'");
    expect(rows).toEqual([{ stage: 'source' }]);
  });

  it('when a report without ingestedAt creates a batch, then its ingestion time is the call time, or the stage start when earlier', async () => {
    await put('b-default-ingestion', 'silver', { startedAt: '2026-01-02T10:00:00Z', finishedAt: '2026-01-02T10:01:00Z', status: 'succeeded' }).expect(201);
    const [rows] = await db.pool.query("SELECT created_at FROM etl_batch WHERE batch_id = 'b-default-ingestion'");
    expect(rows).toEqual([{ created_at: '2026-01-02 10:00:00.000' }]);
    const before = Date.now();
    await put('b-default-now', 'silver', { startedAt: inMinutes(2), status: 'running' }).expect(201);
    const [now] = await db.pool.query("SELECT created_at FROM etl_batch WHERE batch_id = 'b-default-now'");
    const createdMs = Date.parse(`${(now as { created_at: string }[])[0]?.created_at.replace(' ', 'T')}Z`);
    expect(createdMs).toBeGreaterThanOrEqual(before);
    expect(createdMs).toBeLessThanOrEqual(Date.now());
  });
});
