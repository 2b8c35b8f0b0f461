// Tokens whose signature and claims were verified, keyed by the exact token text. A client sends
// the same token on every request until it expires; verifying it again each time (header decode,
// option merging and a SHA-256 cache key in @fastify/jwt and fast-jwt) cost ~6% of the API's CPU.
// Only successful verifications are kept, so a forged or garbage token can never be served from
// here or push a good one out; the time window is checked on every hit.

export interface VerifiedToken<T> {
  readonly value: T;
  /** Epoch ms from which the token is valid: nbf minus the clock tolerance (0 without nbf). */
  readonly notBeforeMs: number;
  /** Epoch ms after which the cached verification is no longer used. */
  readonly validUntilMs: number;
}

export interface VerifiedTokenCacheOptions {
  /** Most tokens kept; the oldest entry makes room for a new one. */
  maxEntries: number;
  /** Longest time a verification is reused, so that a JWKS key rotation takes effect in bounded time. */
  maxAgeMs: number;
  clockToleranceMs: number;
}

export class VerifiedTokenCache<T> {
  readonly #entries = new Map<string, VerifiedToken<T>>();

  constructor(private readonly options: VerifiedTokenCacheOptions) {}

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, nowMs: number): T | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    if (nowMs > entry.validUntilMs) {
      this.#entries.delete(token);
      return undefined;
    }
    return nowMs >= entry.notBeforeMs ? entry.value : undefined;
  }

  /**
   * Keeps a verified token until the earliest of its expiry (plus the clock tolerance, as the
   * verifier allows) and maxAgeMs from now. A token without a numeric exp is not kept.
   */
  set(token: string, claims: { exp?: unknown; nbf?: unknown }, value: T, nowMs: number): void {
    if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) return;
    const { clockToleranceMs, maxAgeMs, maxEntries } = this.options;
    const validUntilMs = Math.min(claims.exp * 1000 + clockToleranceMs, nowMs + maxAgeMs);
    const notBeforeMs = typeof claims.nbf === 'number' && Number.isFinite(claims.nbf) ? claims.nbf * 1000 - clockToleranceMs : 0;
    if (nowMs > validUntilMs) return;
    this.#entries.delete(token);
    if (this.#entries.size >= maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(token, { value, notBeforeMs, validUntilMs });
  }
}
