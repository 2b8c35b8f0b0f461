// A route is declared once, with zod schemas: the same declaration gives Fastify its compiled
// validator (ajv) and serializer (fast-json-stringify), and the OpenAPI document its operation.
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteGenericInterface } from 'fastify';
import { z } from 'zod';

export const SCOPES = ['order-items:read', 'pipeline:read', 'pipeline:write'] as const;
export type Scope = (typeof SCOPES)[number];

/** Who may call a route: nobody needs a token, a seller (tenant) token, or a service token. */
export type Access =
  | { kind: 'public' }
  | { kind: 'tenant'; scope: Scope }
  | { kind: 'service'; scope: Scope };

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  contentType?: string;
  headers?: Record<string, { description: string; schema: z.ZodType }>;
}

export interface RouteSpec<
  Q extends z.ZodType | undefined = undefined,
  P extends z.ZodType | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
> {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  url: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  access: Access;
  querystring?: Q;
  params?: P;
  body?: B;
  responses: Record<number, ResponseSpec>;
  /** Hidden routes are served but left out of the OpenAPI document. */
  hidden?: boolean;
}

/** The query of a route that takes no query parameter: any one given is refused (400), not ignored. */
export const NoQuery = z.strictObject({});

type Input<S> = S extends z.ZodType ? z.output<S> : unknown;
export interface RouteTypes<Q, P, B> extends RouteGenericInterface {
  Querystring: Input<Q>;
  Params: Input<P>;
  Body: Input<B>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    spec?: RouteSpec<z.ZodType | undefined, z.ZodType | undefined, z.ZodType | undefined>;
  }
}

/** JSON Schema (draft-07, all inline) for ajv and fast-json-stringify. */
export function toRuntimeSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const json = z.toJSONSchema(schema, {
    target: 'draft-7',
    io,
    reused: 'inline',
    unrepresentable: 'throw',
    metadata: z.registry(),
  }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

export function defineRoute<
  Q extends z.ZodType | undefined = undefined,
  P extends z.ZodType | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
>(
  app: FastifyInstance,
  spec: RouteSpec<Q, P, B>,
  handler: (request: FastifyRequest<RouteTypes<Q, P, B>>, reply: FastifyReply<RouteTypes<Q, P, B>>) => Promise<unknown>,
): void {
  const response: Record<string, unknown> = {};
  for (const [status, responseSpec] of Object.entries(spec.responses)) {
    // Problem bodies are built by the error handler from fixed fields, so only success bodies
    // need a compiled serializer (which also drops any field the contract does not document).
    if (responseSpec.schema === undefined || Number(status) >= 400) continue;
    response[status] = toRuntimeSchema(responseSpec.schema, 'output');
  }
  const querystring = spec.querystring ? toRuntimeSchema(spec.querystring, 'input') : undefined;
  const params = spec.params ? toRuntimeSchema(spec.params, 'input') : undefined;
  app.route<RouteTypes<Q, P, B>>({
    method: spec.method,
    url: spec.url,
    schema: {
      ...(querystring ? { querystring } : {}),
      ...(params ? { params } : {}),
      ...(spec.body ? { body: toRuntimeSchema(spec.body, 'input') } : {}),
      response,
    },
    config: { access: spec.access, spec: spec as RouteSpec<z.ZodType | undefined, z.ZodType | undefined, z.ZodType | undefined> },
    handler,
  });
}

/** A route option's hooks as a list (Fastify takes one function or an array), for onRoute to prepend to. */
export function hookList<H>(hooks: H | H[] | undefined): H[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
}
