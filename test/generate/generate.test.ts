import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToTempDir, MAX_SEED } from '../../src/generate/generate.js';
import { FILES, HEADERS, LOAD_ORDER, validateRecord } from '../../src/loader/contract.js';
import { loadBatch } from '../../src/loader/load-batch.js';
import { readCsv, readHeader } from '../../src/loader/read.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

async function digest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of Object.values(FILES)) {
    out[name] = createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex');
  }
  return out;
}

describe('generator', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('is deterministic: same seed → same bytes, other seed → other bytes', async () => {
    const a = await generateToTempDir({ orders: 500, sellers: 30, seed: 5 });
    const b = await generateToTempDir({ orders: 500, sellers: 30, seed: 5 });
    const c = await generateToTempDir({ orders: 500, sellers: 30, seed: 6 });
    cleanups.push(a.cleanup, b.cleanup, c.cleanup);
    const [da, db, dc] = await Promise.all([digest(a.dir), digest(b.dir), digest(c.dir)]);
    expect(db).toEqual(da);
    for (const name of [FILES.orders, FILES.items, FILES.customers, FILES.sellers, FILES.products]) {
      expect(dc[name], name).not.toBe(da[name]);
    }
  });

  it('refuses a seed its 32-bit state would fold onto another one', async () => {
    for (const seed of [MAX_SEED + 1, -1, 1.5]) {
      await expect(generateToTempDir({ orders: 5, sellers: 2, seed })).rejects.toThrow(/seed must be an integer from 0 to 4294967295/);
    }
    const edge = await generateToTempDir({ orders: 5, sellers: 2, seed: MAX_SEED });
    cleanups.push(edge.cleanup);
    expect(edge.items).toBeGreaterThan(0);
  });

  it('writes the Olist layout: headers, quoting, BOM, consistent timestamps, skewed sellers', async () => {
    const g = await generateToTempDir({ orders: 3000, sellers: 100, seed: 9 });
    cleanups.push(g.cleanup);
    for (const kind of LOAD_ORDER) {
      expect((await readHeader(path.join(g.dir, FILES[kind]))).fields).toEqual([...HEADERS[kind]]);
    }
    const translation = await readFile(path.join(g.dir, FILES.translation), 'utf8');
    expect(translation.charCodeAt(0)).toBe(0xfeff);
    expect(translation.endsWith('\n')).toBe(false);
    const customers = await readFile(path.join(g.dir, FILES.customers), 'utf8');
    expect(customers.split('\n')[0]).toBe('"customer_id","customer_unique_id","customer_zip_code_prefix","customer_city","customer_state"');

    const statuses = new Map<string, number>();
    for await (const { record } of readCsv(path.join(g.dir, FILES.orders))) {
      const result = validateRecord('orders', record);
      expect(result.ok).toBe(true);
      if (!result.ok) continue;
      const o = result.row;
      statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
      const chain = [o.purchasedAt, o.approvedAt, o.deliveredCarrierAt, o.deliveredCustomerAt].filter((t) => t !== null);
      expect([...chain].sort()).toEqual(chain);
      expect(new Set(chain).size).toBe(chain.length);
      const days = (Date.parse(o.estimatedDeliveryAt.replace(' ', 'T') + 'Z') - Date.parse(o.purchasedAt.slice(0, 10))) / 86_400_000;
      expect(days).toBeGreaterThanOrEqual(20);
      expect(days).toBeLessThanOrEqual(35);
    }
    const delivered = (statuses.get('delivered') ?? 0) / 3000;
    expect(delivered).toBeGreaterThan(0.94);
    expect(delivered).toBeLessThan(0.99);
    expect(statuses.size).toBeGreaterThan(2);

    const perSeller = new Map<string, number>();
    const perOrder = new Map<string, number>();
    const sellersPerOrder = new Map<string, Set<string>>();
    for await (const { record } of readCsv(path.join(g.dir, FILES.items))) {
      const result = validateRecord('items', record);
      expect(result.ok).toBe(true);
      if (!result.ok) continue;
      const { orderId, sellerId } = result.row;
      perSeller.set(sellerId, (perSeller.get(sellerId) ?? 0) + 1);
      perOrder.set(orderId, (perOrder.get(orderId) ?? 0) + 1);
      sellersPerOrder.set(orderId, (sellersPerOrder.get(orderId) ?? new Set()).add(sellerId));
    }
    const counts = [...perSeller.values()].sort((x, y) => y - x);
    const top5 = counts.slice(0, 5).reduce((n, v) => n + v, 0);
    expect(top5 / g.items).toBeGreaterThan(0.25); // a few very large sellers
    expect(Math.max(...perOrder.values())).toBeGreaterThan(2);
    expect([...sellersPerOrder.values()].some((s) => s.size > 1)).toBe(true);
    expect(perOrder.size).toBe(3000);
  });

  describe('loading generated data', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await createTestDatabase('generate');
    });
    afterAll(async () => {
      await db?.drop();
    });

    it('loads with zero rejects', async () => {
      const g = await generateToTempDir({ orders: 2000, sellers: 40, seed: 3 });
      cleanups.push(g.cleanup);
      const summary = await loadBatch({ databaseUrl: db.url, dir: g.dir });
      expect(Object.values(summary.files).every((f) => f.rejected === 0 && f.duplicates === 0)).toBe(true);
      expect(summary.files[FILES.items].loaded).toBe(g.items);
      expect(summary.files[FILES.products].loaded).toBe(g.products);
      const [rows] = await db.pool.query<RowDataPacket[]>(
        `SELECT SUM(category_name IS NULL) AS no_category,
                SUM(category_name IS NOT NULL AND category_name_english IS NULL) AS untranslated
           FROM dim_product`,
      );
      expect(Number(rows[0]?.no_category)).toBeGreaterThan(0);
      expect(Number(rows[0]?.untranslated)).toBeGreaterThan(0);
    });
  });
});

describe('npm run generate (the CLI)', () => {
  const repoRoot = path.resolve(import.meta.dirname, '..', '..');
  const run = promisify(execFile);

  it("writes a relative --out in the caller's folder (INIT_CWD under npm run), as load reads --dir", async () => {
    const caller = await mkdtemp(path.join(tmpdir(), 'oi-generate-cli-'));
    try {
      await run(path.join(repoRoot, 'node_modules/.bin/tsx'), ['src/generate/cli.ts', '--out', 'relative', '--sellers', '2', '--orders', '5'], {
        cwd: repoRoot,
        env: { ...process.env, INIT_CWD: caller },
      });
      expect((await readdir(path.join(caller, 'relative'))).sort()).toEqual(Object.values(FILES).sort());
    } finally {
      await rm(caller, { recursive: true, force: true });
    }
  });

  it('--help prints the usage and exits 0', async () => {
    const { stdout } = await run(path.join(repoRoot, 'node_modules/.bin/tsx'), ['src/generate/cli.ts', '--help'], { cwd: repoRoot });
    expect(stdout).toMatch(/^usage: npm run generate -- --out <folder>/);
  });
});
