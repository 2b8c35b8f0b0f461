// A small marketplace written straight into the star schema: three sellers that share orders,
// with dates, statuses and categories spread so every filter has something to find.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'mysql2/promise';
import { ORDER_STATUSES } from '../../src/db/schema.js';

export const hexId = (label: string): string => createHash('md5').update(label).digest('hex');

export const SELLERS = { alpha: hexId('seller-alpha'), beta: hexId('seller-beta'), gamma: hexId('seller-gamma') };
export const FIXTURE_BATCH = 'fixture-batch-1';

export interface FixtureItem {
  orderId: string;
  orderItemId: number;
  productId: string;
  sellerId: string;
  price: string;
  freightValue: string;
  purchasedAt: string;
  status: (typeof ORDER_STATUSES)[number];
  category: string | null;
  customerState: string;
}

const CATEGORIES: (string | null)[] = ['health_beauty', 'watches_gifts', 'bed_bath_table', null];
const STATES = ['SP', 'RJ', 'MG', 'RS'];

function sqlTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/** Seeds `orderCount` orders; order n holds items of one, two or three sellers. */
export async function seedMarketplace(pool: Pool, orderCount = 40, ingestedAt = new Date()): Promise<FixtureItem[]> {
  const sellers = Object.values(SELLERS);
  const items: FixtureItem[] = [];
  await pool.query(
    'INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES (?, ?, ?, ?)',
    [FIXTURE_BATCH, 'fixture', ingestedAt.toISOString().replace('T', ' ').replace('Z', ''), 'succeeded'],
  );
  await pool.query(
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_in, rows_out, rows_rejected, status)
     VALUES (?, 'staging', ?, ?, 0, 0, 0, 'succeeded')`,
    [FIXTURE_BATCH, sqlTime(ingestedAt.getTime()), sqlTime(ingestedAt.getTime() + 1000)],
  );
  for (const [index, sellerId] of sellers.entries()) {
    await pool.query('INSERT INTO dim_seller VALUES (?, ?, ?, ?, ?, DEFAULT)', [sellerId, `0${index}000`, 'campinas', 'SP', FIXTURE_BATCH]);
  }
  for (const [index, category] of CATEGORIES.entries()) {
    await pool.query(
      `INSERT INTO dim_product (product_id, category_name, category_name_english, batch_id) VALUES (?, ?, ?, ?)`,
      [hexId(`product-${index}`), category === null ? null : `pt_${category}`, category, FIXTURE_BATCH],
    );
  }
  const start = Date.UTC(2017, 0, 1, 12, 0, 0);
  for (let n = 0; n < orderCount; n += 1) {
    const orderId = hexId(`order-${n}`);
    const customerId = hexId(`customer-${n}`);
    const state = STATES[n % STATES.length] as string;
    const status = n % 10 === 3 ? 'canceled' : n % 10 === 7 ? 'shipped' : 'delivered';
    // Every fifth order shares its purchase second with the previous one: ties must page right.
    const purchasedMs = start + Math.floor(n / 5) * 5 * 86_400_000 + (n % 5 === 4 ? (n % 5) - 1 : n % 5) * 3_600_000;
    const purchasedAt = sqlTime(purchasedMs);
    await pool.query('INSERT INTO dim_customer VALUES (?, ?, ?, ?, ?, ?, DEFAULT)', [customerId, hexId(`unique-${n}`), '01000', 'sao paulo', state, FIXTURE_BATCH]);
    await pool.query(
      `INSERT INTO fact_order (order_id, customer_id, order_status, purchased_at, purchase_date, approved_at,
         delivered_carrier_at, delivered_customer_at, estimated_delivery_at, batch_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        orderId,
        customerId,
        status,
        purchasedAt,
        purchasedAt.slice(0, 10),
        sqlTime(purchasedMs + 600_000),
        status === 'canceled' ? null : sqlTime(purchasedMs + 86_400_000),
        status === 'delivered' ? sqlTime(purchasedMs + 6 * 86_400_000) : null,
        sqlTime(purchasedMs + 20 * 86_400_000),
        FIXTURE_BATCH,
      ],
    );
    const sellerCount = (n % 3) + 1;
    let itemSeq = 0;
    for (let s = 0; s < sellerCount; s += 1) {
      const sellerId = sellers[(n + s) % sellers.length] as string;
      const perSeller = n % 4 === 0 ? 2 : 1;
      for (let k = 0; k < perSeller; k += 1) {
        itemSeq += 1;
        const productIndex = (n + s + k) % CATEGORIES.length;
        const price = `${10 + ((n * 7 + itemSeq * 13) % 190)}.${String((n * 31 + itemSeq) % 100).padStart(2, '0')}`;
        const freight = `${5 + (n % 20)}.${String((n * 17) % 100).padStart(2, '0')}`;
        const item: FixtureItem = {
          orderId,
          orderItemId: itemSeq,
          productId: hexId(`product-${productIndex}`),
          sellerId,
          price,
          freightValue: freight,
          purchasedAt,
          status,
          category: CATEGORIES[productIndex] ?? null,
          customerState: state,
        };
        items.push(item);
        await pool.query(
          `INSERT INTO fact_order_item (order_id, order_item_id, product_id, seller_id, shipping_limit_at, price, freight_value, purchased_at, batch_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [orderId, itemSeq, item.productId, sellerId, sqlTime(purchasedMs + 3 * 86_400_000), price, freight, purchasedAt, FIXTURE_BATCH],
        );
      }
    }
  }
  await refreshWideReadModel(pool);
  return items;
}

// The wide read model is filled the way the migration fills it from existing star rows; the loader
// keeps it in step afterwards, but fixtures write the star tables directly.
// The same goes for the daily summary the summary endpoint reads, derived from the wide table.
const WIDE_BACKFILL = readFileSync(join(import.meta.dirname, '../../drizzle/0002_backfill_order_item_wide.sql'), 'utf8');
const SUMMARY_BACKFILL = readFileSync(join(import.meta.dirname, '../../drizzle/0004_backfill_order_item_daily_summary.sql'), 'utf8');

export async function refreshWideReadModel(pool: Pool): Promise<void> {
  await pool.query('DELETE FROM order_item_wide');
  await pool.query(WIDE_BACKFILL);
  await pool.query('DELETE FROM order_item_daily_summary');
  await pool.query(SUMMARY_BACKFILL);
}

/** The seller's items in the API's order: newest purchase first, then order id and item desc. */
export function expectedOrder(items: FixtureItem[], sellerId: string): FixtureItem[] {
  return items
    .filter((item) => item.sellerId === sellerId)
    .sort((a, b) =>
      a.purchasedAt !== b.purchasedAt
        ? b.purchasedAt.localeCompare(a.purchasedAt)
        : a.orderId !== b.orderId
          ? b.orderId.localeCompare(a.orderId)
          : b.orderItemId - a.orderItemId,
    );
}
