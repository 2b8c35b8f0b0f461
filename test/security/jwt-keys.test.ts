// The asymmetric key modes: JWT_PUBLIC_KEY (RS256, ES256) and JWT_JWKS_URL (a JWKS served from a
// local node:http server). Keys are generated per run with node:crypto.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JWKS_MISS_COOLDOWN_MS } from '../../src/plugins/auth.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { auth, craft, expectUnauthorized, http, listen, sellerClaims, type Signer } from './support.js';

const ITEMS = '/v1/order-items?limit=3';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const attackerRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const spki = (key: KeyObject): string => key.export({ type: 'spki', format: 'pem' }).toString();
const claims = (): Record<string, unknown> => sellerClaims(SELLERS.alpha);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('sec_jwt_keys');
  await seedMarketplace(db.pool, 6);
});
afterAll(async () => {
  await db?.drop();
});

async function serve(env: Record<string, string>): Promise<{ app: FastifyInstance; base: string }> {
  const app = await buildTestApp(db.url, { JWT_SECRET: '', ...env });
  return { app, base: await listen(app) };
}

/** Tokens that HMAC-sign with some encoding of the public key: the RS/HS confusion attack. */
function confusionTokens(publicKey: KeyObject): [string, string][] {
  const pem = spki(publicKey);
  const variants: [string, string | Buffer][] = [
    ['SPKI PEM', pem],
    ['SPKI PEM without trailing newline', pem.trim()],
    ['whitespace-prefixed SPKI PEM', `  \n${pem}`],
    ['DER', publicKey.export({ type: 'spki', format: 'der' })],
  ];
  if (publicKey.asymmetricKeyType === 'rsa') variants.push(['PKCS#1 PEM', publicKey.export({ type: 'pkcs1', format: 'pem' }).toString()]);
  return variants.map(([label, key]) => [`HS256 signed with the ${label}`, craft({ alg: 'HS256', typ: 'JWT' }, claims(), { kind: 'hmac', bits: 256, key })]);
}

describe('JWT_PUBLIC_KEY with an RSA key (RS256 only)', () => {
  let app: FastifyInstance;
  let base: string;
  beforeAll(async () => {
    ({ app, base } = await serve({ JWT_PUBLIC_KEY: spki(rsa.publicKey) }));
  });
  afterAll(async () => app?.close());

  it('serves an RS256 token (control)', async () => {
    const token = craft({ alg: 'RS256', typ: 'JWT' }, claims(), { kind: 'rsa', bits: 256, key: rsa.privateKey });
    expect((await http(base + ITEMS, { headers: auth(token) })).status).toBe(200);
  });

  it('refuses the attack catalog', async () => {
    const cases: [string, string][] = [
      ...confusionTokens(rsa.publicKey),
      ['RS512 with the real key', craft({ alg: 'RS512' }, claims(), { kind: 'rsa', bits: 512, key: rsa.privateKey })],
      ['PS256 with the real key', craft({ alg: 'PS256' }, claims(), { kind: 'rsa', bits: 256, key: rsa.privateKey, pss: true })],
      ['HS384 with the PEM', craft({ alg: 'HS384' }, claims(), { kind: 'hmac', bits: 384, key: spki(rsa.publicKey) })],
      ['HS512 with the PEM', craft({ alg: 'HS512' }, claims(), { kind: 'hmac', bits: 512, key: spki(rsa.publicKey) })],
      ['alg none', craft({ alg: 'none' }, claims(), { kind: 'none' })],
      ['RS256 by an attacker key', craft({ alg: 'RS256' }, claims(), { kind: 'rsa', bits: 256, key: attackerRsa.privateKey })],
      ['RS256 by an attacker key, embedded as jwk', craft({ alg: 'RS256', jwk: attackerRsa.publicKey.export({ format: 'jwk' }) }, claims(), { kind: 'rsa', bits: 256, key: attackerRsa.privateKey })],
      ['RS256 by an attacker key, kid named', craft({ alg: 'RS256', kid: 'attacker' }, claims(), { kind: 'rsa', bits: 256, key: attackerRsa.privateKey })],
      ['ES256 by an EC key', craft({ alg: 'ES256' }, claims(), { kind: 'ec', bits: 256, key: ec.privateKey })],
      ['RS256 expired', craft({ alg: 'RS256' }, { ...claims(), exp: Math.floor(Date.now() / 1000) - 60 }, { kind: 'rsa', bits: 256, key: rsa.privateKey })],
    ];
    for (const [label, token] of cases) expectUnauthorized(await http(base + ITEMS, { headers: auth(token) }), label);
  });
});

describe('JWT_PUBLIC_KEY with an EC P-256 key (ES256 only)', () => {
  let app: FastifyInstance;
  let base: string;
  beforeAll(async () => {
    ({ app, base } = await serve({ JWT_PUBLIC_KEY: spki(ec.publicKey) }));
  });
  afterAll(async () => app?.close());

  it('serves an ES256 token (control)', async () => {
    const token = craft({ alg: 'ES256', typ: 'JWT' }, claims(), { kind: 'ec', bits: 256, key: ec.privateKey });
    expect((await http(base + ITEMS, { headers: auth(token) })).status).toBe(200);
  });

  it('refuses the attack catalog', async () => {
    const cases: [string, string][] = [
      ...confusionTokens(ec.publicKey),
      ['ES384 with the real key', craft({ alg: 'ES384' }, claims(), { kind: 'ec', bits: 384, key: ec.privateKey })],
      ['RS256 with another key', craft({ alg: 'RS256' }, claims(), { kind: 'rsa', bits: 256, key: rsa.privateKey })],
      ['alg none', craft({ alg: 'NONE' }, claims(), { kind: 'none' })],
      // The right key and input, the signature in ASN.1 DER (what OpenSSL gives by default), not
      // the JWS r||s form: refused, not converted.
      ['ES256 signature in DER instead of JOSE form', (() => {
        const token = craft({ alg: 'ES256' }, claims(), { kind: 'ec', bits: 256, key: ec.privateKey });
        const [h, p] = token.split('.') as [string, string];
        const der = sign('sha256', Buffer.from(`${h}.${p}`), { key: ec.privateKey, dsaEncoding: 'der' });
        expect(der[0], 'an ASN.1 SEQUENCE').toBe(0x30);
        return `${h}.${p}.${der.toString('base64url')}`;
      })()],
    ];
    for (const [label, token] of cases) expectUnauthorized(await http(base + ITEMS, { headers: auth(token) }), label);
  });
});

/**
 * A JWKS server that counts its requests; `keys` can change between requests (rotation, removal)
 * and `down(true)` makes it answer 503 (the identity provider unreachable).
 */
function jwksServer(): Promise<{ server: Server; url: string; hits: () => number; keys: Record<string, unknown>[]; down: (value: boolean) => void }> {
  const keys: Record<string, unknown>[] = [];
  let count = 0;
  let isDown = false;
  const server = createServer((_request, response) => {
    count += 1;
    if (isDown) {
      response.writeHead(503).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys }));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        server,
        url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
        hits: () => count,
        keys,
        down: (value) => {
          isDown = value;
        },
      });
    });
  });
}

const jwk = (key: KeyObject, kid: string, alg: string): Record<string, unknown> => ({ ...key.export({ format: 'jwk' }), kid, alg, use: 'sig' });

describe('JWT_JWKS_URL: keys come from the configured set only', () => {
  let app: FastifyInstance;
  let base: string;
  let idp: Awaited<ReturnType<typeof jwksServer>>;
  let attacker: Awaited<ReturnType<typeof jwksServer>>;
  const rotated = generateKeyPairSync('rsa', { modulusLength: 2048 });

  beforeAll(async () => {
    idp = await jwksServer();
    idp.keys.push(jwk(rsa.publicKey, 'k1', 'RS256'), jwk(ec.publicKey, 'e1', 'ES256'));
    attacker = await jwksServer();
    attacker.keys.push(jwk(attackerRsa.publicKey, 'k1', 'RS256'), jwk(attackerRsa.publicKey, 'evil', 'RS256'));
    ({ app, base } = await serve({ JWT_JWKS_URL: idp.url }));
  });
  afterAll(async () => {
    await app?.close();
    idp?.server.close();
    attacker?.server.close();
  });

  const get = (token: string) => http(base + ITEMS, { headers: auth(token) });

  it('serves RS256 and ES256 tokens whose kid is in the set (control)', async () => {
    expect((await get(craft({ alg: 'RS256', kid: 'k1' }, claims(), { kind: 'rsa', bits: 256, key: rsa.privateKey }))).status).toBe(200);
    expect((await get(craft({ alg: 'ES256', kid: 'e1' }, claims(), { kind: 'ec', bits: 256, key: ec.privateKey }))).status).toBe(200);
    expect(idp.hits()).toBeGreaterThanOrEqual(1);
  });

  it('key rotation: an unknown kid makes it refetch the set, and the new key is accepted', async () => {
    const before = idp.hits();
    idp.keys.push(jwk(rotated.publicKey, 'k2', 'RS256'));
    const token = craft({ alg: 'RS256', kid: 'k2' }, claims(), { kind: 'rsa', bits: 256, key: rotated.privateKey });
    expect((await get(token)).status).toBe(200);
    expect(idp.hits()).toBe(before + 1);
    // Cached now: the next request does not refetch.
    expect((await get(token)).status).toBe(200);
    expect(idp.hits()).toBe(before + 1);
  });

  it('jku / x5u / jwk pointing at an attacker are never fetched nor trusted', async () => {
    const attackerUrl = attacker.url;
    const sign = { kind: 'rsa', bits: 256, key: attackerRsa.privateKey } as const;
    const cases: [string, string][] = [
      ['jku to attacker, attacker kid', craft({ alg: 'RS256', kid: 'evil', jku: attackerUrl }, claims(), sign)],
      ['jku to attacker, kid k1 shadowed', craft({ alg: 'RS256', kid: 'k1', jku: attackerUrl }, claims(), sign)],
      ['x5u to attacker', craft({ alg: 'RS256', kid: 'k1', x5u: attackerUrl }, claims(), sign)],
      ['embedded jwk', craft({ alg: 'RS256', kid: 'k1', jwk: jwk(attackerRsa.publicKey, 'k1', 'RS256') }, claims(), sign)],
      ['kid k1 signed by the attacker', craft({ alg: 'RS256', kid: 'k1' }, claims(), sign)],
      ['kid that is a URL', craft({ alg: 'RS256', kid: attackerUrl }, claims(), sign)],
      ['no kid', craft({ alg: 'RS256' }, claims(), { kind: 'rsa', bits: 256, key: rsa.privateKey })],
      ['kid k1 with HS256 over the JWK PEM', craft({ alg: 'HS256', kid: 'k1' }, claims(), { kind: 'hmac', bits: 256, key: spki(rsa.publicKey) })],
      ['kid k1 with alg none', craft({ alg: 'none', kid: 'k1' }, claims(), { kind: 'none' })],
      ['kid k1 with RS512', craft({ alg: 'RS512', kid: 'k1' }, claims(), { kind: 'rsa', bits: 512, key: rsa.privateKey })],
    ];
    for (const [label, token] of cases) expectUnauthorized(await get(token), label);
    expect(attacker.hits()).toBe(0);
  });

  it('an unknown kid → 401, and a flood of random kids does not flood the identity provider', async () => {
    const before = idp.hits();
    for (let n = 0; n < 25; n += 1) {
      const token = craft({ alg: 'RS256', kid: `random-${n}` }, claims(), { kind: 'rsa', bits: 256, key: attackerRsa.privateKey });
      expectUnauthorized(await get(token), `kid random-${n}`);
    }
    // One refetch for the first miss; the rest fall in the JWKS_MISS_COOLDOWN_MS window.
    expect(JWKS_MISS_COOLDOWN_MS).toBeGreaterThan(1000);
    expect(idp.hits() - before).toBeLessThanOrEqual(2);
    // Known keys still work during the cooldown.
    expect((await get(craft({ alg: 'RS256', kid: 'k1' }, claims(), { kind: 'rsa', bits: 256, key: rsa.privateKey }))).status).toBe(200);
    expect(attacker.hits()).toBe(0);
  });
});

describe('JWT_JWKS_URL: a key removed from the set, and the identity provider down', () => {
  // Each test has its own app (its own key store: a miss cooldown of one does not reach the other).
  let app: FastifyInstance;
  let base: string;
  let idp: Awaited<ReturnType<typeof jwksServer>>;
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });

  beforeEach(async () => {
    idp = await jwksServer();
    idp.keys.push(jwk(rsa.publicKey, 'k1', 'RS256'), jwk(other.publicKey, 'k2', 'RS256'));
    ({ app, base } = await serve({ JWT_JWKS_URL: idp.url, JWT_JWKS_MAX_AGE_SECONDS: '1' }));
  });
  afterEach(async () => {
    await app?.close();
    idp?.server.close();
  });

  // A new token each time (its own jti): a token verified before is reused without a key lookup.
  const token = (kid: string, key: KeyObject): string =>
    craft({ alg: 'RS256', kid }, { ...claims(), jti: `${kid}-${Math.random()}` }, { kind: 'rsa', bits: 256, key });
  const get = (jws: string) => http(base + ITEMS, { headers: auth(jws) });

  it('stops accepting a removed key once the set is older than JWT_JWKS_MAX_AGE_SECONDS', async () => {
    expect((await get(token('k1', rsa.privateKey))).status).toBe(200);
    idp.keys.splice(0, 1); // k1 revoked
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const hits = idp.hits();
    expectUnauthorized(await get(token('k1', rsa.privateKey)), 'removed key');
    expectUnauthorized(await get(token('k1', rsa.privateKey)), 'removed key, again');
    // One fetch (the set was stale), not one per request.
    expect(idp.hits() - hits).toBe(1);
    expect((await get(token('k2', other.privateKey))).status).toBe(200);
  });

  it('with the provider down: a known key still works, an unknown kid is 503 + Retry-After (its validity cannot be known)', async () => {
    expect((await get(token('k2', other.privateKey))).status).toBe(200);
    idp.down(true);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_100)); // the set is stale: a refresh is tried, and fails
      expect((await get(token('k2', other.privateKey))).status).toBe(200);
      const unknown = await get(token('k9', other.privateKey));
      expect(unknown.status).toBe(503);
      expect(unknown.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(unknown.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    } finally {
      idp.down(false);
    }
  });
});

/**
 * The claim checks are the same code whatever the key, but they run after the key mode's own
 * verification: the catalog is run once per asymmetric mode, with an issuer and an audience
 * configured, so a mode that skipped them (or answered differently) would show here.
 */
describe('the claim checks hold in every asymmetric key mode (iss, aud, exp, nbf, iat, tenant)', () => {
  const ISSUER = 'https://idp.example.test/';
  const AUDIENCE = 'order-items-api';
  const now = (): number => Math.floor(Date.now() / 1000);
  const valid = (): Record<string, unknown> => ({ ...claims(), iss: ISSUER, aud: AUDIENCE });
  const { exp: _exp, ...validWithoutExp } = valid();
  const { iss: _iss, ...validWithoutIss } = valid();
  const { aud: _aud, ...validWithoutAud } = valid();
  const { tenant_id: _tenant, ...validWithoutTenant } = valid();
  const catalog = (): [string, Record<string, unknown>][] => [
    ['another issuer', { ...valid(), iss: 'https://evil.example.test/' }],
    ['no issuer', validWithoutIss],
    ['another audience', { ...valid(), aud: 'another-api' }],
    ['an audience list without ours', { ...valid(), aud: ['another-api', 'a-third'] }],
    ['no audience', validWithoutAud],
    ['expired 60 s ago', { ...valid(), exp: now() - 60 }],
    ['no exp', validWithoutExp],
    ['nbf an hour ahead', { ...valid(), nbf: now() + 3600 }],
    ['iat an hour ahead', { ...valid(), iat: now() + 3600 }],
    ['no tenant claim', validWithoutTenant],
    ['tenant claim in upper case', { ...valid(), tenant_id: SELLERS.alpha.toUpperCase() }],
    ['tenant claim a number', { ...valid(), tenant_id: 0 }],
  ];
  /** The same claims as text with `exp` 1e400 (Infinity once parsed), signed over that text. */
  const infiniteExp = (header: Record<string, unknown>, signer: (input: string) => Buffer): string => {
    const payload = JSON.stringify(valid()).replace(/"exp":\d+/, '"exp":1e400');
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
    return `${input}.${signer(input).toString('base64url')}`;
  };

  const modes: { name: string; header: Record<string, unknown>; signer: Signer; rawSign: (input: string) => Buffer; env: () => Promise<Record<string, string>> }[] = [
    {
      name: 'RS256 (JWT_PUBLIC_KEY)',
      header: { alg: 'RS256', typ: 'JWT' },
      signer: { kind: 'rsa', bits: 256, key: rsa.privateKey },
      rawSign: (input) => sign('sha256', Buffer.from(input), rsa.privateKey),
      env: async () => ({ JWT_PUBLIC_KEY: spki(rsa.publicKey) }),
    },
    {
      name: 'ES256 (JWT_PUBLIC_KEY)',
      header: { alg: 'ES256', typ: 'JWT' },
      signer: { kind: 'ec', bits: 256, key: ec.privateKey },
      rawSign: (input) => sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }),
      env: async () => ({ JWT_PUBLIC_KEY: spki(ec.publicKey) }),
    },
    {
      name: 'RS256 (JWT_JWKS_URL)',
      header: { alg: 'RS256', typ: 'JWT', kid: 'k1' },
      signer: { kind: 'rsa', bits: 256, key: rsa.privateKey },
      rawSign: (input) => sign('sha256', Buffer.from(input), rsa.privateKey),
      env: async () => {
        const idp = await jwksServer();
        idp.keys.push(jwk(rsa.publicKey, 'k1', 'RS256'));
        servers.push(idp.server);
        return { JWT_JWKS_URL: idp.url };
      },
    },
  ];
  const servers: Server[] = [];
  afterAll(() => {
    for (const server of servers) server.close();
  });

  it.each(modes.map((mode) => [mode.name, mode] as const))('%s', async (_name, mode) => {
    const { app, base } = await serve({ ...(await mode.env()), JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
    try {
      const get = (token: string) => http(base + ITEMS, { headers: auth(token) });
      expect((await get(craft(mode.header, valid(), mode.signer))).status, 'control').toBe(200);
      for (const [label, payload] of catalog()) expectUnauthorized(await get(craft(mode.header, payload, mode.signer)), label);
      expectUnauthorized(await get(infiniteExp(mode.header, mode.rawSign)), 'exp 1e400');
    } finally {
      await app.close();
    }
  });
});
