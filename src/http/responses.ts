import { Problem } from './problem.js';
import type { ResponseSpec } from './route.js';

/** The error responses every authenticated route may give, for the OpenAPI document. */
export const PROBLEM_RESPONSES: Record<number, ResponseSpec> = {
  400: { description: 'Invalid parameter (named in the problem)', schema: Problem },
  401: { description: 'Missing, malformed, expired or unverifiable token', schema: Problem },
  403: { description: 'The token lacks the scope this route needs', schema: Problem },
  429: { description: 'Rate limit exceeded (see Retry-After)', schema: Problem },
  503: {
    description:
      'Unavailable for now (see Retry-After): the data store is down or did not answer in time, the server is overloaded or shutting down, or the signing keys (JWKS) cannot be fetched',
    schema: Problem,
  },
};

/** The 404 of a route that reads one resource by its id. */
export const NOT_FOUND_RESPONSE: Record<number, ResponseSpec> = {
  404: { description: 'Not found', schema: Problem },
};

/** The error responses of a route that reads a JSON request body, for the OpenAPI document. */
export const BODY_PROBLEM_RESPONSES: Record<number, ResponseSpec> = {
  413: { description: 'The request body is larger than the limit (BODY_LIMIT_BYTES, 16 KiB by default)', schema: Problem },
  415: { description: 'The request body is not application/json, or is content-encoded', schema: Problem },
};
