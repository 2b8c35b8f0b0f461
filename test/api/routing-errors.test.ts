// What is answered without reaching a route: a URL Fastify cannot route (frameworkErrors), a path
// served with other methods (405 + Allow), an unknown path (404). Same problem+json shape and the
// same headers as every other response.
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, GENERATED_REQUEST_ID, STANDARD_RESPONSE_HEADERS } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

const UUID = GENERATED_REQUEST_ID;

let db: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  db = await createTestDatabase('routing_errors');
  await seedMarketplace(db.pool, 4);
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

/** The headers the security plugin sets on every routed response, as a routed 401 carries them. */
async function standardHeaders(): Promise<Record<string, string>> {
  const routed = await request(app.server).get('/v1/order-items').expect(401);
  const headers: Record<string, string> = {};
  for (const name of STANDARD_RESPONSE_HEADERS) {
    const value = routed.headers[name];
    expect(value, name).toEqual(expect.any(String));
    headers[name] = String(value);
  }
  expect(headers['cache-control']).toBe('no-store');
  return headers;
}

function expectProblem(response: request.Response, status: number, slug: string): void {
  expect(response.status).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body: unknown = JSON.parse(response.text);
  expect(body).toEqual({ type: `https://order-items-api.dev/problems/${slug}`, title: expect.any(String), status, detail: expect.any(String) });
  expect(response.text).not.toMatch(/FST_ERR|"error"|"code"|"message"/);
}

describe('errors raised before routing (frameworkErrors) are problem+json', () => {
  it.each(['/v1/orders/%FF', '/v1/order-items/%zz/1', '/v1/pipeline/batches/%E0%A4%A', '/healthz/%'])(
    'GET %s → 400 problem+json with the headers of every response',
    async (url) => {
      const expected = await standardHeaders();
      const response = await request(app.server).get(url).set(bearer(mintToken({ sellerId: SELLERS.alpha })));
      expectProblem(response, 400, 'invalid-request');
      for (const [name, value] of Object.entries(expected)) expect(response.headers[name], name).toBe(value);
      expect(response.headers['x-request-id']).toMatch(UUID);
    },
  );

  it('keeps the caller\'s X-Request-Id, as every other response does', async () => {
    const response = await request(app.server).get('/v1/orders/%FF').set('x-request-id', 'trace-abc.123');
    expectProblem(response, 400, 'invalid-request');
    expect(response.headers['x-request-id']).toBe('trace-abc.123');
  });

  it('a long path parameter is routed and validated: 400 naming it', async () => {
    const response = await request(app.server)
      .get(`/v1/orders/${'a'.repeat(200)}`)
      .set(bearer(mintToken({ sellerId: SELLERS.alpha })));
    expect(response.status).toBe(400);
    expect(response.body.invalidParams).toEqual([expect.objectContaining({ name: 'orderId', in: 'path' })]);
  });

  it('a path parameter over the router\'s maximum length (1,000) → 414 problem+json with the same headers', async () => {
    const expected = await standardHeaders();
    const response = await request(app.server).get(`/v1/orders/${'a'.repeat(1200)}`);
    expectProblem(response, 414, 'uri-too-long');
    for (const [name, value] of Object.entries(expected)) expect(response.headers[name], name).toBe(value);
    expect(response.headers['x-request-id']).toMatch(UUID);
    expect(response.text).not.toContain('a'.repeat(50));
  });

  it('the same through inject (no socket)', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/order-items/%zz/1' });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.json()).toMatchObject({ status: 400, type: 'https://order-items-api.dev/problems/invalid-request' });
  });
});

describe('405 Method Not Allowed, with Allow, for every registered route', () => {
  /** Every declared route pattern with the methods it is served with (GET brings HEAD). */
  function routeTable(): Map<string, Set<string>> {
    const table = new Map<string, Set<string>>();
    for (const spec of app.routeSpecs()) {
      const methods = table.get(spec.url) ?? new Set<string>();
      methods.add(spec.method);
      if (spec.method === 'GET') methods.add('HEAD');
      table.set(spec.url, methods);
    }
    return table;
  }
  const ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  const allowHeader = (methods: Set<string>): string => [...methods].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b)).join(', ');
  const concrete = (pattern: string): string =>
    pattern
      .replace(':orderId', 'a'.repeat(32))
      .replace(':orderItemId', '1')
      .replace(':batchId', 'b-405')
      .replace(':stage', 'landing');

  it('covers the routes (guard)', () => {
    const table = routeTable();
    expect(table.size).toBeGreaterThanOrEqual(9);
    expect(table.get('/v1/order-items')).toEqual(new Set(['GET', 'HEAD']));
    expect(table.get('/v1/pipeline/batches/:batchId/stages/:stage')).toEqual(new Set(['PUT']));
  });

  it('every other method on every route → 405 problem+json naming the allowed methods', async () => {
    const expected = await standardHeaders();
    for (const [pattern, methods] of routeTable()) {
      const url = concrete(pattern);
      for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => !methods.has(m))) {
        const response = await app.inject({ method: method as 'GET', url });
        expect(response.statusCode, `${method} ${url}`).toBe(405);
        expect(response.headers.allow, `${method} ${url}`).toBe(allowHeader(methods));
        expect(response.headers['content-type'], `${method} ${url}`).toMatch(/^application\/problem\+json/);
        for (const [name, value] of Object.entries(expected)) expect(response.headers[name], name).toBe(value);
        expect(response.headers['x-request-id']).toMatch(UUID);
        if (method !== 'HEAD') {
          expect(response.json()).toEqual({
            type: 'https://order-items-api.dev/problems/method-not-allowed',
            title: 'Method not allowed',
            status: 405,
            detail: `${method} is not allowed on ${url}; allowed: ${allowHeader(methods)}`,
          });
        }
      }
    }
  });

  it('POST /v1/order-items → 405 with Allow: GET, HEAD (the finding)', async () => {
    const response = await request(app.server).post('/v1/order-items').send({});
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD');
    expect(response.body.title).toBe('Method not allowed');
  });

  it('the answer depends on the route table only: the same with no token, a seller\'s, another seller\'s, a service\'s', async () => {
    const own = `/v1/orders/${'b'.repeat(32)}`;
    const tokens = [
      {},
      bearer(mintToken({ sellerId: SELLERS.alpha })),
      bearer(mintToken({ sellerId: SELLERS.beta })),
      bearer(mintToken({ scope: 'pipeline:write' })),
      { authorization: 'Bearer not.a.jwt' },
    ];
    const answers = new Set<string>();
    for (const headers of tokens) {
      const response = await request(app.server).delete(own).set(headers);
      expect(response.status).toBe(405);
      expect(response.headers['www-authenticate']).toBeUndefined();
      answers.add(JSON.stringify({ allow: response.headers.allow, body: response.text }));
    }
    expect(answers.size).toBe(1);
  });

  it('a trailing slash and a query string match the route as routing does', async () => {
    for (const url of ['/v1/order-items/', '/v1/order-items?limit=1', '/v1/pipeline/batches/b-405/stages/landing/']) {
      const response = await app.inject({ method: 'DELETE', url });
      expect(response.statusCode, url).toBe(405);
    }
  });

  it('with CORS off (the default), an OPTIONS request → 405 with Allow too', async () => {
    const response = await request(app.server).options('/v1/pipeline/batches');
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD');
  });

  it('with CORS on, a preflight is still answered by CORS (204), not 405', async () => {
    const withCors = await buildTestApp(db.url, { CORS_ORIGINS: 'https://seller.example' });
    try {
      const preflight = await withCors.inject({
        method: 'OPTIONS',
        url: '/v1/order-items',
        headers: { origin: 'https://seller.example', 'access-control-request-method': 'GET' },
      });
      expect(preflight.statusCode).toBe(204);
      expect(preflight.headers['access-control-allow-origin']).toBe('https://seller.example');
      expect(preflight.headers.allow).toBeUndefined();
      // Other methods are unaffected by CORS.
      expect((await withCors.inject({ method: 'POST', url: '/v1/order-items' })).statusCode).toBe(405);
      // Answered before routing (@fastify/cors never runs): an allowed origin still gets its headers,
      // so that a browser reads the problem rather than an opaque network error.
      const undecodable = await withCors.inject({ method: 'GET', url: '/v1/orders/%ZZ', headers: { origin: 'https://seller.example' } });
      expect(undecodable.statusCode).toBe(400);
      expect(undecodable.headers['access-control-allow-origin']).toBe('https://seller.example');
      expect(undecodable.headers['access-control-expose-headers']).toContain('x-request-id');
      const other = await withCors.inject({ method: 'GET', url: '/v1/orders/%ZZ', headers: { origin: 'https://evil.example' } });
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await withCors.close();
    }
  });

  it('a path with a value the route would refuse still exists: 405, not 404 (the method is checked first)', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/orders/not-an-id' });
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD');
  });

  it.each([
    ['POST', '/nope'],
    ['GET', '/v1/nope'],
    ['DELETE', '/v1/order-items/a/b/c'],
    ['POST', '/V1/ORDER-ITEMS'],
    ['OPTIONS', '/v1/unknown'],
    ['PUT', '/v1/pipeline/batches/b/stages'],
  ])('%s %s (unknown path) → 404 without Allow', async (method, url) => {
    const response = await app.inject({ method: method as 'GET', url });
    expect(response.statusCode).toBe(404);
    expect(response.headers.allow).toBeUndefined();
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({ status: 404, title: 'Not found' });
  });
});
