// Every loader statement that joins from a staging table must read the star tables through an
// index even when InnoDB's statistics say those tables are empty, as they did after a crash in an
// audit (fact_order counted 0 rows while holding 60,000): the optimizer then scanned the whole
// table with a join buffer once per chunk (a rerun took 254 s instead of 6 s, and every later load
// as long). Statistics are read when the server opens a table, so the test persists empty ones and
// restarts a private server; each statement is then run as EXPLAIN on a writer's connection.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { generateDataset } from '../../src/generate/generate.js';
import { loadBatch } from '../../src/loader/load-batch.js';
import {
  findItemReferenceProblems,
  markSummaryForRecategorizedProducts,
  markSummaryForStagedItems,
  prepareConnection,
  refreshWideForItems,
  updateWideCustomers,
  updateWideProducts,
  upsertCustomers,
  upsertItems,
  upsertOrders,
  upsertProducts,
} from '../../src/loader/upsert.js';
import { PrivateMariaDb } from '../helpers/private-mariadb.js';

const DATABASE = 'oi_stale_statistics';
let server: PrivateMariaDb;
let pool: Pool;

beforeAll(async () => {
  server = await PrivateMariaDb.start();
  const url = server.url(DATABASE);
  await migrateDatabase(url);
  const dir = await mkdtemp(join(tmpdir(), 'oi-stale-stats-'));
  try {
    await generateDataset({ out: dir, sellers: 4, orders: 3000, seed: 5 });
    const summary = await loadBatch({ databaseUrl: url, dir });
    expect(summary.status).toBe('succeeded');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // What InnoDB believed after the crash: every table empty.
  await server.admin(async (conn) => {
    await conn.query('UPDATE mysql.innodb_table_stats SET n_rows = 0, clustered_index_size = 1, sum_of_other_index_sizes = 0 WHERE database_name = ?', [
      DATABASE,
    ]);
    await conn.query("UPDATE mysql.innodb_index_stats SET stat_value = 1 WHERE database_name = ? AND stat_name LIKE 'n_diff_pfx%'", [DATABASE]);
  });
  await server.restart();
  pool = createPool(url, { connectionLimit: 2 });
}, 120_000);
afterAll(async () => {
  await pool?.end();
  await server?.stop();
});

describe('loader statements with stale statistics', () => {
  it('join every star table by index, never a full scan', async () => {
    const conn = await pool.getConnection();
    const plans: { sql: string; rows: RowDataPacket[] }[] = [];
    try {
      await prepareConnection(conn, 'insert');
      // Staged rows that exist in the star tables, as a reload would stage them.
      await conn.query(`INSERT INTO tmp_stage_item (line, order_id, order_item_id, product_id, seller_id, shipping_limit_at, price, freight_value)
        SELECT 1, order_id, order_item_id, product_id, seller_id, shipping_limit_at, price, freight_value FROM fact_order_item LIMIT 50`);
      await conn.query(`INSERT INTO tmp_stage_order (order_id, customer_id, order_status, purchased_at, purchase_date, approved_at,
          delivered_carrier_at, delivered_customer_at, estimated_delivery_at)
        SELECT order_id, customer_id, order_status, purchased_at, purchase_date, approved_at, delivered_carrier_at,
          delivered_customer_at, estimated_delivery_at FROM fact_order LIMIT 50`);
      await conn.query(`INSERT INTO tmp_stage_customer (customer_id, customer_unique_id, zip_code_prefix, city, state)
        SELECT customer_id, customer_unique_id, zip_code_prefix, city, state FROM dim_customer LIMIT 50`);
      await conn.query(`INSERT INTO tmp_stage_product (product_id, category_name, category_name_english)
        SELECT product_id, category_name, category_name_english FROM dim_product LIMIT 50`);

      // Stands in for the writer connection: each statement is explained, not run.
      const explaining = {
        query: async (sql: string) => {
          const [rows] = await conn.query<RowDataPacket[]>(`EXPLAIN ${sql}`);
          plans.push({ sql, rows });
          return [rows, []];
        },
      } as unknown as PoolConnection;
      await upsertCustomers(explaining, 'b-explain');
      await updateWideCustomers(explaining);
      await upsertProducts(explaining, 'b-explain');
      await markSummaryForRecategorizedProducts(explaining, 'b-explain', 0);
      await updateWideProducts(explaining);
      await upsertOrders(explaining, 'b-explain', 0);
      await findItemReferenceProblems(explaining);
      await markSummaryForStagedItems(explaining, 'b-explain', 0);
      await upsertItems(explaining, 'b-explain');
      await refreshWideForItems(explaining);

      // The control: with these statistics, the join the audit found slow (no index named) is a
      // full scan.
      const [free] = await conn.query<RowDataPacket[]>(
        `EXPLAIN SELECT o.order_status FROM tmp_stage_item s STRAIGHT_JOIN fact_order_item i ON i.order_id = s.order_id AND i.order_item_id = s.order_item_id
           STRAIGHT_JOIN fact_order o ON o.order_id = i.order_id LEFT JOIN dim_product p ON p.product_id = i.product_id LEFT JOIN dim_customer c ON c.customer_id = o.customer_id`,
      );
      expect(free.some((row) => row.table !== 's' && row.type === 'ALL'), JSON.stringify(free)).toBe(true);
    } finally {
      conn.release();
    }

    expect(plans.length).toBeGreaterThanOrEqual(12);
    const scans = plans.flatMap(({ sql, rows }) =>
      rows
        // The staging tables are read whole on purpose: they hold the chunk.
        .filter((row) => typeof row.table === 'string' && !/^(s|tmp_|<)/.test(row.table) && (row.type === 'ALL' || row.type === 'index'))
        .map((row) => `${String(row.table)} (${String(row.type)}) in: ${sql.replace(/\s+/g, ' ').slice(0, 160)}`),
    );
    expect(scans).toEqual([]);
  });
});
