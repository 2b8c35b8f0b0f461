// How a chunk's rows are spread over the writer connections: by key range, so that writers
// insert into disjoint stretches of each key-ordered index (see partitionOf).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/loader/load-batch.js';

describe('partitionOf', () => {
  it('gives contiguous key ranges: sorted ids map to non-decreasing partitions', () => {
    const ids = Array.from({ length: 2000 }, () => randomBytes(16).toString('hex')).sort();
    const partitions = ids.map((id) => partitionOf(id, 4));
    for (let i = 1; i < partitions.length; i += 1) expect(partitions[i]).toBeGreaterThanOrEqual(partitions[i - 1] ?? 0);
    expect(partitionOf('00'.repeat(16), 4)).toBe(0);
    expect(partitionOf('ff'.repeat(16), 4)).toBe(3);
  });

  it('spreads random ids evenly and always sends a key to the same writer', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20_000; i += 1) {
      const id = randomBytes(16).toString('hex');
      const p = partitionOf(id, 4);
      expect(partitionOf(id, 4)).toBe(p);
      counts[p] = (counts[p] ?? 0) + 1;
    }
    for (const count of counts) expect(Math.abs(count - 5000)).toBeLessThan(400);
  });

  it('spreads keys that are not ids (category names) within range as well', () => {
    for (const name of ['', 'beleza_saude', 'Zz', 'é']) {
      const p = partitionOf(name, 3);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(3);
      expect(partitionOf(name, 3)).toBe(p);
    }
  });
});
