import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateToTempDir } from '../../src/generate/generate.js';
import { FILES } from '../../src/loader/contract.js';
import { LoadError, loadBatch } from '../../src/loader/load-batch.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { ALL_TABLES, baseRows, ID, tables, writeFolder, type Folder } from './fixtures.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('loader');
});
afterAll(async () => {
  await db?.drop();
});

const rows = <T = RowDataPacket>(sql: string, params: unknown[] = []): Promise<T[]> => tables(db.pool).rows<T>(sql, params);
const countAll = (): Promise<Record<string, number>> => tables(db.pool).countAll();
const emptyAll = (): Promise<void> => tables(db.pool).emptyAll();

const zeroCounts = Object.fromEntries(ALL_TABLES.map((t) => [t, 0]));

describe('loadBatch', () => {
  beforeEach(emptyAll);

  it('loads a generated folder twice: same facts, two succeeded batches', async () => {
    const data = await generateToTempDir({ orders: 400, sellers: 15, seed: 11 });
    try {
      const factsSql = `SELECT o.order_id, o.order_status, o.purchased_at, o.purchase_date, i.order_item_id, i.price,
          i.freight_value, i.seller_id, i.purchased_at AS item_purchased_at, p.category_name_english
          FROM fact_order_item i JOIN fact_order o USING (order_id) JOIN dim_product p USING (product_id)
          ORDER BY o.order_id, i.order_item_id`;
      const first = await loadBatch({ databaseUrl: db.url, dir: data.dir, ingestedAt: '2024-05-01T10:00:00.123Z' });
      const factsAfterFirst = await rows(factsSql);
      const second = await loadBatch({ databaseUrl: db.url, dir: data.dir });
      const factsAfterSecond = await rows(factsSql);

      expect(first.batchId).not.toBe(second.batchId);
      expect(factsAfterFirst).toHaveLength(data.items);
      expect(factsAfterSecond).toEqual(factsAfterFirst);
      for (const summary of [first, second]) {
        expect(summary.status).toBe('succeeded');
        expect(summary.files[FILES.items]).toEqual({ read: data.items, loaded: data.items, rejected: 0, duplicates: 0, stale: 0 });
        expect(summary.files[FILES.orders]).toEqual({ read: 400, loaded: 400, rejected: 0, duplicates: 0, stale: 0 });
        expect(summary.files[FILES.sellers].loaded).toBe(15);
      }
      const batches = await rows('SELECT batch_id, source, created_at, status FROM etl_batch ORDER BY created_at');
      expect(batches).toHaveLength(2);
      expect(batches[0]).toMatchObject({
        batch_id: first.batchId,
        status: 'succeeded',
        created_at: '2024-05-01 10:00:00.123',
        source: `olist-csv:${path.basename(data.dir)}`,
      });
      expect(batches[1]).toMatchObject({ batch_id: second.batchId, status: 'succeeded' });
      // The second batch rewrote every row (SCD 1): all rows now name it.
      const [owner] = await rows<{ n: number }>('SELECT COUNT(*) AS n FROM fact_order_item WHERE batch_id = ?', [
        second.batchId,
      ]);
      expect(Number(owner?.n)).toBe(data.items);
      // Items carry their order's purchase time; dim_date covers every purchase day.
      const [mismatch] = await rows<{ n: number }>(
        'SELECT COUNT(*) AS n FROM fact_order_item i JOIN fact_order o USING (order_id) WHERE i.purchased_at <> o.purchased_at',
      );
      expect(Number(mismatch?.n)).toBe(0);
      const [missingDay] = await rows<{ n: number }>(
        'SELECT COUNT(*) AS n FROM fact_order o LEFT JOIN dim_date d ON d.date_key = o.purchase_date WHERE d.date_key IS NULL',
      );
      expect(Number(missingDay?.n)).toBe(0);
      // dim_date is a calendar: every day of every year a date of the batch falls in, once, with
      // the attributes MariaDB's own date functions give (ISO weekday, week and week-year).
      const years = await rows<{ year: number; days: number; first: string; last: string }>(
        `SELECT YEAR(date_key) AS year, COUNT(*) AS days, MIN(date_key) AS first, MAX(date_key) AS last FROM dim_date GROUP BY YEAR(date_key)`,
      );
      expect(years.length).toBeGreaterThan(0);
      for (const { year, days, first, last } of years) {
        expect({ days: Number(days), first: String(first), last: String(last) }).toEqual({
          days: year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 366 : 365,
          first: `${year}-01-01`,
          last: `${year}-12-31`,
        });
      }
      const [uncovered] = await rows<{ n: number }>(
        `SELECT COUNT(*) AS n FROM (
           SELECT DATE(shipping_limit_at) AS d FROM fact_order_item
           UNION SELECT DATE(estimated_delivery_at) FROM fact_order
           UNION SELECT DATE(delivered_customer_at) FROM fact_order WHERE delivered_customer_at IS NOT NULL) dates
         LEFT JOIN dim_date ON date_key = d WHERE date_key IS NULL`,
      );
      expect(Number(uncovered?.n)).toBe(0);
      const [wrongAttributes] = await rows<{ n: number }>(
        `SELECT COUNT(*) AS n FROM dim_date WHERE year <> YEAR(date_key) OR quarter <> QUARTER(date_key) OR month <> MONTH(date_key)
           OR day_of_month <> DAYOFMONTH(date_key) OR day_of_week <> WEEKDAY(date_key) + 1 OR iso_week <> WEEK(date_key, 3)
           OR iso_year <> YEARWEEK(date_key, 3) DIV 100 OR \`year_month\` <> DATE_FORMAT(date_key, '%Y-%m')`,
      );
      expect(Number(wrongAttributes?.n)).toBe(0);
      const [newYearsDay] = await rows('SELECT iso_week, iso_year FROM dim_date WHERE date_key = ?', ['2017-01-01']);
      expect(newYearsDay).toEqual({ iso_week: 52, iso_year: 2016 });
      const stages = await rows(
        'SELECT stage, status, rows_in, rows_out, rows_rejected, finished_at FROM etl_batch_stage WHERE batch_id = ? ORDER BY stage',
        [second.batchId],
      );
      const total = Object.values(second.files).reduce((n, f) => n + f.read, 0);
      expect(stages).toEqual([
        expect.objectContaining({ stage: 'landing', status: 'succeeded', rows_in: total, rows_out: total, rows_rejected: 0 }),
        expect.objectContaining({ stage: 'staging', status: 'succeeded', rows_in: total, rows_out: total, rows_rejected: 0 }),
      ]);
    } finally {
      await data.cleanup();
    }
  });

  it('quarantines garbage rows with file, line and reason and loads the rest', async () => {
    const base = baseRows();
    const data = baseRows();
    data.sellers.push(`${'1'.repeat(32)},"01001",sao paulo,sp`); // line 4: bad state
    data.products.push('not-an-id,artes,1,1,1,1,1,1,1'); // line 4
    data.orders.splice(
      1,
      0,
      `"${'2'.repeat(32)}",${ID.customer1},lost,"2017-02-30 10:00:00",,,,"2017-03-20 00:00:00"`, // line 3
    );
    data.items.push(`"${ID.order2}",2,${ID.product1},${ID.seller1},2018-01-05 10:00:00,-3.5,1.00`); // line 5
    data.items.push(`"${ID.order2}",3,${ID.product1},${ID.seller1}`); // line 6: too few fields
    data.items.push(`"${ID.unknownOrder}",1,${ID.product1},${ID.seller1},2018-01-05 10:00:00,1.00,1.00`); // line 7
    const folder = await writeFolder(data);
    try {
      const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir });
      expect(summary.files[FILES.sellers]).toEqual({ read: 3, loaded: 2, rejected: 1, duplicates: 0, stale: 0 });
      expect(summary.files[FILES.products]).toEqual({ read: 3, loaded: 2, rejected: 1, duplicates: 0, stale: 0 });
      expect(summary.files[FILES.orders]).toEqual({ read: 3, loaded: 2, rejected: 1, duplicates: 0, stale: 0 });
      expect(summary.files[FILES.items]).toEqual({ read: base.items.length + 3, loaded: 3, rejected: 3, duplicates: 0, stale: 0 });

      const rejected = await rows('SELECT file, line, reason, raw_content FROM etl_rejected_row ORDER BY file, line');
      expect(rejected).toEqual([
        {
          file: FILES.items,
          line: 5,
          reason: 'price: must be a non-negative decimal with at most 2 places (got "-3.5")',
          // The text as read, quotes included: what the source sent, not a re-serialisation.
          raw_content: `"${ID.order2}",2,${ID.product1},${ID.seller1},2018-01-05 10:00:00,-3.5,1.00`,
        },
        { file: FILES.items, line: 6, reason: 'wrong number of fields: expected 7, got 4', raw_content: `"${ID.order2}",3,${ID.product1},${ID.seller1}` },
        {
          file: FILES.items,
          line: 7,
          reason: `order_id: unknown order, neither in this batch nor in the database (got "${ID.unknownOrder}")`,
          raw_content: `"${ID.unknownOrder}",1,${ID.product1},${ID.seller1},2018-01-05 10:00:00,1.00,1.00`,
        },
        {
          file: FILES.orders,
          line: 3,
          reason:
            'order_status: must be one of created, approved, invoiced, processing, shipped, delivered, unavailable, canceled (got "lost"); order_purchase_timestamp: must be a valid UTC timestamp YYYY-MM-DD HH:MM:SS (got "2017-02-30 10:00:00")',
          raw_content: `"${'2'.repeat(32)}",${ID.customer1},lost,"2017-02-30 10:00:00",,,,"2017-03-20 00:00:00"`,
        },
        { file: FILES.products, line: 4, reason: expect.stringMatching(/^product_id: must be 32 lowercase/), raw_content: 'not-an-id,artes,1,1,1,1,1,1,1' },
        { file: FILES.sellers, line: 4, reason: 'seller_state: must be 2 uppercase letters (got "sp")', raw_content: `${'1'.repeat(32)},"01001",sao paulo,sp` },
      ]);
      const stages = await rows(
        'SELECT stage, rows_in, rows_out, rows_rejected FROM etl_batch_stage WHERE batch_id = ? ORDER BY stage',
        [summary.batchId],
      );
      const read = Object.values(summary.files).reduce((n, f) => n + f.read, 0);
      expect(stages).toEqual([
        { stage: 'landing', rows_in: read, rows_out: read - 5, rows_rejected: 5 },
        { stage: 'staging', rows_in: read - 5, rows_out: read - 6, rows_rejected: 1 },
      ]);
      const [sum] = await rows<{ total: string }>('SELECT SUM(price) AS total FROM fact_order_item');
      expect(sum?.total).toBe('169.40');
      // Products get their English category when translated, null otherwise.
      const products = await rows('SELECT product_id, category_name, category_name_english FROM dim_product ORDER BY product_id');
      expect(products).toEqual([
        { product_id: ID.product1, category_name: 'perfumaria', category_name_english: 'perfumery' },
        { product_id: ID.product2, category_name: null, category_name_english: null },
      ]);
    } finally {
      await folder.cleanup();
    }
  });

  it('rejects an item whose order is unknown, accepts it once the order exists in the database', async () => {
    const data = baseRows();
    const ordersWithout2 = data.orders.filter((o) => !o.includes(ID.order2));
    const first = await writeFolder({ ...data, orders: ordersWithout2 });
    const second = await writeFolder({ ...baseRows(), items: [] });
    const third = await writeFolder({ ...baseRows(), orders: [] });
    try {
      const a = await loadBatch({ databaseUrl: db.url, dir: first.dir });
      expect(a.files[FILES.items]).toEqual({ read: 3, loaded: 2, rejected: 1, duplicates: 0, stale: 0 });
      const [reject] = await rows('SELECT line, reason FROM etl_rejected_row WHERE batch_id = ?', [a.batchId]);
      expect(reject).toEqual({ line: 4, reason: expect.stringContaining(`unknown order`) });
      // Later batches: the order arrives, then items referring to it load on their own.
      await loadBatch({ databaseUrl: db.url, dir: second.dir });
      const c = await loadBatch({ databaseUrl: db.url, dir: third.dir });
      expect(c.files[FILES.items]).toEqual({ read: 3, loaded: 3, rejected: 0, duplicates: 0, stale: 0 });
      const [item] = await rows('SELECT purchased_at FROM fact_order_item WHERE order_id = ?', [ID.order2]);
      expect(item).toEqual({ purchased_at: '2018-01-01 10:00:00' });
    } finally {
      await Promise.all([first.cleanup(), second.cleanup(), third.cleanup()]);
    }
  });

  it('keeps the last occurrence of a duplicated key, within and across chunks', async () => {
    const data = baseRows();
    data.items.push(`"${ID.order1}",1,${ID.product1},${ID.seller1},2017-09-19 09:45:35,77.77,1.11`);
    data.sellers.push(`${ID.seller1},"99999",last city,RJ`);
    data.orders.push(data.orders[0]!.replace('delivered', 'canceled'));
    const folder = await writeFolder(data);
    try {
      for (const chunkSize of [1000, 1]) {
        const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir, chunkSize });
        expect(summary.files[FILES.items]).toEqual({ read: 4, loaded: 3, rejected: 0, duplicates: 1, stale: 0 });
        expect(summary.files[FILES.sellers]).toEqual({ read: 3, loaded: 2, rejected: 0, duplicates: 1, stale: 0 });
        expect(summary.files[FILES.orders]).toEqual({ read: 3, loaded: 2, rejected: 0, duplicates: 1, stale: 0 });
        const [item] = await rows('SELECT price, freight_value FROM fact_order_item WHERE order_id = ? AND order_item_id = 1', [
          ID.order1,
        ]);
        expect(item).toEqual({ price: '77.77', freight_value: '1.11' });
        const [seller] = await rows('SELECT zip_code_prefix, city, state FROM dim_seller WHERE seller_id = ?', [ID.seller1]);
        expect(seller).toEqual({ zip_code_prefix: '99999', city: 'last city', state: 'RJ' });
        const [order] = await rows('SELECT order_status FROM fact_order WHERE order_id = ?', [ID.order1]);
        expect(order).toEqual({ order_status: 'canceled' });
        const [staging] = await rows('SELECT rows_in, rows_out FROM etl_batch_stage WHERE batch_id = ? AND stage = ?', [
          summary.batchId,
          'staging',
        ]);
        expect(Number(staging?.rows_in) - Number(staging?.rows_out)).toBe(3);
      }
    } finally {
      await folder.cleanup();
    }
  });

  it('counts the rows of a batch older than the stored ones as stale, not as duplicates, and applies none', async () => {
    const base = await writeFolder(baseRows());
    const changed = baseRows();
    changed.items = changed.items.map((line) => line.replace(/,[0-9.]+,([0-9.]+)$/, ',1.23,$1')); // every price
    changed.sellers = changed.sellers.map((line) => line.replace(/,[^,]+,SP$/, ',other city,SP'));
    changed.sellers.push(changed.sellers[0]!); // a stale key twice: both occurrences are stale
    changed.sellers.push(`${'5'.repeat(32)},"01001",new city,SP`); // a key no newer batch wrote
    changed.sellers.push(`${'5'.repeat(32)},"01001",newer city,SP`); // ... repeated: a duplicate
    const older = await writeFolder(changed);
    try {
      const current = await loadBatch({ databaseUrl: db.url, dir: base.dir, ingestedAt: '2024-05-02T00:00:00Z' });
      const before = await rows('SELECT order_id, order_item_id, price, batch_id FROM fact_order_item ORDER BY order_id, order_item_id');
      const items = changed.items.length;
      // The same counts wherever the chunks split (a repeated key in one chunk or across two).
      for (const chunkSize of [10_000, 1]) {
        const backfill = await loadBatch({ databaseUrl: db.url, dir: older.dir, ingestedAt: '2024-05-01T00:00:00Z', chunkSize });
        expect(backfill.files[FILES.items]).toEqual({ read: items, loaded: 0, rejected: 0, duplicates: 0, stale: items });
        expect(backfill.files[FILES.sellers]).toEqual({ read: 5, loaded: 1, rejected: 0, duplicates: 1, stale: 3 });
      }
      expect(await rows('SELECT order_id, order_item_id, price, batch_id FROM fact_order_item ORDER BY order_id, order_item_id')).toEqual(before);
      expect(await rows('SELECT seller_id FROM dim_seller WHERE batch_id <> ?', [current.batchId])).toEqual([{ seller_id: '5'.repeat(32) }]);
      // Loaded in order, the same folder is applied: nothing is stale.
      const newer = await loadBatch({ databaseUrl: db.url, dir: older.dir, ingestedAt: '2024-05-03T00:00:00Z' });
      expect(newer.files[FILES.items]).toEqual({ read: items, loaded: items, rejected: 0, duplicates: 0, stale: 0 });
      expect(await rows('SELECT DISTINCT price FROM fact_order_item')).toEqual([{ price: '1.23' }]);
    } finally {
      await Promise.all([base.cleanup(), older.cleanup()]);
    }
  });

  it('when a reload changes a seller\'s zip prefix, city and state, then dim_seller holds the new values and names the new batch (SCD 1)', async () => {
    const first = await writeFolder(baseRows());
    const changed = baseRows();
    changed.sellers[0] = `${ID.seller1},"20040",rio de janeiro,RJ`;
    const second = await writeFolder(changed);
    try {
      const a = await loadBatch({ databaseUrl: db.url, dir: first.dir, ingestedAt: '2024-05-01T00:00:00Z' });
      const sellersSql = 'SELECT seller_id, zip_code_prefix, city, state, batch_id FROM dim_seller ORDER BY seller_id';
      expect(await rows(sellersSql)).toEqual([
        { seller_id: ID.seller1, zip_code_prefix: '13023', city: 'campinas', state: 'SP', batch_id: a.batchId },
        { seller_id: ID.seller2, zip_code_prefix: '01001', city: 'sao paulo', state: 'SP', batch_id: a.batchId },
      ]);
      const b = await loadBatch({ databaseUrl: db.url, dir: second.dir, ingestedAt: '2024-05-02T00:00:00Z' });
      expect(b.files[FILES.sellers]).toEqual({ read: 2, loaded: 2, rejected: 0, duplicates: 0, stale: 0 });
      // Overwritten in place: one row per seller, no history kept.
      expect(await rows(sellersSql)).toEqual([
        { seller_id: ID.seller1, zip_code_prefix: '20040', city: 'rio de janeiro', state: 'RJ', batch_id: b.batchId },
        { seller_id: ID.seller2, zip_code_prefix: '01001', city: 'sao paulo', state: 'SP', batch_id: b.batchId },
      ]);
    } finally {
      await Promise.all([first.cleanup(), second.cleanup()]);
    }
  });

  it('moves the items of an order whose purchase time changed', async () => {
    const first = await writeFolder(baseRows());
    const changed = baseRows();
    changed.orders[0] = changed.orders[0]!.replace('"2017-09-13 04:08:35"', '"2017-09-12 23:00:00"');
    const second = await writeFolder({ ...changed, items: [] });
    try {
      await loadBatch({ databaseUrl: db.url, dir: first.dir });
      await loadBatch({ databaseUrl: db.url, dir: second.dir });
      const items = await rows('SELECT DISTINCT purchased_at FROM fact_order_item WHERE order_id = ?', [ID.order1]);
      expect(items).toEqual([{ purchased_at: '2017-09-12 23:00:00' }]);
      const [order] = await rows('SELECT purchase_date FROM fact_order WHERE order_id = ?', [ID.order1]);
      expect(order).toEqual({ purchase_date: '2017-09-12' });
    } finally {
      await Promise.all([first.cleanup(), second.cleanup()]);
    }
  });

  it('refuses a folder with a broken header and writes nothing', async () => {
    const folder = await writeFolder(baseRows(), {
      headers: { items: '"order_id","order_item_id","product_id","seller_id","shipping_limit_date","price"' },
    });
    try {
      const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir });
      await expect(failure).rejects.toBeInstanceOf(LoadError);
      await expect(failure).rejects.toThrow(
        /olist_order_items_dataset\.csv: unexpected header: expected "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value", found "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price"/,
      );
      expect(await countAll()).toEqual(zeroCounts);
    } finally {
      await folder.cleanup();
    }
  });

  it('when a header has the expected names in another order (price and freight_value swapped), then the folder is refused and nothing is written', async () => {
    // Same width as the expected header: only the names and their order can tell them apart.
    const folder = await writeFolder(baseRows(), {
      headers: { items: '"order_id","order_item_id","product_id","seller_id","shipping_limit_date","freight_value","price"' },
    });
    try {
      const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir });
      await expect(failure).rejects.toMatchObject({ kind: 'input' });
      await expect(failure).rejects.toThrow(
        /olist_order_items_dataset\.csv: unexpected header: expected "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value", found "order_id,order_item_id,product_id,seller_id,shipping_limit_date,freight_value,price"/,
      );
      expect(await countAll()).toEqual(zeroCounts);
    } finally {
      await folder.cleanup();
    }
  });

  it('when files are compressed, UTF-16 or carry invisible characters in the header, then the message says what they are, printable', async () => {
    const folder = await writeFolder(baseRows());
    try {
      const itemsFile = path.join(folder.dir, 'olist_order_items_dataset.csv');
      await writeFile(itemsFile, gzipSync(await readFile(itemsFile)));
      const customersFile = path.join(folder.dir, 'olist_customers_dataset.csv');
      await writeFile(customersFile, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from((await readFile(customersFile, 'utf8')), 'utf16le')]));
      // UTF-32 starts like UTF-16 (FF FE), then two zero bytes.
      await writeFile(path.join(folder.dir, 'olist_products_dataset.csv'), Buffer.from([0xff, 0xfe, 0, 0, 0x70, 0, 0, 0]));
      const ordersFile = path.join(folder.dir, 'olist_orders_dataset.csv');
      // A second BOM (an export tool that added its own) and an ESC: the header looks right in a terminal.
      await writeFile(ordersFile, `\uFEFF\uFEFF${(await readFile(ordersFile, 'utf8')).replace('order_status', 'order_status\u001b[2J')}`);
      const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir });
      await expect(failure).rejects.toMatchObject({ kind: 'input' });
      const message = await failure.catch((error: unknown) => (error instanceof Error ? error.message : ''));
      expect(message).toContain('olist_order_items_dataset.csv: the file is gzip-compressed, not UTF-8 CSV text');
      expect(message).toContain('olist_customers_dataset.csv: the file is UTF-16 text, not UTF-8 CSV text');
      expect(message).toContain('olist_products_dataset.csv: the file is UTF-32 text, not UTF-8 CSV text');
      expect(message).toMatch(/olist_orders_dataset\.csv: unexpected header: expected "order_id,[^"]*", found "\\ufeff"?order_id"?,customer_id,order_status\\u001b\[2J,/);
      // Nothing the terminal would act on, and nothing longer than a line per file.
      expect(message).not.toMatch(/[\u0000-\u0009\u000b-\u001f\ufeff]/);
      expect(await countAll()).toEqual(zeroCounts);
    } finally {
      await folder.cleanup();
    }
  });

  it('refuses a folder with a missing file and writes nothing', async () => {
    const folder = await writeFolder(baseRows(), { omit: ['customers'] });
    try {
      await expect(loadBatch({ databaseUrl: db.url, dir: folder.dir })).rejects.toThrow(
        /olist_customers_dataset\.csv: file missing/,
      );
      expect(await countAll()).toEqual(zeroCounts);
    } finally {
      await folder.cleanup();
    }
  });

  it('a header that is not CSV (an unclosed quote) is one more listed problem, not an unexpected failure', async () => {
    const folder = await writeFolder(baseRows(), {
      headers: { orders: 'order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,order_delivered_carrier_date,order_delivered_customer_date,"order_estimated_delivery_date' },
      omit: ['sellers'],
    });
    try {
      const failure = loadBatch({ databaseUrl: db.url, dir: folder.dir });
      await expect(failure).rejects.toMatchObject({ kind: 'input' });
      await expect(failure).rejects.toThrow(/olist_sellers_dataset\.csv: file missing[\s\S]*olist_orders_dataset\.csv: the header line is not CSV \(Quote Not Closed/);
      expect(await countAll()).toEqual(zeroCounts);
    } finally {
      await folder.cleanup();
    }
  });

  it('an item seq written 01 and 1 is one key: the last occurrence wins, in one chunk or across chunks', async () => {
    for (const chunkSize of [10_000, 1]) {
      const base = baseRows();
      const folder = await writeFolder({
        ...base,
        items: [...base.items, `"${ID.order1}",01,${ID.product2},${ID.seller1},2017-09-19 09:45:35,77.00,1.00`],
      });
      try {
        const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir, chunkSize });
        expect(summary.files[FILES.items]).toMatchObject({ read: 4, loaded: 3, rejected: 0, duplicates: 1 });
        const [rows] = await db.pool.query<RowDataPacket[]>(
          'SELECT order_item_id, price FROM fact_order_item WHERE order_id = ? AND order_item_id = 1',
          [ID.order1],
        );
        expect(rows, `chunk size ${chunkSize}`).toEqual([{ order_item_id: 1, price: '77.00' }]);
      } finally {
        await folder.cleanup();
      }
    }
  });

  it('tolerates a BOM and a missing final newline', async () => {
    const folder = await writeFolder(baseRows(), {
      headers: { translation: '\ufeffproduct_category_name,product_category_name_english' },
    });
    try {
      const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir });
      expect(summary.files[FILES.translation]).toEqual({ read: 2, loaded: 2, rejected: 0, duplicates: 0, stale: 0 });
    } finally {
      await folder.cleanup();
    }
  });

  describe('CLI', () => {
    let folder: Folder;
    beforeAll(async () => {
      folder = await writeFolder(baseRows());
    });
    afterAll(async () => {
      await folder.cleanup();
    });
    const cli = (args: string[]) =>
      run(path.join(repoRoot, 'node_modules/.bin/tsx'), ['src/loader/cli.ts', ...args], {
        cwd: repoRoot,
        env: { ...process.env, DATABASE_URL: db.url },
      });

    it('prints one JSON line and exits 0', async () => {
      const { stdout, stderr } = await cli(['--dir', folder.dir, '--source', 'test-cli', '--ingested-at', '2024-01-02T03:04:05.678Z']);
      const lines = stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      const summary = JSON.parse(lines[0] ?? '') as { batchId: string; status: string; files: Record<string, unknown>; durationMs: number };
      expect(summary.status).toBe('succeeded');
      expect(summary.files[FILES.items]).toEqual({ read: 3, loaded: 3, rejected: 0, duplicates: 0, stale: 0 });
      expect(Object.keys(summary.files)).toHaveLength(6);
      expect(summary.durationMs).toBeGreaterThan(0);
      expect(stderr).toContain('[loader]');
      const [batch] = await rows('SELECT source, created_at, status FROM etl_batch WHERE batch_id = ?', [summary.batchId]);
      expect(batch).toEqual({ source: 'test-cli', created_at: '2024-01-02 03:04:05.678', status: 'succeeded' });
    });

    it('exits non-zero with a readable message on a broken folder', async () => {
      const broken = await writeFolder(baseRows(), { omit: ['items'] });
      try {
        const failure = await cli(['--dir', broken.dir]).then(
          () => undefined,
          (error: { code: number; stdout: string; stderr: string }) => error,
        );
        expect(failure?.code).toBe(2);
        expect(failure?.stdout).toBe('');
        expect(failure?.stderr).toMatch(/^error: folder rejected, nothing loaded:\n {2}olist_order_items_dataset\.csv: file missing/);
        expect(failure?.stderr).not.toMatch(/\n\s+at /); // no stack trace
      } finally {
        await broken.cleanup();
      }
    });

    it('reads a relative --dir from the caller\'s folder (INIT_CWD under npm run), not the package\'s', async () => {
      const { stdout } = await run(path.join(repoRoot, 'node_modules/.bin/tsx'), ['src/loader/cli.ts', '--dir', path.basename(folder.dir)], {
        cwd: repoRoot,
        env: { ...process.env, DATABASE_URL: db.url, INIT_CWD: path.dirname(folder.dir) },
      });
      expect(JSON.parse(stdout.trim())).toMatchObject({ status: 'succeeded' });
    });

    it('exits 2 without --dir', async () => {
      const failure = await cli([]).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failure?.code).toBe(2);
      expect(failure?.stderr).toContain('--dir is required');
    });
  });
});
