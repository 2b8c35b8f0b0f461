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
  ])('when the environment is %j, then startup stops with a message naming %s', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
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
