// All of the loader's SQL: batch and stage bookkeeping, quarantine, and the chunk upserts into
// the staging star schema. Upserts are SCD type 1 (INSERT ... ON DUPLICATE KEY UPDATE, no
// history): the last writer's values win and batch_id / updated_at name the writing batch.
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { PipelineStage, RunStatus } from '../db/schema.js';
import {
  dateParts,
  type CustomerRow,
  type FileKind,
  type OrderRow,
  type ProductRow,
  type SellerRow,
  type TranslationRow,
  type ItemRow,
} from './contract.js';

export type Queryable = Pool | PoolConnection;
type SqlValue = string | number | null;

/** UTC 'YYYY-MM-DD HH:MM:SS.mmm', the format of every DATETIME(3) the loader writes. */
export function sqlTimestamp(date: Date): string {
  return date.toISOString().slice(0, 23).replace('T', ' ');
}

export const TABLE_OF: Record<FileKind, string> = {
  translation: 'dim_category_translation',
  sellers: 'dim_seller',
  customers: 'dim_customer',
  products: 'dim_product',
  orders: 'fact_order',
  items: 'fact_order_item',
};

export async function withTransaction<T>(conn: PoolConnection, work: () => Promise<T>): Promise<T> {
  await conn.query('START TRANSACTION');
  try {
    const result = await work();
    await conn.query('COMMIT');
    return result;
  } catch (error) {
    await conn.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Batch and stage bookkeeping

export async function insertBatch(
  db: Queryable,
  batch: { batchId: string; source: string; createdAt: string },
): Promise<void> {
  await db.query(
    `INSERT INTO etl_batch (batch_id, source, created_at, status, updated_at)
     VALUES (?, ?, ?, 'running', CURRENT_TIMESTAMP(3))`,
    [batch.batchId, batch.source, batch.createdAt],
  );
}

export async function setBatchStatus(db: Queryable, batchId: string, status: RunStatus): Promise<void> {
  await db.query(`UPDATE etl_batch SET status = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE batch_id = ?`, [
    status,
    batchId,
  ]);
}

/** Registers a pipeline stage of a batch as running (or re-opens it). */
export async function startStage(
  db: Queryable,
  stage: { batchId: string; stage: PipelineStage; startedAt: string },
): Promise<void> {
  await db.query(
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, status, updated_at)
     VALUES (?, ?, ?, 'running', CURRENT_TIMESTAMP(3))
     ON DUPLICATE KEY UPDATE started_at = VALUES(started_at), finished_at = NULL, status = 'running',
       updated_at = CURRENT_TIMESTAMP(3)`,
    [stage.batchId, stage.stage, stage.startedAt],
  );
}

export interface StageResult {
  batchId: string;
  stage: PipelineStage;
  finishedAt: string;
  status: RunStatus;
  rowsIn: number | null;
  rowsOut: number | null;
  rowsRejected: number | null;
}

export async function finishStage(db: Queryable, result: StageResult): Promise<void> {
  await db.query(
    `UPDATE etl_batch_stage
        SET finished_at = ?, status = ?, rows_in = ?, rows_out = ?, rows_rejected = ?, updated_at = CURRENT_TIMESTAMP(3)
      WHERE batch_id = ? AND stage = ?`,
    [result.finishedAt, result.status, result.rowsIn, result.rowsOut, result.rowsRejected, result.batchId, result.stage],
  );
}

/** Marks every stage of the batch still running as failed, then the batch itself. */
export async function failBatch(db: Queryable, batchId: string, finishedAt: string): Promise<void> {
  await db.query(
    `UPDATE etl_batch_stage SET status = 'failed', finished_at = COALESCE(finished_at, ?), updated_at = CURRENT_TIMESTAMP(3)
      WHERE batch_id = ? AND status = 'running'`,
    [finishedAt, batchId],
  );
  await setBatchStatus(db, batchId, 'failed');
}

// ---------------------------------------------------------------------------------------------
// Quarantine

export interface RejectedRow {
  file: string;
  line: number;
  reason: string;
  raw: string;
}

export async function insertRejected(db: Queryable, batchId: string, rows: readonly RejectedRow[]): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((r) => [batchId, r.file, r.line, r.reason.slice(0, 1024), r.raw]);
  await db.query(`INSERT INTO etl_rejected_row (batch_id, file, line, reason, raw_content) VALUES ?`, [values]);
}

// ---------------------------------------------------------------------------------------------
// Chunk upserts. `rows` are deduplicated by key by the caller (one statement never holds the
// same key twice) and bounded by the chunk size.

async function upsert(
  db: Queryable,
  table: string,
  columns: readonly string[],
  updated: readonly string[],
  values: SqlValue[][],
): Promise<void> {
  if (values.length === 0) return;
  const set = [...updated, 'batch_id']
    .map((c) => `\`${c}\` = VALUES(\`${c}\`)`)
    .concat('`updated_at` = CURRENT_TIMESTAMP(3)')
    .join(', ');
  await db.query(
    `INSERT INTO \`${table}\` (${[...columns, 'batch_id'].map((c) => `\`${c}\``).join(', ')}) VALUES ? ON DUPLICATE KEY UPDATE ${set}`,
    [values],
  );
}

export async function upsertTranslations(db: Queryable, batchId: string, rows: readonly TranslationRow[]): Promise<void> {
  await upsert(
    db,
    'dim_category_translation',
    ['category_name', 'category_name_english'],
    ['category_name_english'],
    rows.map((r) => [r.categoryName, r.categoryNameEnglish, batchId]),
  );
}

export async function upsertSellers(db: Queryable, batchId: string, rows: readonly SellerRow[]): Promise<void> {
  await upsert(
    db,
    'dim_seller',
    ['seller_id', 'zip_code_prefix', 'city', 'state'],
    ['zip_code_prefix', 'city', 'state'],
    rows.map((r) => [r.sellerId, r.zipCodePrefix, r.city, r.state, batchId]),
  );
}

export async function upsertCustomers(db: Queryable, batchId: string, rows: readonly CustomerRow[]): Promise<void> {
  await upsert(
    db,
    'dim_customer',
    ['customer_id', 'customer_unique_id', 'zip_code_prefix', 'city', 'state'],
    ['customer_unique_id', 'zip_code_prefix', 'city', 'state'],
    rows.map((r) => [r.customerId, r.customerUniqueId, r.zipCodePrefix, r.city, r.state, batchId]),
  );
}

export type ProductWithEnglish = ProductRow & { categoryNameEnglish: string | null };

const PRODUCT_ATTRIBUTES = [
  'category_name',
  'category_name_english',
  'name_length',
  'description_length',
  'photos_qty',
  'weight_g',
  'length_cm',
  'height_cm',
  'width_cm',
] as const;

export async function upsertProducts(db: Queryable, batchId: string, rows: readonly ProductWithEnglish[]): Promise<void> {
  await upsert(
    db,
    'dim_product',
    ['product_id', ...PRODUCT_ATTRIBUTES],
    PRODUCT_ATTRIBUTES,
    rows.map((r) => [
      r.productId,
      r.categoryName,
      r.categoryNameEnglish,
      r.nameLength,
      r.descriptionLength,
      r.photosQty,
      r.weightG,
      r.lengthCm,
      r.heightCm,
      r.widthCm,
      batchId,
    ]),
  );
}

/** Every known translation (the domain of categories is small: tens of rows). */
export async function readTranslations(db: Queryable): Promise<Map<string, string>> {
  const [rows] = await db.query<RowDataPacket[]>(
    'SELECT category_name, category_name_english FROM dim_category_translation',
  );
  return new Map(rows.map((r) => [String(r.category_name), String(r.category_name_english)]));
}

const ORDER_ATTRIBUTES = [
  'customer_id',
  'order_status',
  'purchased_at',
  'purchase_date',
  'approved_at',
  'delivered_carrier_at',
  'delivered_customer_at',
  'estimated_delivery_at',
] as const;

/**
 * Upserts a chunk of orders, the calendar days they were purchased on (dim_date; `days` lets the
 * caller skip days it already wrote in this batch), and re-aligns
 * the denormalised purchased_at of items already stored for these orders (an order whose
 * purchase time changed). Run it inside the chunk's transaction.
 */
export async function upsertOrders(
  db: Queryable,
  batchId: string,
  rows: readonly OrderRow[],
  days: readonly string[] = [...new Set(rows.map((r) => r.purchasedAt.slice(0, 10)))].sort(),
): Promise<void> {
  if (rows.length === 0) return;
  await upsert(
    db,
    'fact_order',
    ['order_id', ...ORDER_ATTRIBUTES],
    ORDER_ATTRIBUTES,
    rows.map((r) => [
      r.orderId,
      r.customerId,
      r.status,
      r.purchasedAt,
      r.purchasedAt.slice(0, 10),
      r.approvedAt,
      r.deliveredCarrierAt,
      r.deliveredCustomerAt,
      r.estimatedDeliveryAt,
      batchId,
    ]),
  );
  await upsert(
    db,
    'dim_date',
    ['date_key', 'year', 'quarter', 'month', 'day_of_month', 'day_of_week', 'iso_week', 'year_month'],
    ['year', 'quarter', 'month', 'day_of_month', 'day_of_week', 'iso_week', 'year_month'],
    days.map((day) => {
      const p = dateParts(day);
      return [p.dateKey, p.year, p.quarter, p.month, p.dayOfMonth, p.dayOfWeek, p.isoWeek, p.yearMonth, batchId];
    }),
  );
  // Items keep their batch_id (their own values did not come from this batch); only the copy of
  // the order's purchase time follows the order.
  await db.query(
    `UPDATE fact_order_item i JOIN fact_order o ON o.order_id = i.order_id
        SET i.purchased_at = o.purchased_at, i.updated_at = CURRENT_TIMESTAMP(3)
      WHERE i.order_id IN (?) AND i.purchased_at <> o.purchased_at`,
    [rows.map((r) => r.orderId)],
  );
}

/** purchased_at of the given orders that exist in fact_order. */
export async function findOrders(db: Queryable, orderIds: readonly string[]): Promise<Map<string, string>> {
  if (orderIds.length === 0) return new Map();
  const [rows] = await db.query<RowDataPacket[]>('SELECT order_id, purchased_at FROM fact_order WHERE order_id IN (?)', [
    orderIds,
  ]);
  return new Map(rows.map((r) => [String(r.order_id), String(r.purchased_at)]));
}

export async function findSellers(db: Queryable, sellerIds: readonly string[]): Promise<Set<string>> {
  if (sellerIds.length === 0) return new Set();
  const [rows] = await db.query<RowDataPacket[]>('SELECT seller_id FROM dim_seller WHERE seller_id IN (?)', [sellerIds]);
  return new Set(rows.map((r) => String(r.seller_id)));
}

export type ItemWithPurchase = ItemRow & { purchasedAt: string };

const ITEM_ATTRIBUTES = ['product_id', 'seller_id', 'shipping_limit_at', 'price', 'freight_value', 'purchased_at'] as const;

export async function upsertItems(db: Queryable, batchId: string, rows: readonly ItemWithPurchase[]): Promise<void> {
  await upsert(
    db,
    'fact_order_item',
    ['order_id', 'order_item_id', ...ITEM_ATTRIBUTES],
    ITEM_ATTRIBUTES,
    rows.map((r) => [
      r.orderId,
      r.orderItemId,
      r.productId,
      r.sellerId,
      r.shippingLimitAt,
      r.price,
      r.freightValue,
      r.purchasedAt,
      batchId,
    ]),
  );
}

/** Rows of a table whose last writer is the batch: the distinct rows it wrote. */
export async function countWritten(db: Queryable, kind: FileKind, batchId: string): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${TABLE_OF[kind]}\` WHERE batch_id = ?`, [
    batchId,
  ]);
  return Number(rows[0]?.n ?? 0);
}
