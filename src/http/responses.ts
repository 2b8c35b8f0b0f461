import { Problem } from './problem.js';
import type { ResponseSpec } from './route.js';

/** The error responses every authenticated route may give, for the OpenAPI document. */
export const PROBLEM_RESPONSES: Record<number, ResponseSpec> = {
  400: { description: 'Invalid parameter (named in the problem)', schema: Problem },
  401: { description: 'Missing, malformed, expired or unverifiable token', schema: Problem },
  403: { description: 'The token lacks the scope this route needs', schema: Problem },
  404: { description: 'Not found', schema: Problem },
  429: { description: 'Rate limit exceeded (see Retry-After)', schema: Problem },
  503: { description: 'The data store is unavailable (see Retry-After)', schema: Problem },
};
