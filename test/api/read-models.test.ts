// READ_MODEL=star and READ_MODEL=wide must answer every request byte for byte alike.
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { refreshWideReadModel, SELLERS, seedMarketplace, type FixtureItem } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';


let db: TestDatabase;
let star: FastifyInstance;
let wide: FastifyInstance;
let items: FixtureItem[];

async function both(url: string, seller: string): Promise<[request.Response, request.Response]> {
  const headers = bearer(mintToken({ sellerId: seller }));
  return Promise.all([request(star.server).get(url).set(headers), request(wide.server).get(url).set(headers)]);
}

async function expectSame(url: string, seller: string): Promise<request.Response> {
  const [fromStar, fromWide] = await both(url, seller);
  expect(fromWide.status, url).toBe(fromStar.status);
  // Byte for byte, but for the data's age, which depends on when each response was made.
  const ageless = (text: string): string => text.replace(/"ageSeconds":\d+/, '"ageSeconds":0');
  expect(ageless(fromWide.text), url).toBe(ageless(fromStar.text));
  expect(fromWide.headers['content-type']).toBe(fromStar.headers['content-type']);
  return fromStar;
}

beforeAll(async () => {
  db = await createTestDatabase('read_models');
  items = await seedMarketplace(db.pool, 50);
  // A later change the wide table must reflect: another status and category, a missing product.
  await db.pool.query("UPDATE fact_order SET order_status = 'invoiced' WHERE order_id = ?", [items[5]?.orderId]);
  await db.pool.query('UPDATE fact_order_item SET product_id = ? WHERE order_id = ? AND order_item_id = 1', ['9'.repeat(32), items[8]?.orderId]);
  await refreshWideReadModel(db.pool);
  star = await buildTestApp(db.url, { READ_MODEL: 'star' });
  wide = await buildTestApp(db.url, { READ_MODEL: 'wide' });
});
afterAll(async () => {
  await star?.close();
  await wide?.close();
  await db?.drop();
});

describe('READ_MODEL=star and READ_MODEL=wide', () => {
  it('hold the same rows', async () => {
    const [[wideCount]] = (await db.pool.query('SELECT COUNT(*) AS n FROM order_item_wide')) as unknown as [[{ n: number }]];
    expect(wideCount.n).toBe(items.length);
  });

  it.each([
    '',
    '&status=delivered',
    '&status=invoiced',
    '&category=watches_gifts',
    '&from=2017-01-20&to=2017-03-01',
    '&status=canceled&category=health_beauty',
  ])('list pages walked to the end are identical (filters: %s)', async (filters) => {
    for (const seller of Object.values(SELLERS)) {
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/v1/order-items?limit=4${filters}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
        const response = await expectSame(url, seller);
        cursor = response.body.nextCursor;
        pages += 1;
      } while (cursor !== null && pages < 100);
    }
  });

  it('items, orders and their 404s are identical', async () => {
    for (const item of items) {
      for (const seller of [item.sellerId, SELLERS.alpha]) {
        await expectSame(`/v1/order-items/${item.orderId}/${item.orderItemId}`, seller);
        await expectSame(`/v1/orders/${item.orderId}`, seller);
        await expectSame(`/v1/order-items?orderId=${item.orderId}`, seller);
      }
    }
  });

  it.each(['day', 'month', 'category'])('summaries by %s are identical', async (groupBy) => {
    for (const seller of Object.values(SELLERS)) {
      await expectSame(`/v1/order-items/summary?groupBy=${groupBy}`, seller);
      await expectSame(`/v1/order-items/summary?groupBy=${groupBy}&from=2017-01-15&to=2017-02-15`, seller);
    }
  });

  it.each(['day', 'month', 'category'])('summaries by %s over partial days (each model reads its own items there) are identical and not empty', async (groupBy) => {
    let nonEmpty = 0;
    for (const item of items.slice(0, 12)) {
      // From an hour before an item's purchase to the middle of the next day: two partial days.
      const at = Date.parse(`${item.purchasedAt.replace(' ', 'T')}Z`);
      const from = new Date(at - 3_600_000).toISOString();
      const to = new Date(Math.floor(at / 86_400_000) * 86_400_000 + 36 * 3_600_000).toISOString();
      const response = await expectSame(`/v1/order-items/summary?groupBy=${groupBy}&from=${from}&to=${to}`, item.sellerId);
      if (response.body.buckets.length > 0) nonEmpty += 1;
    }
    expect(nonEmpty).toBe(12);
  });

  it('the wide app really reads the wide table', async () => {
    await db.pool.query("UPDATE order_item_wide SET customer_state = 'XX' WHERE seller_id = ?", [SELLERS.gamma]);
    const [fromStar, fromWide] = await both('/v1/order-items?limit=1', SELLERS.gamma);
    expect(fromWide.body.items[0].customerState).toBe('XX');
    expect(fromStar.body.items[0].customerState).not.toBe('XX');
    await refreshWideReadModel(db.pool);
  });
});
