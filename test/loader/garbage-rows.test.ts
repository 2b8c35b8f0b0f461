// Garbage the loader must quarantine row by row (the rest of the batch loads), inputs it must
// refuse before writing anything, and a batch that fails mid-way: marked failed, every time.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateToTempDir } from '../../src/generate/generate.js';
import { FILES } from '../../src/loader/contract.js';
import { LoadError, loadBatch } from '../../src/loader/load-batch.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { baseRows, ID, tables, writeFolder } from './fixtures.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('garbage');
});
afterAll(async () => {
  await db?.drop();
});

const rows = <T = RowDataPacket>(sql: string, params: unknown[] = []): Promise<T[]> => tables(db.pool).rows<T>(sql, params);
const countAll = (): Promise<Record<string, number>> => tables(db.pool).countAll();
const emptyAll = (): Promise<void> => tables(db.pool).emptyAll();

const seller = (id: string, city: string): string => `${id},"01001",${city},SP`;
const extraSeller = (n: number): string => String(n).repeat(32).slice(0, 32);

describe('loader: garbage rows', () => {
  beforeEach(emptyAll);

  it('quarantines rows of any length: a row over 64 KiB whole, one over 1 MiB cut with a note', async () => {
    const data = baseRows();
    data.sellers.push(seller(extraSeller(1), 'c'.repeat(70_000))); // line 4
    data.sellers.push(seller(extraSeller(2), 'é'.repeat(600_000))); // line 5: 1.2 MB of UTF-8
    const folder = await writeFolder(data);
    try {
      const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir });
      expect(summary.files[FILES.sellers]).toEqual({ read: 4, loaded: 2, rejected: 2, duplicates: 0, stale: 0 });
      expect(summary.files[FILES.items]).toEqual({ read: 3, loaded: 3, rejected: 0, duplicates: 0, stale: 0 });
      const rejected = await rows<{ line: number; reason: string; bytes: number }>(
        'SELECT line, reason, LENGTH(raw_content) AS bytes FROM etl_rejected_row ORDER BY line',
      );
      expect(rejected.map((r) => r.line)).toEqual([4, 5]);
      expect(rejected[0]?.reason).toMatch(/^seller_city: /);
      expect(Number(rejected[0]?.bytes)).toBe(seller(extraSeller(1), 'c'.repeat(70_000)).length); // the line as read
      expect(rejected[1]?.reason).toMatch(/^seller_city: .*\(raw content cut to its first \d+ of 1200\d{3} bytes\)$/);
      expect(Number(rejected[1]?.bytes)).toBeLessThanOrEqual(1024 * 1024);
      const [batch] = await rows('SELECT status FROM etl_batch WHERE batch_id = ?', [summary.batchId]);
      expect(batch).toEqual({ status: 'succeeded' });
    } finally {
      await folder.cleanup();
    }
  });

  it('quarantines records that are not valid CSV or UTF-8 at their physical line and loads the rest', async () => {
    const data = baseRows();
    data.sellers.push(seller(extraSeller(1), 'sao "paulo"')); // line 4: quote inside an unquoted field
    data.sellers.push(seller(extraSeller(2), 'campinas')); // line 5: fine
    data.customers.unshift(`${'8'.repeat(32)},${ID.unique},"01001",ok city,SP`); // line 2: fine
    data.customers.push(`${'9'.repeat(32)},${ID.unique},"01001","unclosed,SP`); // line 5: never closed
    const folder = await writeFolder(data);
    // Line 4 of the products file: a byte that is not UTF-8 in the category.
    const products = path.join(folder.dir, FILES.products);
    await writeFile(products, Buffer.from(`${'4'.repeat(32)},perfum\xe1ria,1,1,1,1,1,1,1\n`, 'latin1'), { flag: 'a' });
    try {
      const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir });
      expect(summary.files[FILES.sellers]).toEqual({ read: 4, loaded: 3, rejected: 1, duplicates: 0, stale: 0 });
      expect(summary.files[FILES.customers]).toEqual({ read: 4, loaded: 3, rejected: 1, duplicates: 0, stale: 0 });
      expect(summary.files[FILES.products]).toEqual({ read: 3, loaded: 2, rejected: 1, duplicates: 0, stale: 0 });
      const rejected = await rows('SELECT file, line, reason, raw_content FROM etl_rejected_row ORDER BY file, line');
      expect(rejected).toEqual([
        {
          file: FILES.customers,
          line: 5,
          reason: 'malformed CSV: a quoted field is never closed',
          raw_content: `${'9'.repeat(32)},${ID.unique},"01001","unclosed,SP`,
        },
        {
          file: FILES.products,
          line: 4,
          reason: 'malformed CSV: contains bytes that are not valid UTF-8 (read as U+FFFD)',
          raw_content: `${'4'.repeat(32)},perfum\uFFFDria,1,1,1,1,1,1,1`,
        },
        {
          file: FILES.sellers,
          line: 4,
          reason: 'malformed CSV: a quote inside an unquoted field (quote the field and double its quotes)',
          raw_content: seller(extraSeller(1), 'sao "paulo"'),
        },
      ]);
      const [customer] = await rows('SELECT city FROM dim_customer WHERE customer_id = ?', ['8'.repeat(32)]);
      expect(customer).toEqual({ city: 'ok city' });
    } finally {
      await folder.cleanup();
    }
  });

  it('keeps the last valid occurrence when the last one is refused on its seller, whatever the chunk size', async () => {
    const data = baseRows();
    // Line 5 repeats line 2's key with a seller nobody knows: it is quarantined, line 2 stays.
    data.items.push(`"${ID.order1}",1,${ID.product1},${'9'.repeat(32)},2017-09-19 09:45:35,5.00,1.00`);
    const folder = await writeFolder(data);
    try {
      for (const chunkSize of [10_000, 2, 1]) {
        const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir, chunkSize });
        expect(summary.files[FILES.items]).toEqual({ read: 4, loaded: 3, rejected: 1, duplicates: 0, stale: 0 });
        const [item] = await rows('SELECT price, seller_id FROM fact_order_item WHERE order_id = ? AND order_item_id = 1', [ID.order1]);
        expect(item).toEqual({ price: '58.90', seller_id: ID.seller1 });
        const [wide] = await rows('SELECT price FROM order_item_wide WHERE order_id = ? AND order_item_id = 1', [ID.order1]);
        expect(wide).toEqual({ price: '58.90' });
        const refused = await rows('SELECT line, reason FROM etl_rejected_row WHERE batch_id = ?', [summary.batchId]);
        expect(refused).toEqual([{ line: 5, reason: expect.stringMatching(/^seller_id: unknown seller/) }]);
      }
    } finally {
      await folder.cleanup();
    }
  });

  it('keeps category names apart that differ in case or accents, refuses edge spaces, and names the batch that renamed a product', async () => {
    const data = baseRows();
    data.translation = ['zz_Cat,upper_variant', 'zz_cat,lower_variant', 'zz_cát,accent_variant', 'yy_cat,padded', 'yy_cat ,trailing', 'ww, leading'];
    data.products = [
      `${ID.product1},zz_Cat,40,287,1,225,16,10,14`,
      `${ID.product2},zz_cat,,,,650,17,14,12`,
      `${'e'.repeat(31)}3,yy_cat,,,,650,17,14,12`,
      `${'e'.repeat(31)}4,yy_cat ,,,,650,17,14,12`,
    ];
    const folder = await writeFolder(data);
    const renamed = await writeFolder({ ...baseRows(), translation: ['zz_cat,renamed'], products: [], orders: [], items: [] });
    try {
      const first = await loadBatch({ databaseUrl: db.url, dir: folder.dir });
      expect(first.files[FILES.translation]).toEqual({ read: 6, loaded: 4, rejected: 2, duplicates: 0, stale: 0 });
      expect(first.files[FILES.products]).toEqual({ read: 4, loaded: 3, rejected: 1, duplicates: 0, stale: 0 });
      const edges = await rows('SELECT file, line, reason FROM etl_rejected_row ORDER BY file, line');
      expect(edges).toEqual([
        { file: FILES.products, line: 5, reason: 'product_category_name: must not start or end with a space (got "yy_cat ")' },
        { file: FILES.translation, line: 6, reason: 'product_category_name: must not start or end with a space (got "yy_cat ")' },
        { file: FILES.translation, line: 7, reason: 'product_category_name_english: must not start or end with a space (got " leading")' },
      ]);
      const english = async () =>
        rows('SELECT product_id, category_name_english, batch_id FROM dim_product ORDER BY product_id');
      expect(await english()).toEqual([
        { product_id: ID.product1, category_name_english: 'upper_variant', batch_id: first.batchId },
        { product_id: ID.product2, category_name_english: 'lower_variant', batch_id: first.batchId },
        { product_id: `${'e'.repeat(31)}3`, category_name_english: 'padded', batch_id: first.batchId },
      ]);
      const second = await loadBatch({ databaseUrl: db.url, dir: renamed.dir });
      // The renamed product carries the batch's id, but the products file wrote nothing.
      expect(second.files[FILES.products]).toEqual({ read: 0, loaded: 0, rejected: 0, duplicates: 0, stale: 0 });
      const [staging] = await rows('SELECT rows_in, rows_out, rows_rejected FROM etl_batch_stage WHERE batch_id = ? AND stage = ?', [
        second.batchId,
        'staging',
      ]);
      expect(Number(staging?.rows_in) - Number(staging?.rows_out) - Number(staging?.rows_rejected)).toBeGreaterThanOrEqual(0);
      expect(await english()).toEqual([
        { product_id: ID.product1, category_name_english: 'upper_variant', batch_id: first.batchId },
        { product_id: ID.product2, category_name_english: 'renamed', batch_id: second.batchId },
        { product_id: `${'e'.repeat(31)}3`, category_name_english: 'padded', batch_id: first.batchId },
      ]);
      const [wide] = await rows('SELECT product_category, batch_id FROM order_item_wide WHERE product_id = ?', [ID.product2]);
      // The item row was not rewritten: its batch stays, as the star schema's does.
      expect(wide).toEqual({ product_category: 'renamed', batch_id: first.batchId });
    } finally {
      await Promise.all([folder.cleanup(), renamed.cleanup()]);
    }
  });
});

describe('loader: refused before writing anything', () => {
  beforeEach(emptyAll);

  it('refuses a file with carriage-return line ends at the header check', async () => {
    const folder = await writeFolder(baseRows());
    await writeFile(path.join(folder.dir, FILES.sellers), `seller_id,seller_zip_code_prefix,seller_city,seller_state\r${seller(ID.seller1, 'x')}\r`);
    try {
      const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir });
      await expect(failure).rejects.toMatchObject({ kind: 'input' });
      await expect(failure).rejects.toThrow(/olist_sellers_dataset\.csv: line ends must be/);
      expect(Object.values(await countAll()).every((n) => n === 0)).toBe(true);
    } finally {
      await folder.cleanup();
    }
  });

  it('refuses an ingestion time in the future, on a day that does not exist, or before 1970', async () => {
    const folder = await writeFolder(baseRows());
    try {
      const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
      for (const ingestedAt of [inAnHour, '2024-02-30T00:00:00Z', '1969-12-31T23:59:59Z', 'yesterday']) {
        const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir, ingestedAt });
        await expect(failure).rejects.toBeInstanceOf(LoadError);
        await expect(failure).rejects.toThrow(/invalid ingestion timestamp/);
      }
      expect(Object.values(await countAll()).every((n) => n === 0)).toBe(true);
      // No offset means UTC, whatever the process's time zone.
      const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir, ingestedAt: '2024-05-01T10:00:00' });
      const [batch] = await rows('SELECT created_at FROM etl_batch WHERE batch_id = ?', [summary.batchId]);
      expect(batch).toEqual({ created_at: '2024-05-01 10:00:00.000' });
    } finally {
      await folder.cleanup();
    }
  });
});

describe('loader: a database this version did not migrate', () => {
  it('is refused before anything is written, with the command that fixes it', async () => {
    const bare = `oi_test_unmigrated_${randomBytes(4).toString('hex')}`;
    await db.pool.query(`CREATE DATABASE \`${bare}\``);
    const folder = await writeFolder(baseRows());
    try {
      const failure = loadBatch({ databaseUrl: db.url.replace(/\/[^/]+$/, `/${bare}`), dir: folder.dir });
      await expect(failure).rejects.toMatchObject({ kind: 'input' });
      await expect(failure).rejects.toThrow(/not migrated to this version \(0 of \d+ migrations applied\): run npm run db:migrate/);
    } finally {
      await db.pool.query(`DROP DATABASE \`${bare}\``);
      await folder.cleanup();
    }
  });

  it('a database that does not exist yet is refused the same way (it was "cannot start the batch: Unknown database", exit 1)', async () => {
    const missing = `oi_test_missing_${randomBytes(4).toString('hex')}`;
    const folder = await writeFolder(baseRows());
    try {
      const failure = loadBatch({ databaseUrl: db.url.replace(/\/[^/]+$/, `/${missing}`), dir: folder.dir });
      await expect(failure).rejects.toMatchObject({ kind: 'input' });
      await expect(failure).rejects.toThrow(/not migrated to this version \(0 of \d+ migrations applied\): run npm run db:migrate/);
    } finally {
      await folder.cleanup();
    }
  });
});

describe('loader: a load stopped by a signal', () => {
  it('SIGTERM: the CLI exits 1 and the batch is marked failed', async () => {
    await emptyAll();
    const data = await generateToTempDir({ orders: 30_000, sellers: 40, seed: 7 });
    try {
      // node itself (tsx as a loader), so that the signal reaches the loader's own process.
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/loader/cli.ts', '--dir', data.dir, '--chunk-size', '500'], {
        cwd: repoRoot,
        env: { ...process.env, DATABASE_URL: db.url },
      });
      let stderr = '';
      let signalled = false;
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        // Once rows are being written, stop it the way a supervisor would (a second signal while
        // it winds down must not kill it either).
        if (!signalled && stderr.includes('olist_customers_dataset.csv')) {
          signalled = true;
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGTERM'), 20);
        }
      });
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toMatch(/error: batch .* failed: interrupted \(SIGTERM\)/);
      const batches = await rows('SELECT status FROM etl_batch');
      expect(batches).toEqual([{ status: 'failed' }]);
      const stages = await rows('SELECT DISTINCT status FROM etl_batch_stage');
      expect(stages).toEqual([{ status: 'failed' }]);
    } finally {
      await data.cleanup();
    }
  });
});

describe('loader: a batch that fails mid-way', () => {
  it('leaves every committed order with its calendar days, though the batch failed in the items', async () => {
    await emptyAll();
    await db.pool.query(`CREATE TRIGGER refuse_cursed_price BEFORE INSERT ON fact_order_item FOR EACH ROW
      BEGIN
        IF NEW.price = 666.66 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by a test trigger'; END IF;
      END`);
    const data = baseRows();
    data.items.push(`"${ID.order2}",2,${ID.product1},${ID.seller1},2018-01-05 10:00:00,666.66,1.00`);
    const folder = await writeFolder(data);
    try {
      await expect(loadBatch({ databaseUrl: db.url, dir: folder.dir })).rejects.toThrow(/refused by a test trigger/);
      expect((await countAll()).fact_order).toBeGreaterThan(0);
      const [missingDay] = await rows<{ n: number }>(
        'SELECT COUNT(*) AS n FROM fact_order o LEFT JOIN dim_date d ON d.date_key = o.purchase_date WHERE d.date_key IS NULL',
      );
      expect(Number(missingDay?.n)).toBe(0);
    } finally {
      await db.pool.query('DROP TRIGGER IF EXISTS refuse_cursed_price');
      await folder.cleanup();
    }
  });

  // A chunk is one transaction: its calendar days, items, summary marks, wide rows and
  // quarantined rows commit together or not at all. Made to fail at a later statement of the
  // chunk (the wide rows, then the quarantine, its last one), after the earlier ones succeeded.
  it.each([
    ['its wide rows', 'order_item_wide', `NEW.order_id = '${ID.order2}'`],
    ['its quarantined rows', 'etl_rejected_row', `NEW.file = '${FILES.items}'`],
  ])('when an items chunk fails writing %s, then nothing of that chunk is committed and the batch is failed', async (_what, table, condition) => {
    await emptyAll();
    await db.pool.query(`CREATE TRIGGER refuse_in_chunk BEFORE INSERT ON ${table} FOR EACH ROW
      BEGIN
        IF ${condition} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by a test trigger'; END IF;
      END`);
    const data = baseRows();
    // A shipping date in a year no order has: the chunk fills that calendar year itself.
    data.items.push(`"${ID.order1}",3,${ID.product2},${ID.seller2},2019-03-01 10:00:00,5.00,1.00`);
    data.items.push(`"${ID.order2}",2,${ID.product1},${ID.seller1},2018-01-05 10:00:00,-1.00,1.00`); // a contract reject
    const folder = await writeFolder(data);
    try {
      // One writer and one chunk: every item row is in the transaction that fails.
      const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir, writers: 1 });
      await expect(failure).rejects.toMatchObject({ kind: 'failed' });
      await expect(failure).rejects.toThrow(/refused by a test trigger/);

      const batches = await rows<{ batch_id: string; status: string }>('SELECT batch_id, status FROM etl_batch');
      expect(batches).toEqual([{ batch_id: expect.any(String), status: 'failed' }]);
      expect(await rows('SELECT stage, status, rows_out FROM etl_batch_stage ORDER BY stage')).toEqual([
        { stage: 'landing', status: 'failed', rows_out: expect.any(Number) },
        // Committed: the 2 rows of each file before the items, none of the items.
        { stage: 'staging', status: 'failed', rows_out: 10 },
      ]);
      // The files before the items were other chunks: committed.
      expect(await countAll()).toMatchObject({ dim_seller: 2, dim_customer: 2, dim_product: 2, fact_order: 2 });
      // Nothing of the failed chunk.
      expect(await countAll()).toMatchObject({ fact_order_item: 0, order_item_wide: 0, etl_rejected_row: 0 });
      const [marks] = await rows<{ n: number }>('SELECT COUNT(*) AS n FROM order_item_summary_mark WHERE batch_id = ?', [
        batches[0]?.batch_id,
      ]);
      expect(Number(marks?.n)).toBe(0);
      const [days2019] = await rows<{ n: number }>("SELECT COUNT(*) AS n FROM dim_date WHERE date_key BETWEEN '2019-01-01' AND '2019-12-31'");
      expect(Number(days2019?.n)).toBe(0);
    } finally {
      await db.pool.query('DROP TRIGGER IF EXISTS refuse_in_chunk');
      await folder.cleanup();
    }
  });

  it('stops its writers and is marked failed, every time', async () => {
    // Customers of one city make the server refuse their chunk; the others are slowed down, so
    // that the other writers are inside a transaction when the failure surfaces.
    await db.pool.query(`CREATE TRIGGER refuse_exploding_city BEFORE INSERT ON dim_customer FOR EACH ROW
      BEGIN
        IF NEW.city = 'explode' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by a test trigger'; END IF;
        DO SLEEP(0.02);
      END`);
    const data = baseRows();
    for (let i = 0; i < 400; i += 1) {
      // The first two hex digits pick the writer: spread over all of them.
      const id = (i % 256).toString(16).padStart(2, '0') + i.toString(16).padStart(30, '7');
      data.customers.push(`${id},${ID.unique},"01001",${i === 60 ? 'explode' : 'fine'},SP`);
    }
    const folder = await writeFolder(data);
    try {
      for (let run = 0; run < 3; run += 1) {
        await emptyAll();
        const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir, chunkSize: 20 });
        await expect(failure).rejects.toMatchObject({ kind: 'failed' });
        await expect(failure).rejects.toThrow(/refused by a test trigger/);
        // No writer goes on once the batch is reported failed: nothing commits afterwards.
        const customersAtFailure = (await countAll()).dim_customer;
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect((await countAll()).dim_customer).toBe(customersAtFailure);
        const batches = await rows('SELECT status FROM etl_batch');
        expect(batches).toEqual([{ status: 'failed' }]);
        const stages = await rows('SELECT stage, status FROM etl_batch_stage ORDER BY stage');
        expect(stages).toEqual([
          { stage: 'landing', status: 'failed' },
          { stage: 'staging', status: 'failed' },
        ]);
        // Nothing after the customers: the writers stopped before the products.
        const stored = await countAll();
        expect(stored).toMatchObject({ dim_product: 0, fact_order: 0, fact_order_item: 0 });
        // The failed stages say how far the batch got: rows read and checked, and rows committed
        // (the translations, sellers and customer chunks that made it), not NULL.
        const [landing, staging] = await rows<{ rows_in: number; rows_out: number; rows_rejected: number }>(
          'SELECT rows_in, rows_out, rows_rejected FROM etl_batch_stage ORDER BY stage',
        );
        const committed = (stored.dim_category_translation ?? 0) + (stored.dim_seller ?? 0) + (stored.dim_customer ?? 0);
        expect(committed).toBeGreaterThan(data.sellers.length);
        expect(staging).toEqual({ rows_in: landing?.rows_out, rows_out: committed, rows_rejected: 0 });
        expect(landing?.rows_rejected).toBe(0);
        expect(landing?.rows_in).toBe(landing?.rows_out);
        expect(landing?.rows_in).toBeGreaterThanOrEqual(committed);
      }
    } finally {
      await db.pool.query('DROP TRIGGER IF EXISTS refuse_exploding_city');
      await folder.cleanup();
    }
  });
});
