// The summary must agree with the items the list shows even when a batch has committed chunks
// without recomputing their days' totals: while it loads, or after its loader died. Here the
// database is left as a killed loader leaves it: items changed and their (seller, day) pairs
// marked in order_item_summary_mark, order_item_daily_summary untouched.
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { refreshWideReadModel, SELLERS, seedMarketplace, type FixtureItem } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

const DEAD_BATCH = 'killed-loader-batch';

let db: TestDatabase;
let star: FastifyInstance;
let wide: FastifyInstance;
let items: FixtureItem[];

const QUERIES = ['groupBy=day', 'groupBy=month', 'groupBy=category', 'groupBy=day&from=2017-01-01&to=2017-04-01', 'groupBy=month&from=2017-01-01T10:00:00Z&to=2017-03-15T12:00:00Z'];
const SELLERS_ASKED = [SELLERS.alpha, SELLERS.gamma];

/** Every summary asked of both read models, keyed by model, seller and query. */
async function summaries(): Promise<Map<string, unknown>> {
  const answers = new Map<string, unknown>();
  for (const [model, app] of [['star', star], ['wide', wide]] as const) {
    for (const seller of SELLERS_ASKED) {
      for (const query of QUERIES) {
        const response = await request(app.server)
          .get(`/v1/order-items/summary?${query}`)
          .set(bearer(mintToken({ sellerId: seller })))
          .expect(200);
        answers.set(`${model} ${seller} ${query}`, response.body);
      }
    }
  }
  return answers;
}

async function mark(sellerId: string, day: string): Promise<void> {
  await db.pool.query('INSERT IGNORE INTO order_item_summary_mark (batch_id, writer, seller_id, purchase_date) VALUES (?, 0, ?, ?)', [
    DEAD_BATCH,
    sellerId,
    day,
  ]);
}

beforeAll(async () => {
  db = await createTestDatabase('summary_pending');
  items = await seedMarketplace(db.pool, 60);
  await refreshWideReadModel(db.pool);
  star = await buildTestApp(db.url, { READ_MODEL: 'star' });
  wide = await buildTestApp(db.url, { READ_MODEL: 'wide' });
});
afterAll(async () => {
  await star?.close();
  await wide?.close();
  await db?.drop();
});

describe('GET /v1/order-items/summary with days a batch has not recomputed', () => {
  it('when a killed load left changed items and marks but old daily totals, then every bucket is the aggregate of the items', async () => {
    const before = await summaries();
    const gamma = items.filter((item) => item.sellerId === SELLERS.gamma);
    const repriced = gamma[0] as FixtureItem;
    const moved = gamma.find((item) => item.orderId !== repriced.orderId && item.purchasedAt.slice(0, 10) !== repriced.purchasedAt.slice(0, 10)) as FixtureItem;
    const handedOver = items.find((item) => item.sellerId === SELLERS.alpha) as FixtureItem;
    // Midnight of a day before every other: the first marked day's bound must include it.
    const movedTo = '2016-12-30 00:00:00';

    // What the dead batch's chunks committed: the items (star and wide, as the loader writes
    // both in one transaction) and the marks of every day they left or entered.
    await db.pool.query("UPDATE fact_order_item SET price = price + 1000.01, batch_id = ? WHERE order_id = ? AND order_item_id = ?", [DEAD_BATCH, repriced.orderId, repriced.orderItemId]);
    await db.pool.query("UPDATE order_item_wide SET price = price + 1000.01, batch_id = ? WHERE order_id = ? AND order_item_id = ?", [DEAD_BATCH, repriced.orderId, repriced.orderItemId]);
    await mark(SELLERS.gamma, repriced.purchasedAt.slice(0, 10));
    await db.pool.query('UPDATE fact_order SET purchased_at = ?, purchase_date = ? WHERE order_id = ?', [movedTo, movedTo.slice(0, 10), moved.orderId]);
    await db.pool.query('UPDATE fact_order_item SET purchased_at = ? WHERE order_id = ?', [movedTo, moved.orderId]);
    await db.pool.query('UPDATE order_item_wide SET purchased_at = ? WHERE order_id = ?', [movedTo, moved.orderId]);
    const movedSellers = items.filter((item) => item.orderId === moved.orderId).map((item) => item.sellerId);
    for (const seller of new Set(movedSellers)) {
      await mark(seller, moved.purchasedAt.slice(0, 10));
      await mark(seller, movedTo.slice(0, 10));
    }
    await db.pool.query('UPDATE fact_order_item SET seller_id = ? WHERE order_id = ? AND order_item_id = ?', [SELLERS.gamma, handedOver.orderId, handedOver.orderItemId]);
    await db.pool.query('UPDATE order_item_wide SET seller_id = ? WHERE order_id = ? AND order_item_id = ?', [SELLERS.gamma, handedOver.orderId, handedOver.orderItemId]);
    await mark(SELLERS.alpha, handedOver.purchasedAt.slice(0, 10));
    await mark(SELLERS.gamma, handedOver.purchasedAt.slice(0, 10));

    const pending = await summaries();

    // The reference: the same items once their days are recomputed (what the next batch does).
    await refreshWideReadModel(db.pool);
    await db.pool.query('DELETE FROM order_item_summary_mark');
    const recomputed = await summaries();

    for (const [key, answer] of recomputed) expect(pending.get(key), key).toEqual(answer);
    // The changes do move the buckets the summary answers, or the comparison above proves nothing.
    const changed = [...recomputed.keys()].filter((key) => JSON.stringify(before.get(key)) !== JSON.stringify(recomputed.get(key)));
    expect(changed.filter((key) => key.includes(SELLERS.gamma) && key.startsWith('star')).length).toBe(QUERIES.length);
    expect(changed.filter((key) => key.includes(SELLERS.alpha)).length).toBeGreaterThan(0);
  });
});
