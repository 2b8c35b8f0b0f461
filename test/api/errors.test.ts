import type { FastifyInstance } from 'fastify';
import type { RowDataPacket } from 'mysql2/promise';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

let db: TestDatabase;
let app: FastifyInstance;
const alpha = bearer(mintToken({ sellerId: SELLERS.alpha }));

function expectProblem(response: request.Response, status: number): void {
  expect(response.status).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.body).toEqual(
    expect.objectContaining({ type: expect.stringMatching(/^https:\/\//), title: expect.any(String), status, detail: expect.any(String) }),
  );
  expect(JSON.stringify(response.body)).not.toMatch(/SELECT|mysql|ER_|at .*\.ts:\d+|stack/i);
}

beforeAll(async () => {
  db = await createTestDatabase('errors');
  await seedMarketplace(db.pool, 10);
  app = await buildTestApp(db.url, { JWT_ISSUER: 'https://issuer.test', JWT_AUDIENCE: 'order-items-api' });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const good = (claims: Record<string, unknown> = {}, options: Parameters<typeof mintToken>[0] = {}) =>
  mintToken({ sellerId: SELLERS.alpha, claims: { iss: 'https://issuer.test', aud: 'order-items-api', ...claims }, ...options });

describe('400: the offending parameter is named', () => {
  it.each([
    ['/v1/order-items?limit=0', 'limit'],
    ['/v1/order-items?limit=201', 'limit'],
    ['/v1/order-items?limit=ten', 'limit'],
    ['/v1/order-items?status=lost', 'status'],
    ['/v1/order-items?from=yesterday', 'from'],
    ['/v1/order-items?from=2017-02-30', 'from'],
    ['/v1/order-items?from=2017-03-01&to=2017-02-01', 'to'],
    ['/v1/order-items?orderId=XYZ', 'orderId'],
    ['/v1/order-items?sort=price', 'sort'],
    ['/v1/order-items?limit=1&limit=2', 'limit'],
    ['/v1/order-items/summary?groupBy=week', 'groupBy'],
    ['/v1/order-items/not-an-id/1', 'orderId'],
    [`/v1/order-items/${'a'.repeat(32)}/0`, 'orderItemId'],
    ['/v1/orders/123', 'orderId'],
    ['/v1/order-items?category=health_beauty%20', 'category'],
    [`/v1/orders/${'a'.repeat(32)}?x=1`, 'x'],
    [`/v1/order-items/${'a'.repeat(32)}/1?x=1`, 'x'],
    // Integers are decimal digits, not whatever Number() reads.
    ['/v1/order-items?limit=1e2', 'limit'],
    ['/v1/order-items?limit=0x10', 'limit'],
    ['/v1/order-items?limit=%2B5', 'limit'],
    ['/v1/order-items?limit=%2050', 'limit'],
    ['/v1/order-items?limit=007', 'limit'],
    [`/v1/order-items/${'a'.repeat(32)}/1.0`, 'orderItemId'],
    [`/v1/order-items/${'a'.repeat(32)}/1e0`, 'orderItemId'],
    [`/v1/order-items/${'a'.repeat(32)}/0x1`, 'orderItemId'],
    [`/v1/order-items/${'a'.repeat(32)}/01`, 'orderItemId'],
  ])('GET %s → 400 naming %s', async (url, parameter) => {
    const response = await request(app.server).get(url).set(bearer(good()));
    expectProblem(response, 400);
    expect(response.body.invalidParams[0].name).toBe(parameter);
    expect(response.body.detail).toContain(parameter);
  });
});

describe('400: a parameter given twice', () => {
  it.each([
    ['/v1/order-items?limit=1&limit=2', 'limit', 'must be a single integer value'],
    ['/v1/order-items?cursor=a&cursor=b', 'cursor', 'must be a single string value'],
  ])('GET %s → 400 saying %s must be single', async (url, parameter, reason) => {
    const response = await request(app.server).get(url).set(bearer(good()));
    expectProblem(response, 400);
    expect(response.body.invalidParams[0]).toEqual({ name: parameter, in: 'query', reason });
  });
});

describe('400: unknown query parameters on the pipeline routes', () => {
  it('PUT a stage report and GET a batch with ?x=1 → 400 naming x', async () => {
    const service = (): string => mintToken({ scope: 'pipeline:write pipeline:read', claims: { iss: 'https://issuer.test', aud: 'order-items-api' } });
    const put = await request(app.server)
      .put('/v1/pipeline/batches/b-unknown-query/stages/silver?x=1')
      .set(bearer(service()))
      .send({ startedAt: '2026-01-01T00:00:00Z', status: 'running' });
    expectProblem(put, 400);
    expect(put.body.invalidParams[0].name).toBe('x');
    const get = await request(app.server).get('/v1/pipeline/batches/b-unknown-query?x=1').set(bearer(service()));
    expectProblem(get, 400);
    expect(get.body.invalidParams[0].name).toBe('x');
  });
});

describe('400: a body that is not JSON is named as the body', () => {
  const service = (): string => mintToken({ scope: 'pipeline:write', claims: { iss: 'https://issuer.test', aud: 'order-items-api' } });
  it.each([
    ['empty', ''],
    ['malformed', '{"startedAt":'],
    ['a __proto__ key', '{"__proto__":{"admin":true},"startedAt":"2026-01-01T00:00:00Z","status":"running"}'],
  ])('%s → 400 with invalidParams naming body', async (_name, body) => {
    const response = await request(app.server)
      .put('/v1/pipeline/batches/b-body-errors/stages/source')
      .set(bearer(service()))
      .set('content-type', 'application/json')
      .send(body);
    expectProblem(response, 400);
    expect(response.body.invalidParams).toEqual([{ name: 'body', in: 'body', reason: expect.any(String) }]);
  });
});

describe('401: with WWW-Authenticate: Bearer', () => {
  const cases: [string, Record<string, string>][] = [
    ['missing token', {}],
    ['malformed header', { authorization: 'Token abc' }],
    ['not a JWT', { authorization: 'Bearer abc.def' }],
    ['expired', bearer(good({}, { expiresInSeconds: -120 }))],
    ['bad signature', bearer(good({}, { secret: 'another-secret-that-is-32-bytes-long!!!' }))],
    ['wrong issuer', bearer(good({ iss: 'https://evil.test' }))],
    ['wrong audience', bearer(good({ aud: 'someone-else' }))],
    ['missing tenant claim', bearer(mintToken({ claims: { iss: 'https://issuer.test', aud: 'order-items-api' } }))],
    ['malformed tenant claim', bearer(good({ tenant_id: 'ABC' }))],
    ['numeric tenant claim', bearer(good({ tenant_id: 0 }))],
  ];
  // RFC 6750 §3.1: no error code when no bearer credentials were presented (none, or another
  // scheme); invalid_request when the header holds no well-formed bearer token; else invalid_token.
  const challenges: Record<string, string> = {
    'missing token': 'Bearer realm="order-items-api"',
    'malformed header': 'Bearer realm="order-items-api"',
    'not a JWT': 'Bearer realm="order-items-api", error="invalid_request"',
    'empty bearer': 'Bearer realm="order-items-api", error="invalid_request"',
  };
  it.each([...cases, ['empty bearer', { authorization: 'Bearer ' }] as [string, Record<string, string>]])('%s → 401', async (name, headers) => {
    const response = await request(app.server).get('/v1/order-items').set(headers);
    expectProblem(response, 401);
    expect(response.headers['www-authenticate']).toBe(challenges[name] ?? 'Bearer realm="order-items-api", error="invalid_token"');
  });

  it('a token without the route\'s scope → 403 with an insufficient_scope challenge naming it', async () => {
    const response = await request(app.server).get('/v1/order-items').set(bearer(good({ scope: 'pipeline:read' })));
    expectProblem(response, 403);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="order-items-api", error="insufficient_scope", scope="order-items:read"');
  });

  it('when a token lacks exp, then 401', async () => {
    const { createSigner } = await import('fast-jwt');
    const token = createSigner({ key: 'test-secret-that-is-at-least-32-bytes-long!!', noTimestamp: true })({
      tenant_id: SELLERS.alpha,
      scope: 'order-items:read',
      iss: 'https://issuer.test',
      aud: 'order-items-api',
    });
    expectProblem(await request(app.server).get('/v1/order-items').set(bearer(token)), 401);
  });

  it('reads the scheme name case-insensitively (RFC 9110): bearer and BEARER are Bearer', async () => {
    for (const scheme of ['bearer', 'BEARER']) {
      const response = await request(app.server).get('/v1/order-items?limit=1').set({ authorization: `${scheme} ${good()}` });
      expect(response.status).toBe(200);
    }
  });
});

describe('403: a valid token without the route’s scope', () => {
  it('when the token has only pipeline scopes, then data routes answer 403', async () => {
    const response = await request(app.server).get('/v1/order-items').set(bearer(good({ scope: 'pipeline:read pipeline:write' })));
    expectProblem(response, 403);
    expect(response.body.detail).toContain('order-items:read');
  });

  it('when scopes come as an scp array, then they count', async () => {
    await request(app.server).get('/v1/order-items').set(bearer(good({ scope: undefined, scp: ['order-items:read'] }))).expect(200);
  });
});

describe('404', () => {
  it('when the route does not exist, then 404 problem+json', async () => {
    expectProblem(await request(app.server).get('/v1/nothing-here').set(bearer(good())), 404);
  });
});

describe('503 when the database is unreachable', () => {
  it('when MySQL does not answer, then data routes give 503 problem+json with Retry-After, readyz 503 and healthz 200', async () => {
    const down = await buildTestApp('mysql://root@127.0.0.1:1/unreachable', {}, {});
    try {
      const token = mintToken({ sellerId: SELLERS.alpha });
      const response = await request(down.server).get('/v1/order-items').set(bearer(token));
      expectProblem(response, 503);
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
      const ready = await request(down.server).get('/readyz');
      expectProblem(ready, 503);
      await request(down.server).get('/healthz').expect(200, { status: 'ok' });
    } finally {
      await down.close();
    }
  });

  it('when the server refuses the login, then 503 with Retry-After (not 500), and readyz 503', async () => {
    // An account without access to the database: the server answers 1044 at connect time.
    const account = `oi_noaccess_${process.pid}`;
    await db.pool.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [account, '%', 'no-access-password']);
    const refused = await buildTestApp(db.url.replace('mysql://root@', `mysql://${account}:no-access-password@`), {}, {});
    try {
      const response = await request(refused.server).get('/v1/order-items').set(alpha);
      expectProblem(response, 503);
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
      expectProblem(await request(refused.server).get('/readyz'), 503);
    } finally {
      await refused.close();
      await db.pool.query('DROP USER IF EXISTS ?@?', [account, '%']);
    }
  });

  it('when the account\'s password has expired (login passes, every statement refused), then 503 with Retry-After (not 500)', async () => {
    // MariaDB's default disconnect_on_expired_password=OFF lets the login through; each statement
    // then fails with 1820 ER_MUST_CHANGE_PASSWORD.
    const account = `oi_expired_${process.pid}`;
    await db.pool.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [account, '%', 'expired-password']);
    await db.pool.query(`GRANT SELECT ON \`${db.name}\`.* TO ?@?`, [account, '%']);
    await db.pool.query('ALTER USER ?@? PASSWORD EXPIRE', [account, '%']);
    const expired = await buildTestApp(db.url.replace('mysql://root@', `mysql://${account}:expired-password@`), {}, {});
    try {
      const response = await request(expired.server).get('/v1/order-items').set(alpha);
      expectProblem(response, 503);
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
      expect(response.text).not.toMatch(/password|1820/i);
    } finally {
      await expired.close();
      await db.pool.query('DROP USER IF EXISTS ?@?', [account, '%']);
    }
  });

  it('when the database lacks this version\'s migrations, then readyz is 503 until they are applied', async () => {
    const behind = await createTestDatabase('errors_behind');
    const app = await buildTestApp(behind.url);
    try {
      await request(app.server).get('/readyz').expect(200);
      const [[newest]] = await behind.pool.query<RowDataPacket[]>('SELECT id, hash, created_at FROM __drizzle_migrations ORDER BY id DESC LIMIT 1');
      await behind.pool.query('DELETE FROM __drizzle_migrations WHERE id = ?', [newest?.id]);
      expectProblem(await request(app.server).get('/readyz'), 503);
      await behind.pool.query('INSERT INTO __drizzle_migrations (id, hash, created_at) VALUES (?, ?, ?)', [newest?.id, newest?.hash, newest?.created_at]);
      await request(app.server).get('/readyz').expect(200);
      await behind.pool.query('DROP TABLE __drizzle_migrations'); // never migrated
      expectProblem(await request(app.server).get('/readyz'), 503);
    } finally {
      await app.close();
      await behind.drop();
    }
  });

  it('when the schema is missing, then the client gets 503 without SQL or driver text', async () => {
    const empty = await createTestDatabase('errors_empty');
    await empty.pool.query('DROP TABLE fact_order_item, order_item_wide');
    const broken = await buildTestApp(empty.url);
    try {
      const response = await request(broken.server).get('/v1/order-items').set(alpha);
      expectProblem(response, 503);
    } finally {
      await broken.close();
      await empty.drop();
    }
  });
});
