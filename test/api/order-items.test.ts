import type { FastifyInstance } from 'fastify';
import type { RowDataPacket } from 'mysql2/promise';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { expectedOrder, FIXTURE_BATCH, hexId, SELLERS, seedMarketplace, type FixtureItem } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

let db: TestDatabase;
let app: FastifyInstance;
let items: FixtureItem[];
const alpha = bearer(mintToken({ sellerId: SELLERS.alpha }));

interface ApiItem {
  orderId: string;
  orderItemId: number;
  sellerId: string;
  price: string;
  purchasedAt: string;
  orderStatus: string;
  productCategory: string | null;
}

async function walk(query: string, headers = alpha, limit = 7): Promise<ApiItem[]> {
  const seen: ApiItem[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page += 1) {
    const url: string = `/v1/order-items?limit=${limit}${query}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const response = await request(app.server).get(url).set(headers).expect(200);
    seen.push(...(response.body.items as ApiItem[]));
    cursor = response.body.nextCursor as string | null;
    if (cursor === null) return seen;
    expect(response.body.items).toHaveLength(limit);
  }
  throw new Error('pagination did not end');
}

const key = (item: { orderId: string; orderItemId: number }): string => `${item.orderId}/${item.orderItemId}`;

beforeAll(async () => {
  db = await createTestDatabase('order_items');
  items = await seedMarketplace(db.pool, 60);
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('GET /v1/order-items', () => {
  it('when a seller lists, then it gets only its items, newest purchase first, in the documented shape', async () => {
    const response = await request(app.server).get('/v1/order-items?limit=5').set(alpha).expect(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const expected = expectedOrder(items, SELLERS.alpha).slice(0, 5);
    expect(response.body.items.map(key)).toEqual(expected.map(key));
    const first = response.body.items[0];
    const source = expected[0] as FixtureItem;
    expect(first).toEqual({
      orderId: source.orderId,
      orderItemId: source.orderItemId,
      productId: source.productId,
      productCategory: source.category,
      sellerId: SELLERS.alpha,
      price: source.price,
      freightValue: source.freightValue,
      shippingLimitAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
      orderStatus: source.status,
      purchasedAt: `${source.purchasedAt.replace(' ', 'T')}Z`,
      customerState: source.customerState,
      batchId: FIXTURE_BATCH,
    });
    expect(response.body.nextCursor).toEqual(expect.any(String));
    expect(response.body.freshness).toEqual({ batchId: FIXTURE_BATCH, ingestedAt: expect.stringMatching(/Z$/), ageSeconds: expect.any(Number) });
    expect(response.headers['x-data-freshness']).toBe(
      `batchId=${FIXTURE_BATCH}; ingestedAt=${response.body.freshness.ingestedAt}; ageSeconds=${response.body.freshness.ageSeconds}`,
    );
  });

  it('when no limit is given, then a page holds 50 items', async () => {
    const response = await request(app.server).get('/v1/order-items').set(alpha).expect(200);
    expect(response.body.items).toHaveLength(Math.min(50, expectedOrder(items, SELLERS.alpha).length));
  });

  it('when the pages are walked to the end, then every item of the seller comes exactly once, in order (ties included)', async () => {
    for (const seller of Object.values(SELLERS)) {
      const walked = await walk('', bearer(mintToken({ sellerId: seller })));
      expect(walked.map(key)).toEqual(expectedOrder(items, seller).map(key));
    }
  });

  it('when a new batch lands while a client pages, then no item that existed is lost or repeated', async () => {
    const before = expectedOrder(items, SELLERS.alpha).map(key);
    const seen: string[] = [];
    let cursor: string | null = null;
    let page = 0;
    do {
      const url: string = `/v1/order-items?limit=4${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const response = await request(app.server).get(url).set(alpha).expect(200);
      seen.push(...response.body.items.map(key));
      cursor = response.body.nextCursor;
      if (page === 1) {
        // A later batch rewrites existing rows and adds newer and older purchases.
        await db.pool.query("UPDATE fact_order_item SET batch_id = 'fixture-batch-2', price = price + 1 WHERE seller_id = ?", [SELLERS.alpha]);
        const orderId = hexId('late-order');
        await db.pool.query(
          `INSERT INTO fact_order (order_id, customer_id, order_status, purchased_at, purchase_date, batch_id)
           VALUES (?, ?, 'delivered', '2016-06-01 00:00:00', '2016-06-01', 'fixture-batch-2')`,
          [orderId, hexId('customer-0')],
        );
        await db.pool.query(
          `INSERT INTO fact_order_item (order_id, order_item_id, product_id, seller_id, shipping_limit_at, price, freight_value, purchased_at, batch_id)
           VALUES (?, 1, ?, ?, '2016-06-03 00:00:00', '1.00', '1.00', '2016-06-01 00:00:00', 'fixture-batch-2'),
                  (?, 2, ?, ?, '2030-06-03 00:00:00', '1.00', '1.00', '2030-06-01 00:00:00', 'fixture-batch-2')`,
          [orderId, hexId('product-0'), SELLERS.alpha, orderId, hexId('product-0'), SELLERS.alpha],
        );
      }
      page += 1;
    } while (cursor !== null);
    expect(new Set(seen).size).toBe(seen.length);
    for (const existing of before) expect(seen).toContain(existing);
    await db.pool.query("DELETE FROM fact_order_item WHERE order_id = ?", [hexId('late-order')]);
    await db.pool.query("DELETE FROM fact_order WHERE order_id = ?", [hexId('late-order')]);
    await db.pool.query("UPDATE fact_order_item SET batch_id = ?, price = price - 1 WHERE seller_id = ?", [FIXTURE_BATCH, SELLERS.alpha]);
  });

  it('when filtered by purchase time, then from is inclusive and to exclusive', async () => {
    const all = expectedOrder(items, SELLERS.alpha);
    const pivot = all[Math.floor(all.length / 2)] as FixtureItem;
    const iso = `${pivot.purchasedAt.replace(' ', 'T')}Z`;
    const fromHere = await walk(`&from=${iso}`);
    expect(fromHere.map(key)).toEqual(all.filter((item) => item.purchasedAt >= pivot.purchasedAt).map(key));
    const beforeHere = await walk(`&to=${iso}`);
    expect(beforeHere.map(key)).toEqual(all.filter((item) => item.purchasedAt < pivot.purchasedAt).map(key));
    // A date without time and an offset are both ISO 8601.
    const offset = await walk(`&from=${encodeURIComponent(iso.replace('Z', '+00:00'))}`);
    expect(offset.map(key)).toEqual(fromHere.map(key));
  });

  it('when filtered by status, category or order, then only matching items come back', async () => {
    const all = expectedOrder(items, SELLERS.alpha);
    expect((await walk('&status=canceled')).map(key)).toEqual(all.filter((item) => item.status === 'canceled').map(key));
    expect((await walk('&category=watches_gifts')).map(key)).toEqual(all.filter((item) => item.category === 'watches_gifts').map(key));
    // Categories are compared exactly: another case or accent is another category.
    expect(await walk('&category=WATCHES_GIFTS')).toEqual([]);
    expect(await walk(`&category=${encodeURIComponent('wátches_gifts')}`)).toEqual([]);
    const order = (all[3] as FixtureItem).orderId;
    expect((await walk(`&orderId=${order}`)).map(key)).toEqual(all.filter((item) => item.orderId === order).map(key));
    expect((await walk('&status=canceled&category=health_beauty')).map(key)).toEqual(
      all.filter((item) => item.status === 'canceled' && item.category === 'health_beauty').map(key),
    );
  });

  it('when a cursor is reused with any other filter, then it is refused with 400', async () => {
    const filters = '&status=delivered&from=2017-01-01T00:00:00Z&to=2030-01-01T00:00:00Z';
    const first = await request(app.server).get(`/v1/order-items?limit=2${filters}`).set(alpha).expect(200);
    const cursor = encodeURIComponent(first.body.nextCursor as string);
    // The same filters continue; each one changed, added or dropped is another listing.
    await request(app.server).get(`/v1/order-items?limit=2${filters}&cursor=${cursor}`).set(alpha).expect(200);
    const own = items.find((item) => item.sellerId === SELLERS.alpha);
    const others = [
      '&status=shipped&from=2017-01-01T00:00:00Z&to=2030-01-01T00:00:00Z',
      '&from=2017-01-01T00:00:00Z&to=2030-01-01T00:00:00Z',
      '&status=delivered&from=2017-01-02T00:00:00Z&to=2030-01-01T00:00:00Z',
      '&status=delivered&from=2017-01-01T00:00:00Z&to=2029-01-01T00:00:00Z',
      '&status=delivered&from=2017-01-01T00:00:00Z',
      `${filters}&category=toys`,
      `${filters}&orderId=${own?.orderId ?? ''}`,
    ];
    for (const other of others) {
      const response = await request(app.server).get(`/v1/order-items?limit=2${other}&cursor=${cursor}`).set(alpha);
      expect(response.status, other).toBe(400);
      expect(response.body.invalidParams[0].name).toBe('cursor');
    }
  });

  it('when a cursor is tampered with, then it is refused with 400', async () => {
    const first = await request(app.server).get('/v1/order-items?limit=2').set(alpha).expect(200);
    const cursor = first.body.nextCursor as string;
    const [payload, mac] = cursor.split('.') as [string, string];
    // 128 bits of MAC: guessing one is out of reach, whatever the request rate.
    expect(Buffer.from(mac, 'base64url').length).toBeGreaterThanOrEqual(16);
    const forged = Buffer.from(
      JSON.stringify([...(JSON.parse(Buffer.from(payload, 'base64url').toString()) as unknown[]).slice(0, 1), '2030-01-01 00:00:00', 'f'.repeat(32), 1]),
    ).toString('base64url');
    // Other spellings of the same MAC bytes: a trailing foreign character or padding, one in the
    // middle, and a last character that differs only in bits base64 leaves unused.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const lowBitFlipped = `${mac.slice(0, -1)}${alphabet[alphabet.indexOf(mac.slice(-1)) ^ 1]}`;
    const respelled = [`${payload}.${mac}!`, `${payload}.${mac}==`, `${payload}.${mac.slice(0, 8)}*${mac.slice(8)}`, `${payload}.${lowBitFlipped}`];
    for (const bad of [`${forged}.${mac}`, `${payload}.${mac.slice(0, -2)}AA`, 'garbage', `${payload}`, ...respelled]) {
      const response = await request(app.server).get(`/v1/order-items?cursor=${encodeURIComponent(bad)}`).set(alpha).expect(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.body.detail).toContain('cursor');
    }
  });
});

describe('freshness', () => {
  it('when a newer batch failed or is still running its staging stage, then freshness stays on the newest staged one', async () => {
    const uncached = await buildTestApp(db.url, { FRESHNESS_CACHE_MS: '0' });
    try {
      for (const [batchId, status] of [['batch-staging-failed', 'failed'], ['batch-staging-running', 'running']] as const) {
        await db.pool.query(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES (?, 'test', NOW(3) + INTERVAL 1 SECOND, ?)`, [batchId, status]);
        await db.pool.query(
          `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES (?, 'staging', NOW(3), IF(? = 'failed', NOW(3), NULL), ?)`,
          [batchId, status, status],
        );
      }
      const response = await request(uncached.server).get('/v1/order-items?limit=1').set(alpha).expect(200);
      expect(response.body.freshness.batchId).toBe(FIXTURE_BATCH);
      expect(response.headers['x-data-freshness']).toContain(`batchId=${FIXTURE_BATCH};`);
      await uncached.refreshPipelineMetrics();
      const gauge = (await uncached.metrics.registry.getSingleMetric('order_items_last_staged_batch_timestamp_seconds')?.get())?.values[0]?.value;
      const [[fixture]] = await db.pool.query<RowDataPacket[]>(`SELECT UNIX_TIMESTAMP(created_at) AS at FROM etl_batch WHERE batch_id = ?`, [FIXTURE_BATCH]);
      expect(gauge).toBeCloseTo(Number(fixture?.at), 0);
    } finally {
      await uncached.close();
      await db.pool.query(`DELETE FROM etl_batch_stage WHERE batch_id IN ('batch-staging-failed', 'batch-staging-running')`);
      await db.pool.query(`DELETE FROM etl_batch WHERE batch_id IN ('batch-staging-failed', 'batch-staging-running')`);
    }
  });
});

describe('GET /v1/order-items/{orderId}/{orderItemId}', () => {
  it('when the item is the seller’s, then it is returned', async () => {
    const target = expectedOrder(items, SELLERS.beta)[2] as FixtureItem;
    const response = await request(app.server)
      .get(`/v1/order-items/${target.orderId}/${target.orderItemId}`)
      .set(bearer(mintToken({ sellerId: SELLERS.beta })))
      .expect(200);
    expect(response.body).toMatchObject({ orderId: target.orderId, orderItemId: target.orderItemId, sellerId: SELLERS.beta, price: target.price });
    expect(response.headers['x-data-freshness']).toContain(FIXTURE_BATCH);
  });

  it('when the item does not exist, then 404 problem+json', async () => {
    const response = await request(app.server).get(`/v1/order-items/${'0'.repeat(32)}/1`).set(alpha).expect(404);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toEqual({ type: expect.any(String), title: 'Not found', status: 404, detail: 'order item not found' });
  });
});

describe('GET /v1/orders/{orderId}', () => {
  it('when an order is shared by sellers, then each sees the order with only its own items', async () => {
    const shared = items.find((item) => items.some((other) => other.orderId === item.orderId && other.sellerId !== item.sellerId)) as FixtureItem;
    for (const seller of Object.values(SELLERS)) {
      const own = items.filter((item) => item.orderId === shared.orderId && item.sellerId === seller);
      const response = await request(app.server)
        .get(`/v1/orders/${shared.orderId}`)
        .set(bearer(mintToken({ sellerId: seller })))
        .expect(own.length === 0 ? 404 : 200);
      if (own.length === 0) continue;
      expect(response.body).toMatchObject({
        orderId: shared.orderId,
        status: shared.status,
        purchasedAt: `${shared.purchasedAt.replace(' ', 'T')}Z`,
        approvedAt: expect.stringMatching(/Z$/),
        estimatedDeliveryAt: expect.stringMatching(/Z$/),
        customerState: shared.customerState,
      });
      expect(response.body.items.map(key)).toEqual(own.map(key).sort((a, b) => Number(a.split('/')[1]) - Number(b.split('/')[1])));
      expect(response.body.items.every((item: ApiItem) => item.sellerId === seller)).toBe(true);
    }
  });

  it('when a canceled order was never delivered, then its delivery times are null', async () => {
    const canceled = items.find((item) => item.status === 'canceled' && item.sellerId === SELLERS.alpha) as FixtureItem;
    const response = await request(app.server).get(`/v1/orders/${canceled.orderId}`).set(alpha).expect(200);
    expect(response.body.deliveredCarrierAt).toBeNull();
    expect(response.body.deliveredCustomerAt).toBeNull();
  });
});

describe('GET /v1/order-items/summary', () => {
  function sum(values: string[]): string {
    const cents = values.reduce((total, value) => total + BigInt(value.replace('.', '')), 0n);
    return `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`;
  }

  /** What the endpoint must answer for these items: buckets ordered by key, null category last. */
  function expectedBuckets(own: FixtureItem[], groupBy: 'day' | 'month' | 'category') {
    const bucketOf = (item: FixtureItem): string | null =>
      groupBy === 'day' ? item.purchasedAt.slice(0, 10) : groupBy === 'month' ? item.purchasedAt.slice(0, 7) : item.category;
    const keys = [...new Set(own.map(bucketOf))].sort((a, b) => (a === null ? 1 : b === null ? -1 : a.localeCompare(b)));
    return keys.map((bucket) => {
      const inBucket = own.filter((item) => bucketOf(item) === bucket);
      return {
        key: bucket,
        itemCount: inBucket.length,
        revenue: sum(inBucket.map((item) => item.price)),
        freight: sum(inBucket.map((item) => item.freightValue)),
      };
    });
  }

  it.each(['day', 'month', 'category'] as const)('when grouped by %s, then counts and exact sums match the seller’s items', async (groupBy) => {
    const own = items.filter((item) => item.sellerId === SELLERS.gamma);
    const response = await request(app.server)
      .get(`/v1/order-items/summary?groupBy=${groupBy}`)
      .set(bearer(mintToken({ sellerId: SELLERS.gamma })))
      .expect(200);
    expect(response.body.buckets).toEqual(expectedBuckets(own, groupBy));
  });

  // Whole days come from the daily totals, the partial days at either end from the items: bounds
  // taken from the items' own purchase times fall mid-day and sit exactly on an item (from is
  // inclusive, to exclusive).
  it.each(['day', 'month', 'category'] as const)(
    'when from and to fall inside days, then the partial days count exactly the purchases in range (%s)',
    async (groupBy) => {
      const own = items.filter((item) => item.sellerId === SELLERS.gamma);
      const times = [...new Set(own.map((item) => item.purchasedAt))].sort();
      expect(times.length).toBeGreaterThan(6);
      const at = (index: number): string => times[Math.min(index, times.length - 1)] as string;
      const iso = (sqlTime: string): string => `${sqlTime.replace(' ', 'T')}Z`;
      const sameDay = times.find((t, i) => i > 0 && times[i - 1]?.slice(0, 10) === t.slice(0, 10));
      const ranges: { from?: string; to?: string }[] = [
        { from: at(1), to: at(times.length - 2) },
        { from: at(2) },
        { to: at(times.length - 3) },
        { from: `${at(1).slice(0, 10)} 00:00:00`, to: at(4) },
        { from: at(3), to: `${at(times.length - 1).slice(0, 10)} 00:00:00` },
        // Two purchases of the same day: a range inside that day only.
        ...(sameDay === undefined ? [] : [{ from: `${sameDay.slice(0, 10)} 00:00:01`, to: sameDay }]),
      ];
      for (const range of ranges) {
        const query = new URLSearchParams({ groupBy });
        if (range.from !== undefined) query.set('from', iso(range.from));
        if (range.to !== undefined) query.set('to', iso(range.to));
        const inRange = own.filter(
          (item) => (range.from === undefined || item.purchasedAt >= range.from) && (range.to === undefined || item.purchasedAt < range.to),
        );
        const response = await request(app.server)
          .get(`/v1/order-items/summary?${query.toString()}`)
          .set(bearer(mintToken({ sellerId: SELLERS.gamma })))
          .expect(200);
        expect(response.body.buckets, JSON.stringify(range)).toEqual(expectedBuckets(inRange, groupBy));
      }
    },
  );

  it('when a range is given, then only purchases inside it count', async () => {
    const response = await request(app.server)
      .get('/v1/order-items/summary?groupBy=month&from=2017-02-01&to=2017-03-01')
      .set(alpha)
      .expect(200);
    const own = items.filter((item) => item.sellerId === SELLERS.alpha && item.purchasedAt.startsWith('2017-02'));
    expect(response.body.buckets).toEqual(own.length === 0 ? [] : [expect.objectContaining({ key: '2017-02', itemCount: own.length })]);
  });

  it('when the range is longer than allowed or groupBy is missing, then 400 names the parameter', async () => {
    const tooLong = await request(app.server).get('/v1/order-items/summary?groupBy=day&from=2010-01-01&to=2020-01-01').set(alpha).expect(400);
    expect(tooLong.body.invalidParams[0].name).toBe('to');
    const missing = await request(app.server).get('/v1/order-items/summary').set(alpha).expect(400);
    expect(missing.body.invalidParams[0].name).toBe('groupBy');
  });
});
