// Every SQL statement of the order aggregate, as a seller sees it: an order exists for a seller
// only through that seller's items in it.
import { sellerIdOf, type TenantScope } from '../../auth/tenant-scope.js';
import type { Database } from '../../db/database.js';
import { ORDER_ITEM_COLUMNS, ORDER_ITEM_JOINS, type OrderItemRow } from '../order-items/repository.js';

export interface OrderWithItemRow extends OrderItemRow {
  approved_at: string | null;
  delivered_carrier_at: string | null;
  delivered_customer_at: string | null;
  estimated_delivery_at: string | null;
}

/** The order's header repeated on each of the seller's items: one round trip. Empty when the seller has none. */
export async function getOrderForSeller(db: Database, scope: TenantScope, orderId: string): Promise<OrderWithItemRow[]> {
  return db.select<OrderWithItemRow>(
    'getOrder',
    `SELECT ${ORDER_ITEM_COLUMNS}, o.approved_at, o.delivered_carrier_at, o.delivered_customer_at, o.estimated_delivery_at
       FROM fact_order_item i
       ${ORDER_ITEM_JOINS}
      WHERE i.seller_id = ? AND i.order_id = ?
      ORDER BY i.order_item_id`,
    [sellerIdOf(scope), orderId],
  );
}
