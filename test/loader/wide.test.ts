// order_item_wide (the One Big Table read model) must equal, after any sequence of loads, exactly
// what the backfill migration's SELECT derives from the star tables: same rows, same values, same
// batch_id; and order_item_daily_summary the totals of the wide rows per seller, day and category. Generated folders and hand-made change folders are loaded in sequence and the two
// row sets compared in full after each load.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToTempDir } from '../../src/generate/generate.js';
import type { FileKind } from '../../src/loader/contract.js';
import { loadBatch, type LoadOptions } from '../../src/loader/load-batch.js';
import { WIDE_COLUMNS } from '../../src/loader/upsert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { baseRows, ID, writeFolder } from './fixtures.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');


let db: TestDatabase;
/** The SELECT of drizzle/0002_backfill_order_item_wide.sql, taken from the migration itself. */
let backfillSelect: string;

beforeAll(async () => {
  db = await createTestDatabase('wide');
  const migration = await readFile(path.join(repoRoot, 'drizzle/0002_backfill_order_item_wide.sql'), 'utf8');
  const start = migration.search(/\bSELECT\b/);
  expect(start).toBeGreaterThan(0);
  backfillSelect = migration.slice(start).trim().replace(/;$/, '');
});
afterAll(async () => {
  await db?.drop();
});

async function rows(sql: string, params: unknown[] = []): Promise<RowDataPacket[]> {
  const [result] = await db.pool.query<RowDataPacket[]>(sql, params);
  return result;
}

/** Both row sets, as arrays of column values in WIDE_COLUMNS order, sorted by the unique key. */
async function wideAndExpected(): Promise<{ wide: unknown[][]; expected: unknown[][] }> {
  const cols = WIDE_COLUMNS.map((c) => `\`${c}\``).join(', ');
  const [wide] = await db.pool.query({
    sql: `SELECT ${cols} FROM order_item_wide ORDER BY order_id, order_item_id`,
    rowsAsArray: true,
  });
  const [expected] = await db.pool.query({
    // Positional: the backfill's select list is in the INSERT's column order (order_id = 3rd,
    // order_item_id = 4th).
    sql: `${backfillSelect} ORDER BY 3, 4`,
    rowsAsArray: true,
  });
  return { wide: wide as unknown[][], expected: expected as unknown[][] };
}

/**
 * order_item_daily_summary against the aggregate of every wide row (the backfill migration's
 * SELECT), and no mark left behind: each batch recomputed what it touched.
 */
async function expectDailySummaryInSync(): Promise<void> {
  const [summary] = await db.pool.query({
    sql: `SELECT seller_id, DATE_FORMAT(purchase_date, '%Y-%m-%d'), category_key, item_count, revenue, freight
            FROM order_item_daily_summary ORDER BY 1, 2, 3`,
    rowsAsArray: true,
  });
  const [expected] = await db.pool.query({
    sql: `SELECT seller_id, DATE_FORMAT(DATE(purchased_at), '%Y-%m-%d'), COALESCE(product_category, ''), COUNT(*), SUM(price), SUM(freight_value)
            FROM order_item_wide GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    rowsAsArray: true,
  });
  expect((summary as unknown[][]).map((row) => row.map(String))).toEqual((expected as unknown[][]).map((row) => row.map(String)));
  const [marks] = await rows('SELECT COUNT(*) AS n FROM order_item_summary_mark');
  expect(Number(marks?.n)).toBe(0);
}

async function expectWideInSync(): Promise<number> {
  const { wide, expected } = await wideAndExpected();
  expect(wide).toEqual(expected);
  const [count] = await rows('SELECT COUNT(*) AS n FROM fact_order_item');
  expect(wide).toHaveLength(Number(count?.n));
  await expectDailySummaryInSync();
  return wide.length;
}

async function load(dir: string, extra: Partial<LoadOptions> = {}): Promise<string> {
  const summary = await loadBatch({ databaseUrl: db.url, dir, ...extra });
  expect(summary.status).toBe('succeeded');
  return summary.batchId;
}

async function wideRow(orderId: string, orderItemId: number): Promise<RowDataPacket | undefined> {
  const [row] = await rows('SELECT * FROM order_item_wide WHERE order_id = ? AND order_item_id = ?', [orderId, orderItemId]);
  return row;
}

function emptyRows(): Record<FileKind, string[]> {
  return { translation: [], sellers: [], customers: [], products: [], orders: [], items: [] };
}

describe('order_item_wide upkeep', () => {
  it('equals the backfill SELECT after every load of a sequence', { timeout: 120_000 }, async () => {
    const a = await generateToTempDir({ orders: 300, sellers: 12, seed: 21 });
    const b = await generateToTempDir({ orders: 250, sellers: 9, seed: 22 });
    try {
      // Fresh generated folders, then a reload (every row an upsert), then small chunks (many
      // concurrent transactions on the 4 writers).
      await load(a.dir);
      expect(await expectWideInSync()).toBe(a.items);
      await load(b.dir);
      await expectWideInSync();
      const reload = await load(a.dir, { chunkSize: 7 });
      await expectWideInSync();
      const [owned] = await rows('SELECT COUNT(*) AS n FROM order_item_wide WHERE batch_id = ?', [reload]);
      expect(Number(owned?.n)).toBe(a.items);
    } finally {
      await a.cleanup();
      await b.cleanup();
    }

    // The hand-made base folder: two orders, three items.
    const base = await writeFolder(baseRows());
    let baseBatch: string;
    try {
      baseBatch = await load(base.dir);
    } finally {
      await base.cleanup();
    }
    await expectWideInSync();
    expect(await wideRow(ID.order1, 1)).toMatchObject({
      seller_id: ID.seller1,
      purchased_at: '2017-09-13 04:08:35',
      product_category: 'perfumery',
      customer_state: 'SP',
      order_status: 'delivered',
      batch_id: baseBatch,
    });

    // A batch without items: order1 changes status, timestamps, purchase time (part of the wide
    // primary key) and customer; customer2 moves to another state; product2 gets a category; the
    // translation of perfumaria changes its English name.
    const changes = emptyRows();
    changes.translation = ['perfumaria,fragrances'];
    changes.customers = [`${ID.customer2},${ID.unique},"20000",rio de janeiro,RJ`];
    changes.products = [`${ID.product2},artes,,,,650,17,14,12`];
    changes.orders = [
      `"${ID.order1}",${ID.customer2},canceled,"2017-08-01 00:00:01","2017-08-01 01:00:00",,,"2017-08-20 00:00:00"`,
    ];
    const noItems = await writeFolder(changes);
    try {
      await load(noItems.dir);
    } finally {
      await noItems.cleanup();
    }
    await expectWideInSync();
    expect(await wideRow(ID.order1, 1)).toMatchObject({
      purchased_at: '2017-08-01 00:00:01',
      order_status: 'canceled',
      approved_at: '2017-08-01 01:00:00',
      delivered_carrier_at: null,
      delivered_customer_at: null,
      estimated_delivery_at: '2017-08-20 00:00:00',
      customer_state: 'RJ',
      product_category: 'fragrances',
      batch_id: baseBatch, // the items themselves did not change
    });
    expect(await wideRow(ID.order1, 2)).toMatchObject({ product_category: 'art', customer_state: 'RJ' });
    expect(await wideRow(ID.order2, 1)).toMatchObject({ product_category: 'fragrances', customer_state: 'RJ' });

    // Only a customer changes: every item of its orders follows.
    const onlyCustomer = emptyRows();
    onlyCustomer.customers = [`${ID.customer2},${ID.unique},"30000",belo horizonte,MG`];
    const customerFolder = await writeFolder(onlyCustomer);
    try {
      await load(customerFolder.dir);
    } finally {
      await customerFolder.cleanup();
    }
    await expectWideInSync();
    expect(await wideRow(ID.order2, 1)).toMatchObject({ customer_state: 'MG' });

    // Only a translation changes.
    const onlyTranslation = emptyRows();
    onlyTranslation.translation = ['artes,arts'];
    const translationFolder = await writeFolder(onlyTranslation);
    try {
      await load(translationFolder.dir);
    } finally {
      await translationFolder.cleanup();
    }
    await expectWideInSync();
    expect(await wideRow(ID.order1, 2)).toMatchObject({ product_category: 'arts' });

    // Items re-loaded with their order: duplicates inside the batch (the last occurrence wins),
    // an item moving to another seller and product, the order's purchase time moving again.
    const withItems = emptyRows();
    withItems.orders = [
      `"${ID.order2}",${ID.customer1},delivered,"2018-02-02 02:02:02","2018-02-02 03:00:00","2018-02-03 12:00:00","2018-02-10 12:00:00","2018-02-25 00:00:00"`,
    ];
    withItems.items = [
      `"${ID.order2}",1,${ID.product1},${ID.seller1},2018-02-05 10:00:00,1.00,1.00`,
      `"${ID.order2}",2,${ID.product1},${ID.seller1},2018-02-05 10:00:00,5.00,1.00`,
      `"${ID.order2}",1,${ID.product2},${ID.seller2},2018-02-06 10:00:00,99.99,9.99`,
      `"${ID.order1}",2,${ID.product1},${ID.seller1},2017-08-05 10:00:00,12.34,0.50`,
    ];
    const itemsFolder = await writeFolder(withItems);
    let itemsBatch: string;
    try {
      itemsBatch = await load(itemsFolder.dir, { chunkSize: 2 });
    } finally {
      await itemsFolder.cleanup();
    }
    await expectWideInSync();
    expect(await wideRow(ID.order2, 1)).toMatchObject({
      seller_id: ID.seller2,
      product_id: ID.product2,
      product_category: 'arts',
      price: '99.99',
      purchased_at: '2018-02-02 02:02:02',
      customer_state: 'SP',
      batch_id: itemsBatch,
    });
    expect(await wideRow(ID.order2, 2)).toMatchObject({ price: '5.00', batch_id: itemsBatch });
    expect(await wideRow(ID.order1, 2)).toMatchObject({
      seller_id: ID.seller1,
      product_category: 'fragrances',
      purchased_at: '2017-08-01 00:00:01',
      customer_state: 'MG',
      batch_id: itemsBatch,
    });
    expect(await wideRow(ID.order1, 1)).toMatchObject({ batch_id: baseBatch });

    // Only a product changes category (to one without translation: NULL).
    const onlyProduct = emptyRows();
    onlyProduct.products = [`${ID.product1},sem_traducao,40,287,1,225,16,10,14`];
    const productFolder = await writeFolder(onlyProduct);
    try {
      await load(productFolder.dir);
    } finally {
      await productFolder.cleanup();
    }
    await expectWideInSync();
    expect(await wideRow(ID.order1, 1)).toMatchObject({ product_category: null });
  });
});
