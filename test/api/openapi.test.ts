// The committed contract is what the server serves, it lints, and a client generated from it
// works against a running server, as a client team would use it.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { renderOpenApiYaml } from '../../src/openapi-document.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { mintToken } from '../helpers/tokens.js';

const ROOT = join(import.meta.dirname, '..', '..');
let db: TestDatabase;
let app: FastifyInstance;
let baseUrl: string;
const run = promisify(execFile);

beforeAll(async () => {
  db = await createTestDatabase('openapi');
  await seedMarketplace(db.pool, 12);
  app = await buildTestApp(db.url);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  baseUrl = `http://127.0.0.1:${address.port}`;
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('openapi.yaml', () => {
  it('is exactly what the route declarations generate (run `npm run openapi` when this fails)', async () => {
    expect(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8')).toBe(await renderOpenApiYaml());
  });

  it('is the document the running server serves at /openapi.json', async () => {
    const served = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as unknown;
    expect(served).toEqual(parse(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8')));
  });

  it('passes redocly lint', () => {
    const lint = spawnSync(join(ROOT, 'node_modules/.bin/redocly'), ['lint', 'openapi.yaml'], { cwd: ROOT, encoding: 'utf8' });
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    expect(lint.stderr + lint.stdout).toMatch(/Your API description is valid/);
  }, 60_000);

  it('declares every route the server has, with its security', () => {
    const document = parse(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8')) as { paths: Record<string, Record<string, { security: unknown[] }>> };
    for (const spec of app.routeSpecs()) {
      if (spec.hidden === true) continue;
      const operation = document.paths[spec.url.replace(/:(\w+)/g, '{$1}')]?.[spec.method.toLowerCase()];
      expect(operation, `${spec.method} ${spec.url}`).toBeDefined();
      expect(operation?.security).toEqual(spec.access.kind === 'public' ? [] : [{ bearerAuth: [spec.access.scope] }]);
    }
  });
});

describe('the headers the server sends', () => {
  // What a client can act on; transport and browser-security headers (content-type, date, CSP...) are not listed.
  const API_HEADERS = new Set(['x-request-id', 'cache-control', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-data-freshness', 'retry-after', 'www-authenticate', 'allow']);
  type Header = { $ref?: string; required?: boolean };
  type Operation = { responses: Record<string, { headers?: Record<string, Header> }> };
  const document = (): { paths: Record<string, Record<string, Operation>>; components: { headers: Record<string, Header> } } =>
    parse(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8'));
  const resolve = (header: Header): Header => (header.$ref === undefined ? header : (document().components.headers[header.$ref.split('/').pop() ?? ''] ?? {}));

  it.each([
    ['/v1/order-items?limit=2', 'get', '/v1/order-items', { authorization: `Bearer ${mintToken({ sellerId: SELLERS.alpha })}` }],
    ['/v1/order-items', 'get', '/v1/order-items', {}],
    ['/v1/order-items?limit=0', 'get', '/v1/order-items', { authorization: `Bearer ${mintToken({ sellerId: SELLERS.alpha })}` }],
    ['/v1/order-items', 'delete', '/v1/order-items', { authorization: `Bearer ${mintToken({ sellerId: SELLERS.alpha })}` }],
    ['/readyz', 'get', '/readyz', {}],
    ['/v1/order-items', 'get', '/v1/order-items', { authorization: `Bearer ${mintToken({ sellerId: SELLERS.alpha, scope: 'pipeline:read' })}` }],
    [`/v1/orders/${'f'.repeat(32)}`, 'get', '/v1/orders/{orderId}', { authorization: `Bearer ${mintToken({ sellerId: SELLERS.alpha })}` }],
  ])('%s (%s) carries the headers its documented response requires, and no other', async (url, method, path, headers) => {
    const response = await fetch(`${baseUrl}${url}`, { method: method.toUpperCase(), headers });
    await response.arrayBuffer();
    // An undeclared method is answered by the path's documented operations' `default` response.
    const operation = document().paths[path]?.[method] ?? document().paths[path]?.get;
    const declared = operation?.responses[String(response.status)] ?? operation?.responses.default;
    expect(declared, `${url}: status ${response.status}`).toBeDefined();
    const names = new Set(Object.keys(declared?.headers ?? {}).map((name) => name.toLowerCase()));
    const sent = [...response.headers.keys()].filter((name) => API_HEADERS.has(name));
    expect(sent.length).toBeGreaterThan(0);
    for (const name of sent) expect(names.has(name), `${url}: ${response.status} sends ${name}`).toBe(true);
    for (const [name, header] of Object.entries(declared?.headers ?? {})) {
      if (resolve(header).required === true) expect(response.headers.has(name), `${url}: ${response.status} lacks ${name}`).toBe(true);
    }
  });

  it('every route documents a 404 only where it reads one resource by id', () => {
    const withNotFound = Object.values(document().paths).flatMap((operations) =>
      Object.values(operations)
        .filter((operation) => '404' in operation.responses)
        .map((operation) => (operation as { operationId?: string }).operationId),
    );
    expect(withNotFound.sort()).toEqual(['getBatch', 'getOrder', 'getOrderItem']);
  });

  it('reads the same under YAML 1.1 as under 1.2 (no date-time example turns into a timestamp)', () => {
    const text = readFileSync(join(ROOT, 'openapi.yaml'), 'utf8');
    expect(parse(text, { version: '1.1' })).toEqual(parse(text));
  });
});

describe('a generated client', () => {
  it('generates types with openapi-typescript and calls the running server through openapi-fetch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oi-client-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const typesFile = join(dir, 'api.d.ts');
    // Not execFileSync: blocking this process's event loop for seconds also blocks the server in
    // it, whose keep-alive timer then closes an idle socket just as the client reuses it (ECONNRESET).
    await run(join(ROOT, 'node_modules/.bin/openapi-typescript'), [join(ROOT, 'openapi.yaml'), '-o', typesFile]);
    const types = readFileSync(typesFile, 'utf8');
    expect(types).toContain('listOrderItems');
    expect(types).toMatch(/OrderItem: \{/);

    // The client program is type-checked against the generated types before it runs.
    const program = join(dir, 'client.ts');
    writeFileSync(
      program,
      `import createClient from 'openapi-fetch';
import type { paths } from './api.js';
export async function firstPage(baseUrl: string, token: string) {
  const client = createClient<paths>({ baseUrl, headers: { authorization: 'Bearer ' + token } });
  const { data, error, response } = await client.GET('/v1/order-items', { params: { query: { limit: 3, status: 'delivered' } } });
  if (error) throw new Error('unexpected error ' + response.status);
  const item = data.items[0];
  const one = item ? await client.GET('/v1/order-items/{orderId}/{orderItemId}', { params: { path: { orderId: item.orderId, orderItemId: item.orderItemId } } }) : undefined;
  const missing = await client.GET('/v1/orders/{orderId}', { params: { path: { orderId: 'f'.repeat(32) } } });
  return { items: data.items, freshness: data.freshness, one: one?.data, missingStatus: missing.response.status, problem: missing.error };
}
`,
    );
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: true, types: [], typeRoots: [join(ROOT, 'node_modules/@types')], baseUrl: ROOT, paths: { 'openapi-fetch': [join(ROOT, 'node_modules/openapi-fetch')] } }, files: ['client.ts'] }));
    await run(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')]);

    const { firstPage } = (await import(program)) as {
      firstPage(baseUrl: string, token: string): Promise<{ items: { sellerId: string; orderStatus: string }[]; freshness: unknown; one: unknown; missingStatus: number; problem: unknown }>;
    };
    const result = await firstPage(baseUrl, mintToken({ sellerId: SELLERS.beta }));
    expect(result.items.length).toBeGreaterThan(0);
    expect(result.items.every((item) => item.sellerId === SELLERS.beta && item.orderStatus === 'delivered')).toBe(true);
    expect(result.one).toEqual(result.items[0]);
    expect(result.missingStatus).toBe(404);
    expect(result.problem).toMatchObject({ status: 404, title: 'Not found' });
  }, 60_000);
});
