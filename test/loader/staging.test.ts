// The large files reach the star tables through per-connection staging tables, filled with LOAD
// DATA LOCAL INFILE, or with a multi-row INSERT where the server refuses LOAD DATA LOCAL. Both
// ways must store exactly the same rows, text with backslashes (\t, \n and \N written out), quotes
// or "NULL" included. Real tabs and line breaks never get there: the contract refuses them in text.
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadBatch } from '../../src/loader/load-batch.js';
import { prepareConnection, tsvRows } from '../../src/loader/upsert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { ALL_TABLES, baseRows, ID, writeFolder } from './fixtures.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('staging');
});
afterAll(async () => {
  await db?.drop();
});

async function rows(sql: string): Promise<RowDataPacket[]> {
  const [result] = await db.pool.query<RowDataPacket[]>(sql);
  return result;
}

// Cities and categories a tab-separated LOAD DATA file could mangle if escaped wrongly.
const AWKWARD_CITIES = ['tab\\there', 'back\\slash', '\\N', 'NULL', 'line\\nbreak', 'crlf\\r\\ninside', 'são joão "d\'el" rei', ' padded '];
// Quarantined by the contract (control characters), so never staged.
const GARBAGE_CITIES = ['tab\there', 'line\nbreak', 'crlf\r\ninside'];

function awkwardFolder() {
  const base = baseRows();
  const customers = [...AWKWARD_CITIES, ...GARBAGE_CITIES].map((city, i) => {
    const id = `${'9'.repeat(30)}${String(i).padStart(2, '0')}`;
    return `${id},${ID.unique},"0100${i}","${city.replaceAll('"', '""')}",RJ`;
  });
  return writeFolder({
    ...base,
    translation: [...base.translation, '"cat\\egoria","back\\slash\\tcategory"'],
    customers: [...base.customers, ...customers],
    products: [...base.products, `${'e'.repeat(31)}3,"cat\\egoria",1,2,3,4,5,6,7`],
    items: [
      ...base.items,
      `"${ID.order2}",2,${'e'.repeat(31)}3,${ID.seller2},2018-01-05 10:00:00,1.00,2.00`,
      // Quarantined on references, in the same transaction as its chunk.
      `"${ID.unknownOrder}",1,${ID.product1},${ID.seller1},2018-01-05 10:00:00,1.00,2.00`,
    ],
  });
}

const CONTENT_QUERIES = {
  dim_customer: 'SELECT customer_id, customer_unique_id, zip_code_prefix, city, state FROM dim_customer ORDER BY customer_id',
  dim_product: 'SELECT * FROM dim_product ORDER BY product_id',
  fact_order: 'SELECT * FROM fact_order ORDER BY order_id',
  fact_order_item: 'SELECT * FROM fact_order_item ORDER BY order_id, order_item_id',
  order_item_wide: 'SELECT * FROM order_item_wide ORDER BY order_id, order_item_id',
  etl_rejected_row: 'SELECT file, line, reason, raw_content FROM etl_rejected_row ORDER BY file, line',
} as const;

/** Table contents without the columns that name the batch or the time of writing. */
async function contents(): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [table, sql] of Object.entries(CONTENT_QUERIES)) {
    out[table] = (await rows(sql)).map(({ batch_id: _batch, updated_at: _updated, ...rest }) => rest);
  }
  return out;
}

describe('staging', () => {
  beforeEach(async () => {
    for (const table of ALL_TABLES) await db.pool.query(`DELETE FROM \`${table}\``);
  });

  it('stores the same rows through LOAD DATA LOCAL and through the multi-row INSERT fallback', async () => {
    const folder = await awkwardFolder();
    try {
      const byMethod: Record<string, Record<string, unknown[]>> = {};
      for (const staging of ['load-data', 'insert'] as const) {
        for (const table of ALL_TABLES) await db.pool.query(`DELETE FROM \`${table}\``);
        const summary = await loadBatch({ databaseUrl: db.url, dir: folder.dir, staging });
        expect(summary.files['olist_order_items_dataset.csv']).toEqual({ read: 5, loaded: 4, rejected: 1, duplicates: 0, stale: 0 });
        expect(summary.files['olist_customers_dataset.csv']).toMatchObject({ rejected: GARBAGE_CITIES.length });
        byMethod[staging] = await contents();
      }
      expect(byMethod['load-data']).toEqual(byMethod.insert);

      const cities = (await rows(`SELECT city FROM dim_customer WHERE state = 'RJ' ORDER BY customer_id`)).map((r) => r.city);
      expect(cities).toEqual(AWKWARD_CITIES);
      const [product] = await rows(`SELECT category_name, category_name_english FROM dim_product WHERE product_id = '${'e'.repeat(31)}3'`);
      expect(product).toEqual({ category_name: 'cat\\egoria', category_name_english: 'back\\slash\\tcategory' });
      const garbage = await rows(`SELECT reason FROM etl_rejected_row WHERE file = 'olist_customers_dataset.csv'`);
      expect(garbage.map((r) => r.reason)).toEqual(
        GARBAGE_CITIES.map((city) => `customer_city: must hold a visible character and no control character (got ${JSON.stringify(city)})`),
      );
      const [reject] = await rows(`SELECT file, line, reason FROM etl_rejected_row WHERE file = 'olist_order_items_dataset.csv'`);
      expect(reject).toEqual({
        file: 'olist_order_items_dataset.csv',
        line: 6,
        reason: `order_id: unknown order, neither in this batch nor in the database (got "${ID.unknownOrder}")`,
      });
    } finally {
      await folder.cleanup();
    }
  });

  it('falls back to the multi-row INSERT when LOAD DATA LOCAL is refused', async () => {
    // A client that does not offer LOCAL INFILE is refused like a server with local_infile off.
    const refusing = mysql.createPool({ uri: db.url, flags: ['-LOCAL_FILES'], connectionLimit: 1 });
    const offering = mysql.createPool({ uri: db.url, connectionLimit: 1 });
    try {
      const conn = await refusing.getConnection();
      expect(await prepareConnection(conn)).toBe('insert');
      conn.release();
      const [[server]] = await offering.query<RowDataPacket[]>('SELECT @@local_infile AS on_');
      const other = await offering.getConnection();
      expect(await prepareConnection(other)).toBe(Number(server?.on_) === 1 ? 'load-data' : 'insert');
      expect(await prepareConnection(other, 'insert')).toBe('insert');
      other.release();
    } finally {
      await refusing.end();
      await offering.end();
    }
  });

  it('writes LOAD DATA text with NULL as \\N and escapes only what LOAD DATA would read as syntax', () => {
    expect(tsvRows([['a', null, 3, 'x\ty\\z\nw\r\0', '\\N', '']])).toBe('a\t\\N\t3\tx\\ty\\\\z\\nw\\r\\0\t\\\\N\t\n');
  });
});
