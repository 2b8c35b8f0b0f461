// The CORS headers of answers written outside @fastify/cors (the load-shedding gate's 503, the
// errors raised before routing): without them a browser sees an opaque network error instead of
// the problem document.

/** The headers for `origin` when it is allowed; none otherwise. */
export function corsHeadersFor(origin: string | undefined, allowedOrigins: readonly string[], exposedHeaders: readonly string[]): Record<string, string> {
  if (origin === undefined || !allowedOrigins.includes(origin)) return {};
  return {
    'access-control-allow-origin': origin,
    vary: 'Origin',
    ...(exposedHeaders.length > 0 ? { 'access-control-expose-headers': exposedHeaders.join(', ') } : {}),
  };
}
