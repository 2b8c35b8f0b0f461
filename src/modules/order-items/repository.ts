// Every SQL statement of the order-item aggregate. Each function takes the tenant scope first;
// the seller id it carries is the first predicate of every statement. SQL text is built only
// from fixed fragments chosen by allowlist; every value is a bound parameter.
import type { RowDataPacket } from 'mysql2/promise';
import { sellerIdOf, type TenantScope } from '../../auth/tenant-scope.js';
import type { Database, SqlValue } from '../../db/database.js';
import type { OrderStatus } from '../../db/schema.js';
import { sqlTimestampToIso } from '../../http/timestamps.js';
import type { OrderItem } from './schemas.js';

export interface KeysetPosition {
  purchasedAt: string;
  orderId: string;
  orderItemId: number;
}

export interface OrderItemFilter {
  /** 'YYYY-MM-DD HH:MM:SS.mmm' UTC, inclusive. */
  from?: string;
  /** 'YYYY-MM-DD HH:MM:SS.mmm' UTC, exclusive. */
  to?: string;
  status?: OrderStatus;
  category?: string;
  orderId?: string;
}

export interface OrderItemRow extends RowDataPacket {
  order_id: string;
  order_item_id: number;
  product_id: string;
  category: string | null;
  seller_id: string;
  price: string;
  freight_value: string;
  shipping_limit_at: string;
  order_status: OrderStatus;
  purchased_at: string;
  customer_state: string | null;
  batch_id: string;
}

export const ORDER_ITEM_COLUMNS = `i.order_id, i.order_item_id, i.product_id, p.category_name_english AS category,
       i.seller_id, i.price, i.freight_value, i.shipping_limit_at, o.order_status, i.purchased_at,
       c.state AS customer_state, i.batch_id`;

export const ORDER_ITEM_JOINS = `JOIN fact_order o ON o.order_id = i.order_id
  LEFT JOIN dim_product p ON p.product_id = i.product_id
  LEFT JOIN dim_customer c ON c.customer_id = o.customer_id`;

export function toOrderItem(row: OrderItemRow): OrderItem {
  return {
    orderId: row.order_id,
    orderItemId: row.order_item_id,
    productId: row.product_id,
    productCategory: row.category,
    sellerId: row.seller_id,
    price: row.price,
    freightValue: row.freight_value,
    shippingLimitAt: sqlTimestampToIso(row.shipping_limit_at),
    orderStatus: row.order_status,
    purchasedAt: sqlTimestampToIso(row.purchased_at),
    customerState: row.customer_state,
    batchId: row.batch_id,
  };
}

function filterPredicates(filter: OrderItemFilter, params: SqlValue[]): string {
  let sql = '';
  if (filter.from !== undefined) {
    sql += ' AND i.purchased_at >= ?';
    params.push(filter.from);
  }
  if (filter.to !== undefined) {
    sql += ' AND i.purchased_at < ?';
    params.push(filter.to);
  }
  if (filter.status !== undefined) {
    sql += ' AND o.order_status = ?';
    params.push(filter.status);
  }
  if (filter.category !== undefined) {
    sql += ' AND p.category_name_english = ?';
    params.push(filter.category);
  }
  if (filter.orderId !== undefined) {
    sql += ' AND i.order_id = ?';
    params.push(filter.orderId);
  }
  return sql;
}

/**
 * Newest purchase first, keyset-paginated on (purchased_at, order_id, order_item_id), which is
 * the order of index ix_item_seller_purchased: a deep page costs what the first page costs.
 * Returns up to `limit + 1` rows so the caller knows whether another page exists.
 */
export async function listOrderItems(
  db: Database,
  scope: TenantScope,
  filter: OrderItemFilter,
  after: KeysetPosition | null,
  limit: number,
): Promise<OrderItemRow[]> {
  const params: SqlValue[] = [sellerIdOf(scope)];
  // Without the hint a category filter makes the optimizer start from every product of the
  // category and sort; walking the seller's index in order stops after `limit` rows instead.
  // An orderId filter is better served by the primary key.
  const hint = filter.orderId === undefined ? ' FORCE INDEX (ix_item_seller_purchased)' : '';
  let sql = `SELECT ${ORDER_ITEM_COLUMNS}
  FROM fact_order_item i${hint}
  ${ORDER_ITEM_JOINS}
 WHERE i.seller_id = ?${filterPredicates(filter, params)}`;
  if (after !== null) {
    // Spelled out rather than a row comparison, which MariaDB does not turn into an index range.
    sql += ` AND (i.purchased_at < ? OR (i.purchased_at = ? AND (i.order_id < ? OR (i.order_id = ? AND i.order_item_id < ?))))`;
    params.push(after.purchasedAt, after.purchasedAt, after.orderId, after.orderId, after.orderItemId);
  }
  // A validated integer, not input text; inlined because prepared LIMIT placeholders are typed
  // inconsistently across MySQL and MariaDB.
  sql += `
 ORDER BY i.purchased_at DESC, i.order_id DESC, i.order_item_id DESC
 LIMIT ${Math.trunc(limit) + 1}`;
  return db.select<OrderItemRow>('listOrderItems', sql, params);
}

export async function getOrderItem(
  db: Database,
  scope: TenantScope,
  orderId: string,
  orderItemId: number,
): Promise<OrderItemRow | null> {
  const rows = await db.select<OrderItemRow>(
    'getOrderItem',
    `SELECT ${ORDER_ITEM_COLUMNS}
       FROM fact_order_item i
       ${ORDER_ITEM_JOINS}
      WHERE i.seller_id = ? AND i.order_id = ? AND i.order_item_id = ?`,
    [sellerIdOf(scope), orderId, orderItemId],
  );
  return rows[0] ?? null;
}

export type SummaryGroup = 'day' | 'month' | 'category';

export interface SummaryRow extends RowDataPacket {
  bucket: string | null;
  item_count: number;
  revenue: string;
  freight: string;
}

const SUMMARY_STATEMENTS: Record<SummaryGroup, { key: string; join: string; order: string }> = {
  day: { key: `DATE_FORMAT(i.purchased_at, '%Y-%m-%d')`, join: '', order: 'bucket' },
  month: { key: `DATE_FORMAT(i.purchased_at, '%Y-%m')`, join: '', order: 'bucket' },
  category: {
    key: 'p.category_name_english',
    join: 'LEFT JOIN dim_product p ON p.product_id = i.product_id',
    order: 'bucket IS NULL, bucket',
  },
};

export async function summarizeOrderItems(
  db: Database,
  scope: TenantScope,
  groupBy: SummaryGroup,
  range: { from?: string; to?: string },
): Promise<SummaryRow[]> {
  const statement = SUMMARY_STATEMENTS[groupBy];
  const params: SqlValue[] = [sellerIdOf(scope)];
  let where = 'i.seller_id = ?';
  if (range.from !== undefined) {
    where += ' AND i.purchased_at >= ?';
    params.push(range.from);
  }
  if (range.to !== undefined) {
    where += ' AND i.purchased_at < ?';
    params.push(range.to);
  }
  return db.select<SummaryRow>(
    'summarizeOrderItems',
    `SELECT ${statement.key} AS bucket, COUNT(*) AS item_count, SUM(i.price) AS revenue, SUM(i.freight_value) AS freight
       FROM fact_order_item i
       ${statement.join}
      WHERE ${where}
      GROUP BY bucket
      ORDER BY ${statement.order}`,
    params,
  );
}
