// What request logs never hold: credentials and cursors, whether they come as headers (pino's
// redact paths) or inside the URL (the request serializer).

/**
 * Paths pino censors in every log line: the bearer token and cookies wherever request headers
 * are logged (Fastify's `req` serializer, or a `headers` object logged by hand), and cursors.
 */
export const LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  '*.headers.authorization',
  '*.headers.cookie',
  'req.query.cursor',
  // Node's HTTP parser errors hold the request bytes as read, Authorization header included.
  'err.rawPacket',
  '*.err.rawPacket',
];

/** Query parameters a caller might put a credential in (wrongly): their values are never logged. */
const SECRET_QUERY_PARAMETER = /^(?:access_?token|id_?token|refresh_?token|token|jwt|bearer|auth|authorization|api_?key|key|secret|password|code|cursor)$/i;
/** A value shaped like a JWS (header.payload.signature, header starting `{"`): censored whatever its name. */
const JWS_LIKE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The URL as logged: the path, and the query with the values of credential-like parameters (by
 * name, or by shape) censored. `redact` paths cannot reach inside the URL string, and a token a
 * client sent as `?access_token=` (refused: only the header is read) would otherwise be logged.
 */
export function urlForLog(url: string): string {
  const mark = url.indexOf('?');
  if (mark === -1) return url;
  const query = url
    .slice(mark + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      if (equals === -1) return pair;
      const name = pair.slice(0, equals);
      let value = pair.slice(equals + 1);
      try {
        value = decodeURIComponent(value.replaceAll('+', ' '));
      } catch {
        // Undecodable: judged as it is.
      }
      let decodedName = name;
      try {
        decodedName = decodeURIComponent(name);
      } catch {
        // idem
      }
      return SECRET_QUERY_PARAMETER.test(decodedName) || JWS_LIKE.test(value) ? `${name}=[redacted]` : pair;
    })
    .join('&');
  return `${url.slice(0, mark)}?${query}`;
}

interface LoggedRequest {
  method: string;
  url: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/** Fastify's request serializer, with the URL as urlForLog writes it. */
export function serializeRequest(request: LoggedRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: urlForLog(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
