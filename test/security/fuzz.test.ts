// Property-based fuzzing of every parameter of every operation in the served OpenAPI document:
// query, path and body values with quotes, unicode, huge numbers, arrays and objects where
// scalars go. Properties: never a 5xx, and no 200 body ever holds another seller's row.
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { FIXTURE_BATCH, SELLERS, hexId, seedMarketplace, type FixtureItem } from '../helpers/fixtures.js';
import { mintToken } from '../helpers/tokens.js';
import { auth, http, listen } from './support.js';

type Json = Record<string, unknown>;
interface Parameter {
  name: string;
  in: 'query' | 'path';
  required: boolean;
}
interface Operation {
  id: string;
  method: string;
  path: string;
  scope: string | undefined;
  tenant: boolean;
  parameters: Parameter[];
  bodyProperties: string[];
}

const RUNS = Number(process.env.FUZZ_RUNS ?? 25);
const SELLER_IDS = Object.values(SELLERS);

let db: TestDatabase;
let items: FixtureItem[];
let app: FastifyInstance;
let base: string;
let operations: Operation[] = [];

beforeAll(async () => {
  db = await createTestDatabase('sec_fuzz');
  items = await seedMarketplace(db.pool, 15);
  app = await buildTestApp(db.url);
  base = await listen(app);
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, Json>> };
  operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => {
      const schema = ((((op.requestBody as Json | undefined)?.content as Json | undefined)?.['application/json'] as Json | undefined)?.schema ?? {}) as Json;
      const ref = typeof schema.$ref === 'string' ? schema.$ref.split('/').at(-1) : undefined;
      const bodySchema = ref === undefined ? schema : ((doc as unknown as { components: { schemas: Record<string, Json> } }).components.schemas[ref] ?? {});
      return {
        id: String(op.operationId),
        method: method.toUpperCase(),
        path,
        scope: op['x-required-scope'] as string | undefined,
        tenant: op['x-tenant-scoped'] === true,
        parameters: (op.parameters as Parameter[]) ?? [],
        bodyProperties: Object.keys((bodySchema.properties as Json | undefined) ?? {}),
      };
    }),
  );
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

/** A valid value for each known parameter, so one parameter at a time can be fuzzed. */
function validValues(): Record<string, string> {
  const own = items.find((i) => i.sellerId === SELLERS.alpha) as FixtureItem;
  return {
    orderId: own.orderId,
    orderItemId: String(own.orderItemId),
    batchId: FIXTURE_BATCH,
    stage: 'landing',
    groupBy: 'month',
    limit: '5',
  };
}
const validBody = (): Json => ({ startedAt: '2024-01-01T00:00:00Z', status: 'running' });

const nasty = fc.constantFrom(
  "'", '"', '`', "' OR '1'='1", "' OR 1=1 -- ", '"; DROP TABLE fact_order_item; --', 'SLEEP(5)', '%', '_', '\\', '\\0', '\u0000',
  '../../etc/passwd', '%00', '%2e%2e%2f', '<script>alert(1)</script>', '${7*7}', '{{7*7}}', '__proto__', 'constructor',
  'NaN', 'Infinity', '-Infinity', '-0', '1e308', '1e-308', '9007199254740993', '99999999999999999999999999', '0x10', '1.0', ' 1', '1 ',
  'true', 'null', '[]', '{}', '😀', 'ı', 'ß', 'Ⅻ', '\u202e', '\ufeff', 'a'.repeat(600), SELLERS.beta, SELLERS.gamma,
);
/** One query/path value: a string, a number as text, or something structural in its place. */
const scalarText = fc.oneof(
  nasty,
  fc.string({ unit: 'grapheme', maxLength: 80 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
  fc.integer().map(String),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
  fc.double().map(String),
  // Real ids of all three sellers' orders (the seed derives them from the order number).
  fc.constantFrom(...SELLER_IDS, ...Array.from({ length: 15 }, (_, n) => hexId(`order-${n}`))),
);
type QueryShape = { kind: 'scalar'; value: string } | { kind: 'repeat'; values: string[] } | { kind: 'bracket'; key: string; value: string };
const queryShape: fc.Arbitrary<QueryShape> = fc.oneof(
  { weight: 6, arbitrary: scalarText.map((value) => ({ kind: 'scalar' as const, value })) },
  { weight: 2, arbitrary: fc.array(scalarText, { minLength: 2, maxLength: 4 }).map((values) => ({ kind: 'repeat' as const, values })) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('', 'a', '0', '$ne', '__proto__'), scalarText).map(([key, value]) => ({ kind: 'bracket' as const, key, value })) },
);

function tokenFor(op: Operation, sellerId: string): string {
  if (op.scope === undefined) return mintToken({ sellerId });
  return op.tenant ? mintToken({ sellerId, scope: op.scope }) : mintToken({ scope: op.scope });
}

function buildUrl(op: Operation, fuzzed: Parameter | null, shape: QueryShape | null): string {
  const values = validValues();
  let path = op.path;
  const query: string[] = [];
  for (const parameter of op.parameters) {
    const isFuzzed = fuzzed !== null && parameter.name === fuzzed.name && parameter.in === fuzzed.in && shape !== null;
    if (parameter.in === 'path') {
      const value = isFuzzed && shape !== null ? (shape.kind === 'scalar' ? shape.value : shape.kind === 'repeat' ? shape.values.join(',') : `${shape.key}[${shape.value}]`) : (values[parameter.name] ?? 'x');
      path = path.replace(`{${parameter.name}}`, encodeURIComponent(value));
      continue;
    }
    const name = encodeURIComponent(parameter.name);
    if (isFuzzed && shape !== null) {
      if (shape.kind === 'scalar') query.push(`${name}=${encodeURIComponent(shape.value)}`);
      else if (shape.kind === 'repeat') for (const v of shape.values) query.push(`${name}=${encodeURIComponent(v)}`);
      else query.push(`${name}[${encodeURIComponent(shape.key)}]=${encodeURIComponent(shape.value)}`);
    } else if (parameter.required && values[parameter.name] !== undefined) {
      query.push(`${name}=${encodeURIComponent(values[parameter.name] as string)}`);
    }
  }
  return `${base}${path}${query.length === 0 ? '' : `?${query.join('&')}`}`;
}

/** Every `sellerId` anywhere in the body must be the caller's. */
function sellerIdsIn(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) sellerIdsIn(v, found);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'sellerId') found.push(String(v));
      sellerIdsIn(v, found);
    }
  }
  return found;
}

async function send(op: Operation, url: string, sellerId: string, body?: string): Promise<void> {
  const response = await fetch(url, {
    method: op.method,
    headers: { ...auth(tokenFor(op, sellerId)), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  expect(response.status, `${op.method} ${url} → ${response.status} ${text.slice(0, 300)}`).toBeLessThan(500);
  if (response.status === 200 && op.tenant) {
    const ids = sellerIdsIn(JSON.parse(text));
    expect(ids.every((id) => id === sellerId), `${url}: foreign seller in ${text.slice(0, 300)}`).toBe(true);
    for (const other of SELLER_IDS.filter((id) => id !== sellerId)) expect(text).not.toContain(other);
  }
}

describe('fuzzing every parameter of every documented operation', () => {
  it('covers every operation of the document (guard)', () => {
    expect(operations.map((o) => o.id).sort()).toEqual(
      ['getBatch', 'getHealth', 'getOrder', 'getOrderItem', 'getReadiness', 'listBatches', 'listOrderItems', 'reportStage', 'summarizeOrderItems'].sort(),
    );
    expect(operations.reduce((n, o) => n + o.parameters.length + o.bodyProperties.length, 0)).toBeGreaterThan(15);
  });

  it('query and path parameters: never a 5xx, never another seller\'s row', async () => {
    for (const op of operations) {
      for (const parameter of op.parameters) {
        await fc.assert(
          fc.asyncProperty(queryShape, fc.constantFrom(...SELLER_IDS), async (shape, sellerId) => {
            const body = op.method === 'PUT' ? JSON.stringify(validBody()) : undefined;
            await send(op, buildUrl(op, parameter, shape), sellerId, body);
          }),
          { numRuns: RUNS },
        );
      }
      // Unknown parameters too: they must be refused, not ignored into a wider query.
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('sellerId', 'seller_id', 'tenant_id', 'where', 'sort', 'fields'), scalarText, fc.constantFrom(...SELLER_IDS), async (name, value, sellerId) => {
          const url = buildUrl(op, null, null);
          await send(op, `${url}${url.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value)}`, sellerId, op.method === 'PUT' ? JSON.stringify(validBody()) : undefined);
        }),
        { numRuns: Math.max(5, Math.floor(RUNS / 3)) },
      );
    }
  });

  it('body properties and whole bodies: never a 5xx', async () => {
    const bodied = operations.filter((o) => o.bodyProperties.length > 0);
    expect(bodied.length).toBeGreaterThan(0);
    const jsonish = fc.oneof(fc.jsonValue({ maxDepth: 2 }), scalarText, fc.double(), fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map((n) => Number(n)));
    for (const op of bodied) {
      for (const property of op.bodyProperties) {
        await fc.assert(
          fc.asyncProperty(jsonish, fc.nat({ max: 999 }), async (value, n) => {
            const url = buildUrl(op, null, null).replace(FIXTURE_BATCH, `fuzz-${property}-${n}`);
            await send(op, url, SELLERS.alpha, JSON.stringify({ ...validBody(), [property]: value }));
          }),
          { numRuns: RUNS },
        );
      }
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 })), async (raw) => {
          await send(op, buildUrl(op, null, null), SELLERS.alpha, raw);
        }),
        { numRuns: RUNS },
      );
    }
  });
});
