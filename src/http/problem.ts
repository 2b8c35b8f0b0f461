// RFC 9457 problem details: the one error shape every client sees.
import { z } from 'zod';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
const PROBLEM_TYPE_BASE = 'https://order-items-api.dev/problems/';

export const problemTypes = {
  badRequest: { slug: 'invalid-request', title: 'Invalid request' },
  unauthorized: { slug: 'unauthorized', title: 'Unauthorized' },
  forbidden: { slug: 'forbidden', title: 'Forbidden' },
  notFound: { slug: 'not-found', title: 'Not found' },
  methodNotAllowed: { slug: 'method-not-allowed', title: 'Method not allowed' },
  requestTimeout: { slug: 'request-timeout', title: 'Request timeout' },
  conflict: { slug: 'conflict', title: 'Conflict' },
  payloadTooLarge: { slug: 'payload-too-large', title: 'Payload too large' },
  uriTooLong: { slug: 'uri-too-long', title: 'URI too long' },
  unsupportedMediaType: { slug: 'unsupported-media-type', title: 'Unsupported media type' },
  expectationFailed: { slug: 'expectation-failed', title: 'Expectation failed' },
  tooManyRequests: { slug: 'too-many-requests', title: 'Too many requests' },
  headersTooLarge: { slug: 'headers-too-large', title: 'Request header fields too large' },
  internal: { slug: 'internal-error', title: 'Internal server error' },
  unavailable: { slug: 'service-unavailable', title: 'Service unavailable' },
  timeout: { slug: 'timeout', title: 'Gateway timeout' },
} as const;
export type ProblemKind = keyof typeof problemTypes;

export const InvalidParam = z
  .object({
    name: z.string().meta({ description: 'The parameter, e.g. "limit" or "body.status".' }),
    in: z.enum(['query', 'path', 'body', 'header']),
    reason: z.string(),
  })
  .meta({ id: 'InvalidParam' });

export const Problem = z
  .object({
    type: z.string().meta({
      description: `What went wrong, as a URI a client can switch on: ${Object.values(problemTypes)
        .map(({ slug }) => `\`${PROBLEM_TYPE_BASE}${slug}\``)
        .join(', ')}.`,
    }),
    title: z.string(),
    status: z.number().int().min(400).max(599),
    detail: z.string(),
    invalidParams: z.array(InvalidParam).optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details.' });
export type Problem = z.infer<typeof Problem>;
export type InvalidParam = z.infer<typeof InvalidParam>;

/** An error a handler throws on purpose: its detail is safe to show to the client. */
export class HttpProblem extends Error {
  readonly statusCode: number;
  constructor(
    readonly kind: ProblemKind,
    status: number,
    readonly detail: string,
    readonly invalidParams?: InvalidParam[],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
    this.statusCode = status;
  }
}

export const badRequest = (param: InvalidParam): HttpProblem =>
  new HttpProblem('badRequest', 400, `${param.in} parameter '${param.name}' ${param.reason}`, [param]);
export const notFound = (detail: string): HttpProblem => new HttpProblem('notFound', 404, detail);
export const conflict = (detail: string): HttpProblem => new HttpProblem('conflict', 409, detail);

export function problemBody(kind: ProblemKind, status: number, detail: string, invalidParams?: InvalidParam[]): Problem {
  const { slug, title } = problemTypes[kind];
  return {
    type: PROBLEM_TYPE_BASE + slug,
    title,
    status,
    detail,
    ...(invalidParams === undefined ? {} : { invalidParams }),
  };
}
