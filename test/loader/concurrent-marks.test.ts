// Two batches at once: P moves an order to another purchase day (orders chunk) while Q adds an
// item of another seller to that order (items chunk). Whatever order their statements interleave
// in, the item must end on the order's day in both item tables, and the day it ends on must be
// marked, so that the daily totals are recomputed. Here T holds one of the order's stored items
// so that P stops between marking the days of the items it sees and moving them, the window in
// which Q used to commit its item unseen.
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/loader/batch-id.js';
import { validateRecord } from '../../src/loader/contract.js';
import { loadBatch } from '../../src/loader/load-batch.js';
import {
  insertBatch,
  markSummaryForRecategorizedProducts,
  markSummaryForStagedItems,
  prepareConnection,
  recomputeDailySummary,
  refreshWideForItems,
  setBatchStatus,
  stageItems,
  stageOrders,
  stageProducts,
  updateWideProducts,
  upsertItems,
  upsertOrders,
  upsertProducts,
  withTransaction,
} from '../../src/loader/upsert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { baseRows, ID, writeFolder } from './fixtures.js';

const SELLER3 = '9'.repeat(32);
const MOVED_TO = '2017-09-05 10:00:00';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('concurrent_marks');
  const rows = baseRows();
  rows.sellers.push(`${SELLER3},"01002",sao paulo,SP`);
  const folder = await writeFolder(rows);
  try {
    expect((await loadBatch({ databaseUrl: db.url, dir: folder.dir })).status).toBe('succeeded');
  } finally {
    await folder.cleanup();
  }
});
afterAll(async () => {
  await db?.drop();
});

/** Whether connection `thread` is running a statement that starts with `statement`. */
async function running(observer: PoolConnection, thread: number, statement: string): Promise<boolean> {
  const [[row]] = await observer.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.processlist WHERE id = ? AND info LIKE ?', [
    thread,
    `${statement}%`,
  ]);
  return Number(row?.n) > 0;
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Every day's totals are those of its wide rows, and no mark is left: both batches recomputed. */
async function expectTotalsOfTheItems(observer: PoolConnection): Promise<void> {
  const [totals] = await observer.query({
    sql: `SELECT seller_id, DATE_FORMAT(purchase_date, '%Y-%m-%d'), category_key, item_count, revenue, freight FROM order_item_daily_summary ORDER BY 1, 2, 3`,
    rowsAsArray: true,
  });
  const [aggregate] = await observer.query({
    sql: `SELECT seller_id, DATE_FORMAT(DATE(purchased_at), '%Y-%m-%d'), COALESCE(product_category, ''), COUNT(*), SUM(price), SUM(freight_value)
        FROM order_item_wide GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    rowsAsArray: true,
  });
  expect(totals).toEqual(aggregate);
  const [[marks]] = await observer.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM order_item_summary_mark');
  expect(Number(marks?.n)).toBe(0);
}

/**
 * Connections for two batches P and Q (writers with staging tables), T (to hold a row lock) and an
 * observer, and P's and Q's etl_batch rows; Q is the newer batch. Ids ahead of the clock keep a
 * later test's batches newer than an earlier test's.
 */
async function twoBatches(firstIdAheadMs: number) {
  const [p, q, t, observer] = await Promise.all([db.pool.getConnection(), db.pool.getConnection(), db.pool.getConnection(), db.pool.getConnection()]);
  const staging = await prepareConnection(p, 'insert');
  await prepareConnection(q, staging);
  const batchP = uuidv7(Date.now() + firstIdAheadMs);
  const batchQ = uuidv7(Date.now() + firstIdAheadMs + 1_000);
  for (const batchId of [batchP, batchQ]) await insertBatch(observer, { batchId, source: 'concurrent-marks', createdAt: '2026-01-01 00:00:00.000' });
  const [[self]] = await p.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS thread');
  return { p, q, t, observer, staging, batchP, batchQ, thread: Number(self?.thread) };
}

describe('concurrent batches and the daily totals', () => {
  it('when an order moves while another batch adds an item to it, then the item follows the order and its new day is recomputed', async () => {
    const { p, q, t, observer, staging, batchP, batchQ, thread } = await twoBatches(1_000);
    try {
      const order = validateRecord('orders', [ID.order1, ID.customer1, 'delivered', MOVED_TO, '2017-09-13 11:05:35', '2017-09-14 11:05:35', '2017-09-26 01:54:28', '2017-10-03 00:00:00']);
      const item = validateRecord('items', [ID.order1, '3', ID.product1, SELLER3, '2017-09-19 09:45:35', '50.00', '5.00']);
      if (!order.ok || !item.ok) throw new Error('fixture rows break the contract');

      await t.query('START TRANSACTION');
      await t.query('SELECT * FROM fact_order_item WHERE order_id = ? AND order_item_id = 1 FOR UPDATE', [ID.order1]);
      await p.query('START TRANSACTION');
      await stageOrders(p, staging, [order.row]);
      const orderChunk = upsertOrders(p, batchP, 0);
      // P has marked the days of the items it sees and now waits on T to move them.
      await until(() => running(observer, thread, 'UPDATE tmp_stage_order s STRAIGHT_JOIN fact_order_item'), 'P to wait on T');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await running(observer, thread, 'UPDATE tmp_stage_order s STRAIGHT_JOIN fact_order_item')).toBe(true);

      const itemChunk = withTransaction(q, async () => {
        await stageItems(q, staging, [{ line: 2, row: item.row }]);
        await upsertItems(q, batchQ);
        await markSummaryForStagedItems(q, batchQ, 0);
        await refreshWideForItems(q);
      });
      // Q either waits for P (the fix) or commits at once (the race); give it the time to.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await t.query('ROLLBACK');
      await orderChunk;
      await p.query('COMMIT');
      await itemChunk;

      await recomputeDailySummary([q], batchQ);
      await setBatchStatus(observer, batchQ, 'succeeded');
      await recomputeDailySummary([p], batchP);
      await setBatchStatus(observer, batchP, 'succeeded');

      const [items] = await observer.query<RowDataPacket[]>(
        `SELECT i.order_item_id, i.purchased_at AS fact_time, w.purchased_at AS wide_time
           FROM fact_order_item i JOIN order_item_wide w USING (order_id, order_item_id) WHERE i.order_id = ? ORDER BY 1`,
        [ID.order1],
      );
      expect(items.map((row) => [row.order_item_id, String(row.fact_time), String(row.wide_time)])).toEqual([
        [1, MOVED_TO, MOVED_TO],
        [2, MOVED_TO, MOVED_TO],
        [3, MOVED_TO, MOVED_TO],
      ]);
      await expectTotalsOfTheItems(observer);
    } finally {
      for (const conn of [p, q, t, observer]) conn.release();
    }
  });

  it('when a product changes category while another batch adds an item of it and recomputes first, then the item takes the new category and its day is recomputed', async () => {
    const { p, q, t, observer, staging, batchP, batchQ, thread } = await twoBatches(5_000);
    try {
      const product = validateRecord('products', [ID.product1, 'artes', '40', '287', '1', '225', '16', '10', '14']);
      const item = validateRecord('items', [ID.order2, '2', ID.product1, SELLER3, '2018-01-05 10:00:00', '70.00', '7.00']);
      if (!product.ok || !item.ok) throw new Error('fixture rows break the contract');

      // T holds a wide row of the product, so that P stops after marking the days of the rows it
      // sees, before it changes their category.
      await t.query('START TRANSACTION');
      await t.query('SELECT * FROM order_item_wide WHERE order_id = ? AND order_item_id = 1 FOR UPDATE', [ID.order2]);
      await p.query('START TRANSACTION');
      await stageProducts(p, staging, [{ ...product.row, categoryNameEnglish: 'art' }]);
      const productChunk = (async () => {
        await upsertProducts(p, batchP);
        await markSummaryForRecategorizedProducts(p, batchP, 0);
        await updateWideProducts(p);
      })();
      await until(() => running(observer, thread, 'UPDATE tmp_stage_product s STRAIGHT_JOIN dim_product'), 'P to wait on T');

      // Q's whole batch: its items chunk, then its recompute, before P commits if nothing stops it.
      const batchOfQ = (async () => {
        await withTransaction(q, async () => {
          await stageItems(q, staging, [{ line: 2, row: item.row }]);
          await upsertItems(q, batchQ);
          await markSummaryForStagedItems(q, batchQ, 0);
          await refreshWideForItems(q);
        });
        await recomputeDailySummary([q], batchQ);
        await setBatchStatus(observer, batchQ, 'succeeded');
      })();
      await new Promise((resolve) => setTimeout(resolve, 500));
      await t.query('ROLLBACK');
      await productChunk;
      await p.query('COMMIT');
      await batchOfQ;
      await recomputeDailySummary([p], batchP);
      await setBatchStatus(observer, batchP, 'succeeded');

      const [[added]] = await observer.query<RowDataPacket[]>('SELECT product_category FROM order_item_wide WHERE order_id = ? AND order_item_id = 2', [ID.order2]);
      expect(added?.product_category).toBe('art');
      await expectTotalsOfTheItems(observer);
    } finally {
      for (const conn of [p, q, t, observer]) conn.release();
    }
  });
});
