import { z } from 'zod';
import { ORDER_STATUSES } from '../../db/schema.js';
import { Freshness } from '../freshness/tracker.js';

export const HexId = z
  .string()
  .regex(/^[0-9a-f]{32}$/)
  .meta({ description: '32 lowercase hexadecimal characters.', example: '00010242fe8c5a6d1ba2dd792cb16214' });

const Decimal = z
  .string()
  .regex(/^-?\d+\.\d{2}$/)
  .meta({ description: 'Exact decimal amount with two places, as a string.', example: '129.90' });
const Timestamp = z.string().meta({ format: 'date-time', description: 'ISO 8601, UTC.', example: '2017-09-13T08:59:02Z' });
const InstantParam = z
  .string()
  .min(8)
  .max(35)
  .meta({ description: 'ISO 8601 date or date-time; without an offset it is UTC.', example: '2017-01-01T00:00:00Z' });

export const OrderStatus = z.enum(ORDER_STATUSES);

export const OrderItem = z
  .object({
    orderId: HexId,
    orderItemId: z.number().int().min(1).max(65535),
    productId: HexId,
    productCategory: z.string().nullable().meta({ description: 'English product category; null when unknown.' }),
    sellerId: HexId,
    price: Decimal,
    freightValue: Decimal,
    shippingLimitAt: Timestamp,
    orderStatus: OrderStatus,
    purchasedAt: Timestamp,
    customerState: z.string().nullable(),
    batchId: z.string().meta({ description: 'The ETL batch that last wrote this row.' }),
  })
  .meta({ id: 'OrderItem' });
export type OrderItem = z.infer<typeof OrderItem>;

export const ListOrderItemsQuery = z.strictObject({
  limit: z.number().int().min(1).max(200).default(50).meta({ description: 'Page size.' }),
  cursor: z.string().min(1).max(512).optional().meta({ description: 'Opaque cursor from the previous page.' }),
  from: InstantParam.optional().meta({ description: 'Purchase time lower bound (inclusive), ISO 8601; without an offset it is UTC.' }),
  to: InstantParam.optional().meta({ description: 'Purchase time upper bound (exclusive), ISO 8601; without an offset it is UTC.' }),
  status: OrderStatus.optional().meta({ description: "Only items of orders in this status." }),
  category: z
    .string()
    .min(1)
    .max(100)
    // No category starts or ends with white space (the loader refuses them), and the database's
    // binary collation pads with spaces: 'toys ' would otherwise match 'toys'.
    .regex(/^(?!\s)[\s\S]*(?<!\s)$/)
    .optional()
    .meta({ description: 'English product category, matched exactly (case and accents count; no space at either end).' }),
  orderId: HexId.optional().meta({ description: "Only this order's items (32 lowercase hex)." }),
});
export type ListOrderItemsQuery = z.infer<typeof ListOrderItemsQuery>;

export const OrderItemPage = z
  .object({
    items: z.array(OrderItem),
    nextCursor: z.string().nullable(),
    freshness: Freshness.nullable(),
  })
  .meta({ id: 'OrderItemPage' });

export const OrderItemParams = z.strictObject({
  orderId: HexId.meta({ description: 'The order (32 lowercase hex).' }),
  orderItemId: z.number().int().min(1).max(65535).meta({ description: "The item's sequence number within the order (1 for its first item)." }),
});

export const SUMMARY_GROUPS = ['day', 'month', 'category'] as const;
export const SummaryQuery = z.strictObject({
  groupBy: z.enum(SUMMARY_GROUPS).meta({ description: 'Bucket by UTC purchase day (`YYYY-MM-DD`), month (`YYYY-MM`) or English product category (null key: uncategorized).' }),
  from: InstantParam.optional().meta({ description: 'Purchase time lower bound (inclusive), ISO 8601; without an offset it is UTC.' }),
  to: InstantParam.optional().meta({ description: 'Purchase time upper bound (exclusive), ISO 8601; without an offset it is UTC.' }),
});

export const SummaryBucket = z
  .object({
    key: z.string().nullable().meta({ description: 'YYYY-MM-DD, YYYY-MM or the English category (null: uncategorized, listed last).' }),
    itemCount: z.number().int().nonnegative(),
    revenue: Decimal,
    freight: Decimal,
  })
  .meta({ id: 'SummaryBucket' });
export const Summary = z
  .object({ buckets: z.array(SummaryBucket) })
  .meta({ id: 'OrderItemSummary' });
