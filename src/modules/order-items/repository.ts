// Every SQL statement of the order-item aggregate. Each method takes the tenant scope first; the
// seller id it carries is the first predicate of every statement. SQL text is built only from
// fixed fragments (the read model's, and allowlisted filters); every value is a bound parameter.
import type { RowDataPacket } from 'mysql2/promise';
import { sellerIdOf, type TenantScope } from '../../auth/tenant-scope.js';
import type { Database, SqlValue } from '../../db/database.js';
import { halfOpenRange } from '../../db/range-predicate.js';
import type { OrderStatus } from '../../db/schema.js';
import { splitAtWholeDays } from './day-range.js';
import type { ReadModel } from './read-models.js';
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
  shipping_limit_iso: string;
  order_status: OrderStatus;
  purchased_iso: string;
  customer_state: string | null;
  batch_id: string;
}

export type SummaryGroup = 'day' | 'month' | 'category';

export interface SummaryRow extends RowDataPacket {
  /** 1 on the row that says some day of the range awaits its batch's recompute (no bucket). */
  pending: number;
  bucket: string | null;
  item_count: number;
  revenue: string;
  freight: string;
}

export function toOrderItem(row: OrderItemRow): OrderItem {
  return {
    orderId: row.order_id,
    orderItemId: row.order_item_id,
    productId: row.product_id,
    productCategory: row.category,
    sellerId: row.seller_id,
    price: row.price,
    freightValue: row.freight_value,
    shippingLimitAt: row.shipping_limit_iso,
    orderStatus: row.order_status,
    purchasedAt: row.purchased_iso,
    customerState: row.customer_state,
    batchId: row.batch_id,
  };
}

export class OrderItemRepository {
  constructor(
    private readonly db: Database,
    private readonly model: ReadModel,
  ) {}

  /**
   * Newest purchase first, keyset-paginated on (purchased_at, order_id, order_item_id): the order
   * of the seller/purchase index, so a deep page costs what the first page costs. Returns up to
   * `limit + 1` rows so the caller knows whether another page exists.
   */
  async list(scope: TenantScope, filter: OrderItemFilter, after: KeysetPosition | null, limit: number): Promise<OrderItemRow[]> {
    const { model } = this;
    const params: SqlValue[] = [sellerIdOf(scope)];
    let predicates = halfOpenRange('i.purchased_at', filter, params);
    if (filter.status !== undefined) {
      predicates += ` AND ${model.statusColumn} = ?`;
      params.push(filter.status);
    }
    if (filter.category !== undefined) {
      predicates += ` AND ${model.categoryColumn} = ?`;
      params.push(filter.category);
    }
    if (filter.orderId !== undefined) {
      predicates += ' AND i.order_id = ?';
      params.push(filter.orderId);
    }
    if (after !== null) {
      // Spelled out rather than a row comparison, which MariaDB does not turn into an index range.
      predicates += ' AND (i.purchased_at < ? OR (i.purchased_at = ? AND (i.order_id < ? OR (i.order_id = ? AND i.order_item_id < ?))))';
      params.push(after.purchasedAt, after.purchasedAt, after.orderId, after.orderId, after.orderItemId);
    }
    // Without the hint a category filter makes the optimizer start from every product of the
    // category and sort; walking the seller's index in order stops after `limit` rows instead.
    // An orderId filter is better served by the order's key.
    const hint = filter.orderId === undefined ? ` FORCE INDEX (${model.sellerPurchaseIndex})` : '';
    // The limit is a validated integer, not input text; inlined because prepared LIMIT
    // placeholders are typed inconsistently across MySQL and MariaDB.
    return this.db.select<OrderItemRow>(
      'listOrderItems',
      `SELECT ${model.itemColumns}
  FROM ${model.from(hint)}
 WHERE i.seller_id = ?${predicates}
 ORDER BY i.purchased_at DESC, i.order_id DESC, i.order_item_id DESC
 LIMIT ${Math.trunc(limit) + 1}`,
      params,
    );
  }

  async get(scope: TenantScope, orderId: string, orderItemId: number): Promise<OrderItemRow | null> {
    const rows = await this.db.select<OrderItemRow>(
      'getOrderItem',
      `SELECT ${this.model.itemColumns}
  FROM ${this.model.from('')}
 WHERE i.seller_id = ? AND i.order_id = ? AND i.order_item_id = ?`,
      [sellerIdOf(scope), orderId, orderItemId],
    );
    return rows[0] ?? null;
  }

  /**
   * Whole UTC days of the range come from order_item_daily_summary (a few rows per day), a partial
   * first or last day from the items themselves; both are grouped by the same key and added up.
   * A batch marks the (seller, day) pairs it changes in the transaction that changes them and
   * recomputes their totals before it removes the marks, so in any one snapshot a day without a
   * mark has current totals. The statement therefore also asks whether any of the range's days is
   * marked (one index probe); only then, while a batch loads or after its loader died, the
   * summary is asked again with those days summed from the items. Either way the buckets are what
   * an aggregate over every item the list shows would give.
   */
  async summarize(scope: TenantScope, groupBy: SummaryGroup, range: { from?: string; to?: string }): Promise<SummaryRow[]> {
    const rows = await this.summarizeFrom(scope, groupBy, range, 'totals');
    if (!rows.some((row) => Number(row.pending) === 1)) return rows;
    return this.summarizeFrom(scope, groupBy, range, 'items-for-marked-days');
  }

  private async summarizeFrom(
    scope: TenantScope,
    groupBy: SummaryGroup,
    range: { from?: string; to?: string },
    markedDays: 'totals' | 'items-for-marked-days',
  ): Promise<SummaryRow[]> {
    const itemKey =
      groupBy === 'day'
        ? `DATE_FORMAT(i.purchased_at, '%Y-%m-%d')`
        : groupBy === 'month'
          ? `DATE_FORMAT(i.purchased_at, '%Y-%m')`
          : this.model.categoryColumn;
    const dayKey =
      groupBy === 'day'
        ? `DATE_FORMAT(d.purchase_date, '%Y-%m-%d')`
        : groupBy === 'month'
          ? `DATE_FORMAT(d.purchase_date, '%Y-%m')`
          : `NULLIF(d.category_key, '')`;
    const sellerId = sellerIdOf(scope);
    const { days, partial } = splitAtWholeDays(range);
    const params: SqlValue[] = [];
    const parts: string[] = [];
    if (days !== null) {
      // The seller's marked days in the range, as a subquery every part that needs them repeats
      // inside one statement (one snapshot decides which days are marked).
      const marks = (selected: string): string => {
        params.push(sellerId);
        return `SELECT ${selected} FROM order_item_summary_mark m WHERE m.seller_id = ?${halfOpenRange('m.purchase_date', days, params)}`;
      };
      params.push(sellerId);
      const totalsRange = halfOpenRange('d.purchase_date', days, params);
      if (markedDays === 'totals') {
        parts.push(`SELECT 0 AS pending, ${dayKey} AS bucket, d.item_count, d.revenue, d.freight
    FROM order_item_daily_summary d
   WHERE d.seller_id = ?${totalsRange}`);
        parts.push(`(${marks('1, NULL, 0, 0, 0')} LIMIT 1)`);
      } else {
        parts.push(`SELECT 0 AS pending, ${dayKey} AS bucket, d.item_count, d.revenue, d.freight
    FROM order_item_daily_summary d
   WHERE d.seller_id = ?${totalsRange} AND d.purchase_date NOT IN (${marks('m.purchase_date')})`);
        // MIN and MAX bound the items' index range; IN keeps the marked days of it.
        params.push(sellerId);
        const first = marks('MIN(m.purchase_date)');
        const last = marks('MAX(m.purchase_date)');
        parts.push(`SELECT 0, ${itemKey} AS bucket, COUNT(*) AS item_count, SUM(i.price) AS revenue, SUM(i.freight_value) AS freight
    FROM ${this.model.summaryFrom(groupBy)}
   WHERE i.seller_id = ?
     AND i.purchased_at >= (${first})
     AND i.purchased_at < (${last}) + INTERVAL 1 DAY
     AND CAST(i.purchased_at AS DATE) IN (${marks('m.purchase_date')})
   GROUP BY bucket`);
      }
    }
    for (const edge of partial) {
      params.push(sellerId, edge.from, edge.to);
      parts.push(`SELECT 0 AS pending, ${itemKey} AS bucket, COUNT(*) AS item_count, SUM(i.price) AS revenue, SUM(i.freight_value) AS freight
    FROM ${this.model.summaryFrom(groupBy)}
   WHERE i.seller_id = ? AND i.purchased_at >= ? AND i.purchased_at < ?
   GROUP BY bucket`);
    }
    if (parts.length === 0) return [];
    return this.db.select<SummaryRow>(
      'summarizeOrderItems',
      `SELECT t.pending, t.bucket, SUM(t.item_count) AS item_count, SUM(t.revenue) AS revenue, SUM(t.freight) AS freight
  FROM (${parts.join(' UNION ALL ')}) t
 GROUP BY t.pending, t.bucket
 ORDER BY t.pending, ${groupBy === 'category' ? 't.bucket IS NULL, t.bucket' : 't.bucket'}`,
      params,
    );
  }
}
