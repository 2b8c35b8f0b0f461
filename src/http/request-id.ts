// Every response names its request (`x-request-id`), and every log line of that request carries
// the same id (`reqId`), so a caller's report or a proxy's log leads to the API's log lines.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const REQUEST_ID_HEADER = 'x-request-id';
// A plain token only: the id is echoed in a header and written to logs.
const CALLER_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The id a caller or proxy sent when it is a plain token (one id across services), else a new one. */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && CALLER_REQUEST_ID.test(given) ? given : randomUUID();
}
