import { z } from 'zod';
import { HexId, OrderItem, OrderStatus } from '../order-items/schemas.js';

const Timestamp = z.string().meta({ format: 'date-time', description: 'ISO 8601, UTC.' });

export const OrderParams = z.strictObject({ orderId: HexId });

export const Order = z
  .object({
    orderId: HexId,
    status: OrderStatus,
    purchasedAt: Timestamp,
    approvedAt: Timestamp.nullable(),
    deliveredCarrierAt: Timestamp.nullable(),
    deliveredCustomerAt: Timestamp.nullable(),
    estimatedDeliveryAt: Timestamp.nullable(),
    customerState: z.string().nullable(),
    items: z.array(OrderItem).meta({ description: "Only the calling seller's items of this order." }),
  })
  .meta({ id: 'Order' });
