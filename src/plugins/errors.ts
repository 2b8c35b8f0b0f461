// The one error handler: every failure leaves as RFC 9457 problem+json; 5xx details are logged,
// never sent. That includes what fails before routing (Fastify's `frameworkErrors`) and before
// Fastify sees a request at all (Node's HTTP parser: the `clientErrorHandler`).
import { randomUUID } from 'node:crypto';
import { ServerResponse, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { DatabaseUnavailableError, QueryTimeoutError } from '../db/database.js';
import { corsHeadersFor } from '../http/cors-headers.js';
import {
  HttpProblem,
  PROBLEM_CONTENT_TYPE,
  problemBody,
  type InvalidParam,
  type ProblemKind,
} from '../http/problem.js';
import { REQUEST_ID_HEADER, requestIdOf } from '../http/request-id.js';
import { RouteTable, routerConfigOf } from '../http/route-table.js';
import { responseHeaders } from './security.js';

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
  // The document itself (a body that is not an object): named after its part, never "".
  const name = path === '' ? where : path;
  if (issue.keyword === 'type' && where === 'body') {
    // Body values are never coerced: `"rowsIn": "5"` is a string, whatever it spells.
    return { name, in: where, reason: `must be a JSON ${String(params.type)}` };
  }
  if (issue.keyword === 'type' && params.type !== 'array') {
    return { name, in: where, reason: `must be a single ${String(params.type)} value` };
  }
  if (issue.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    return { name, in: where, reason: `must be one of ${params.allowedValues.map(String).join(', ')}` };
  }
  return { name, in: where, reason: issue.message ?? 'is invalid' };
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
    case 405:
      return 'methodNotAllowed';
    case 408:
      return 'requestTimeout';
    case 409:
      return 'conflict';
    case 413:
      return 'payloadTooLarge';
    case 414:
      return 'uriTooLong';
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

/** Safe details for the errors Fastify raises before routing (its own messages echo the path). */
const FRAMEWORK_ERROR_DETAILS: Record<string, string> = {
  FST_ERR_BAD_URL: 'the request target is not a valid path (malformed percent-encoding, or not a path at all)',
  FST_ERR_MAX_PARAM_LENGTH: 'a path parameter is longer than the router accepts',
};

/**
 * Fastify's `frameworkErrors` option: a URL the router cannot decode (`/v1/orders/%FF`), a path
 * parameter over `maxParamLength`. These are answered before routing, so no hook has run: the
 * headers every other response gets from the security plugin's onRequest hook are set here.
 */
export function frameworkErrorHandler(cors: {
  origins: readonly string[];
  exposedHeaders: readonly string[];
}): (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => FastifyReply {
  return (error, request, reply) => {
    // @fastify/cors never runs for these: an allowed origin gets its headers here.
    reply.headers(corsHeadersFor(request.headers.origin, cors.origins, cors.exposedHeaders));
    return answerFrameworkError(error, request, reply);
  };
}

function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  // No onResponse hook runs for these either, and Fastify keeps no start time for them: the
  // request is counted here, as unmatched, timed from the router's refusal (it comes right after
  // the head is parsed) to the answer sent.
  const refusedAt = process.hrtime.bigint();
  reply.raw.once('finish', () => {
    request.server.metrics.httpRequestDuration.observe(
      { method: request.method, route: 'unmatched', status_code: String(reply.statusCode) },
      Number(process.hrtime.bigint() - refusedAt) / 1e9,
    );
  });
  reply.headers(responseHeaders());
  reply.header(REQUEST_ID_HEADER, request.id);
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
  if (status >= 500) {
    request.log.error({ err: error }, 'request failed before routing');
    return sendProblem(reply, 'internal', status, 'an internal error occurred');
  }
  return sendProblem(reply, kindForStatus(status), status, FRAMEWORK_ERROR_DETAILS[error.code] ?? 'the request could not be routed');
}

/** What the HTTP parser refused, as Node names it, and how it is answered. */
function clientErrorAnswer(code: string): { status: number; kind: ProblemKind; detail: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, kind: 'headersTooLarge', detail: 'the request head is larger than the server accepts' };
    // Node's requestTimeout: the request was not received in time (Fastify's default says 408 too).
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, kind: 'requestTimeout', detail: 'the request was not received within the time limit' };
    default:
      return { status: 400, kind: 'badRequest', detail: 'the request is not valid HTTP/1.1' };
  }
}

/**
 * Fastify's `clientErrorHandler` (Node's 'clientError' event): the HTTP parser refused the request
 * (malformed header line, Content-Length with Transfer-Encoding, an unknown method, a head over
 * the size limit). There is no request object and no reply: a complete HTTP/1.1 response is written
 * on the socket, which is then closed. Bound to the Fastify instance by Fastify.
 */
export function answerClientError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
  // A reset connection is already gone; there is nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const inFlight: unknown = Reflect.get(socket, '_httpMessage');
  // Bytes after a request that said `Connection: close` (or an HTTP/1.0 one): that request is
  // still owed its answer (RFC 9112 §9.6), which then closes the connection; the bytes are ignored.
  if (error.code === 'HPE_CLOSED_CONNECTION' && inFlight instanceof ServerResponse && !inFlight.writableFinished) {
    inFlight.once('close', () => socket.destroy());
    return;
  }
  const { status, kind, detail } = clientErrorAnswer(error.code);
  const requestId = randomUUID();
  // A connection that never sent a byte (a browser's preconnect, a TCP health check) timing out
  // is not a request.
  if (socket.bytesRead > 0) this.metrics.httpRequestsRefused.inc({ status_code: String(status) });
  // Named fields only: Node's parser error carries the raw request bytes (`rawPacket`), headers
  // and bearer token included, and the error serializer would log them.
  this.log.debug({ reqId: requestId, code: error.code, reason: error.message, bytesParsed: error.bytesParsed }, 'client error');
  // Answer when the refused bytes are the only request on the connection, or the body of the one
  // in flight (its head was read, its body never completed: a short Content-Length, a bad chunk,
  // the time limit) whose response has not started: then this is the only answer its client gets.
  // A response pending for an earlier, complete request owns the connection: written now, this
  // answer would be read as that request's (pipelining), so the connection just closes.
  const answerable =
    ((inFlight === null || inFlight === undefined) && !readingAnsweredBody(socket)) ||
    (inFlight instanceof ServerResponse && !inFlight.headersSent && !inFlight.req.complete);
  if (socket.writable && answerable) {
    const { body, headers } = closingProblem(kind, status, detail, requestId);
    const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${head}\r\n${body}`);
  }
  socket.destroy();
}

/**
 * Connections whose last request was answered before its body arrived whole (a 401 at the door,
 * a 413): the body's bytes that come later, or never, belong to a request already answered.
 */
const answeredBeforeBody = new WeakMap<Socket, IncomingMessage>();

/**
 * Called by the server for a request that announces a body: if its answer goes out before the
 * body is complete, a later parser error or timeout on that body must not answer it a second time.
 */
export function watchUnreadBody(request: IncomingMessage, response: ServerResponse): void {
  response.once('finish', () => {
    if (!request.complete) answeredBeforeBody.set(request.socket, request);
  });
}

/** Whether the parser is still reading the body of a request already answered on this connection. */
function readingAnsweredBody(socket: Socket): boolean {
  // `complete` is set by the parser as the body's last byte is read (Node drops the bytes of an
  // answered request's body): from then on, the bytes that follow are a new request.
  const answered = answeredBeforeBody.get(socket);
  return answered !== undefined && !answered.complete;
}

/** A problem answered outside Fastify, which then closes the connection: its body and headers. */
function closingProblem(kind: ProblemKind, status: number, detail: string, requestId: string): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(problemBody(kind, status, detail));
  return {
    body,
    headers: {
      ...responseHeaders(),
      [REQUEST_ID_HEADER]: requestId,
      'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`,
      'content-length': String(Buffer.byteLength(body)),
      connection: 'close',
    },
  };
}

/** Why a request is refused from its head alone, before Fastify sees it. */
export type HeadRefusal = 'tooManyFields' | 'missingHost' | 'duplicateHost' | 'unmetExpectation';

/**
 * Header fields a request may carry. Node keeps only so many of a request's fields (the rest are
 * dropped unseen), so a second Host or Authorization field after enough filler lines would escape
 * the checks that refuse two of them; real clients and proxies send a few dozen.
 */
export const MAX_HEADER_FIELDS = 200;

const HEAD_REFUSALS: Record<HeadRefusal, { status: number; kind: ProblemKind; detail: string }> = {
  tooManyFields: { status: 431, kind: 'headersTooLarge', detail: `a request may carry at most ${MAX_HEADER_FIELDS} header fields` },
  missingHost: { status: 400, kind: 'badRequest', detail: 'an HTTP/1.1 request must carry a Host header' },
  duplicateHost: { status: 400, kind: 'badRequest', detail: 'a request must carry exactly one Host header' },
  unmetExpectation: { status: 417, kind: 'expectationFailed', detail: 'the only expectation this server meets is Expect: 100-continue' },
};

/** What the server's request listener checks before Fastify: the field count, RFC 9112 §3.2's Host rules. */
export function headRefusal(request: IncomingMessage): HeadRefusal | undefined {
  let hosts = 0;
  const raw = request.rawHeaders;
  if (raw.length > 2 * MAX_HEADER_FIELDS) return 'tooManyFields';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name !== undefined && name.length === 4 && name.toLowerCase() === 'host') hosts += 1;
  }
  if (hosts > 1) return 'duplicateHost';
  return hosts === 0 && request.httpVersion === '1.1' ? 'missingHost' : undefined;
}

/**
 * A request refused from its head (RFC 9112 §3.2: no Host, or more than one, gets a 400; an
 * `Expect` other than 100-continue a 417), answered before Fastify sees it, with the headers every
 * response carries; the connection is closed. Node's own answers to these are empty.
 */
export function answerRefusedHead(request: IncomingMessage, response: ServerResponse, refusal: HeadRefusal): number {
  const { status, kind, detail } = HEAD_REFUSALS[refusal];
  const { body, headers } = closingProblem(kind, status, detail, requestIdOf(request));
  response.writeHead(status, headers);
  response.end(body);
  return status;
}

async function errorsPlugin(app: FastifyInstance): Promise<void> {
  // Every route, as Fastify registers it (this plugin is registered first, so it sees them all),
  // for the 405 below.
  const routes = new RouteTable(routerConfigOf(app));
  app.addHook('onRoute', (route) => routes.add(route.method, route.url));

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
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      // JSON is the only body parser registered (app.ts removes Fastify's text/plain one).
      return sendProblem(reply, 'unsupportedMediaType', 415, 'the request body must be application/json');
    }
    // Fastify's own 4xx errors (body too large, bad JSON) carry safe messages.
    if (status === 400 && (error.code?.startsWith('FST_ERR_CTP_') === true || error instanceof SyntaxError)) {
      // The body could not be read as JSON (empty, malformed, a forbidden __proto__ key): a 400
      // names what is wrong, and here that is the body as a whole.
      return sendProblem(reply, 'badRequest', 400, `body: ${error.message}`, [{ name: 'body', in: 'body', reason: error.message }]);
    }
    return sendProblem(reply, kindForStatus(status), status, error.message);
  });

  // No route for this method and path. When the path is served with other methods, that is 405
  // with `Allow` (RFC 9110 §15.5.6), decided from the route table alone: the same for every caller,
  // token or not, so it tells nothing about any tenant's data. Otherwise 404.
  // OPTIONS (chosen: 405, not 204): with CORS on (CORS_ORIGINS set) @fastify/cors answers every
  // OPTIONS request in its onRequest hook (a preflight, or its own 400 for one that is not) and
  // none gets here. With CORS off, an OPTIONS request reaches this handler (through cors's
  // catch-all route) and is answered like any other method the path is not served with: 405 with
  // the `Allow` list (which names no OPTIONS, as no route serves it), or 404 for an unknown path,
  // as before. A 204 would advertise OPTIONS as a method these paths support.
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = routes.allowedMethods(request.url);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      reply.header('allow', allowed.join(', '));
      return sendProblem(reply, 'methodNotAllowed', 405, `${request.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`);
    }
    return sendProblem(reply, 'notFound', 404, `no route ${request.method} ${path}`);
  });
}

export default fp(errorsPlugin, { name: 'errors', fastify: '5.x' });
