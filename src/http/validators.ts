// The route validators: ajv, as Fastify builds it, with two changes of rule (see below).
import AjvCompiler from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

/** Fastify's own validator factory (ajv), built with the server's `ajv` options. */
const buildAjvValidator = AjvCompiler();

/**
 * The validators of the routes: query, path and header values are text and are coerced to the
 * types their schemas declare (`limit=5` → 5), as Fastify does by default; a JSON body states its
 * own types, so it is validated as sent: `"rowsIn": "5"` is a string, not the integer 5.
 */
export const validatorFactory: NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator'] = (
  externalSchemas,
  ajvOptions,
) => {
  const coercing = buildAjvValidator(externalSchemas, ajvOptions);
  // JTD mode never coerces; this app uses JSON Schema, where coercion is an option.
  if (ajvOptions?.mode === 'JTD') return coercing;
  const exact = buildAjvValidator(externalSchemas, {
    ...ajvOptions,
    customOptions: { ...ajvOptions?.customOptions, coerceTypes: false },
  });
  return (route) => {
    if (route.httpPart === 'body') return exact(route);
    const validate = coercing(route);
    const integers = integerProperties(route.schema);
    if (integers.length === 0) return validate;
    // ajv coerces an integer the way Number() reads one: `1e2`, `0x10`, `+5`, ` 50`, `007` and
    // `1.0` would all pass. Query and path integers are decimal digits, as the OpenAPI document's
    // `integer` tells a client; checked here, in validation, so after authentication and the
    // rate limit like every other invalid input.
    const strict = ((data: Record<string, unknown> | undefined) => {
      for (const name of integers) {
        const value = data?.[name];
        if (value === undefined || (typeof value === 'string' && DECIMAL_INTEGER.test(value))) continue;
        // A repeated parameter (limit=5&limit=6) arrives as an array: the same message as any
        // other parameter given twice.
        const message = Array.isArray(value) ? 'must be a single integer value' : 'must be an integer written in decimal digits';
        strict.errors = [{ keyword: 'decimalInteger', instancePath: `/${name}`, schemaPath: `#/properties/${name}/type`, params: {}, message }];
        return false;
      }
      const valid = validate(data);
      strict.errors = validate.errors ?? null;
      return valid;
    }) as typeof validate;
    return strict;
  };
};

const DECIMAL_INTEGER = /^(?:0|[1-9][0-9]*)$/;

/** The names of a query or path schema's integer properties. */
function integerProperties(schema: unknown): string[] {
  const properties = typeof schema === 'object' && schema !== null ? (schema as { properties?: unknown }).properties : undefined;
  if (typeof properties !== 'object' || properties === null) return [];
  return Object.entries(properties as Record<string, { type?: unknown }>)
    .filter(([, property]) => property.type === 'integer')
    .map(([name]) => name);
}
