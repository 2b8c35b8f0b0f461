// The MySQL staging "double star": two fact tables (orders, order items) sharing the seller,
// customer, product and date dimensions, plus the monitoring and quarantine tables that every
// pipeline stage writes. Table and column names are a contract with the upstream ETL.
import { sql } from 'drizzle-orm';
import {
  bigint,
  char,
  customType,
  date,
  datetime,
  decimal,
  index,
  int,
  mysqlEnum,
  mysqlTable,
  primaryKey,
  smallint,
  mediumtext,
  tinyint,
  uniqueIndex,
  varchar,
} from 'drizzle-orm/mysql-core';

export const ORDER_STATUSES = [
  'created',
  'approved',
  'invoiced',
  'processing',
  'shipped',
  'delivered',
  'unavailable',
  'canceled',
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export const PIPELINE_STAGES = ['source', 'landing', 'bronze', 'silver', 'gold', 'staging', 'api'] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

export const RUN_STATUSES = ['running', 'succeeded', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

// Source ids are 32 lowercase hex characters: ASCII with a binary collation keeps every index
// on them a quarter of the utf8mb4 size and makes comparisons exact (no case folding).
const hexId = customType<{ data: string }>({ dataType: () => 'char(32) CHARACTER SET ascii COLLATE ascii_bin' });
const asciiKey = customType<{ data: string; config: { length: number } }>({
  dataType: (config) => `varchar(${config?.length ?? 64}) CHARACTER SET ascii COLLATE ascii_bin`,
});
const sourceId = (name: string) => hexId(name).notNull();
// Category names, Portuguese and English, are keys: the translation's, the API's category filter
// and its summary buckets. Compared exactly (binary), as the loader and every client compare them:
// a case- and accent-insensitive collation made 'Toys' a match for ?category=toys and merged them
// into one summary bucket. (Binary collations pad with spaces: the contract refuses edge spaces.)
const categoryName = customType<{ data: string }>({ dataType: () => 'varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin' });
const batchId = () => asciiKey('batch_id', { length: 64 }).notNull();
// Millisecond precision: stage gaps and first-served lags are often sub-second.
const updatedAt = () =>
  datetime('updated_at', { fsp: 3, mode: 'string' })
    .notNull()
    .default(sql`CURRENT_TIMESTAMP(3)`);
const sourceTimestamp = (name: string) => datetime(name, { mode: 'string' });

export const dimSeller = mysqlTable('dim_seller', {
  sellerId: sourceId('seller_id').primaryKey(),
  zipCodePrefix: varchar('zip_code_prefix', { length: 10 }).notNull(),
  city: varchar('city', { length: 128 }).notNull(),
  state: char('state', { length: 2 }).notNull(),
  batchId: batchId(),
  updatedAt: updatedAt(),
});

export const dimCustomer = mysqlTable('dim_customer', {
  customerId: sourceId('customer_id').primaryKey(),
  customerUniqueId: sourceId('customer_unique_id'),
  zipCodePrefix: varchar('zip_code_prefix', { length: 10 }).notNull(),
  city: varchar('city', { length: 128 }).notNull(),
  state: char('state', { length: 2 }).notNull(),
  batchId: batchId(),
  updatedAt: updatedAt(),
});

export const dimProduct = mysqlTable(
  'dim_product',
  {
    productId: sourceId('product_id').primaryKey(),
    categoryName: categoryName('category_name'),
    categoryNameEnglish: categoryName('category_name_english'),
    nameLength: smallint('name_length', { unsigned: true }),
    descriptionLength: int('description_length', { unsigned: true }),
    photosQty: smallint('photos_qty', { unsigned: true }),
    weightG: int('weight_g', { unsigned: true }),
    lengthCm: smallint('length_cm', { unsigned: true }),
    heightCm: smallint('height_cm', { unsigned: true }),
    widthCm: smallint('width_cm', { unsigned: true }),
    batchId: batchId(),
    updatedAt: updatedAt(),
  },
  (t) => [index('ix_product_category_english').on(t.categoryNameEnglish)],
);

// The translation file is a dimension of its own upstream; kept so that a product loaded in a
// later batch still gets its English name.
export const dimCategoryTranslation = mysqlTable('dim_category_translation', {
  categoryName: categoryName('category_name').primaryKey(),
  categoryNameEnglish: categoryName('category_name_english').notNull(),
  batchId: batchId(),
  updatedAt: updatedAt(),
});

export const dimDate = mysqlTable('dim_date', {
  dateKey: date('date_key', { mode: 'string' }).primaryKey(),
  year: smallint('year', { unsigned: true }).notNull(),
  quarter: tinyint('quarter', { unsigned: true }).notNull(),
  month: tinyint('month', { unsigned: true }).notNull(),
  dayOfMonth: tinyint('day_of_month', { unsigned: true }).notNull(),
  dayOfWeek: tinyint('day_of_week', { unsigned: true }).notNull(),
  isoWeek: tinyint('iso_week', { unsigned: true }).notNull(),
  // The year the ISO week belongs to: 2017-01-01 is in week 52 of ISO year 2016. Computed by the
  // server (YEARWEEK mode 3 is the ISO week), so a writer that does not know the column (a loader
  // of the previous version during a rolling upgrade) still writes whole rows.
  isoYear: smallint('iso_year', { unsigned: true }).generatedAlwaysAs(sql`YEARWEEK(\`date_key\`, 3) DIV 100`, { mode: 'stored' }),
  yearMonth: char('year_month', { length: 7 }).notNull(),
  batchId: batchId(),
  updatedAt: updatedAt(),
});

export const factOrder = mysqlTable(
  'fact_order',
  {
    orderId: sourceId('order_id').primaryKey(),
    customerId: sourceId('customer_id'),
    orderStatus: mysqlEnum('order_status', ORDER_STATUSES).notNull(),
    purchasedAt: sourceTimestamp('purchased_at').notNull(),
    purchaseDate: date('purchase_date', { mode: 'string' }).notNull(),
    approvedAt: sourceTimestamp('approved_at'),
    deliveredCarrierAt: sourceTimestamp('delivered_carrier_at'),
    deliveredCustomerAt: sourceTimestamp('delivered_customer_at'),
    estimatedDeliveryAt: sourceTimestamp('estimated_delivery_at'),
    batchId: batchId(),
    updatedAt: updatedAt(),
  },
  (t) => [index('ix_order_customer').on(t.customerId), index('ix_order_purchase_date').on(t.purchaseDate)],
);

export const factOrderItem = mysqlTable(
  'fact_order_item',
  {
    orderId: sourceId('order_id'),
    orderItemId: smallint('order_item_id', { unsigned: true }).notNull(),
    productId: sourceId('product_id'),
    sellerId: sourceId('seller_id'),
    shippingLimitAt: sourceTimestamp('shipping_limit_at').notNull(),
    price: decimal('price', { precision: 12, scale: 2 }).notNull(),
    freightValue: decimal('freight_value', { precision: 12, scale: 2 }).notNull(),
    // Copied from fact_order by the loader so that the tenant's listing and aggregates are one
    // index range scan (seller, purchase time) instead of a join and a sort.
    purchasedAt: sourceTimestamp('purchased_at').notNull(),
    batchId: batchId(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ name: 'pk_fact_order_item', columns: [t.orderId, t.orderItemId] }),
    // Keyset listing: seller, newest purchase first, ties broken by the primary key. Also the
    // range of a summary's partial first or last day (whole days come from the daily totals).
    index('ix_item_seller_purchased').on(t.sellerId, t.purchasedAt, t.orderId, t.orderItemId),
    index('ix_item_product').on(t.productId),
  ],
);

export const etlBatch = mysqlTable(
  'etl_batch',
  {
    batchId: asciiKey('batch_id', { length: 64 }).primaryKey(),
    source: varchar('source', { length: 128 }).notNull(),
    // The batch's ingestion timestamp: where the end-to-end clock starts.
    createdAt: datetime('created_at', { fsp: 3, mode: 'string' }).notNull(),
    status: mysqlEnum('status', RUN_STATUSES).notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [index('ix_batch_created').on(t.createdAt, t.batchId)],
);

export const etlBatchStage = mysqlTable(
  'etl_batch_stage',
  {
    batchId: asciiKey('batch_id', { length: 64 }).notNull(),
    stage: mysqlEnum('stage', PIPELINE_STAGES).notNull(),
    startedAt: datetime('started_at', { fsp: 3, mode: 'string' }).notNull(),
    finishedAt: datetime('finished_at', { fsp: 3, mode: 'string' }),
    rowsIn: bigint('rows_in', { mode: 'number', unsigned: true }),
    rowsOut: bigint('rows_out', { mode: 'number', unsigned: true }),
    rowsRejected: bigint('rows_rejected', { mode: 'number', unsigned: true }),
    status: mysqlEnum('status', RUN_STATUSES).notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ name: 'pk_etl_batch_stage', columns: [t.batchId, t.stage] }),
    index('ix_stage_status').on(t.stage, t.status, t.batchId),
  ],
);

export const etlRejectedRow = mysqlTable(
  'etl_rejected_row',
  {
    id: bigint('id', { mode: 'number', unsigned: true }).autoincrement().primaryKey(),
    batchId: batchId(),
    file: varchar('file', { length: 255 }).notNull(),
    line: int('line', { unsigned: true }).notNull(),
    reason: varchar('reason', { length: 1024 }).notNull(),
    // The record as read, up to REJECTED_RAW_MAX_BYTES: a TEXT column's 64 KiB would refuse a
    // long garbage row and fail its batch.
    rawContent: mediumtext('raw_content').notNull(),
    createdAt: datetime('created_at', { fsp: 3, mode: 'string' })
      .notNull()
      .default(sql`CURRENT_TIMESTAMP(3)`),
  },
  (t) => [index('ix_rejected_batch').on(t.batchId, t.file, t.line)],
);

// The One Big Table read model: every column the API returns for an order item, denormalized and
// clustered by the reader's access path (seller, purchase time), so a page is one clustered range
// read with no join. Maintained by the loader in the same transactions as the star tables;
// selected per deployment with READ_MODEL=wide.
export const orderItemWide = mysqlTable(
  'order_item_wide',
  {
    sellerId: sourceId('seller_id'),
    purchasedAt: sourceTimestamp('purchased_at').notNull(),
    orderId: sourceId('order_id'),
    orderItemId: smallint('order_item_id', { unsigned: true }).notNull(),
    productId: sourceId('product_id'),
    productCategory: categoryName('product_category'),
    price: decimal('price', { precision: 12, scale: 2 }).notNull(),
    freightValue: decimal('freight_value', { precision: 12, scale: 2 }).notNull(),
    shippingLimitAt: sourceTimestamp('shipping_limit_at').notNull(),
    orderStatus: mysqlEnum('order_status', ORDER_STATUSES).notNull(),
    approvedAt: sourceTimestamp('approved_at'),
    deliveredCarrierAt: sourceTimestamp('delivered_carrier_at'),
    deliveredCustomerAt: sourceTimestamp('delivered_customer_at'),
    estimatedDeliveryAt: sourceTimestamp('estimated_delivery_at'),
    customerState: char('customer_state', { length: 2 }),
    batchId: batchId(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ name: 'pk_order_item_wide', columns: [t.sellerId, t.purchasedAt, t.orderId, t.orderItemId] }),
    uniqueIndex('ux_wide_order_item').on(t.orderId, t.orderItemId),
    index('ix_wide_product').on(t.productId),
  ],
);

// Daily totals of each seller's items per (UTC) purchase day and English category: the summary
// endpoint reads at most a few hundred of these rows for a year instead of scanning every item of a
// large seller (1.2 s for 390k items on the 5M dataset). `category_key` is the category, '' for
// items without one (a primary key column cannot be NULL; the contract never gives '' as a category).
// Derived from order_item_wide, and recomputed by the loader at the end of each batch for the
// (seller, day) pairs the batch touched (order_item_summary_mark).
export const orderItemDailySummary = mysqlTable(
  'order_item_daily_summary',
  {
    sellerId: sourceId('seller_id'),
    purchaseDate: date('purchase_date', { mode: 'string' }).notNull(),
    categoryKey: categoryName('category_key').notNull(),
    itemCount: int('item_count', { unsigned: true }).notNull(),
    revenue: decimal('revenue', { precision: 18, scale: 2 }).notNull(),
    freight: decimal('freight', { precision: 18, scale: 2 }).notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ name: 'pk_order_item_daily_summary', columns: [t.sellerId, t.purchaseDate, t.categoryKey] })],
);

// The (seller, purchase day) pairs whose daily totals a batch may have changed: written in the
// same transaction as the change (old and new position of every moved item), consumed by the
// batch's final summary recompute. `writer` (the loader connection's partition) keeps each
// concurrent writer inside its own key range, so their inserts never wait on each other. Until a
// pair's mark is gone, the summary endpoint sums that day from the items (ix_summary_mark_seller_day),
// so it never shows totals older than the rows the list shows: while a batch loads, or after its
// loader died before the recompute.
export const orderItemSummaryMark = mysqlTable(
  'order_item_summary_mark',
  {
    batchId: batchId(),
    writer: smallint('writer', { unsigned: true }).notNull(),
    sellerId: sourceId('seller_id'),
    purchaseDate: date('purchase_date', { mode: 'string' }).notNull(),
  },
  (t) => [
    primaryKey({ name: 'pk_order_item_summary_mark', columns: [t.batchId, t.writer, t.sellerId, t.purchaseDate] }),
    index('ix_summary_mark_seller_day').on(t.sellerId, t.purchaseDate),
  ],
);
