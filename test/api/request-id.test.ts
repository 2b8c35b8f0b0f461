// x-request-id: on every response, and the same id in that request's log lines.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, GENERATED_REQUEST_ID } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

const UUID = GENERATED_REQUEST_ID;

let db: TestDatabase;
let app: FastifyInstance;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  db = await createTestDatabase('request_id');
  await seedMarketplace(db.pool, 4);
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  app = await buildTestApp(db.url, {}, { logStream, logLevel: 'info' });
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const completedLineOf = (id: string): Record<string, unknown> | undefined =>
  logLines.find((line) => line.reqId === id && line.msg === 'request completed');

describe('x-request-id', () => {
  it('names every response, data, error and unknown route alike, with a new id each time', async () => {
    const token = bearer(mintToken({ sellerId: SELLERS.alpha }));
    const responses = [
      await request(app.server).get('/v1/order-items?limit=1').set(token).expect(200),
      await request(app.server).get('/v1/order-items?limit=1').set(token).expect(200),
      await request(app.server).get('/v1/order-items').expect(401),
      await request(app.server).get('/v1/order-items?limit=0').set(token).expect(400),
      await request(app.server).get('/nope').expect(404),
      await request(app.server).get('/healthz').expect(200),
    ];
    const ids = responses.map((response) => String(response.headers['x-request-id']));
    for (const id of ids) expect(id).toMatch(UUID);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("is the id of the request's log lines", async () => {
    const response = await request(app.server).get('/v1/order-items').expect(401);
    const id = String(response.headers['x-request-id']);
    expect(completedLineOf(id)).toMatchObject({ reqId: id, res: { statusCode: 401 } });
  });

  it("keeps a caller's or proxy's id when it is a plain token, so one id follows the request", async () => {
    const id = 'edge-7f3a.b_2:42';
    const response = await request(app.server).get('/healthz').set('x-request-id', id).expect(200);
    expect(response.headers['x-request-id']).toBe(id);
    expect(completedLineOf(id)).toBeDefined();
  });

  it.each([
    ['too long', 'a'.repeat(65)],
    ['with a space', 'two words'],
    ['with markup', '<script>'],
    ['with a quote', 'a"b'],
    ['empty', ''],
  ])('replaces an id %s with a new one', async (_label, given) => {
    const response = await request(app.server).get('/healthz').set('x-request-id', given).expect(200);
    expect(response.headers['x-request-id']).toMatch(UUID);
  });
});
