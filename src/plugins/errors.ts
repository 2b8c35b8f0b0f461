// The one error handler: every failure leaves as RFC 9457 problem+json; 5xx details are logged,
// never sent.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { DatabaseUnavailableError, QueryTimeoutError } from '../db/database.js';
import {
  HttpProblem,
  PROBLEM_CONTENT_TYPE,
  problemBody,
  type InvalidParam,
  type ProblemKind,
} from '../http/problem.js';

export const DATABASE_RETRY_AFTER_SECONDS = 5;

const LOCATION: Record<string, InvalidParam['in']> = {
  querystring: 'query',
  params: 'path',
  body: 'body',
  headers: 'header',
};

interface AjvIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function describeValidation(issue: AjvIssue, where: InvalidParam['in']): InvalidParam {
  const path = (issue.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  const params = issue.params ?? {};
  if (issue.keyword === 'required') {
    const missing = String(params.missingProperty ?? '');
    return { name: path === '' ? missing : `${path}.${missing}`, in: where, reason: 'is required' };
  }
  if (issue.keyword === 'additionalProperties') {
    const extra = String(params.additionalProperty ?? '');
    return { name: path === '' ? extra : `${path}.${extra}`, in: where, reason: 'is not a known parameter' };
  }
  if (issue.keyword === 'type' && params.type !== 'array') {
    return { name: path, in: where, reason: `must be a single ${String(params.type)} value` };
  }
  return { name: path, in: where, reason: issue.message ?? 'is invalid' };
}

export function sendProblem(
  reply: FastifyReply,
  kind: ProblemKind,
  status: number,
  detail: string,
  invalidParams?: InvalidParam[],
): FastifyReply {
  return reply
    .code(status)
    .type(PROBLEM_CONTENT_TYPE)
    .header('cache-control', 'no-store')
    .send(JSON.stringify(problemBody(kind, status, detail, invalidParams)));
}

function kindForStatus(status: number): ProblemKind {
  switch (status) {
    case 400:
      return 'badRequest';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'notFound';
    case 409:
      return 'conflict';
    case 413:
      return 'payloadTooLarge';
    case 415:
      return 'unsupportedMediaType';
    case 429:
      return 'tooManyRequests';
    case 431:
      return 'headersTooLarge';
    case 503:
      return 'unavailable';
    case 504:
      return 'timeout';
    default:
      return status >= 500 ? 'internal' : 'badRequest';
  }
}

async function errorsPlugin(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof HttpProblem) {
      for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
      return sendProblem(reply, error.kind, error.statusCode, error.detail, error.invalidParams);
    }
    if (error.validation !== undefined) {
      const where = LOCATION[error.validationContext ?? 'querystring'] ?? 'query';
      const invalid = error.validation.map((issue) => describeValidation(issue as AjvIssue, where));
      const first = invalid[0];
      const detail = first === undefined ? 'invalid request' : `${first.in} parameter '${first.name}' ${first.reason}`;
      return sendProblem(reply, 'badRequest', 400, detail, invalid);
    }
    if (error instanceof DatabaseUnavailableError || error instanceof QueryTimeoutError) {
      request.log.warn({ err: error }, 'database unavailable');
      reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
      const detail =
        error instanceof QueryTimeoutError
          ? 'the data store did not answer within its time budget; retry later'
          : 'the data store is unavailable; retry later';
      return sendProblem(reply, 'unavailable', 503, detail);
    }
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return sendProblem(reply, 'internal', status, 'an internal error occurred');
    }
    if (status === 429) {
      return sendProblem(reply, 'tooManyRequests', 429, 'rate limit exceeded; retry after the delay in Retry-After');
    }
    // Fastify's own 4xx errors (body too large, bad JSON, bad media type) carry safe messages.
    return sendProblem(reply, kindForStatus(status), status, error.message);
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 'notFound', 404, `no route ${request.method} ${request.url.split('?')[0] ?? ''}`),
  );
}

export default fp(errorsPlugin, { name: 'errors', fastify: '5.x' });
