import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const SECRET = 'x'.repeat(32);

describe('loadConfig', () => {
  it('when only a secret is given, then the documented defaults apply', () => {
    const config = loadConfig({ JWT_SECRET: SECRET });
    expect(config).toMatchObject({
      databaseUrl: 'mysql://root@127.0.0.1:3306/order_items',
      host: '127.0.0.1',
      port: 3000,
      metricsPort: 9464,
      jwt: { key: { kind: 'secret' }, tenantClaim: 'tenant_id', issuer: undefined, audience: undefined },
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.jwt)).toBe(true);
  });

  it.each([
    [{}, 'JWT_SECRET'],
    [{ JWT_SECRET: 'short' }, 'at least 32 bytes'],
    [{ JWT_SECRET: SECRET, JWT_JWKS_URL: 'https://idp.test/jwks.json' }, 'exactly one'],
    [{ JWT_SECRET: SECRET, PORT: 'eighty' }, 'PORT'],
    [{ JWT_SECRET: SECRET, PORT: '70000' }, 'PORT'],
    // Empty would read as 0 (a random port), the others as what Number() makes of them.
    [{ JWT_SECRET: SECRET, PORT: '' }, 'PORT'],
    [{ JWT_SECRET: SECRET, METRICS_PORT: '' }, 'METRICS_PORT'],
    [{ JWT_SECRET: SECRET, PORT: '0x10' }, 'PORT'],
    [{ JWT_SECRET: SECRET, PORT: ' 8080' }, 'PORT'],
    [{ JWT_SECRET: SECRET, DB_POOL_SIZE: '1e1' }, 'DB_POOL_SIZE'],
    [{ JWT_SECRET: SECRET, LOAD_SHED_MAX_CPU_UTILIZATION: '.5' }, 'LOAD_SHED_MAX_CPU_UTILIZATION'],
    [{ JWT_SECRET: SECRET, LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ JWT_SECRET: SECRET, DATABASE_URL: 'postgres://x/y' }, 'DATABASE_URL'],
    [{ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_SECONDS: '60' }, 'JWT_CLOCK_TOLERANCE_SECONDS'],
    [{ JWT_PUBLIC_KEY: 'not a pem' }, 'JWT_PUBLIC_KEY'],
    [{ JWT_SECRET: `-----BEGIN PUBLIC KEY-----\n${'A'.repeat(64)}\n-----END PUBLIC KEY-----` }, 'PEM'],
    // Blank or padded: read as unset, the check would be off without a word; padded, nothing matches.
    [{ JWT_SECRET: SECRET, JWT_ISSUER: '   ' }, 'JWT_ISSUER'],
    [{ JWT_SECRET: SECRET, JWT_ISSUER: ' https://idp.example/' }, 'JWT_ISSUER'],
    [{ JWT_SECRET: SECRET, JWT_AUDIENCE: '\t' }, 'JWT_AUDIENCE'],
    // '*' would match no origin (origins are compared exactly); a path or slash never matches either.
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'https://app.example/' }, 'trailing slash'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'https://app.example, app2.example' }, 'CORS_ORIGINS'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'capacitor://localhost/app' }, 'CORS_ORIGINS'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'null' }, 'CORS_ORIGINS'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'https://App.example' }, 'CORS_ORIGINS'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'https://app.example:443' }, 'default port'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'myapp://user:pw@host' }, 'CORS_ORIGINS'],
    [{ JWT_SECRET: SECRET, CORS_ORIGINS: 'capacitor://Localhost' }, 'CORS_ORIGINS'],
    [{ JWT_JWKS_URL: 'http://128.0.0.1/jwks.json' }, 'must use https'],
    // The key set over plain HTTP from another host: anyone on the path could swap the keys.
    [{ JWT_JWKS_URL: 'http://idp.example/jwks.json' }, 'must use https'],
    // Not URLs at all: the message, not a TypeError from inside the check.
    [{ JWT_JWKS_URL: 'idp.example.com/jwks' }, 'JWT_JWKS_URL'],
    [{ JWT_JWKS_URL: 'https://' }, 'JWT_JWKS_URL'],
    [{ JWT_SECRET: SECRET, JWT_TENANT_CLAIM: ' tenant_id' }, 'JWT_TENANT_CLAIM'],
    [{ JWT_SECRET: SECRET, JWT_TENANT_CLAIM: ' ' }, 'JWT_TENANT_CLAIM'],
  ])('when the environment is %j, then startup stops with a message naming %s', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});

describe('loadConfig: the values those checks let through (controls)', () => {
  it('an empty issuer and audience are unset; exact origins are kept; http JWKS on loopback is allowed', () => {
    expect(loadConfig({ JWT_SECRET: SECRET, JWT_ISSUER: '', JWT_AUDIENCE: '' }).jwt).toMatchObject({ issuer: undefined, audience: undefined });
    expect(loadConfig({ JWT_SECRET: SECRET, JWT_ISSUER: 'https://idp.example/' }).jwt.issuer).toBe('https://idp.example/');
    expect(loadConfig({ JWT_SECRET: SECRET, CORS_ORIGINS: ' https://app.example, http://localhost:5173 ,' }).corsOrigins).toEqual([
      'https://app.example',
      'http://localhost:5173',
    ]);
    // Hybrid apps and extensions send origins of their own schemes (an opaque URL origin).
    const custom = ['capacitor://localhost', 'ionic://localhost', 'tauri://localhost', 'chrome-extension://abcdefghijklmnopabcdefghijklmnop'];
    expect(loadConfig({ JWT_SECRET: SECRET, CORS_ORIGINS: custom.join(',') }).corsOrigins).toEqual(custom);
    for (const url of [
      'http://127.0.0.1:8080/jwks.json',
      'http://127.0.0.2/jwks.json',
      'http://localhost/jwks',
      'http://[::1]:9/k',
      'http://[::ffff:127.0.0.1]/k',
      'https://idp.example/jwks.json',
      'HTTPS://idp.example/jwks.json',
    ]) {
      expect(loadConfig({ JWT_JWKS_URL: url }).jwt.key).toMatchObject({ kind: 'jwks' });
    }
  });
});

describe('loadConfig: JWT_PUBLIC_KEY is read at startup, not at the first request', () => {
  const pem = (type: 'rsa' | 'ec' | 'ed25519', namedCurve = 'P-256'): string => {
    const key: KeyObject =
      type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey
        : type === 'ec'
          ? generateKeyPairSync('ec', { namedCurve }).publicKey
          : generateKeyPairSync('ed25519').publicKey;
    return key.export({ type: 'spki', format: 'pem' }).toString();
  };

  it.each([
    ['a key cut short', pem('rsa').slice(0, 200) + '\n-----END PUBLIC KEY-----', 'cannot be read'],
    ['a body that is not a key', `-----BEGIN PUBLIC KEY-----\n${'QUJD'.repeat(16)}\n-----END PUBLIC KEY-----`, 'cannot be read'],
    ['a P-384 key', pem('ec', 'P-384'), 'P-256'],
    ['an Ed25519 key', pem('ed25519'), 'ed25519 keys are not supported'],
  ])('when it is %s, then startup stops with a message naming JWT_PUBLIC_KEY', (_case, value, message) => {
    expect(() => loadConfig({ JWT_PUBLIC_KEY: value })).toThrow(ConfigError);
    expect(() => loadConfig({ JWT_PUBLIC_KEY: value })).toThrow(new RegExp(`JWT_PUBLIC_KEY: .*${message}`));
  });

  it('when its line breaks are written as \\n or \\r\\n (one env-file line), then it is the same key', () => {
    const multiLine = pem('ec');
    for (const lineBreak of ['\\n', '\\r\\n']) {
      const config = loadConfig({ JWT_PUBLIC_KEY: multiLine.replaceAll('\n', lineBreak) });
      expect(config.jwt.key).toEqual({ kind: 'public-key', pem: multiLine.trim() });
    }
  });
});
