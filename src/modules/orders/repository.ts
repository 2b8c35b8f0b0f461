// Every SQL statement of the order aggregate, as a seller sees it: an order exists for a seller
// only through that seller's items in it.
import { sellerIdOf, type TenantScope } from '../../auth/tenant-scope.js';
import type { Database } from '../../db/database.js';
import type { OrderItemRow } from '../order-items/repository.js';
import type { ReadModel } from '../order-items/read-models.js';

export interface OrderWithItemRow extends OrderItemRow {
  approved_iso: string | null;
  delivered_carrier_iso: string | null;
  delivered_customer_iso: string | null;
  estimated_delivery_iso: string | null;
}

export class OrderRepository {
  constructor(
    private readonly db: Database,
    private readonly model: ReadModel,
  ) {}

  /** The order's header repeated on each of the seller's items: one round trip. Empty when the seller has none. */
  async getForSeller(scope: TenantScope, orderId: string): Promise<OrderWithItemRow[]> {
    return this.db.select<OrderWithItemRow>(
      'getOrder',
      `SELECT ${this.model.itemColumns}, ${this.model.orderColumns}
  FROM ${this.model.from('')}
 WHERE i.seller_id = ? AND i.order_id = ?
 ORDER BY i.order_item_id`,
      [sellerIdOf(scope), orderId],
    );
  }
}
