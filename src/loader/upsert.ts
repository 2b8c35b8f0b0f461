// All of the loader's SQL: batch and stage bookkeeping, quarantine, and the chunk upserts into
// the staging star schema. Upserts are SCD type 1 (INSERT ... ON DUPLICATE KEY UPDATE, no
// history): the newest batch's values win and batch_id / updated_at name the batch that wrote them.
import { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { halfOpenRange } from '../db/range-predicate.js';
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
  type RowsByKind,
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
type StageCounts = { rowsIn: number; rowsOut: number; rowsRejected: number };
/** How far a failed batch got, per stage it was running. */
export interface FailedBatchCounts {
  landing: StageCounts;
  staging: StageCounts;
}

export async function failBatch(db: Queryable, batchId: string, finishedAt: string, counts: FailedBatchCounts): Promise<void> {
  for (const stage of ['landing', 'staging'] as const) {
    const { rowsIn, rowsOut, rowsRejected } = counts[stage];
    await db.query(
      `UPDATE etl_batch_stage SET status = 'failed', finished_at = COALESCE(finished_at, ?), rows_in = ?, rows_out = ?, rows_rejected = ?,
          updated_at = CURRENT_TIMESTAMP(3)
        WHERE batch_id = ? AND stage = ? AND status = 'running'`,
      [finishedAt, rowsIn, rowsOut, rowsRejected, batchId, stage],
    );
  }
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

/** A quarantined record longer than this keeps its first REJECTED_RAW_MAX_BYTES (the file and line find the rest). */
export const REJECTED_RAW_MAX_BYTES = 1024 * 1024;
/** Rejects per INSERT are bounded by size too: far under the server's default 16 MiB packet. */
const REJECTED_STATEMENT_MAX_BYTES = 4 * 1024 * 1024;
const REASON_MAX_CHARS = 1024;

/** The raw text kept for a reject, and a note for its reason when it had to be cut. */
export function rejectedRaw(raw: string): { raw: string; note: string } {
  const bytes = Buffer.byteLength(raw, 'utf8');
  if (bytes <= REJECTED_RAW_MAX_BYTES) return { raw, note: '' };
  // Cut on a character boundary: decoding a byte prefix drops a partial last character.
  const kept = Buffer.from(raw, 'utf8').subarray(0, REJECTED_RAW_MAX_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return { raw: kept, note: ` (raw content cut to its first ${Buffer.byteLength(kept, 'utf8')} of ${bytes} bytes)` };
}

export async function insertRejected(db: Queryable, batchId: string, rows: readonly RejectedRow[]): Promise<void> {
  let values: (string | number)[][] = [];
  let bytes = 0;
  const send = async (): Promise<void> => {
    if (values.length === 0) return;
    await db.query(`INSERT INTO etl_rejected_row (batch_id, file, line, reason, raw_content) VALUES ?`, [values]);
    values = [];
    bytes = 0;
  };
  for (const r of rows) {
    const { raw, note } = rejectedRaw(r.raw);
    const reason = note === '' ? r.reason.slice(0, REASON_MAX_CHARS) : `${r.reason.slice(0, REASON_MAX_CHARS - note.length)}${note}`;
    const size = Buffer.byteLength(raw, 'utf8') + reason.length * 4 + r.file.length + 64;
    if (bytes + size > REJECTED_STATEMENT_MAX_BYTES) await send();
    values.push([batchId, r.file, r.line, reason, raw]);
    bytes += size;
  }
  await send();
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

// ---------------------------------------------------------------------------------------------
// Staging. The large files (customers, products, orders, items) are not upserted from a VALUES
// list: each partition of a chunk is first put into a per-connection MEMORY temporary table (its
// staging table) and then merged set-based (INSERT … SELECT … ON DUPLICATE KEY UPDATE, wide-table
// upkeep and reference checks joining from the staging table with STRAIGHT_JOIN, i.e. index probes
// in key order). The staging table is filled with LOAD DATA LOCAL INFILE (tab-separated text
// streamed from memory): no 2 MB statement to build in Node, scan for placeholders in the driver,
// and parse in the server. Where the server refuses LOAD DATA LOCAL (local_infile off), the same
// table is filled with a multi-row INSERT and everything else stays the same.
//
// Every join from a staging table names its index (FORCE INDEX): when the statistics are stale
// (tables loaded since, a server restarted after a crash: InnoDB then counted 0 rows in a
// 60,000-row fact_order) the optimizer took a full scan of a tiny-looking table with a join
// buffer. In the multi-table UPDATEs that locked every row of it, other writers' rows included,
// and the writers deadlocked chunk after chunk (the rerun after "database lost mid-load" in
// test/reliability/loader-faults.test.ts); in the INSERT … SELECTs it made each items chunk scan
// the whole order table (an audit's rerun after a crash: 254 s instead of 6 s, and every later
// load as slow, since unchanged upserts never refresh the statistics).
//
// Joining from a table rather than an `IN (…)` list matters: MariaDB turns lists of 1,000+ values
// into a subquery or a range the optimizer may answer with a full scan of the target, which made
// every chunk cost as much as the whole table (BENCHMARKS.md, "## Loader").

export type StagingMethod = 'load-data' | 'insert';

interface StagingTable {
  readonly name: string;
  /** Columns in the order rows are given to fillStaging. */
  readonly columns: readonly string[];
  readonly definition: string;
}

const ID = 'CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL';

/** The staged columns of dim_customer, key first. */
const STAGED_CUSTOMER = ['customer_id', 'customer_unique_id', 'zip_code_prefix', 'city', 'state'] as const;
/** dim_product's columns besides its key, as staged and as updated. */
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

/** fact_order's columns besides its key, as staged and as updated. */
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

export const STAGING = {
  customers: {
    name: 'tmp_stage_customer',
    columns: STAGED_CUSTOMER,
    definition: `customer_id ${ID}, customer_unique_id ${ID}, zip_code_prefix VARCHAR(10) NOT NULL,
      city VARCHAR(128) NOT NULL, state CHAR(2) NOT NULL, PRIMARY KEY USING BTREE (customer_id)`,
  },
  products: {
    name: 'tmp_stage_product',
    columns: ['product_id', ...PRODUCT_ATTRIBUTES],
    definition: `product_id ${ID}, category_name VARCHAR(100) COLLATE utf8mb4_bin NULL, category_name_english VARCHAR(100) COLLATE utf8mb4_bin NULL,
      name_length SMALLINT UNSIGNED NULL, description_length INT UNSIGNED NULL, photos_qty SMALLINT UNSIGNED NULL,
      weight_g INT UNSIGNED NULL, length_cm SMALLINT UNSIGNED NULL, height_cm SMALLINT UNSIGNED NULL,
      width_cm SMALLINT UNSIGNED NULL, PRIMARY KEY USING BTREE (product_id)`,
  },
  orders: {
    name: 'tmp_stage_order',
    columns: ['order_id', ...ORDER_ATTRIBUTES],
    definition: `order_id ${ID}, customer_id ${ID}, order_status VARCHAR(16) NOT NULL, purchased_at DATETIME NOT NULL,
      purchase_date DATE NOT NULL, approved_at DATETIME NULL, delivered_carrier_at DATETIME NULL,
      delivered_customer_at DATETIME NULL, estimated_delivery_at DATETIME NOT NULL, PRIMARY KEY USING BTREE (order_id)`,
  },
  items: {
    name: 'tmp_stage_item',
    // line: the row's line in the file, so that a reference reject can name it.
    columns: ['line', 'order_id', 'order_item_id', 'product_id', 'seller_id', 'shipping_limit_at', 'price', 'freight_value'],
    definition: `line INT UNSIGNED NOT NULL, order_id ${ID}, order_item_id SMALLINT UNSIGNED NOT NULL, product_id ${ID},
      seller_id ${ID}, shipping_limit_at DATETIME NOT NULL, price DECIMAL(12,2) NOT NULL,
      freight_value DECIMAL(12,2) NOT NULL, PRIMARY KEY USING BTREE (order_id, order_item_id)`,
  },
} as const satisfies Record<string, StagingTable>;

/** A staging table holds one partition of a chunk (at most 50,000 rows of ≤ 1 KiB in MEMORY's fixed-width rows). */
const STAGING_MAX_BYTES = 256 * 1024 * 1024;

/**
 * Prepares a writer connection: isolation level and staging tables. Returns how the staging
 * tables can be filled on this server (`preferred` = 'insert' skips the LOAD DATA probe).
 */
export async function prepareConnection(conn: PoolConnection, preferred: StagingMethod = 'load-data'): Promise<StagingMethod> {
  // Row locks only, no gap locks: concurrent chunk upserts of distinct keys rarely conflict.
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
  // A session setting (the server's global default is 16 MiB): the bound of this connection's
  // MEMORY staging tables, sized for the largest chunk. Memory is only taken as rows arrive.
  await conn.query(`SET SESSION max_heap_table_size = ${STAGING_MAX_BYTES}`);
  for (const table of Object.values(STAGING)) {
    await conn.query(`CREATE TEMPORARY TABLE IF NOT EXISTS ${table.name} (${table.definition}) ENGINE=MEMORY DEFAULT CHARSET=utf8mb4`);
  }
  await conn.query(`CREATE TEMPORARY TABLE IF NOT EXISTS ${SUMMARY_MOVES} (${SUMMARY_MOVES_DEFINITION}) ENGINE=MEMORY`);
  if (preferred === 'insert') return 'insert';
  try {
    await loadData(conn, STAGING.items, Buffer.alloc(0));
    return 'load-data';
  } catch (error) {
    // 1148 ER_NOT_ALLOWED_COMMAND: local_infile is off on the server (or the client refused).
    if (errnoOf(error) === 1148 || errnoOf(error) === 4166) return 'insert';
    throw error;
  }
}

function errnoOf(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && 'errno' in error ? Number(error.errno) : undefined;
}

// LOAD DATA's text format with ESCAPED BY '\\': \N is NULL; backslash, tab, newline, carriage
// return and NUL inside a value are written as escape sequences.
const TSV_SPECIAL = /[\\\t\n\r\0]/;
const TSV_SPECIAL_ALL = /[\\\t\n\r\0]/g;
const TSV_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\\0' };

function tsvField(value: SqlValue): string {
  if (value === null) return '\\N';
  if (typeof value === 'number') return String(value);
  return TSV_SPECIAL.test(value) ? value.replace(TSV_SPECIAL_ALL, (c) => TSV_ESCAPES[c] ?? c) : value;
}

/** Rows as LOAD DATA text: tab-separated fields, one line per row. */
export function tsvRows(rows: readonly SqlValue[][]): string {
  let text = '';
  for (const row of rows) {
    for (let c = 0; c < row.length; c += 1) text += (c === 0 ? '' : '\t') + tsvField(row[c] ?? null);
    text += '\n';
  }
  return text;
}

/** Each piece is one protocol packet: kept well under max_allowed_packet (16 MiB by default). */
const LOAD_DATA_PACKET_BYTES = 1024 * 1024;

async function loadData(conn: PoolConnection, table: StagingTable, data: Buffer): Promise<number> {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += LOAD_DATA_PACKET_BYTES) {
    pieces.push(data.subarray(offset, offset + LOAD_DATA_PACKET_BYTES));
  }
  const [result] = await conn.query<ResultSetHeader>({
    sql: `LOAD DATA LOCAL INFILE 'staging' INTO TABLE ${table.name} CHARACTER SET utf8mb4
          FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (${table.columns.join(', ')})`,
    infileStreamFactory: () => Readable.from(pieces),
  });
  // With LOCAL the server cannot stop the transfer, so it turns errors (duplicate key, bad value)
  // into warnings and skips or truncates the row: refuse the chunk instead of losing data silently.
  if (result.warningStatus > 0) {
    const [warnings] = await conn.query<RowDataPacket[]>('SHOW WARNINGS LIMIT 3');
    throw new Error(`staging ${table.name}: LOAD DATA warnings: ${warnings.map((w) => String(w.Message)).join('; ')}`);
  }
  return result.affectedRows;
}

/** Replaces the content of a staging table with these rows (columns in `table.columns` order). */
async function fillStaging(
  conn: PoolConnection,
  method: StagingMethod,
  table: StagingTable,
  rows: readonly SqlValue[][],
): Promise<void> {
  await conn.query(`DELETE FROM ${table.name}`);
  if (rows.length === 0) return;
  if (method === 'insert') {
    await conn.query(`INSERT INTO ${table.name} (${table.columns.join(', ')}) VALUES ${valuesList(rows)}`);
    return;
  }
  const loaded = await loadData(conn, table, Buffer.from(tsvRows(rows), 'utf8'));
  if (loaded !== rows.length) throw new Error(`staging ${table.name}: ${loaded} rows loaded of ${rows.length}`);
}

/**
 * `INSERT INTO table (columns, batch_id) <source> ON DUPLICATE KEY UPDATE …` where every updated
 * column keeps the newest batch's value, whatever order concurrent loads commit in: a row changes
 * only for a batch at least as new as the one that last wrote it (batch ids are UUIDv7 of the
 * ingestion time, so they sort by it). MySQL applies the assignments left to right, so batch_id
 * goes last. Target columns are qualified: a SELECT source has columns of the same names.
 */
function upsertStatement(table: string, columns: readonly string[], updated: readonly string[], source: string): string {
  const target = (c: string) => `\`${table}\`.\`${c}\``;
  const newer = `VALUES(\`batch_id\`) >= ${target('batch_id')}`;
  const set = updated
    .map((c) => `${target(c)} = IF(${newer}, VALUES(\`${c}\`), ${target(c)})`)
    .concat(
      `${target('updated_at')} = IF(${newer}, CURRENT_TIMESTAMP(3), ${target('updated_at')})`,
      `${target('batch_id')} = IF(${newer}, VALUES(\`batch_id\`), ${target('batch_id')})`,
    )
    .join(', ');
  return `INSERT INTO \`${table}\` (${[...columns, 'batch_id'].map((c) => `\`${c}\``).join(', ')}) ${source} ON DUPLICATE KEY UPDATE ${set}`;
}

async function upsert(
  db: Queryable,
  table: string,
  columns: readonly string[],
  updated: readonly string[],
  values: SqlValue[][],
): Promise<void> {
  if (values.length === 0) return;
  await db.query(upsertStatement(table, columns, updated, `VALUES ${valuesList(values)}`));
}

/** Upserts a staging table's rows into the target: `select` lists the target's columns in order (batch_id excluded). */
async function upsertFromStaging(
  db: Queryable,
  batchId: string,
  target: { table: string; columns: readonly string[]; updated: readonly string[] },
  select: string,
  from: string,
): Promise<{ selected: number | undefined }> {
  const [result] = await db.query<ResultSetHeader>(
    upsertStatement(target.table, target.columns, target.updated, `SELECT ${select}, ${sqlLiteral(batchId)} FROM ${from}`),
  );
  // INSERT … SELECT reports "Records: <rows selected>  Duplicates: <n>  Warnings: <n>".
  const records = /^Records: (\d+)/.exec(result.info)?.[1];
  return { selected: records === undefined ? undefined : Number(records) };
}

/** The calendar's bounds: a date outside them (garbage a contract of valid dates lets through) gets no day rows. */
export const CALENDAR_FIRST_YEAR = 1900;
export const CALENDAR_LAST_YEAR = 2199;

/**
 * dim_date is a calendar: every day of each of these years (the years a chunk's dates fall in),
 * so that per-day reports can join it without gaps. Run inside the chunk's transaction, so that a
 * committed fact always finds its days. A day, once written, stays as it is (its attributes
 * never change); a year already complete costs one count. Returns the years it completed.
 */
export async function fillCalendarYears(db: Queryable, batchId: string, years: Iterable<number>): Promise<number[]> {
  const wanted = [...new Set(years)].filter((year) => year >= CALENDAR_FIRST_YEAR && year <= CALENDAR_LAST_YEAR).sort((a, b) => a - b);
  if (wanted.length === 0) return [];
  const [counts] = await db.query<RowDataPacket[]>(
    `SELECT YEAR(date_key) AS year, COUNT(*) AS days FROM dim_date
      WHERE date_key >= '${wanted[0]}-01-01' AND date_key <= '${wanted[wanted.length - 1]}-12-31' GROUP BY YEAR(date_key)`,
  );
  const stored = new Map(counts.map((row) => [Number(row.year), Number(row.days)]));
  const filled: number[] = [];
  for (const year of wanted) {
    const daysInYear = (Date.UTC(year + 1, 0, 1) - Date.UTC(year, 0, 1)) / 86_400_000;
    if ((stored.get(year) ?? 0) >= daysInYear) continue;
    const rows: SqlValue[][] = [];
    for (let day = 0; day < daysInYear; day += 1) {
      const p = dateParts(new Date(Date.UTC(year, 0, 1 + day)).toISOString().slice(0, 10));
      rows.push([p.dateKey, p.year, p.quarter, p.month, p.dayOfMonth, p.dayOfWeek, p.isoWeek, p.yearMonth, batchId]);
    }
    // iso_year is computed by the server. Days already there (a year filled in part by a version
    // that wrote purchase days only) keep their row.
    await db.query(
      `INSERT INTO dim_date (date_key, year, quarter, month, day_of_month, day_of_week, iso_week, \`year_month\`, batch_id)
       VALUES ${valuesList(rows)} ON DUPLICATE KEY UPDATE date_key = date_key`,
    );
    filled.push(year);
  }
  return filled;
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

// The staged files. Each chunk partition: stageX (fill the connection's staging table), upsertX
// (merge it into the star table), then the order_item_wide upkeep, all joining from the staging
// table, in the chunk's transaction.

export async function stageCustomers(conn: PoolConnection, method: StagingMethod, rows: readonly CustomerRow[]): Promise<void> {
  await fillStaging(conn, method, STAGING.customers, rows.map((r) => [r.customerId, r.customerUniqueId, r.zipCodePrefix, r.city, r.state]));
}

export async function upsertCustomers(db: Queryable, batchId: string): Promise<void> {
  await upsertFromStaging(
    db,
    batchId,
    { table: 'dim_customer', columns: STAGED_CUSTOMER, updated: STAGED_CUSTOMER.slice(1) },
    STAGED_CUSTOMER.map((c) => `s.${c}`).join(', '),
    `${STAGING.customers.name} s`,
  );
}

export type ProductWithEnglish = ProductRow & { categoryNameEnglish: string | null };

export async function stageProducts(conn: PoolConnection, method: StagingMethod, rows: readonly ProductWithEnglish[]): Promise<void> {
  await fillStaging(
    conn,
    method,
    STAGING.products,
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
    ]),
  );
}

export async function upsertProducts(db: Queryable, batchId: string): Promise<void> {
  await upsertFromStaging(
    db,
    batchId,
    { table: 'dim_product', columns: STAGING.products.columns, updated: PRODUCT_ATTRIBUTES },
    STAGING.products.columns.map((c) => `s.${c}`).join(', '),
    `${STAGING.products.name} s`,
  );
}

/** Every known translation (the domain of categories is small: tens of rows). */
export async function readTranslations(db: Queryable): Promise<Map<string, string>> {
  const [rows] = await db.query<RowDataPacket[]>(
    'SELECT category_name, category_name_english FROM dim_category_translation',
  );
  return new Map(rows.map((r) => [String(r.category_name), String(r.category_name_english)]));
}

export async function stageOrders(conn: PoolConnection, method: StagingMethod, rows: readonly OrderRow[]): Promise<void> {
  await fillStaging(
    conn,
    method,
    STAGING.orders,
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
    ]),
  );
}

/**
 * Upserts the staged orders, re-aligns the denormalised purchased_at of items already stored for
 * these orders (an order whose purchase time changed) and updates their order_item_wide rows.
 * Run it inside the chunk's transaction, after stageOrders.
 */
export async function upsertOrders(db: Queryable, batchId: string, writer: number): Promise<void> {
  await upsertFromStaging(
    db,
    batchId,
    { table: 'fact_order', columns: STAGING.orders.columns, updated: ORDER_ATTRIBUTES },
    STAGING.orders.columns.map((c) => `s.${c}`).join(', '),
    `${STAGING.orders.name} s`,
  );
  // Items keep their batch_id (their own values did not come from this batch); only the copy of
  // the order's purchase time follows the order.
  // Join order: the items (wide rows) first, so that an order without stored items (every order
  // of a first load) costs one index probe and no lookup of the order or its customer.
  const staged = STAGING.orders.name;
  await markSummaryForMovedOrders(db, batchId, writer);
  await db.query(`UPDATE ${staged} s STRAIGHT_JOIN fact_order_item i FORCE INDEX (PRIMARY) ON i.order_id = s.order_id
        STRAIGHT_JOIN fact_order o FORCE INDEX (PRIMARY) ON o.order_id = s.order_id
        SET i.purchased_at = o.purchased_at, i.updated_at = CURRENT_TIMESTAMP(3)
      WHERE i.purchased_at <> o.purchased_at`);
  // The wide rows of items stored before follow the order (status, timestamps, purchase time
  // (part of the wide primary key), customer).
  await db.query(`UPDATE ${staged} s STRAIGHT_JOIN order_item_wide w FORCE INDEX (ux_wide_order_item) ON w.order_id = s.order_id
       STRAIGHT_JOIN fact_order o FORCE INDEX (PRIMARY) ON o.order_id = s.order_id
       LEFT JOIN dim_customer c FORCE INDEX (PRIMARY) ON c.customer_id = o.customer_id
        SET w.purchased_at = o.purchased_at, w.order_status = o.order_status, w.approved_at = o.approved_at,
            w.delivered_carrier_at = o.delivered_carrier_at, w.delivered_customer_at = o.delivered_customer_at,
            w.estimated_delivery_at = o.estimated_delivery_at, w.customer_state = c.state,
            w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE NOT (w.purchased_at <=> o.purchased_at AND w.order_status <=> o.order_status
                 AND w.approved_at <=> o.approved_at AND w.delivered_carrier_at <=> o.delivered_carrier_at
                 AND w.delivered_customer_at <=> o.delivered_customer_at
                 AND w.estimated_delivery_at <=> o.estimated_delivery_at AND w.customer_state <=> c.state)`);
}

/** An item of the chunk (line in the file and its values). */
export interface StagedItem {
  line: number;
  row: ItemRow;
}

/** A staged item whose order or seller exists neither in this batch nor in the database. */
export interface ItemReferenceProblem {
  line: number;
  unknownOrder: boolean;
  unknownSeller: boolean;
}

export async function stageItems(conn: PoolConnection, method: StagingMethod, items: readonly StagedItem[]): Promise<void> {
  await fillStaging(
    conn,
    method,
    STAGING.items,
    items.map(({ line, row: r }) => [line, r.orderId, r.orderItemId, r.productId, r.sellerId, r.shippingLimitAt, r.price, r.freightValue]),
  );
}

/** The staged items that refer to an order or a seller the database does not hold (committed rows of this batch included). */
export async function findItemReferenceProblems(db: Queryable): Promise<ItemReferenceProblem[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT s.line, o.order_id IS NULL AS unknown_order, x.seller_id IS NULL AS unknown_seller
       FROM ${STAGING.items.name} s
       LEFT JOIN fact_order o FORCE INDEX (PRIMARY) ON o.order_id = s.order_id
       LEFT JOIN dim_seller x FORCE INDEX (PRIMARY) ON x.seller_id = s.seller_id
      WHERE o.order_id IS NULL OR x.seller_id IS NULL
      ORDER BY s.line`,
  );
  return rows.map((r) => ({ line: Number(r.line), unknownOrder: Number(r.unknown_order) === 1, unknownSeller: Number(r.unknown_seller) === 1 }));
}

const ITEM_ATTRIBUTES = ['product_id', 'seller_id', 'shipping_limit_at', 'price', 'freight_value', 'purchased_at'] as const;

/**
 * Upserts the staged items whose order and seller exist (the others are quarantined by the
 * caller), with their order's purchase time (the API's keyset index). `selected`: how many staged
 * items passed the joins (undefined if the server did not say): when all did, the caller need
 * not look for reference problems.
 */
export async function upsertItems(db: Queryable, batchId: string): Promise<{ selected: number | undefined }> {
  await lockItemReferences(db);
  return upsertFromStaging(
    db,
    batchId,
    { table: 'fact_order_item', columns: ['order_id', 'order_item_id', ...ITEM_ATTRIBUTES], updated: ITEM_ATTRIBUTES },
    's.order_id, s.order_item_id, s.product_id, s.seller_id, s.shipping_limit_at, s.price, s.freight_value, o.purchased_at',
    `${STAGING.items.name} s
       STRAIGHT_JOIN fact_order o FORCE INDEX (PRIMARY) ON o.order_id = s.order_id
       STRAIGHT_JOIN dim_seller x FORCE INDEX (PRIMARY) ON x.seller_id = s.seller_id`,
  );
}

/**
 * Share-locks the staged items' orders and products until the chunk commits. A concurrent batch
 * that changes one of them (an order's purchase day, a product's category) holds its row lock
 * from its upsert to its commit, and marks the summary days of the items it finds stored: with
 * this lock the two chunks run one after the other, so that batch either sees this chunk's
 * items (and marks and moves them) or has committed before this chunk reads the order or product
 * (and this chunk writes, and marks, the new day or category). Without it, an item committed in
 * between was moved without a mark for its new day, and kept a purchase time its order no longer
 * had in one of the two item tables. In READ COMMITTED the next statement then reads the values
 * committed before the lock was granted.
 */
async function lockItemReferences(db: Queryable): Promise<void> {
  await db.query(`SELECT COUNT(*) FROM ${STAGING.items.name} s
      STRAIGHT_JOIN fact_order o FORCE INDEX (PRIMARY) ON o.order_id = s.order_id LOCK IN SHARE MODE`);
  await db.query(`SELECT COUNT(*) FROM ${STAGING.items.name} s
      STRAIGHT_JOIN dim_product p FORCE INDEX (PRIMARY) ON p.product_id = s.product_id LOCK IN SHARE MODE`);
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

// Every column but the unique key (order_id, order_item_id) follows the star tables; seller_id
// and purchased_at are part of the primary key, so the update moves the row in the clustered index.
const WIDE_UPSERT_SET = WIDE_COLUMNS.filter((c) => c !== 'order_id' && c !== 'order_item_id')
  .map((c) => `order_item_wide.\`${c}\` = VALUES(\`${c}\`)`)
  .concat('order_item_wide.`updated_at` = CURRENT_TIMESTAMP(3)')
  .join(', ');

/**
 * Re-derives the wide rows of the staged items (new or re-loaded), with the backfill migration's
 * SELECT (same expressions, same joins) restricted to them. Every other wide row already equals
 * the star: each chunk's transaction re-derives what it changes. Run it after upsertItems, in the
 * same transaction. A staged item refused on references has no star row and so no wide row.
 */
export async function refreshWideForItems(db: Queryable): Promise<void> {
  await db.query(
    `INSERT INTO order_item_wide (${WIDE_COLUMNS.map((c) => `\`${c}\``).join(', ')})
     SELECT i.seller_id, i.purchased_at, i.order_id, i.order_item_id, i.product_id, p.category_name_english,
            i.price, i.freight_value, i.shipping_limit_at, o.order_status, o.approved_at, o.delivered_carrier_at,
            o.delivered_customer_at, o.estimated_delivery_at, c.state, i.batch_id
       FROM ${STAGING.items.name} s
       STRAIGHT_JOIN fact_order_item i FORCE INDEX (PRIMARY) ON i.order_id = s.order_id AND i.order_item_id = s.order_item_id
       STRAIGHT_JOIN fact_order o FORCE INDEX (PRIMARY) ON o.order_id = i.order_id
       LEFT JOIN dim_product p FORCE INDEX (PRIMARY) ON p.product_id = i.product_id
       LEFT JOIN dim_customer c FORCE INDEX (PRIMARY) ON c.customer_id = o.customer_id
     ON DUPLICATE KEY UPDATE ${WIDE_UPSERT_SET}`,
  );
}

/** After a customers chunk: customer_state of the items of the staged customers' orders. */
export async function updateWideCustomers(db: Queryable): Promise<void> {
  await db.query(`UPDATE ${STAGING.customers.name} s STRAIGHT_JOIN dim_customer c FORCE INDEX (PRIMARY) ON c.customer_id = s.customer_id
       STRAIGHT_JOIN fact_order o FORCE INDEX (ix_order_customer) ON o.customer_id = s.customer_id
       STRAIGHT_JOIN order_item_wide w FORCE INDEX (ux_wide_order_item) ON w.order_id = o.order_id
        SET w.customer_state = c.state, w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE NOT (w.customer_state <=> c.state)`);
}

/** After a products chunk: product_category of the items of the staged products. */
export async function updateWideProducts(db: Queryable): Promise<void> {
  await db.query(`UPDATE ${STAGING.products.name} s STRAIGHT_JOIN dim_product p FORCE INDEX (PRIMARY) ON p.product_id = s.product_id
       STRAIGHT_JOIN order_item_wide w FORCE INDEX (ix_wide_product) ON w.product_id = s.product_id
        SET w.product_category = p.category_name_english, w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE NOT (w.product_category <=> p.category_name_english)`);
}

/**
 * After a translations chunk: stored products of these (Portuguese) categories take the new
 * English name (their batch_id stays: their own values did not come from this batch), and so do
 * the wide rows of their items.
 */
/** Renames stored products of these categories to their current translation; returns how many were renamed. */
export async function propagateTranslations(
  db: Queryable,
  batchId: string,
  writer: number,
  categoryNames: readonly string[],
): Promise<number> {
  if (categoryNames.length === 0) return 0;
  // batch_id: the batch that last wrote the row, never an older one than the row already names.
  const [renamed] = await db.query<ResultSetHeader>(`UPDATE dim_product p JOIN dim_category_translation t ON t.category_name = p.category_name
        SET p.category_name_english = t.category_name_english, p.batch_id = GREATEST(p.batch_id, ${sqlLiteral(batchId)}),
            p.updated_at = CURRENT_TIMESTAMP(3)
      WHERE t.category_name IN (${inList(categoryNames)}) AND NOT (p.category_name_english <=> t.category_name_english)`);
  await db.query(`${markPrefix(batchId, writer)}, w.seller_id, DATE(w.purchased_at)
       FROM order_item_wide w
       JOIN dim_product p ON p.product_id = w.product_id
      WHERE p.category_name IN (${inList(categoryNames)}) AND NOT (w.product_category <=> p.category_name_english)`);
  await db.query(`UPDATE order_item_wide w
       JOIN dim_product p ON p.product_id = w.product_id
        SET w.product_category = p.category_name_english, w.updated_at = CURRENT_TIMESTAMP(3)
      WHERE p.category_name IN (${inList(categoryNames)}) AND NOT (w.product_category <=> p.category_name_english)`);
  return renamed.affectedRows;
}

// ---------------------------------------------------------------------------------------------
// order_item_daily_summary: per (seller, UTC purchase day, category) totals, what the summary
// endpoint reads. Recomputing a seller-day in every chunk would re-read a large seller's day once
// per chunk (each chunk of a fresh load touches most of its days), so each change only marks the
// (seller, day) pairs it affects, old and new position, in the chunk's transaction; the batch
// recomputes its marked pairs once, from order_item_wide, when all its chunks are committed.
// Marks carry the writer's partition: each writer inserts into its own key range, as for the
// star tables, so concurrent chunks never wait on each other's marks.

function markPrefix(batchId: string, writer: number): string {
  return `INSERT IGNORE INTO order_item_summary_mark (batch_id, writer, seller_id, purchase_date)
     SELECT DISTINCT ${sqlLiteral(batchId)}, ${Number(writer)}`;
}

/** Per connection: the (seller, day) moves a chunk's statement found, old and new position. */
const SUMMARY_MOVES = 'tmp_summary_move';
const SUMMARY_MOVES_DEFINITION = `new_seller_id ${ID}, new_day DATE NOT NULL,
  old_seller_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL, old_day DATE NULL`;

/**
 * Marks the old and the new (seller, day) of the rows `select` returns (columns: new seller, new
 * day, old seller or NULL, old day or NULL). The join runs once, into the connection's moves
 * table; most reloads find nothing and write no mark.
 */
async function markMoves(db: Queryable, batchId: string, writer: number, select: string): Promise<void> {
  await db.query(`DELETE FROM ${SUMMARY_MOVES}`);
  const [found] = await db.query<ResultSetHeader>(
    `INSERT INTO ${SUMMARY_MOVES} (new_seller_id, new_day, old_seller_id, old_day) ${select}`,
  );
  if (found.affectedRows === 0) return;
  await db.query(`${markPrefix(batchId, writer)}, new_seller_id, new_day FROM ${SUMMARY_MOVES}`);
  await db.query(`${markPrefix(batchId, writer)}, old_seller_id, old_day FROM ${SUMMARY_MOVES} WHERE old_seller_id IS NOT NULL`);
}

/**
 * Before refreshWideForItems (and after upsertItems): the old and the new (seller, day) of every
 * staged item that is new or whose summed values (seller, purchase time, product, price, freight)
 * differ from its wide row. An item loaded again unchanged marks nothing, so a reload costs no
 * recompute.
 */
export async function markSummaryForStagedItems(db: Queryable, batchId: string, partition: number): Promise<void> {
  await markMoves(
    db,
    batchId,
    partition,
    `SELECT i.seller_id, DATE(i.purchased_at), w.seller_id, DATE(w.purchased_at)
       FROM ${STAGING.items.name} s
       STRAIGHT_JOIN fact_order_item i FORCE INDEX (PRIMARY) ON i.order_id = s.order_id AND i.order_item_id = s.order_item_id
       LEFT JOIN order_item_wide w FORCE INDEX (ux_wide_order_item) ON w.order_id = i.order_id AND w.order_item_id = i.order_item_id
      WHERE w.order_id IS NULL OR NOT (w.seller_id = i.seller_id AND w.purchased_at = i.purchased_at
        AND w.product_id = i.product_id AND w.price = i.price AND w.freight_value = i.freight_value)`,
  );
}

/**
 * Before the staged orders' wide rows follow their order: the old and the new day of the items
 * of an order whose purchase day changed. Run after the order upsert (fact_order holds the values
 * that won), before the wide update.
 */
async function markSummaryForMovedOrders(db: Queryable, batchId: string, writer: number): Promise<void> {
  await markMoves(
    db,
    batchId,
    writer,
    `SELECT w.seller_id, DATE(o.purchased_at), w.seller_id, DATE(w.purchased_at)
       FROM ${STAGING.orders.name} s
       STRAIGHT_JOIN order_item_wide w FORCE INDEX (ux_wide_order_item) ON w.order_id = s.order_id
       STRAIGHT_JOIN fact_order o FORCE INDEX (PRIMARY) ON o.order_id = s.order_id
      WHERE DATE(w.purchased_at) <> DATE(o.purchased_at)`,
  );
}

/** Before updateWideProducts: the days of the items whose product changed category. */
export async function markSummaryForRecategorizedProducts(db: Queryable, batchId: string, partition: number): Promise<void> {
  await db.query(`${markPrefix(batchId, partition)}, w.seller_id, DATE(w.purchased_at)
       FROM ${STAGING.products.name} s
       STRAIGHT_JOIN dim_product p FORCE INDEX (PRIMARY) ON p.product_id = s.product_id
       STRAIGHT_JOIN order_item_wide w FORCE INDEX (ix_wide_product) ON w.product_id = s.product_id
      WHERE NOT (w.product_category <=> p.category_name_english)`);
}

// A batch whose loader died (killed, machine lost) stays 'running' in etl_batch. Its marks must
// not wait forever: each loader holds a named lock for its batch on a connection of its own for as
// long as it runs, which the server releases when that connection goes, whatever killed it.
const batchLockName = (batchId: string): string => `order-items-batch:${batchId}`;

export async function holdBatchLock(conn: PoolConnection, batchId: string): Promise<void> {
  const [rows] = await conn.query<RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS held', [batchLockName(batchId)]);
  if (Number(rows[0]?.held) !== 1) throw new Error(`batch ${batchId}: its liveness lock is held elsewhere`);
}

/** How many pairs a recompute transaction takes at once. */
const SUMMARY_SLICE = 2_000;

export interface SummaryRecompute {
  batches: number;
  pairs: number;
}

/**
 * Recomputes the daily totals of every (seller, day) marked by this batch, and by batches that
 * ended or whose loader died (a failed or killed batch leaves its marks; the next one to finish
 * takes them over), from order_item_wide, then removes those marks. Run it once every chunk of the
 * batch is committed. The connections split the sellers into key ranges (as the writers do), so
 * they recompute in parallel without touching each other's rows. Each slice of pairs is one
 * transaction (delete the pairs' rows, insert their fresh totals), so a reader sees a day either
 * before or after, never half of it. Concurrent recomputes of the same pair (two batches ending
 * together) are harmless: each rewrites it from the committed wide rows. Under READ COMMITTED
 * neither DELETE of a pair that has no row yet locks anything, so both may insert the same key:
 * the insert upserts, and the row locks order the two writes (the later statement, blocked on the
 * earlier one's rows, writes the totals it read after the other batch's items were committed).
 */
export async function recomputeDailySummary(conns: readonly PoolConnection[], batchId: string): Promise<SummaryRecompute> {
  const [first] = conns;
  if (first === undefined) throw new Error('recomputeDailySummary: no connection');
  const [batchRows] = await first.query<RowDataPacket[]>(
    `SELECT m.batch_id FROM (SELECT DISTINCT batch_id FROM order_item_summary_mark) m
       LEFT JOIN etl_batch b ON b.batch_id = m.batch_id
      WHERE m.batch_id = ? OR b.status IS NULL OR b.status <> 'running'
         OR IS_USED_LOCK(CONCAT('order-items-batch:', m.batch_id)) IS NULL`,
    [batchId],
  );
  const batches = batchRows.map((r) => String(r.batch_id));
  if (batches.length === 0) return { batches: 0, pairs: 0 };
  const counts = await Promise.all(conns.map((conn, index) => recomputeSellerRange(conn, batches, sellerRange(index, conns.length))));
  for (const batch of batches) {
    let removed = 0;
    do {
      const [result] = await first.query<ResultSetHeader>('DELETE FROM order_item_summary_mark WHERE batch_id = ? LIMIT 50000', [batch]);
      removed = result.affectedRows;
    } while (removed > 0);
  }
  return { batches: batches.length, pairs: counts.reduce((a, b) => a + b, 0) };
}

/** The seller ids of range `index` of `count`, by their first two hex digits (like partitionOf). */
function sellerRange(index: number, count: number): { from?: string; to?: string } {
  const bound = (k: number): string | undefined => (k <= 0 || k >= count ? undefined : Math.floor((256 * k) / count).toString(16).padStart(2, '0'));
  const from = bound(index);
  const to = bound(index + 1);
  return { ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) };
}

async function recomputeSellerRange(
  conn: PoolConnection,
  batches: readonly string[],
  sellers: { from?: string; to?: string },
): Promise<number> {
  await conn.query(`CREATE TEMPORARY TABLE IF NOT EXISTS tmp_summary_pair (seller_id ${ID}, purchase_date DATE NOT NULL,
      PRIMARY KEY (seller_id, purchase_date)) ENGINE=InnoDB`);
  await conn.query('DELETE FROM tmp_summary_pair');
  const bounds: string[] = [];
  const sellerFilter = halfOpenRange('seller_id', sellers, bounds);
  await conn.query(
    `INSERT IGNORE INTO tmp_summary_pair (seller_id, purchase_date)
     SELECT seller_id, purchase_date FROM order_item_summary_mark WHERE batch_id IN (${inList(batches)})${sellerFilter}`,
    bounds,
  );
  let pairs = 0;
  let after: { sellerId: string; day: string } | undefined;
  for (;;) {
    const params: string[] = [];
    let range = '';
    if (after !== undefined) {
      range = 'WHERE (p.seller_id > ? OR (p.seller_id = ? AND p.purchase_date > ?))';
      params.push(after.sellerId, after.sellerId, after.day);
    }
    const [slice] = await conn.query<RowDataPacket[]>(
      `SELECT p.seller_id, DATE_FORMAT(p.purchase_date, '%Y-%m-%d') AS day FROM tmp_summary_pair p ${range}
        ORDER BY p.seller_id, p.purchase_date LIMIT ${SUMMARY_SLICE}`,
      params,
    );
    const last = slice.at(-1);
    if (last === undefined) break;
    const upTo = { sellerId: String(last.seller_id), day: String(last.day) };
    const sliceRange = `${range === '' ? 'WHERE' : `${range} AND`} (p.seller_id < ? OR (p.seller_id = ? AND p.purchase_date <= ?))`;
    const sliceParams = [...params, upTo.sellerId, upTo.sellerId, upTo.day];
    await withRetriedTransaction(conn, async () => {
      await conn.query(
        `DELETE d FROM tmp_summary_pair p
           STRAIGHT_JOIN order_item_daily_summary d FORCE INDEX (PRIMARY) ON d.seller_id = p.seller_id AND d.purchase_date = p.purchase_date
          ${sliceRange}`,
        sliceParams,
      );
      // Each seller of the slice is read once, in its clustered (seller, purchase time) order, and
      // only its marked days are kept: a join on the day range instead would be a `ref` on the
      // seller alone, i.e. the seller's whole history read again for every marked day.
      await conn.query(
        `INSERT INTO order_item_daily_summary (seller_id, purchase_date, category_key, item_count, revenue, freight)
         SELECT w.seller_id, DATE(w.purchased_at), COALESCE(w.product_category, ''), COUNT(*), SUM(w.price), SUM(w.freight_value)
           FROM (SELECT DISTINCT p.seller_id FROM tmp_summary_pair p ${sliceRange}) r
           STRAIGHT_JOIN order_item_wide w FORCE INDEX (PRIMARY) ON w.seller_id = r.seller_id
           STRAIGHT_JOIN tmp_summary_pair p ON p.seller_id = w.seller_id AND p.purchase_date = DATE(w.purchased_at)
          ${sliceRange}
          GROUP BY w.seller_id, DATE(w.purchased_at), COALESCE(w.product_category, '')
          ON DUPLICATE KEY UPDATE item_count = VALUES(item_count), revenue = VALUES(revenue), freight = VALUES(freight)`,
        [...sliceParams, ...sliceParams],
      );
    });
    pairs += slice.length;
    after = upTo;
  }
  await conn.query('DELETE FROM tmp_summary_pair');
  return pairs;
}

const RETRYABLE_ERRNOS = new Set([1213 /* deadlock */, 1205 /* lock wait timeout */]);
/** Attempts of a transaction that lost a lock conflict, before the error is given up to the caller. */
export const MAX_ATTEMPTS = 8;

/** A lock conflict (deadlock, lock wait timeout): the transaction was rolled back and may be run again. */
export function isRetryable(error: unknown): boolean {
  return RETRYABLE_ERRNOS.has(errnoOf(error) ?? 0);
}

/**
 * `work` in a transaction, run again after a deadlock or lock-wait timeout (up to MAX_ATTEMPTS),
 * after a jittered backoff: transactions that collided once collide again if they retry in step.
 */
export async function withRetriedTransaction<T>(conn: PoolConnection, work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await withTransaction(conn, work);
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS || !isRetryable(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * 2 ** attempt));
    }
  }
}

/** Rows of a table whose last writer is the batch: the distinct rows it wrote. */
/** The key columns of each file's table, a row's values for them, and the key as KEY_OF writes it. */
const KEY_COLUMNS: { [K in FileKind]: { columns: string; values: (row: RowsByKind[K]) => SqlValue[]; keyText: string } } = {
  translation: { columns: 'category_name', values: (r) => [r.categoryName], keyText: 'category_name' },
  sellers: { columns: 'seller_id', values: (r) => [r.sellerId], keyText: 'seller_id' },
  customers: { columns: 'customer_id', values: (r) => [r.customerId], keyText: 'customer_id' },
  products: { columns: 'product_id', values: (r) => [r.productId], keyText: 'product_id' },
  orders: { columns: 'order_id', values: (r) => [r.orderId], keyText: 'order_id' },
  items: { columns: 'order_id, order_item_id', values: (r) => [r.orderId, r.orderItemId], keyText: "CONCAT(order_id, ':', order_item_id)" },
};

/**
 * Whether a load newer than this batch exists (a batch with a staging stage: the loader's own;
 * the ids upstream stages report are free text and write no rows): only then can a row of this
 * batch be stale.
 */
export async function newerLoadExists(db: Queryable, batchId: string): Promise<boolean> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT 1 FROM etl_batch_stage WHERE batch_id > ? AND stage = 'staging' LIMIT 1`, [batchId]);
  return rows.length > 0;
}

/**
 * The keys (as KEY_OF writes them) of these rows that a newer batch has already written: the
 * upsert leaves those rows as they are (the newest batch wins), so this batch does not apply them.
 */
export async function staleKeys<K extends FileKind>(db: Queryable, kind: K, batchId: string, rows: readonly RowsByKind[K][]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const { columns, values, keyText } = KEY_COLUMNS[kind] as { columns: string; values: (row: RowsByKind[K]) => SqlValue[]; keyText: string };
  const [result] = await db.query<RowDataPacket[]>(
    `SELECT ${keyText} AS k FROM \`${TABLE_OF[kind]}\` WHERE (${columns}) IN (${valuesList(rows.map(values))}) AND batch_id > ${sqlLiteral(batchId)}`,
  );
  return new Set(result.map((row) => String(row.k)));
}

export async function countWritten(db: Queryable, kind: FileKind, batchId: string): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${TABLE_OF[kind]}\` WHERE batch_id = ?`, [
    batchId,
  ]);
  return Number(rows[0]?.n ?? 0);
}
