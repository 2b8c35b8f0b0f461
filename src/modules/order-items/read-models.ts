// The two read models an order item can be served from, as fixed SQL fragments. Both give the
// same rows for the same data: `star` joins the facts and dimensions at read time, `wide` reads
// the denormalized order_item_wide table the loader keeps in step. The table alias is `i` in both,
// so the repositories' statements are written once.
export const READ_MODELS = ['star', 'wide'] as const;
export type ReadModelName = (typeof READ_MODELS)[number];

export interface ReadModel {
  readonly name: ReadModelName;
  /** The select list of an OrderItemRow. */
  readonly itemColumns: string;
  /** The order-level columns added by GET /v1/orders/{orderId}. */
  readonly orderColumns: string;
  /** FROM clause for item reads; `hint` goes right after the item table's alias. */
  from(hint: string): string;
  /** The index that walks a seller's items in purchase order. */
  readonly sellerPurchaseIndex: string;
  readonly statusColumn: string;
  readonly categoryColumn: string;
  /** FROM clause of the aggregates, per grouping. */
  summaryFrom(groupBy: 'day' | 'month' | 'category'): string;
}

/**
 * A DATETIME as the API writes it (ISO 8601, UTC, `Z`), formatted by the server: decoding a
 * binary DATETIME into a string and rewriting it in JavaScript cost ~10% of the API's CPU on a
 * page of items. The `_iso` aliases keep these apart from the columns the statements filter and
 * sort on.
 */
const isoSecond = (column: string): string => `DATE_FORMAT(${column}, '%Y-%m-%dT%H:%i:%sZ')`;

const STAR: ReadModel = {
  name: 'star',
  itemColumns: `i.order_id, i.order_item_id, i.product_id, p.category_name_english AS category,
       i.seller_id, i.price, i.freight_value, ${isoSecond('i.shipping_limit_at')} AS shipping_limit_iso, o.order_status,
       ${isoSecond('i.purchased_at')} AS purchased_iso, c.state AS customer_state, i.batch_id`,
  orderColumns: `${isoSecond('o.approved_at')} AS approved_iso, ${isoSecond('o.delivered_carrier_at')} AS delivered_carrier_iso,
       ${isoSecond('o.delivered_customer_at')} AS delivered_customer_iso, ${isoSecond('o.estimated_delivery_at')} AS estimated_delivery_iso`,
  from: (hint) => `fact_order_item i${hint}
  JOIN fact_order o ON o.order_id = i.order_id
  LEFT JOIN dim_product p ON p.product_id = i.product_id
  LEFT JOIN dim_customer c ON c.customer_id = o.customer_id`,
  sellerPurchaseIndex: 'ix_item_seller_purchased',
  statusColumn: 'o.order_status',
  categoryColumn: 'p.category_name_english',
  summaryFrom: (groupBy) =>
    groupBy === 'category' ? 'fact_order_item i LEFT JOIN dim_product p ON p.product_id = i.product_id' : 'fact_order_item i',
};

const WIDE: ReadModel = {
  name: 'wide',
  itemColumns: `i.order_id, i.order_item_id, i.product_id, i.product_category AS category,
       i.seller_id, i.price, i.freight_value, ${isoSecond('i.shipping_limit_at')} AS shipping_limit_iso, i.order_status,
       ${isoSecond('i.purchased_at')} AS purchased_iso, i.customer_state, i.batch_id`,
  orderColumns: `${isoSecond('i.approved_at')} AS approved_iso, ${isoSecond('i.delivered_carrier_at')} AS delivered_carrier_iso,
       ${isoSecond('i.delivered_customer_at')} AS delivered_customer_iso, ${isoSecond('i.estimated_delivery_at')} AS estimated_delivery_iso`,
  from: (hint) => `order_item_wide i${hint}`,
  // The clustered key is (seller_id, purchased_at, order_id, order_item_id): a page is one
  // contiguous read of full rows.
  sellerPurchaseIndex: 'PRIMARY',
  statusColumn: 'i.order_status',
  categoryColumn: 'i.product_category',
  summaryFrom: () => 'order_item_wide i',
};

export function readModel(name: ReadModelName): ReadModel {
  return name === 'star' ? STAR : WIDE;
}
