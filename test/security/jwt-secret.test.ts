// The JWT attack catalog against the HS256 (JWT_SECRET) key mode, over real HTTP, plus the
// configuration's refusal of keys that set up algorithm confusion.
import { createHmac, generateKeyPairSync } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { TEST_JWT_SECRET } from '../helpers/tokens.js';
import { auth, craft, expectUnauthorized, http, listen, nowSeconds, rawGet, sellerClaims, type Signer } from './support.js';

const HS = { alg: 'HS256', typ: 'JWT' };
const good: Signer = { kind: 'hmac', bits: 256, key: TEST_JWT_SECRET };
/** A token whose payload is exactly `payloadText` (not re-serialized), signed with the real secret. */
const signedText = (header: Record<string, unknown>, payloadText: string): string => {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(payloadText).toString('base64url')}`;
  return `${input}.${createHmac('sha256', TEST_JWT_SECRET).update(input).digest('base64url')}`;
};
const ITEMS = '/v1/order-items?limit=5';

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let strictApp: FastifyInstance;
let strictBase: string;

beforeAll(async () => {
  db = await createTestDatabase('sec_jwt_secret');
  await seedMarketplace(db.pool, 12);
  app = await buildTestApp(db.url);
  base = await listen(app);
  strictApp = await buildTestApp(db.url, { JWT_ISSUER: 'https://idp.example', JWT_AUDIENCE: 'order-items-api' });
  strictBase = await listen(strictApp);
});

afterAll(async () => {
  await app?.close();
  await strictApp?.close();
  await db?.drop();
});

const get = (token: string, path = ITEMS, target = (): string => base) => http(target() + path, { headers: auth(token) });


describe('HS256 mode: a well-formed token is served (control)', () => {
  it('serves the seller its own items', async () => {
    const result = await get(craft(HS, sellerClaims(SELLERS.alpha), good));
    expect(result.status).toBe(200);
    const items = (result.json as { items: { sellerId: string }[] }).items;
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((item) => item.sellerId === SELLERS.alpha)).toBe(true);
  });
});

describe('HS256 mode: the attack catalog gives 401 problem+json and no data', () => {
  const claims = (): Record<string, unknown> => sellerClaims(SELLERS.alpha);
  const validToken = (): string => craft(HS, claims(), good);
  const cases: [string, () => string][] = [
    ...['none', 'None', 'NONE', 'nOnE'].map((alg): [string, () => string] => [`alg ${alg}, empty signature`, () => craft({ alg, typ: 'JWT' }, claims(), { kind: 'none' })]),
    ['alg none carrying the real HS256 signature', () => {
      const [, , signature] = validToken().split('.');
      return craft({ alg: 'none', typ: 'JWT' }, claims(), { kind: 'raw', signature: signature ?? '' });
    }],
    ['alg HS384 signed with the real secret', () => craft({ alg: 'HS384', typ: 'JWT' }, claims(), { kind: 'hmac', bits: 384, key: TEST_JWT_SECRET })],
    ['alg HS512 signed with the real secret', () => craft({ alg: 'HS512', typ: 'JWT' }, claims(), { kind: 'hmac', bits: 512, key: TEST_JWT_SECRET })],
    ['alg RS512 with an attacker key', () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return craft({ alg: 'RS512', typ: 'JWT' }, claims(), { kind: 'rsa', bits: 512, key: privateKey });
    }],
    ['alg PS256 with an attacker key', () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return craft({ alg: 'PS256', typ: 'JWT' }, claims(), { kind: 'rsa', bits: 256, key: privateKey, pss: true });
    }],
    ['expired an hour ago', () => craft(HS, { ...claims(), exp: nowSeconds() - 3600, iat: nowSeconds() - 7200 }, good)],
    ['expired beyond the 5 s clock tolerance', () => craft(HS, { ...claims(), exp: nowSeconds() - 30 }, good)],
    ['nbf an hour in the future', () => craft(HS, { ...claims(), nbf: nowSeconds() + 3600 }, good)],
    ['missing exp', () => {
      const { exp: _exp, ...rest } = claims();
      return craft(HS, rest, good);
    }],
    ['exp as a string', () => craft(HS, { ...claims(), exp: String(nowSeconds() + 600) }, good)],
    ['one signature byte flipped', () => {
      const [h, p, s] = validToken().split('.') as [string, string, string];
      const bytes = Buffer.from(s, 'base64url');
      bytes[0] = (bytes[0] ?? 0) ^ 0x01;
      return `${h}.${p}.${bytes.toString('base64url')}`;
    }],
    ['empty signature', () => validToken().split('.').slice(0, 2).join('.') + '.'],
    ['payload edited after signing (tenant swapped)', () => {
      const [h, , s] = validToken().split('.') as [string, string, string];
      const forged = Buffer.from(JSON.stringify(sellerClaims(SELLERS.beta))).toString('base64url');
      return `${h}.${forged}.${s}`;
    }],
    ['signed by another secret', () => craft(HS, claims(), { kind: 'hmac', bits: 256, key: 'another-secret-that-is-also-32-bytes-long!!' })],
    ['signed with an empty secret', () => craft(HS, claims(), { kind: 'hmac', bits: 256, key: '' })],
    ['kid path traversal to /dev/null, empty-key signature', () => craft({ ...HS, kid: '../../../../../../dev/null' }, claims(), { kind: 'hmac', bits: 256, key: '' })],
    ['kid SQL injection, attacker-key signature', () => craft({ ...HS, kid: "x' UNION SELECT 'attacker-key' -- " }, claims(), { kind: 'hmac', bits: 256, key: 'attacker-key' })],
    ['jku pointing elsewhere, attacker signature', () => craft({ ...HS, jku: 'http://127.0.0.1:9/jwks.json', kid: 'a' }, claims(), { kind: 'hmac', bits: 256, key: 'attacker-key' })],
    ['jku header on an otherwise valid token', () => craft({ ...HS, jku: 'http://127.0.0.1:9/jwks.json' }, claims(), good)],
    ['x5u header', () => craft({ ...HS, x5u: 'http://127.0.0.1:9/cert.pem' }, claims(), good)],
    ['embedded jwk (oct) with attacker secret', () => craft({ ...HS, jwk: { kty: 'oct', k: Buffer.from('attacker-key').toString('base64url') } }, claims(), { kind: 'hmac', bits: 256, key: 'attacker-key' })],
    ['x5c header', () => craft({ ...HS, x5c: ['MIIB'] }, claims(), good)],
    ['unknown crit header', () => craft({ ...HS, crit: ['exp-extension'], 'exp-extension': true }, claims(), good)],
    ['empty crit list', () => craft({ ...HS, crit: [] }, claims(), good)],
    ['tenant claim missing', () => {
      const { tenant_id: _tenant, ...rest } = claims();
      return craft(HS, rest, good);
    }],
    ['tenant claim empty', () => craft(HS, { ...claims(), tenant_id: '' }, good)],
    ['tenant claim number 0 (matches any non-numeric VARCHAR in MySQL)', () => craft(HS, { ...claims(), tenant_id: 0 }, good)],
    ['tenant claim number', () => craft(HS, { ...claims(), tenant_id: 12345678901234567890 }, good)],
    ['tenant claim array', () => craft(HS, { ...claims(), tenant_id: [SELLERS.alpha] }, good)],
    ['tenant claim array of two sellers', () => craft(HS, { ...claims(), tenant_id: [SELLERS.alpha, SELLERS.beta] }, good)],
    ['tenant claim object', () => craft(HS, { ...claims(), tenant_id: { id: SELLERS.alpha } }, good)],
    ['tenant claim true', () => craft(HS, { ...claims(), tenant_id: true }, good)],
    ['tenant claim null', () => craft(HS, { ...claims(), tenant_id: null }, good)],
    ['tenant claim uppercase hex', () => craft(HS, { ...claims(), tenant_id: SELLERS.alpha.toUpperCase() }, good)],
    ['tenant claim 31 hex', () => craft(HS, { ...claims(), tenant_id: SELLERS.alpha.slice(1) }, good)],
    ['tenant claim 33 hex', () => craft(HS, { ...claims(), tenant_id: `${SELLERS.alpha}0` }, good)],
    ['tenant claim with trailing newline', () => craft(HS, { ...claims(), tenant_id: `${SELLERS.alpha}\n` }, good)],
    ['tenant claim SQL text', () => craft(HS, { ...claims(), tenant_id: "' OR '1'='1" }, good)],
    ['tenant claim SQL wildcard', () => craft(HS, { ...claims(), tenant_id: '%' }, good)],
    ['tenant claim SQL comment', () => craft(HS, { ...claims(), tenant_id: `${SELLERS.alpha}' -- ` }, good)],
    ['header that is not JSON', () => `${Buffer.from('not json').toString('base64url')}.${validToken().split('.')[1] ?? ''}.${validToken().split('.')[2] ?? ''}`],
    ['header that is a JSON array', () => craft(['HS256'] as unknown as Record<string, unknown>, claims(), good)],
    // Signed with the real secret: only the payload's parsing can refuse it.
    ['payload that is not JSON (validly signed)', () => signedText(HS, '{not json')],
    ['exp written 1e400 (parsed as Infinity: a token that never expires)', () =>
      signedText(HS, JSON.stringify(claims()).replace(/"exp":\d+/, '"exp":1e400'))],
    ['nbf written -1e400 (parsed as -Infinity)', () => signedText(HS, JSON.stringify({ ...claims(), nbf: 0 }).replace(/"nbf":0/, '"nbf":-1e400'))],
    ['exp 1e300 (a date no calendar holds: never expires)', () => craft(HS, { ...claims(), exp: 1e300 }, good)],
    ['exp 1e15 (year 31.7 million)', () => craft(HS, { ...claims(), exp: 1e15 }, good)],
    ['iat an hour in the future', () => craft(HS, { ...claims(), iat: nowSeconds() + 3600 }, good)],
    ['iat 60 s in the future (beyond the 5 s clock tolerance)', () => craft(HS, { ...claims(), iat: nowSeconds() + 60 }, good)],
    // JSON.parse keeps the last of two names, many parsers the first: the identity provider and
    // this service could read different sellers from one token.
    ['tenant claim twice (validly signed)', () =>
      signedText(HS, JSON.stringify(claims()).replace('{', `{"tenant_id":"${SELLERS.beta}",`))],
    ['tenant claim twice, once escaped (validly signed)', () =>
      signedText(HS, JSON.stringify(claims()).replace('{', `{"tenant\\u005fid":"${SELLERS.beta}",`))],
    ['alg twice in the header (validly signed)', () => {
      const input = `${Buffer.from('{"alg":"none","alg":"HS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}`;
      return `${input}.${createHmac('sha256', TEST_JWT_SECRET).update(input).digest('base64url')}`;
    }],
    // Refused before any signature check: an attacker sends these unsigned, and the duplicate
    // scan must not fail on what JSON.parse would refuse (it answered 500).
    ['payload with an undecodable member name, unsigned', () => `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from('{"\\q":1}').toString('base64url')}.AAAA`],
    ['payload with an unterminated member name, unsigned', () => `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from('{"sub":"x","a').toString('base64url')}.AAAA`],
    ['header with an undecodable member name', () => `${Buffer.from('{"alg":"HS256","\\q":1}').toString('base64url')}.${validToken().split('.')[1] ?? ''}.AAAA`],
    ['the real signature spelled with other unused low bits', () => {
      const [h, p, s] = validToken().split('.') as [string, string, string];
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      // A 32-byte MAC is 43 characters: the last one carries 2 bits the decoder drops.
      const respelled = `${s.slice(0, -1)}${alphabet[alphabet.indexOf(s.slice(-1)) ^ 1]}`;
      expect(Buffer.from(respelled, 'base64url').equals(Buffer.from(s, 'base64url'))).toBe(true);
      return `${h}.${p}.${respelled}`;
    }],
  ];

  it.each(cases)('%s → 401', async (label, make) => {
    expectUnauthorized(await get(make()), label);
  });

  it('a token with an unknown scope string only is 403, never data (control for scope parsing)', async () => {
    const result = await get(craft(HS, { ...claims(), scope: 'order-items:reader' }, good));
    expect(result.status).toBe(403);
  });
});

describe('HS256 mode: clock tolerance is seconds, passed to fast-jwt as milliseconds', () => {
  it('accepts a token expired 2 s ago (inside the 5 s tolerance)', async () => {
    const result = await get(craft(HS, { ...sellerClaims(SELLERS.alpha), exp: nowSeconds() - 2 }, good));
    expect(result.status).toBe(200);
  });
  it('accepts a token issued 3 s ahead of this clock (an identity provider whose clock runs ahead, inside the tolerance)', async () => {
    const result = await get(craft(HS, { ...sellerClaims(SELLERS.alpha), iat: nowSeconds() + 3 }, good));
    expect(result.status).toBe(200);
  });
  it('accepts an exp in 9999 and a fractional exp (NumericDate allows fractions) (controls)', async () => {
    expect((await get(craft(HS, { ...sellerClaims(SELLERS.alpha), exp: 253_402_300_799 }, good))).status).toBe(200);
    expect((await get(craft(HS, { ...sellerClaims(SELLERS.alpha), exp: nowSeconds() + 600.5 }, good))).status).toBe(200);
  });
  it('refuses one expired 30 s ago and one not valid for 60 s', async () => {
    expectUnauthorized(await get(craft(HS, { ...sellerClaims(SELLERS.alpha), exp: nowSeconds() - 30 }, good)));
    expectUnauthorized(await get(craft(HS, { ...sellerClaims(SELLERS.alpha), nbf: nowSeconds() + 60 }, good)));
  });
});

describe('HS256 mode: a token served before is checked again at every request', () => {
  // The app keeps verified tokens to skip re-verifying them; these prove that what it keeps is
  // the exact token text, within the token's own time window.
  let toleranceFreeBase: string;
  let toleranceFreeApp: FastifyInstance;
  beforeAll(async () => {
    toleranceFreeApp = await buildTestApp(db.url, { JWT_CLOCK_TOLERANCE_SECONDS: '0' });
    toleranceFreeBase = await listen(toleranceFreeApp);
  });
  afterAll(async () => {
    await toleranceFreeApp?.close();
  });

  it('is refused once it expires, though it was served a moment before', async () => {
    const expiresAt = nowSeconds() + 2;
    const token = craft(HS, { ...sellerClaims(SELLERS.alpha), exp: expiresAt }, good);
    expect((await get(token, ITEMS, () => toleranceFreeBase)).status).toBe(200);
    expect((await get(token, ITEMS, () => toleranceFreeBase)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, expiresAt * 1000 + 100 - Date.now()));
    const expired = await get(token, ITEMS, () => toleranceFreeBase);
    expectUnauthorized(expired);
    expect((expired.json as { detail: string }).detail).toBe('token expired');
  });

  it('a served token with one signature byte flipped, or another tenant claim, is refused', async () => {
    const token = craft(HS, sellerClaims(SELLERS.alpha), good);
    expect((await get(token)).status).toBe(200);
    const [h, p, s] = token.split('.') as [string, string, string];
    const bytes = Buffer.from(s, 'base64url');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
    expectUnauthorized(await get(`${h}.${p}.${bytes.toString('base64url')}`));
    const otherClaims = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString('utf8')), tenant_id: SELLERS.beta })).toString('base64url');
    expectUnauthorized(await get(`${h}.${otherClaims}.${s}`));
    expect((await get(token)).status).toBe(200);
  });
});

describe('HS256 mode: issuer and audience, when configured, are required', () => {
  const strict = (): string => strictBase;
  const ok = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
    sellerClaims(SELLERS.alpha, { iss: 'https://idp.example', aud: 'order-items-api', ...extra });

  it('serves a token with the right iss and aud (control)', async () => {
    expect((await get(craft(HS, ok(), good), ITEMS, strict)).status).toBe(200);
  });
  it.each([
    ['wrong iss', { iss: 'https://evil.example' }, 'token issuer is not accepted'],
    ['wrong aud', { aud: 'another-api' }, 'token audience is not accepted'],
    ['iss with a trailing slash', { iss: 'https://idp.example/' }, 'token issuer is not accepted'],
    ['aud list without ours', { aud: ['another-api', 'third-api'] }, 'token audience is not accepted'],
    ['missing iss', { iss: undefined }, 'token is missing its "iss" claim'],
    ['missing aud', { aud: undefined }, 'token is missing its "aud" claim'],
    ['missing exp', { exp: undefined }, 'token is missing its "exp" claim'],
  ] as [string, Record<string, unknown>, string][])('%s → 401 saying why', async (label, extra, detail) => {
    const claims = ok(extra);
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    const result = await get(craft(HS, claims, good), ITEMS, strict);
    expectUnauthorized(result, label);
    expect((result.json as { detail: string }).detail, label).toBe(detail);
  });

  it('a flipped signature byte, or alg none → 401 saying why', async () => {
    const [h, p, sig] = craft(HS, ok(), good).split('.') as [string, string, string];
    const bytes = Buffer.from(sig, 'base64url');
    bytes[0] = (bytes[0] ?? 0) ^ 0x01;
    const flipped = await get(`${h}.${p}.${bytes.toString('base64url')}`, ITEMS, strict);
    expectUnauthorized(flipped);
    expect((flipped.json as { detail: string }).detail).toBe('token signature is invalid');
    const unsigned = await get(craft({ alg: 'none', typ: 'JWT' }, ok(), { kind: 'none' }), ITEMS, strict);
    expectUnauthorized(unsigned);
    expect((unsigned.json as { detail: string }).detail).toMatch(/^token (is not signed|algorithm is not accepted)/);
  });
});

describe('HS256 mode: transport of the token', () => {
  const token = (seller: string = SELLERS.alpha): string => craft(HS, sellerClaims(seller), good);

  it('a token over 8 KB → 401 or 431, and the app still serves afterwards', async () => {
    const padded = craft(HS, sellerClaims(SELLERS.alpha, { pad: 'x'.repeat(9000) }), good);
    expect(padded.length).toBeGreaterThan(8192);
    const result = await get(padded);
    expect([401, 431]).toContain(result.status);
    expect(result.text).not.toContain('"items"');
    expect((await get(token())).status).toBe(200);
  });

  it.each([
    ['no header at all', undefined],
    ['empty header', ''],
    ['scheme only', 'Bearer'],
    ['scheme and space', 'Bearer '],
    ['Basic credentials', 'Basic dXNlcjpwYXNzd29yZA=='],
    ['unknown scheme with a valid token', 'Token <t>'],
    ['double space', 'Bearer  <t>'],
    ['two tokens', 'Bearer <t> <t>'],
    ['two tokens, comma separated', 'Bearer <t>,<t>'],
    ['two segments only', 'Bearer aaa.bbb'],
    ['four segments', 'Bearer <t>.xyz'],
    ['non-base64url characters', 'Bearer a+b/c.d+e/f.g=h'],
  ] as [string, string | undefined][])('malformed Authorization (%s) → 401', async (label, template) => {
    const headers: Record<string, string> = {};
    if (template !== undefined) headers.authorization = template.replaceAll('<t>', token());
    expectUnauthorized(await http(base + ITEMS, { headers }), label);
  });

  // Audit: Node keeps the first of two Authorization fields, so a valid first token won; a proxy
  // reading the other one would disagree about the caller.
  it.each([
    ['a valid token, then garbage', ['<t>', 'garbage']],
    ['two valid tokens of different sellers', ['<t>', '<u>']],
    ['the same valid token twice', ['<t>', '<t>']],
  ] as [string, string[]][])('two Authorization headers (%s) → 401', async (label, tokens) => {
    const values = tokens.map((t) => `Bearer ${t.replace('<t>', token()).replace('<u>', token(SELLERS.beta))}`);
    expectUnauthorized(await rawGet(base + ITEMS, values.flatMap((value) => ['Authorization', value])), label);
  });

  it('one Authorization header next to other headers is accepted (control)', async () => {
    const result = await rawGet(base + ITEMS, ['X-Trace', 'a', 'Authorization', `Bearer ${token()}`, 'X-Trace', 'b']);
    expect(result.status, result.text).toBe(200);
  });

  it.each(['access_token', 'token', 'jwt', 'authorization'])('a token in the query string (%s=) is not accepted → 401', async (name) => {
    const result = await http(`${base}/v1/order-items?${name}=${token()}`);
    expectUnauthorized(result, name);
  });

  it('a token in a cookie is not accepted → 401', async () => {
    expectUnauthorized(await http(base + ITEMS, { headers: { cookie: `token=${token()}; access_token=${token()}` } }));
  });
});

describe('configuration refuses an HMAC secret that is a PEM key (algorithm confusion setup)', () => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const pkcs1 = publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const base = { DATABASE_URL: 'mysql://root@127.0.0.1:3306/x' };

  it.each([
    ['SPKI RSA public key', spki],
    ['PKCS#1 RSA public key', pkcs1],
    ['EC public key', ec],
    ['whitespace-prefixed PEM', `   \n\t${spki}`],
    ['PEM after other text', `secret-prefix-that-is-long-enough ${spki}`],
    ['certificate armour', '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n'],
    ['lowercase armour', '-----begin public key-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----end public key-----'],
  ])('JWT_SECRET = %s → ConfigError', (_label, secret) => {
    expect(() => loadConfig({ ...base, JWT_SECRET: secret })).toThrow(ConfigError);
  });

  it('JWT_PUBLIC_KEY in PKCS#1 form → ConfigError', () => {
    expect(() => loadConfig({ ...base, JWT_PUBLIC_KEY: pkcs1 })).toThrow(ConfigError);
  });
  it('a short secret and two key modes at once → ConfigError', () => {
    expect(() => loadConfig({ ...base, JWT_SECRET: 'short' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, JWT_SECRET: TEST_JWT_SECRET, JWT_PUBLIC_KEY: spki })).toThrow(ConfigError);
  });
  it('an ordinary long secret is accepted (control)', () => {
    expect(loadConfig({ ...base, JWT_SECRET: TEST_JWT_SECRET }).jwt.key.kind).toBe('secret');
  });
});
