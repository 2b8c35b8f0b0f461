// Which methods a concrete path is served with, for the 405 answer and its `Allow` header. The
// patterns are matched by find-my-way, Fastify's own router, built with the same router options,
// so a path matches here exactly when it matches a route of that method in Fastify.
import FindMyWay from 'find-my-way';
import type { FastifyInstance } from 'fastify';

type Router = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;
type RouterConfig = FindMyWay.Config<FindMyWay.HTTPVersion.V1> & { useSemicolonDelimiter?: boolean };

/** Methods in the order the `Allow` header lists them; others follow alphabetically. */
const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
/** Catch-all patterns (e.g. @fastify/cors's `OPTIONS *` preflight route) match every path. */
const CATCH_ALL = new Set(['*', '/*']);

const noop = (): void => undefined;

function byMethodOrder(a: string, b: string): number {
  const rank = (method: string): number => {
    const index = METHOD_ORDER.indexOf(method);
    return index === -1 ? METHOD_ORDER.length : index;
  };
  return rank(a) - rank(b) || a.localeCompare(b);
}

/** Fastify's effective router options: routerOptions first, then the deprecated top-level ones. */
export function routerConfigOf(app: FastifyInstance): RouterConfig {
  const initial = app.initialConfig;
  const router = initial.routerOptions ?? {};
  // Accepted in routerOptions at run time, though its type does not list it.
  const semicolon: unknown = Reflect.get(router, 'useSemicolonDelimiter');
  return {
    ignoreTrailingSlash: router.ignoreTrailingSlash ?? initial.ignoreTrailingSlash ?? false,
    ignoreDuplicateSlashes: router.ignoreDuplicateSlashes ?? initial.ignoreDuplicateSlashes ?? false,
    caseSensitive: router.caseSensitive ?? initial.caseSensitive ?? true,
    maxParamLength: router.maxParamLength ?? initial.maxParamLength ?? 100,
    allowUnsafeRegex: router.allowUnsafeRegex ?? initial.allowUnsafeRegex ?? false,
    useSemicolonDelimiter: typeof semicolon === 'boolean' ? semicolon : (initial.useSemicolonDelimiter ?? false),
  };
}

export class RouteTable {
  private readonly router: Router;
  private readonly methods = new Set<string>();

  constructor(config: RouterConfig) {
    this.router = FindMyWay(config);
  }

  /** Records a route as Fastify registered it (the `onRoute` hook's method and url). */
  add(method: string | readonly string[], url: string): void {
    if (CATCH_ALL.has(url)) return;
    for (const one of typeof method === 'string' ? [method] : method) {
      try {
        // Fastify accepted the method and routes with this same find-my-way, which knows it.
        this.router.on(one as FindMyWay.HTTPMethod, url, noop);
      } catch {
        // Already declared for this pattern (e.g. the same route under another constraint): the
        // method is recorded either way.
      }
      this.methods.add(one);
    }
  }

  /** The methods `path` (with or without its query string) is served with, in `Allow` order. */
  allowedMethods(path: string): string[] {
    const allowed: string[] = [];
    for (const method of this.methods) {
      let found: unknown = null;
      try {
        found = this.router.find(method as FindMyWay.HTTPMethod, path);
      } catch {
        found = null;
      }
      if (found !== null) allowed.push(method);
    }
    return allowed.sort(byMethodOrder);
  }
}
