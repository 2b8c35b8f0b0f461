import { describe, expect, it } from 'vitest';
import { duplicateMemberName, isCanonicalBase64url } from '../../src/auth/token-text.js';

describe('duplicateMemberName', () => {
  it.each([
    ['{"a":1,"b":2}', undefined],
    ['{"a":{"x":1},"b":{"x":2}}', undefined],
    ['{"scp":["a","a"],"s":"\\"a\\",\\"a\\""}', undefined],
    ['[{"a":1},{"a":2}]', undefined],
    ['{"a":"{\\"b\\":1,\\"b\\":2}"}', undefined],
    ['{"a":1,"a":2}', 'a'],
    ['{"tenant_id":"x","tenant\\u005fid":"y"}', 'tenant_id'],
    ['{"o":{"k":[1,{"z":1}],"k":2}}', 'k'],
    ['{"a":[{"b":1}],"c":{"d":{"e":1,"e":2}}}', 'e'],
  ])('%s → %s', (json, expected) => {
    expect(() => JSON.parse(json) as unknown).not.toThrow();
    expect(duplicateMemberName(json)).toBe(expected);
  });
});

describe('isCanonicalBase64url', () => {
  it('accepts the one spelling of some bytes and refuses the others', () => {
    const bytes = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x01]);
    const canonical = bytes.toString('base64url');
    expect(isCanonicalBase64url(canonical)).toBe(true);
    expect(isCanonicalBase64url(`${canonical.slice(0, -1)}${canonical.endsWith('E') ? 'F' : 'E'}`)).toBe(false);
    expect(isCanonicalBase64url(`${canonical}=`)).toBe(false);
    expect(isCanonicalBase64url('')).toBe(true);
  });
});
