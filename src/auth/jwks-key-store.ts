// The signing keys of a JWKS URL, by kid. The whole set is fetched at once and replaced at once:
// a key the identity provider removed stops being trusted at the next refresh. The set is
// refreshed when it is older than its maximum age, or when a token names a kid it does not hold
// (key rotation), at most once per miss cooldown for unknown kids (a flood of random kids cannot
// turn this service into an amplifier against the identity provider). When the provider cannot
// be reached, the last set it gave stays in use: nothing new can be learnt then, and refusing
// every token would turn its outage into ours.
import { createPublicKey, type JsonWebKey } from 'node:crypto';

export class UnknownSigningKeyError extends Error {
  override readonly name = 'UnknownSigningKeyError';
}

/** The set could not be fetched and holds no key for this token: whether it is valid is unknown. */
export class SigningKeysUnavailableError extends Error {
  override readonly name = 'SigningKeysUnavailableError';
}

export interface JwksKeyStoreOptions {
  /** A set older than this is fetched again before use. */
  maxAgeMs: number;
  /** After a fetch that did not find a kid, other unknown kids wait this long for the next one. */
  missCooldownMs: number;
  fetchTimeoutMs: number;
  now?: () => number;
}

interface SigningKey {
  alg: string | undefined;
  pem: string;
}

const MAX_KEYS = 100;

export class JwksKeyStore {
  #keys = new Map<string, SigningKey>();
  #fetchedAt = Number.NEGATIVE_INFINITY;
  /** No fetch before this time: after a miss (other unknown kids) or a failure (the provider down). */
  #nextFetchAt = 0;
  #lastFetchFailed = false;
  #inFlight: Promise<boolean> | undefined;
  readonly #now: () => number;

  constructor(
    private readonly url: string,
    private readonly options: JwksKeyStoreOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /** The PEM public key for a token's kid and alg; throws UnknownSigningKeyError or SigningKeysUnavailableError. */
  async keyFor(kid: string, alg: string): Promise<string> {
    let refreshed = false;
    if (this.#now() - this.#fetchedAt >= this.options.maxAgeMs && this.#now() >= this.#nextFetchAt) refreshed = await this.#refresh();
    let key = this.#lookup(kid, alg);
    if (key === undefined && refreshed) this.#nextFetchAt = this.#now() + this.options.missCooldownMs;
    if (key === undefined && !refreshed && this.#now() >= this.#nextFetchAt) {
      // Key rotation: a kid the set does not hold may be a new key.
      const replaced = await this.#refresh();
      key = this.#lookup(kid, alg);
      if (replaced && key === undefined) this.#nextFetchAt = this.#now() + this.options.missCooldownMs;
    }
    if (key !== undefined) return key.pem;
    if (this.#lastFetchFailed) throw new SigningKeysUnavailableError('the signing keys could not be fetched');
    throw new UnknownSigningKeyError('token signing key is unknown');
  }

  #lookup(kid: string, alg: string): SigningKey | undefined {
    const key = this.#keys.get(kid);
    return key !== undefined && (key.alg === undefined || key.alg === alg) ? key : undefined;
  }

  /** Fetches the set once for all concurrent callers; true when it was replaced. */
  #refresh(): Promise<boolean> {
    this.#inFlight ??= this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #fetch(): Promise<boolean> {
    let keys: Map<string, SigningKey>;
    try {
      const response = await fetch(this.url, { signal: AbortSignal.timeout(this.options.fetchTimeoutMs), redirect: 'error' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      keys = parseKeySet(await response.json());
    } catch {
      this.#lastFetchFailed = true;
      this.#nextFetchAt = this.#now() + this.options.missCooldownMs;
      return false;
    }
    this.#keys = keys;
    this.#fetchedAt = this.#now();
    this.#lastFetchFailed = false;
    return true;
  }
}

/** The signature keys of a JWKS document (RSA and EC public keys with a kid); others are skipped. */
export function parseKeySet(document: unknown): Map<string, SigningKey> {
  if (typeof document !== 'object' || document === null || !Array.isArray((document as { keys?: unknown }).keys)) {
    throw new Error('not a JWK set');
  }
  const keys = new Map<string, SigningKey>();
  for (const entry of (document as { keys: unknown[] }).keys) {
    if (keys.size >= MAX_KEYS) break;
    if (typeof entry !== 'object' || entry === null) continue;
    const jwk = entry as Record<string, unknown>;
    if (typeof jwk.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
    if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') continue;
    // Only the public members: a private key published by mistake is not used as one.
    const members = jwk.kty === 'RSA' ? ['kty', 'n', 'e'] : ['kty', 'crv', 'x', 'y'];
    const publicJwk = Object.fromEntries(members.map((name) => [name, jwk[name]])) as JsonWebKey;
    try {
      const pem = createPublicKey({ key: publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
      keys.set(jwk.kid, { alg: typeof jwk.alg === 'string' ? jwk.alg : undefined, pem });
    } catch {
      // Not a usable key: skipped, as a key of another type would be.
    }
  }
  return keys;
}
