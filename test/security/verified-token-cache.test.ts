import { describe, expect, it } from 'vitest';
import { VerifiedTokenCache } from '../../src/auth/verified-token-cache.js';

const NOW = 1_800_000_000_000;
const cache = (maxEntries = 3): VerifiedTokenCache<string> =>
  new VerifiedTokenCache<string>({ maxEntries, maxAgeMs: 60_000, clockToleranceMs: 5_000 });

describe('VerifiedTokenCache', () => {
  it('serves a token until its exp plus the clock tolerance, and not a millisecond later', () => {
    const tokens = cache();
    tokens.set('t', { exp: NOW / 1000 + 10 }, 'claims', NOW);
    expect(tokens.get('t', NOW)).toBe('claims');
    expect(tokens.get('t', NOW + 15_000)).toBe('claims');
    expect(tokens.get('t', NOW + 15_001)).toBeUndefined();
    // An expired entry is dropped, not kept for later.
    expect(tokens.size).toBe(0);
  });

  it('reuses a verification at most maxAgeMs, however far away exp is', () => {
    const tokens = cache();
    tokens.set('t', { exp: NOW / 1000 + 86_400 }, 'claims', NOW);
    expect(tokens.get('t', NOW + 60_000)).toBe('claims');
    expect(tokens.get('t', NOW + 60_001)).toBeUndefined();
  });

  it('honours nbf minus the clock tolerance', () => {
    const tokens = cache();
    tokens.set('t', { exp: NOW / 1000 + 30, nbf: NOW / 1000 + 10 }, 'claims', NOW);
    expect(tokens.get('t', NOW + 4_999)).toBeUndefined();
    expect(tokens.get('t', NOW + 5_000)).toBe('claims');
  });

  it('keeps nothing without a finite numeric exp, or already expired', () => {
    const tokens = cache();
    tokens.set('a', {}, 'claims', NOW);
    tokens.set('b', { exp: String(NOW / 1000 + 10) }, 'claims', NOW);
    tokens.set('c', { exp: Number.POSITIVE_INFINITY }, 'claims', NOW);
    tokens.set('d', { exp: NOW / 1000 - 6 }, 'claims', NOW);
    expect(tokens.size).toBe(0);
  });

  it('matches the exact token text only', () => {
    const tokens = cache();
    tokens.set('header.payload.signature', { exp: NOW / 1000 + 10 }, 'claims', NOW);
    expect(tokens.get('header.payload.signaturf', NOW)).toBeUndefined();
    expect(tokens.get('header.payload.signature ', NOW)).toBeUndefined();
    expect(tokens.get('header.payload.signature', NOW)).toBe('claims');
  });

  it('is bounded: the oldest entry makes room for a new one', () => {
    const tokens = cache(2);
    const exp = NOW / 1000 + 10;
    tokens.set('a', { exp }, 'A', NOW);
    tokens.set('b', { exp }, 'B', NOW);
    tokens.set('c', { exp }, 'C', NOW);
    expect(tokens.size).toBe(2);
    expect(tokens.get('a', NOW)).toBeUndefined();
    expect(tokens.get('b', NOW)).toBe('B');
    expect(tokens.get('c', NOW)).toBe('C');
  });
});
