// The OpenAPI 3.1 document is derived from the same zod declarations the routes run with, so
// the contract cannot drift from the code. Served at /openapi.json; committed as openapi.yaml.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { z } from 'zod';
import { Problem, PROBLEM_CONTENT_TYPE } from '../http/problem.js';
import { defineRoute, type RouteSpec } from '../http/route.js';

type JsonObject = Record<string, unknown>;
type AnySpec = RouteSpec<z.ZodType | undefined, z.ZodType | undefined, z.ZodType | undefined>;

const COMPONENT_REF = '#/components/schemas/';
const HEADER_REF = '#/components/headers/';

/** Headers of every response, whatever the route and status. */
const EVERY_RESPONSE_HEADERS = { 'X-Request-Id': { $ref: `${HEADER_REF}RequestId` }, 'Cache-Control': { $ref: `${HEADER_REF}CacheControl` } };
/** Headers of the answers a rate-limited route gives once the limiter has counted the request. */
const RATE_LIMIT_HEADERS = {
  'X-RateLimit-Limit': { $ref: `${HEADER_REF}RateLimitLimit` },
  'X-RateLimit-Remaining': { $ref: `${HEADER_REF}RateLimitRemaining` },
  'X-RateLimit-Reset': { $ref: `${HEADER_REF}RateLimitReset` },
};
const RATE_LIMIT_SCHEMAS = {
  'X-RateLimit-Limit': { description: 'Requests allowed per window (per seller, or per service caller)', schema: { type: 'integer', minimum: 1 } },
  'X-RateLimit-Remaining': { description: 'Requests left in the current window', schema: { type: 'integer', minimum: 0 } },
  'X-RateLimit-Reset': { description: 'Seconds until the window resets', schema: { type: 'integer', minimum: 0 } },
};
const RATE_LIMIT_SOMETIMES = 'absent when the request was refused before the rate limiter counted it';
/**
 * The same headers where only some answers of a status carry them (a 400 the router or the body
 * parser gave, a 503 of load shedding come before the limiter): not required there.
 */
const OPTIONAL_RATE_LIMIT_HEADERS = Object.fromEntries(
  Object.entries(RATE_LIMIT_SCHEMAS).map(([name, header]) => [name, { ...header, description: `${header.description}; ${RATE_LIMIT_SOMETIMES}` }]),
);
/**
 * Which rate-limit headers a status carries on a rate-limited route: none where the caller was
 * refused before the limiter (401, 403, a body too large or not JSON), optional where only some
 * answers come after it.
 */
function rateLimitHeadersFor(status: string): Record<string, JsonObject> {
  if (['401', '403', '413', '415'].includes(status)) return {};
  if (status === '400' || status === '503') return OPTIONAL_RATE_LIMIT_HEADERS;
  return RATE_LIMIT_HEADERS;
}
const HEADER_COMPONENTS = {
  RequestId: {
    description: "The request's id, also on every log line of the request: the caller's own `X-Request-Id` when it is a plain token (1–64 of `A-Za-z0-9._:-`), else a new UUID",
    required: true,
    schema: { type: 'string' },
  },
  CacheControl: { description: '`no-store`: tenant data is never kept by a cache', required: true, schema: { type: 'string' } },
  RateLimitLimit: { ...RATE_LIMIT_SCHEMAS['X-RateLimit-Limit'], required: true },
  RateLimitRemaining: { ...RATE_LIMIT_SCHEMAS['X-RateLimit-Remaining'], required: true },
  RateLimitReset: { ...RATE_LIMIT_SCHEMAS['X-RateLimit-Reset'], required: true },
};
const RETRY_AFTER = { description: 'Seconds to wait before retrying', required: true, schema: { type: 'integer', minimum: 0 } };
const CHALLENGE = (example: string): JsonObject => ({
  description: 'RFC 6750 Bearer challenge',
  required: true,
  schema: { type: 'string' },
  example,
});

export const API_INFO = {
  title: 'order-items-api',
  version: '1.0.0',
  description:
    'Order items of an e-commerce marketplace, served per seller from the staging star schema. ' +
    'The seller comes only from the verified bearer token; every response about data carries its freshness.',
};

class SchemaCollector {
  readonly components: Record<string, JsonObject> = {};

  convert(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
    const id = z.globalRegistry.get(schema)?.id;
    const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'throw' }) as JsonObject;
    delete json.$schema;
    const defs = (json.$defs ?? {}) as Record<string, JsonObject>;
    delete json.$defs;
    for (const [name, def] of Object.entries(defs)) this.components[name] ??= rewriteRefs(def) as JsonObject;
    const rewritten = rewriteRefs(json) as JsonObject;
    if (id === undefined) return rewritten;
    delete rewritten.id;
    this.components[id] ??= rewritten;
    return { $ref: COMPONENT_REF + id };
  }
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === '$ref' && typeof inner === 'string') out[key] = inner.replace('#/$defs/', COMPONENT_REF);
    else if (key !== 'id') out[key] = rewriteRefs(inner);
  }
  return out;
}

function parameters(collector: SchemaCollector, schema: z.ZodType | undefined, where: 'query' | 'path'): JsonObject[] {
  if (schema === undefined) return [];
  const json = collector.convert(schema, 'input');
  const properties = (json.properties ?? {}) as Record<string, JsonObject>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

export function buildOpenApiDocument(specs: readonly AnySpec[]): JsonObject {
  const collector = new SchemaCollector();
  const paths: Record<string, Record<string, JsonObject>> = {};
  const problemRef = collector.convert(Problem, 'output');
  for (const spec of specs) {
    if (spec.hidden === true) continue;
    const path = spec.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const responses: Record<string, JsonObject> = {};
    // Health probes are not rate-limited; every other route counts against the caller's budget.
    const rateLimited = spec.access.kind !== 'public';
    for (const [status, response] of Object.entries(spec.responses)) {
      const isProblem = Number(status) >= 400;
      const schema = isProblem ? problemRef : response.schema === undefined ? undefined : collector.convert(response.schema, 'output');
      const headers: Record<string, JsonObject> = {
        ...EVERY_RESPONSE_HEADERS,
        ...(rateLimited ? rateLimitHeadersFor(status) : {}),
      };
      for (const [name, header] of Object.entries(response.headers ?? {})) {
        headers[name] = { description: header.description, schema: collector.convert(header.schema, 'output') };
      }
      if (status === '401') headers['WWW-Authenticate'] = CHALLENGE('Bearer realm="order-items-api", error="invalid_token"');
      if (status === '403' && spec.access.kind !== 'public') {
        headers['WWW-Authenticate'] = CHALLENGE(`Bearer realm="order-items-api", error="insufficient_scope", scope="${spec.access.scope}"`);
      }
      if (status === '429' || status === '503') headers['Retry-After'] = RETRY_AFTER;
      responses[status] = {
        description: response.description,
        ...(Object.keys(headers).length > 0 ? { headers } : {}),
        ...(schema === undefined
          ? {}
          : { content: { [isProblem ? PROBLEM_CONTENT_TYPE : (response.contentType ?? 'application/json')]: { schema } } }),
      };
    }
    if (spec.access.kind !== 'public') {
      responses['401'] ??= {
        description: 'Missing or invalid token',
        headers: { ...EVERY_RESPONSE_HEADERS, 'WWW-Authenticate': CHALLENGE('Bearer realm="order-items-api", error="invalid_token"') },
        content: { [PROBLEM_CONTENT_TYPE]: { schema: problemRef } },
      };
    }
    responses.default = {
      description: 'Any other error, as problem+json: 405 (with `Allow`), 408 (request not received in time), 414 (a path parameter over 1,000 characters), 417 (an `Expect` other than 100-continue), 431 (request headers or URL too large), 500',
      headers: { ...EVERY_RESPONSE_HEADERS, Allow: { description: 'With 405: the methods the path serves', schema: { type: 'string' } } },
      content: { [PROBLEM_CONTENT_TYPE]: { schema: problemRef } },
    };
    const operation: JsonObject = {
      operationId: spec.operationId,
      summary: spec.summary,
      ...(spec.description === undefined ? {} : { description: spec.description }),
      tags: spec.tags,
      parameters: [...parameters(collector, spec.params, 'path'), ...parameters(collector, spec.querystring, 'query')],
      ...(spec.body === undefined
        ? {}
        : { requestBody: { required: true, content: { 'application/json': { schema: collector.convert(spec.body, 'input') } } } }),
      responses,
      security: spec.access.kind === 'public' ? [] : [{ bearerAuth: [spec.access.scope] }],
      ...(spec.access.kind === 'public'
        ? {}
        : {
            'x-required-scope': spec.access.scope,
            'x-tenant-scoped': spec.access.kind === 'tenant',
          }),
    };
    paths[path] ??= {};
    paths[path][spec.method.toLowerCase()] = operation;
  }
  const sortedComponents = Object.fromEntries(Object.entries(collector.components).sort(([a], [b]) => a.localeCompare(b)));
  return {
    openapi: '3.1.0',
    info: {
      ...API_INFO,
      // package.json's UNLICENSED: proprietary; SPDX names such a licence with a LicenseRef.
      license: { name: 'Proprietary (UNLICENSED): not licensed for use outside the project', identifier: 'LicenseRef-Proprietary' },
    },
    servers: [{ url: 'http://127.0.0.1:3000', description: 'Local demo (npm run demo)' }],
    tags: [
      { name: 'order-items', description: "The calling seller's order items" },
      { name: 'orders', description: "Orders, as far as they hold the calling seller's items" },
      { name: 'pipeline', description: 'ETL monitoring: stage reports and batch timelines (service tokens)' },
      { name: 'health', description: 'Liveness and readiness probes' },
    ],
    paths,
    components: {
      schemas: sortedComponents,
      headers: HEADER_COMPONENTS,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A JWT with `exp`. Data routes need scope `order-items:read` and the seller id in the tenant claim (default `tenant_id`); pipeline routes need `pipeline:read` or `pipeline:write`. Scopes come from `scope` (space-separated) or `scp` (array).',
        },
      },
    },
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    openapiDocument(): JsonObject;
    /** Every declared route, hidden ones included: what the route-table tests walk. */
    routeSpecs(): readonly AnySpec[];
  }
}

async function openapiPlugin(app: FastifyInstance): Promise<void> {
  const specs: AnySpec[] = [];
  app.addHook('onRoute', (route) => {
    const spec = route.config?.spec;
    if (spec !== undefined && route.method !== 'HEAD') specs.push(spec);
  });
  app.decorate('routeSpecs', () => specs);
  let document: JsonObject | undefined;
  app.decorate('openapiDocument', () => (document ??= buildOpenApiDocument(specs)));
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/openapi.json',
      operationId: 'getOpenApiDocument',
      summary: 'This OpenAPI document',
      tags: ['health'],
      access: { kind: 'public' },
      hidden: true,
      responses: { 200: { description: 'OpenAPI 3.1 document' } },
    },
    async (_request, reply) => reply.type('application/json').send(JSON.stringify(app.openapiDocument())),
  );
}

export default fp(openapiPlugin, { name: 'openapi', fastify: '5.x' });
