// Verifies the bearer token, derives the tenant from its claims and enforces each route's access
// rule. Every route must declare its access; a /v1 route without one stops the app at startup.
import { createHash, createPublicKey } from 'node:crypto';
import fastifyJwt, { type FastifyJWTOptions } from '@fastify/jwt';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import fp from 'fastify-plugin';
import type { Config, JwtKeyConfig } from '../config.js';
import { TenantScope, isSellerId } from '../auth/tenant-scope.js';
import { JwksKeyStore, SigningKeysUnavailableError } from '../auth/jwks-key-store.js';
import { tokenTextProblem } from '../auth/token-text.js';
import { VerifiedTokenCache } from '../auth/verified-token-cache.js';
import { HttpProblem } from '../http/problem.js';
import { hookList, type Access, type Scope } from '../http/route.js';

const issueTenantScope = TenantScope.claimIssuer();

export const MAX_TOKEN_BYTES = 8192;
/** After a JWKS refetch that did not know a kid, other unknown kids are refused this long. */
export const JWKS_MISS_COOLDOWN_MS = 10_000;
const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** A verified token is reused at most this long, so that a JWKS key rotation takes effect. */
export const VERIFIED_TOKEN_MAX_AGE_MS = 60_000;
const VERIFIED_TOKEN_CACHE_ENTRIES = 2_000;
// The scheme name is case-insensitive (RFC 9110 §11.1): `bearer` is as good as `Bearer`.
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;
// Headers that would make a verifier fetch or trust a key named by the token itself.
const KEY_INJECTION_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'];

export interface Principal {
  readonly subject: string | undefined;
  readonly scopes: ReadonlySet<string>;
  /**
   * Who is calling, for per-caller limits: the subject, or for a token without one (some
   * service-account tokens) a digest of the token itself, so that such a caller never shares a
   * bucket with anonymous traffic from the same address.
   */
  readonly caller: string;
}

/** What a verified token yields: its claims and the principal they describe. */
interface VerifiedClaims {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly principal: Principal;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    tenant: TenantScope | null;
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: Record<string, unknown>;
  }
}

const REALM = 'Bearer realm="order-items-api"';

/**
 * A 401 with its RFC 6750 §3 challenge: `error="invalid_token"` for a token refused,
 * `invalid_request` for an Authorization header that holds no well-formed bearer token (or two
 * of them), no error when the request carried no bearer credentials at all.
 */
export class AuthError extends HttpProblem {
  constructor(detail: string, challengeError: 'invalid_token' | 'invalid_request' | null = 'invalid_token') {
    super('unauthorized', 401, detail, undefined, {
      'www-authenticate': challengeError === null ? REALM : `${REALM}, error="${challengeError}"`,
    });
  }
}

/** A 403: the token is valid but lacks the route's scope (RFC 6750 §3.1 `insufficient_scope`). */
class InsufficientScopeError extends HttpProblem {
  constructor(scope: string) {
    super('forbidden', 403, `token lacks the "${scope}" scope`, undefined, {
      'www-authenticate': `${REALM}, error="insufficient_scope", scope="${scope}"`,
    });
  }
}

/** The tenant scope of an authenticated tenant route; a programming error anywhere else. */
export function requireTenant(request: FastifyRequest): TenantScope {
  if (request.tenant === null) throw new Error(`route ${request.routeOptions.url ?? ''} has no tenant scope`);
  return request.tenant;
}

type Algorithm = 'HS256' | 'RS256' | 'ES256' | 'ES384' | 'ES512' | 'PS256';

/** The accepted algorithms follow from the kind of key alone, so HS/RS confusion cannot happen. */
function algorithmsFor(key: JwtKeyConfig): Algorithm[] {
  switch (key.kind) {
    case 'secret':
      return ['HS256'];
    case 'public-key': {
      const publicKey = createPublicKey(key.pem);
      if (publicKey.asymmetricKeyType === 'rsa') return ['RS256'];
      if (publicKey.asymmetricKeyType === 'ec') {
        const curve = publicKey.asymmetricKeyDetails?.namedCurve;
        if (curve === 'prime256v1' || curve === 'P-256') return ['ES256'];
        throw new Error(`JWT_PUBLIC_KEY: EC curve ${String(curve)} is not supported (use P-256)`);
      }
      throw new Error(`JWT_PUBLIC_KEY: unsupported key type ${String(publicKey.asymmetricKeyType)}`);
    }
    case 'jwks':
      return ['RS256', 'ES256'];
  }
}

function jwtSecret(key: JwtKeyConfig): FastifyJWTOptions['secret'] {
  switch (key.kind) {
    case 'secret':
      return key.secret;
    case 'public-key':
      // Verify-only: there is no private half, so this service can never mint tokens.
      return { public: key.pem, private: '' };
    case 'jwks': {
      const store = new JwksKeyStore(key.url, { maxAgeMs: key.maxAgeMs, missCooldownMs: JWKS_MISS_COOLDOWN_MS, fetchTimeoutMs: JWKS_FETCH_TIMEOUT_MS });
      // The key is looked up by `kid` in the configured set only: `jku`, `x5u` and `jwk` headers
      // are never followed.
      return (_request, tokenOrHeader, callback) => {
        // With decode.complete the callback receives {header, payload}: kid and alg must come
        // from the protected header, never from claims the token's author chose.
        if (!('header' in tokenOrHeader) || typeof tokenOrHeader.header !== 'object' || tokenOrHeader.header === null) {
          callback(new AuthError('token has no usable kid'), undefined);
          return;
        }
        const header: Record<string, unknown> = tokenOrHeader.header;
        const { kid, alg } = header;
        if (typeof kid !== 'string' || typeof alg !== 'string' || kid.length > 256) {
          callback(new AuthError('token has no usable kid'), undefined);
          return;
        }
        store.keyFor(kid, alg).then(
          (pem) => callback(null, pem),
          (error: unknown) =>
            callback(
              error instanceof SigningKeysUnavailableError
                ? // Whether the token is valid cannot be known now: not the caller's fault (401).
                  new HttpProblem('unavailable', 503, 'the signing keys cannot be fetched; retry later', undefined, {
                    'retry-after': String(Math.ceil(JWKS_MISS_COOLDOWN_MS / 1000)),
                  })
                : new AuthError('token signing key is unknown'),
              undefined,
            ),
        );
      };
    }
  }
}

function scopesOf(claims: Record<string, unknown>): Set<string> {
  const scopes = new Set<string>();
  if (typeof claims.scope === 'string') for (const s of claims.scope.split(' ')) if (s !== '') scopes.add(s);
  if (Array.isArray(claims.scp)) for (const s of claims.scp) if (typeof s === 'string') scopes.add(s);
  return scopes;
}

function decodeHeader(token: string): Record<string, unknown> {
  const [encoded] = token.split('.');
  try {
    const header: unknown = JSON.parse(Buffer.from(encoded ?? '', 'base64url').toString('utf8'));
    if (header !== null && typeof header === 'object' && !Array.isArray(header)) return header as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new AuthError('malformed token');
}

/**
 * The 401 detail: why the token was refused, never what the service expected (no issuer,
 * audience or key text). @fastify/jwt re-codes several fast-jwt errors as one
 * FST_JWT_AUTHORIZATION_TOKEN_INVALID and keeps fast-jwt's sentence in the message.
 */
function describeJwtError(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  const message = error instanceof Error ? error.message : '';
  if (code.includes('EXPIRED')) return 'token expired';
  if (code.includes('INACTIVE')) return 'token not yet valid';
  if (code.includes('UNSIGNED') || code.includes('MISSING_SIGNATURE')) return 'token is not signed (alg "none" is not accepted)';
  const missing = /The (iss|aud|exp) claim is required/.exec(message)?.[1] ?? (code.includes('MISSING_REQUIRED_CLAIM') ? '' : undefined);
  if (missing !== undefined) return missing === '' ? 'token is missing a required claim' : `token is missing its "${missing}" claim`;
  const claimRefused = /The (iss|aud) claim value is not allowed|None of (iss|aud) claim values are allowed/.exec(message);
  const refused = claimRefused?.[1] ?? claimRefused?.[2];
  if (refused !== undefined) return `token ${refused === 'iss' ? 'issuer' : 'audience'} is not accepted`;
  if (code.includes('INVALID_CLAIM_VALUE')) return 'token issuer or audience is not accepted';
  if (code.includes('INVALID_ALGORITHM')) return 'token algorithm is not accepted';
  if (code.includes('INVALID_SIGNATURE') || /signature is invalid/.test(message)) return 'token signature is invalid';
  return 'token is invalid';
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

function verifiedClaims(claims: Record<string, unknown>, token: string): VerifiedClaims {
  const subject = typeof claims.sub === 'string' ? claims.sub : undefined;
  const caller = subject === undefined ? `token:${createHash('sha256').update(token).digest('base64url').slice(0, 22)}` : `subject:${subject}`;
  return { claims, principal: { subject, scopes: scopesOf(claims), caller } };
}

/** The token of a well-formed `Authorization: Bearer <jws>` header. */
function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (header === undefined) throw new AuthError('missing bearer token', null);
  if (header.length > MAX_TOKEN_BYTES + 7) throw new AuthError('token too large');
  const match = BEARER.exec(header);
  // Another scheme (Basic, …) presents no bearer token: its challenge names no error (RFC 6750 §3.1).
  if (match === null) {
    throw new AuthError('malformed Authorization header: expected "Bearer <jwt>"', /^bearer(\s|$)/i.test(header) ? 'invalid_request' : null);
  }
  // Node keeps the first of several Authorization fields; a proxy may read another one, and the
  // two would disagree about who is calling (RFC 9110 §5.3: it is not a list field).
  if (authorizationFields(request.raw.rawHeaders) > 1) throw new AuthError('more than one Authorization header', 'invalid_request');
  return match[1] as string;
}

function authorizationFields(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name !== undefined && name.length === 13 && name.toLowerCase() === 'authorization') count += 1;
  }
  return count;
}

/** 9999-12-31T23:59:59Z: the last second an ISO 8601 date (and any identity provider) writes. */
const LAST_NUMERIC_DATE = 253_402_300_799;

/**
 * What fast-jwt leaves open in the time claims: a number it compares, whatever it is. `exp` of
 * 1e400 is Infinity once parsed, 1e300 a date no calendar holds (tokens that never expire), and an
 * `iat` after now is a token from an issuer whose clock (or forger) is wrong: all are refused.
 */
function checkTimeClaims(claims: Record<string, unknown>, nowMs: number, clockToleranceMs: number): void {
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    const value = claims[name];
    if (value !== undefined && (typeof value !== 'number' || !(Math.abs(value) <= LAST_NUMERIC_DATE))) {
      throw new AuthError(`token "${name}" claim must be a NumericDate up to 9999-12-31`);
    }
  }
  if (typeof claims.iat === 'number' && claims.iat * 1000 > nowMs + clockToleranceMs) throw new AuthError('token issued in the future ("iat")');
}

/** Full verification of a token not verified before (or no longer inside its reuse window). */
async function verify(
  request: FastifyRequest,
  token: string,
  verified: VerifiedTokenCache<VerifiedClaims>,
  clockToleranceMs: number,
): Promise<VerifiedClaims> {
  const jwtHeader = decodeHeader(token);
  const textProblem = tokenTextProblem(token);
  if (textProblem !== undefined) throw new AuthError(textProblem);
  // RFC 7515 §4.1.11: a critical header we do not understand makes the token invalid.
  if ('crit' in jwtHeader) throw new AuthError('token has critical headers this service does not understand');
  for (const name of KEY_INJECTION_HEADERS) {
    if (name in jwtHeader) throw new AuthError(`token header "${name}" is not accepted`);
  }
  let claims: Record<string, unknown>;
  try {
    claims = await request.jwtVerify<Record<string, unknown>>();
  } catch (error) {
    if (error instanceof HttpProblem) throw error;
    // fast-jwt wraps what the key callback failed with.
    const cause: unknown = typeof error === 'object' && error !== null && 'originalError' in error ? error.originalError : undefined;
    if (cause instanceof HttpProblem) throw cause;
    throw new AuthError(describeJwtError(error));
  }
  checkTimeClaims(claims, Date.now(), clockToleranceMs);
  const result = verifiedClaims(claims, token);
  verified.set(token, claims, result, Date.now());
  return result;
}

function authorize(request: FastifyRequest, verified: VerifiedClaims, access: Exclude<Access, { kind: 'public' }>, tenantClaim: string): void {
  const { claims, principal } = verified;
  request.principal = principal;
  // The scope first: a valid token without the route's scope (a service token on a data route,
  // a seller token on a pipeline route) is a 403, whatever its other claims say.
  if (!principal.scopes.has(access.scope)) throw new InsufficientScopeError(access.scope);
  if (access.kind === 'tenant') {
    const sellerId = claims[tenantClaim];
    // Validated as a string before any query: a numeric claim compared with a VARCHAR column
    // would match rows it must not.
    if (!isSellerId(sellerId)) throw new AuthError(`token claim "${tenantClaim}" must be a 32-character lowercase hex seller id`);
    request.tenant = issueTenantScope(sellerId);
  }
}

async function authPlugin(app: FastifyInstance, options: { config: Config; benchmarkSellerId?: string | undefined }): Promise<void> {
  const { jwt } = options.config;
  const { benchmarkSellerId } = options;
  const verified = new VerifiedTokenCache<VerifiedClaims>({
    maxEntries: VERIFIED_TOKEN_CACHE_ENTRIES,
    maxAgeMs: VERIFIED_TOKEN_MAX_AGE_MS,
    clockToleranceMs: jwt.clockToleranceSeconds * 1000,
  });
  await app.register(fastifyJwt, {
    secret: jwtSecret(jwt.key),
    verify: {
      algorithms: algorithmsFor(jwt.key),
      // fast-jwt checks allowedIss/allowedAud only when the claim is present: a configured
      // issuer or audience must therefore also be required, or a token without it passes.
      requiredClaims: ['exp', ...(jwt.issuer === undefined ? [] : ['iss']), ...(jwt.audience === undefined ? [] : ['aud'])],
      // @fastify/jwt hands this to fast-jwt, which counts milliseconds.
      clockTolerance: jwt.clockToleranceSeconds * 1000,
      ...(jwt.issuer === undefined ? {} : { allowedIss: jwt.issuer }),
      ...(jwt.audience === undefined ? {} : { allowedAud: jwt.audience }),
      cache: 1000,
    },
    // complete: the key callback (JWKS mode) needs the token header; with complete: false
    // @fastify/jwt hands it the payload instead, so kid/alg would be read from the claims.
    decode: { complete: true },
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('tenant', null);

  app.addHook('onRoute', (route) => {
    const access = route.config?.access;
    if (access === undefined) {
      if (route.url.startsWith('/v1')) throw new Error(`route ${route.method} ${route.url} declares no access rule`);
      return;
    }
    if (access.kind === 'public') return;
    // onRequest, so that an unauthenticated caller learns nothing, not even which input is invalid.
    const existing = hookList(route.onRequest);
    route.onRequest = [
      benchmarkSellerId === undefined
        ? // A callback hook, so that a token verified before costs no promise: the same text,
          // still inside its time window, carries the header, signature and claims checked in
          // verify().
          (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
            const admit = (claims: VerifiedClaims): void => {
              try {
                authorize(request, claims, access, jwt.tenantClaim);
              } catch (error) {
                done(asError(error));
                return;
              }
              done();
            };
            let token: string;
            try {
              token = bearerToken(request);
            } catch (error) {
              done(asError(error));
              return;
            }
            const known = verified.get(token, Date.now());
            if (known !== undefined) admit(known);
            else verify(request, token, verified, jwt.clockToleranceSeconds * 1000).then(admit, done);
          }
        : // Benchmark baseline only (BuildOptions.benchmarkWithoutAuthAndMetricsAsSeller, never
          // set by server.ts or the environment): no token is read; the route's scope is granted.
          async (request: FastifyRequest) => {
            const claims = { sub: 'benchmark', scope: access.scope, [jwt.tenantClaim]: benchmarkSellerId };
            authorize(request, verifiedClaims(claims, 'benchmark'), access, jwt.tenantClaim);
          },
      ...existing,
    ];
  });
}

export type { Scope };
export default fp(authPlugin, { name: 'auth', fastify: '5.x' });
