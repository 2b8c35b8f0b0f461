// All of the loader's SQL: batch and stage bookkeeping, quarantine, and the chunk upserts into
// the staging star schema. Upserts are SCD type 1 (INSERT ... ON DUPLICATE KEY UPDATE, no
// history): the newest batch's values win and batch_id / updated_at name the batch that wrote them.
import mysql from 'mysql2/promise';
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

// Values the contract already restricted to these characters (ids, digits, decimals,
// timestamps, states, most names) are quoted as they are; anything else goes through the
// driver's escaping. Building the statement text here costs a fraction of the driver's
// placeholder formatting, which escapes every value of a 10,000-row chunk one by one.
const SAFE_TEXT = /^[0-9A-Za-z _.:-]*$/;

function sqlLiteral(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'NULL';
  return SAFE_TEXT.test(value) ? `'${value}'` : mysql.escape(value);
}

/** `(v1, v2, …), (…)` for a multi-row VALUES clause. */
export function valuesList(rows: readonly SqlValue[][]): string {
  const parts: string[] = new Array<string>(rows.length);
  for (let r = 0; r < rows.length; r += 1) {
    const row = rows[r] as SqlValue[];
    let text = '(';
    for (let c = 0; c < row.length; c += 1) text += (c === 0 ? '' : ',') + sqlLiteral(row[c] ?? null);
    parts[r] = `${text})`;
  }
  return parts.join(',');
}

/** `'a','b'` for an IN list of contract-checked ids or names. */
export function inList(values: readonly string[]): string {
  return values.map((v) => sqlLiteral(v)).join(',');
}

/**
 * A writer connection's key list: a MEMORY temporary table that set-based statements join
 * from (STRAIGHT_JOIN, so every lookup is an index probe). A long `IN (…)` list is not enough:
 * MariaDB turns lists of 1,000+ values into a subquery or a range the optimizer may prefer to
 * answer with a full table scan, which made every chunk cost as much as the table's size.
 */
const KEYS_TABLE = 'tmp_loader_keys';

export async function prepareConnection(conn: PoolConnection): Promise<void> {
  // Row locks only, no gap locks: concurrent chunk upserts of distinct keys rarely conflict.
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
  await conn.query(
    `CREATE TEMPORARY TABLE IF NOT EXISTS ${KEYS_TABLE} (k CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY) ENGINE=MEMORY`,
  );
}

/** Replaces the connection's key list (contract-checked ids: 32 hex characters). */
async function setKeys(db: Queryable, keys: readonly string[]): Promise<void> {
  await db.query(`DELETE FROM ${KEYS_TABLE}`);
  for (let i = 0; i < keys.length; i += 20_000) {
    const slice = keys.slice(i, i + 20_000);
    await db.query(`INSERT IGNORE INTO ${KEYS_TABLE} (k) VALUES ${slice.map((k) => `(${sqlLiteral(k)})`).join(',')}`);
  }
}

async function upsert(
  db: Queryable,
  table: string,
  columns: readonly string[],
  updated: readonly string[],
  values: SqlValue[][],
): Promise<void> {
  if (values.length === 0) return;
  // Newest batch wins, whatever order concurrent loads commit in: a row changes only for a batch
  // at least as new as the one that last wrote it (batch ids are UUIDv7 of the ingestion time, so
  // they sort by it). MySQL applies these assignments left to right, so batch_id goes last.
  const newer = 'VALUES(`batch_id`) >= `batch_id`';
  const set = updated
    .map((c) => `\`${c}\` = IF(${newer}, VALUES(\`${c}\`), \`${c}\`)`)
    .concat(`\`updated_at\` = IF(${newer}, CURRENT_TIMESTAMP(3), \`updated_at\`)`, `\`batch_id\` = IF(${newer}, VALUES(\`batch_id\`), \`batch_id\`)`)
    .join(', ');
  await db.query(
    `INSERT INTO \`${table}\` (${[...columns, 'batch_id'].map((c) => `\`${c}\``).join(', ')}) VALUES ${valuesList(values)} ON DUPLICATE KEY UPDATE ${set}`,
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
 * caller skip days it already wrote in this batch), re-aligns the denormalised purchased_at of
 * items already stored for these orders (an order whose purchase time changed) and updates their
 * order_item_wide rows. Run it inside the chunk's transaction.
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
  await setKeys(db, rows.map((r) => r.orderId));
  await db.query(`UPDATE ${KEYS_TABLE} k STRAIGHT_JOIN fact_order o ON o.order_id = k.k
        STRAIGHT_JOIN fact_order_item i ON i.order_id = k.k
        SET i.purchased_at = o.purchased_at, i.updated_at = CURRENT_TIMESTAMP(3)
      WHERE i.purchased_at <> o.purchased_at`);
  // The wide rows of items stored before follow the order (status, timestamps, purchase time
  // (part of the wide primary key), customer).
  await db.query(`UPDATE ${KEYS_TABLE} k STRAIGHT_JOIN fact_order o ON o.order_id = k.k
       STRAIGHT_JOIN order_item_wide w ON w.order_id = k.k
       LEFT JOIN dim_customer c ON c.customer_id = o.customer_id
        SET w.purchased_at = o.purchased_at, w.order_status = o.order_status, w.approved_at = o.approved_at,
            w.delivered_carrier_at = o.delivered_carrier_at, w.delivered_customer_at = o.delivered_customer_at,
            w.estimated_delivery_at = o.estimated_delivery_at, w.customer_state = c.state,
            w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE NOT (w.purchased_at <=> o.purchased_at AND w.order_status <=> o.order_status
                 AND w.approved_at <=> o.approved_at AND w.delivered_carrier_at <=> o.delivered_carrier_at
                 AND w.delivered_customer_at <=> o.delivered_customer_at
                 AND w.estimated_delivery_at <=> o.estimated_delivery_at AND w.customer_state <=> c.state)`);
}

/** purchased_at of the given orders that exist in fact_order. */
export async function findOrders(db: Queryable, orderIds: readonly string[]): Promise<Map<string, string>> {
  if (orderIds.length === 0) return new Map();
  await setKeys(db, orderIds);
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT o.order_id, o.purchased_at FROM ${KEYS_TABLE} k STRAIGHT_JOIN fact_order o ON o.order_id = k.k`,
  );
  return new Map(rows.map((r) => [String(r.order_id), String(r.purchased_at)]));
}

export async function findSellers(db: Queryable, sellerIds: readonly string[]): Promise<Set<string>> {
  if (sellerIds.length === 0) return new Set();
  const [rows] = await db.query<RowDataPacket[]>(`SELECT seller_id FROM dim_seller WHERE seller_id IN (${inList(sellerIds)})`);
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

// ---------------------------------------------------------------------------------------------
// order_item_wide, the One Big Table read model. It must always equal what
// drizzle/0002_backfill_order_item_wide.sql's SELECT gives from the star tables, so every chunk
// that changes a star row the wide table copies re-derives the affected wide rows, set-based
// from the star tables, in the chunk's own transaction.

export const WIDE_COLUMNS = [
  'seller_id',
  'purchased_at',
  'order_id',
  'order_item_id',
  'product_id',
  'product_category',
  'price',
  'freight_value',
  'shipping_limit_at',
  'order_status',
  'approved_at',
  'delivered_carrier_at',
  'delivered_customer_at',
  'estimated_delivery_at',
  'customer_state',
  'batch_id',
] as const;

/**
 * The backfill migration's SELECT (same expressions, same joins) restricted to the orders in the
 * connection's key list.
 */
const WIDE_SELECT_FROM_KEYS = `SELECT i.seller_id, i.purchased_at, i.order_id, i.order_item_id, i.product_id, p.category_name_english,
       i.price, i.freight_value, i.shipping_limit_at, o.order_status, o.approved_at, o.delivered_carrier_at,
       o.delivered_customer_at, o.estimated_delivery_at, c.state, i.batch_id
  FROM ${KEYS_TABLE} k
  STRAIGHT_JOIN fact_order o ON o.order_id = k.k
  STRAIGHT_JOIN fact_order_item i ON i.order_id = k.k
  LEFT JOIN dim_product p ON p.product_id = i.product_id
  LEFT JOIN dim_customer c ON c.customer_id = o.customer_id`;

// Every column but the unique key (order_id, order_item_id) follows the star tables; seller_id
// and purchased_at are part of the primary key, so the update moves the row in the clustered index.
const WIDE_UPSERT_SET = WIDE_COLUMNS.filter((c) => c !== 'order_id' && c !== 'order_item_id')
  .map((c) => `\`${c}\` = VALUES(\`${c}\`)`)
  .concat('`updated_at` = CURRENT_TIMESTAMP(3)')
  .join(', ');

/**
 * Re-derives the wide rows of every stored item of these orders (new or re-loaded items). Run it
 * after the items chunk's upsert, in the same transaction.
 */
export async function refreshWideForOrders(db: Queryable, orderIds: readonly string[]): Promise<void> {
  if (orderIds.length === 0) return;
  await setKeys(db, orderIds);
  await db.query(
    `INSERT INTO order_item_wide (${WIDE_COLUMNS.map((c) => `\`${c}\``).join(', ')})
     ${WIDE_SELECT_FROM_KEYS}
     ON DUPLICATE KEY UPDATE ${WIDE_UPSERT_SET}`,
  );
}

/** After a customers chunk: customer_state of the items of their orders. */
export async function updateWideCustomers(db: Queryable, customerIds: readonly string[]): Promise<void> {
  if (customerIds.length === 0) return;
  await setKeys(db, customerIds);
  await db.query(`UPDATE ${KEYS_TABLE} k STRAIGHT_JOIN dim_customer c ON c.customer_id = k.k
       STRAIGHT_JOIN fact_order o ON o.customer_id = k.k
       STRAIGHT_JOIN order_item_wide w ON w.order_id = o.order_id
        SET w.customer_state = c.state, w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE NOT (w.customer_state <=> c.state)`);
}

/** After a products chunk: product_category of the items of these products. */
export async function updateWideProducts(db: Queryable, productIds: readonly string[]): Promise<void> {
  if (productIds.length === 0) return;
  await setKeys(db, productIds);
  await db.query(`UPDATE ${KEYS_TABLE} k STRAIGHT_JOIN dim_product p ON p.product_id = k.k
       STRAIGHT_JOIN order_item_wide w ON w.product_id = k.k
        SET w.product_category = p.category_name_english, w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE NOT (w.product_category <=> p.category_name_english)`);
}

/**
 * After a translations chunk: stored products of these (Portuguese) categories take the new
 * English name (their batch_id stays: their own values did not come from this batch), and so do
 * the wide rows of their items.
 */
export async function propagateTranslations(db: Queryable, categoryNames: readonly string[]): Promise<void> {
  if (categoryNames.length === 0) return;
  await db.query(`UPDATE dim_product p JOIN dim_category_translation t ON t.category_name = p.category_name
        SET p.category_name_english = t.category_name_english, p.updated_at = CURRENT_TIMESTAMP(3)
      WHERE t.category_name IN (${inList(categoryNames)}) AND NOT (p.category_name_english <=> t.category_name_english)`);
  await db.query(`UPDATE order_item_wide w
       JOIN dim_product p ON p.product_id = w.product_id
        SET w.product_category = p.category_name_english, w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE p.category_name IN (${inList(categoryNames)}) AND NOT (w.product_category <=> p.category_name_english)`);
}

/** Rows of a table whose last writer is the batch: the distinct rows it wrote. */
export async function countWritten(db: Queryable, kind: FileKind, batchId: string): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${TABLE_OF[kind]}\` WHERE batch_id = ?`, [
    batchId,
  ]);
  return Number(rows[0]?.n ?? 0);
}
