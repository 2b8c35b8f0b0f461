// Every SQL statement of the monitoring tables (etl_batch, etl_batch_stage). Batch metadata is
// pipeline data, not tenant data: these routes are gated by service scopes instead.
import type { RowDataPacket } from 'mysql2/promise';
import type { Database, SqlValue, Transaction } from '../../db/database.js';
import { PIPELINE_STAGES, type PipelineStage, type RunStatus } from '../../db/schema.js';

export interface BatchRow extends RowDataPacket {
  batch_id: string;
  source: string;
  created_at: string;
  status: RunStatus;
}

export interface StageRow extends RowDataPacket {
  batch_id: string;
  stage: PipelineStage;
  started_at: string;
  finished_at: string | null;
  rows_in: number | null;
  rows_out: number | null;
  rows_rejected: number | null;
  status: RunStatus;
}

export interface StageWrite {
  batchId: string;
  stage: PipelineStage;
  startedAt: string;
  finishedAt: string | null;
  rowsIn: number | null;
  rowsOut: number | null;
  rowsRejected: number | null;
  status: RunStatus;
}

const STAGE_COLUMNS = 'batch_id, stage, started_at, finished_at, rows_in, rows_out, rows_rejected, status';

/**
 * Stage `api` runs from the moment the batch became servable (its `staging` finished) to the first
 * time a request is served from it, so its duration is the wait for the first user. Without a
 * finished `staging` row it starts and ends at the serve time.
 */
export async function recordFirstServed(db: Database, batchId: string, servedAt: string): Promise<void> {
  // The earliest time wins, whichever replica writes first or last.
  await db.write(
    'recordFirstServed',
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status, rows_in, rows_out, rows_rejected)
     SELECT ?, 'api', LEAST(COALESCE(MAX(s.finished_at), ?), ?), ?, 'succeeded', NULL, NULL, NULL
       FROM (SELECT 1) one
       LEFT JOIN etl_batch_stage s ON s.batch_id = ? AND s.stage = 'staging' AND s.status = 'succeeded'
     ON DUPLICATE KEY UPDATE
       started_at = LEAST(etl_batch_stage.started_at, VALUES(started_at)),
       finished_at = LEAST(COALESCE(etl_batch_stage.finished_at, VALUES(finished_at)), VALUES(finished_at)),
       updated_at = CURRENT_TIMESTAMP(3)`,
    [batchId, servedAt, servedAt, servedAt, batchId],
  );
}

export async function lockBatch(tx: Transaction, batchId: string): Promise<BatchRow | null> {
  const rows = await tx.select<BatchRow>(
    'SELECT batch_id, source, created_at, status FROM etl_batch WHERE batch_id = ? FOR UPDATE',
    [batchId],
  );
  return rows[0] ?? null;
}

/**
 * Creates the batch, or does nothing when it exists. Called before the batch row is locked: two
 * first reports of a new batch then queue on this row's lock, where a locking read of the missing
 * row first (gap locks) and an insert after made them deadlock. Never `INSERT IGNORE`: that turns
 * an out-of-range time into a stored zero date instead of an error; any warning (a value the server
 * clamped or truncated) fails the statement, and so the transaction, instead.
 */
export async function insertBatch(tx: Transaction, batchId: string, source: string, ingestedAt: string): Promise<void> {
  const result = await tx.write(
    `INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES (?, ?, ?, 'running')
     ON DUPLICATE KEY UPDATE batch_id = batch_id`,
    [batchId, source, ingestedAt],
  );
  if (result.warningStatus > 0) {
    throw new Error(
      'etl_batch ' + batchId + ': the server altered a value (created_at ' + ingestedAt + ', ' + String(result.warningStatus) + ' warning(s)); nothing stored',
    );
  }
}

export async function lockStage(tx: Transaction, batchId: string, stage: PipelineStage): Promise<StageRow | null> {
  const rows = await tx.select<StageRow>(
    `SELECT ${STAGE_COLUMNS} FROM etl_batch_stage WHERE batch_id = ? AND stage = ? FOR UPDATE`,
    [batchId, stage],
  );
  return rows[0] ?? null;
}

export async function writeStage(tx: Transaction, stage: StageWrite): Promise<void> {
  await tx.write(
    `INSERT INTO etl_batch_stage (${STAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE started_at = VALUES(started_at), finished_at = VALUES(finished_at),
       rows_in = VALUES(rows_in), rows_out = VALUES(rows_out), rows_rejected = VALUES(rows_rejected),
       status = VALUES(status), updated_at = CURRENT_TIMESTAMP(3)`,
    [stage.batchId, stage.stage, stage.startedAt, stage.finishedAt, stage.rowsIn, stage.rowsOut, stage.rowsRejected, stage.status],
  );
}

export async function setBatchStatus(tx: Transaction, batchId: string, status: RunStatus): Promise<void> {
  await tx.write('UPDATE etl_batch SET status = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE batch_id = ?', [status, batchId]);
}

export async function listBatches(
  db: Database,
  after: { createdAt: string; batchId: string } | null,
  limit: number,
): Promise<BatchRow[]> {
  const params: SqlValue[] = [];
  let where = '';
  if (after !== null) {
    where = 'WHERE (created_at < ? OR (created_at = ? AND batch_id < ?))';
    params.push(after.createdAt, after.createdAt, after.batchId);
  }
  return db.select<BatchRow>(
    'listBatches',
    `SELECT batch_id, source, created_at, status FROM etl_batch ${where}
      ORDER BY created_at DESC, batch_id DESC LIMIT ${Math.trunc(limit) + 1}`,
    params,
  );
}

export async function getBatch(db: Database, batchId: string): Promise<BatchRow | null> {
  const rows = await db.select<BatchRow>(
    'getBatch',
    'SELECT batch_id, source, created_at, status FROM etl_batch WHERE batch_id = ?',
    [batchId],
  );
  return rows[0] ?? null;
}

export async function listStagesOf(db: Database, batchIds: readonly string[]): Promise<StageRow[]> {
  if (batchIds.length === 0) return [];
  return db.select<StageRow>(
    'listBatchStages',
    `SELECT ${STAGE_COLUMNS} FROM etl_batch_stage WHERE batch_id IN (${batchIds.map(() => '?').join(', ')})`,
    [...batchIds],
  );
}

/** How many of the newest batches the rejected-row tally re-reads on every refresh. */
export const RECENT_BATCHES = 1000;
const RECENT_BATCH_OFFSET = RECENT_BATCHES - 1;

export interface RunningStage extends RowDataPacket {
  stage: PipelineStage;
  oldest_started_at: string;
}

/**
 * Per stage, the oldest run started and not finished, however old: a stall must not clear its own
 * alert by ageing out of a window. `stage IN (every stage) AND status = 'running'` is one range of
 * ix_stage_status (stage, status, batch_id) per stage, so only running rows are read.
 */
const STAGE_PLACEHOLDERS = PIPELINE_STAGES.map(() => '?').join(', ');

export async function runningStages(db: Database): Promise<RunningStage[]> {
  return db.select<RunningStage>(
    'runningStages',
    `SELECT stage, MIN(started_at) AS oldest_started_at FROM etl_batch_stage
      WHERE stage IN (${STAGE_PLACEHOLDERS}) AND status = 'running' AND finished_at IS NULL
      GROUP BY stage`,
    [...PIPELINE_STAGES],
  );
}

export interface BatchKey extends RowDataPacket {
  batch_id: string;
  created_at: string;
}

export interface ServedBatch extends BatchKey {
  /** Its `api` stage's end: when a request first served it. */
  first_served_at: string;
}

/** The newest batch (by ingestion) the API has served, with its first-served time; null before any. */
export async function newestServedBatch(db: Database): Promise<ServedBatch | null> {
  const rows = await db.select<ServedBatch>(
    'newestServedBatch',
    `SELECT b.batch_id, b.created_at, a.finished_at AS first_served_at
       FROM etl_batch b
       JOIN etl_batch_stage a ON a.batch_id = b.batch_id AND a.stage = 'api'
      ORDER BY b.created_at DESC, b.batch_id DESC LIMIT 1`,
    [],
  );
  return rows[0] ?? null;
}

/**
 * When the first staged batch (by ingestion) that the API has not served since `served` finished
 * staging, or null when there is none. Stage `api` is only ever written finished (first served),
 * so this is what "stage api is running" means: staged, waiting for its first request. Batches
 * ingested before the newest served batch are left out: the API serves the newest staged batch,
 * so they never will be served. ix_batch_created is read forwards from `served` (from the start
 * of the history before any batch was served) and the read stops at the first such batch: its
 * cost is the number of batches since the last one served, not the history (a MIN over every
 * staged batch took 0.7 s at 300,000 batches).
 */
export async function firstUnservedStagedBatch(db: Database, served: BatchKey | null): Promise<string | null> {
  const params: SqlValue[] = [];
  let after = '';
  if (served !== null) {
    // The first predicate is the index range; the second leaves out the served batch itself.
    after = 'AND b.created_at >= ? AND (b.created_at > ? OR b.batch_id > ?)';
    params.push(served.created_at, served.created_at, served.batch_id);
  }
  const rows = await db.select<RowDataPacket & { staged_at: string }>(
    'firstUnservedStagedBatch',
    `SELECT COALESCE(s.finished_at, s.started_at) AS staged_at
       FROM etl_batch b FORCE INDEX (ix_batch_created)
       JOIN etl_batch_stage s ON s.batch_id = b.batch_id AND s.stage = 'staging' AND s.status = 'succeeded'
      WHERE NOT EXISTS (SELECT 1 FROM etl_batch_stage a WHERE a.batch_id = b.batch_id AND a.stage = 'api') ${after}
      ORDER BY b.created_at, b.batch_id LIMIT 1`,
    params,
  );
  return rows[0]?.staged_at ?? null;
}

export interface RejectedTotal extends RowDataPacket {
  stage: PipelineStage;
  total: string | number;
}

/** The oldest of the RECENT_BATCHES newest batches, or null while there are fewer. */
export async function recentBatchesBoundary(db: Database): Promise<BatchKey | null> {
  const rows = await db.select<BatchKey>(
    'recentBatchesBoundary',
    `SELECT batch_id, created_at FROM etl_batch FORCE INDEX (ix_batch_created)
      ORDER BY created_at DESC, batch_id DESC LIMIT 1 OFFSET ${RECENT_BATCH_OFFSET}`,
    [],
  );
  return rows[0] ?? null;
}

/** Rejected rows per stage of the batches at or after `boundary` (all batches when null): an index range. */
export async function rejectedRowsFrom(db: Database, boundary: BatchKey | null): Promise<RejectedTotal[]> {
  if (boundary === null) {
    return db.select<RejectedTotal>(
      'recentRejectedRows',
      `SELECT s.stage, COALESCE(SUM(s.rows_rejected), 0) AS total
         FROM etl_batch b JOIN etl_batch_stage s ON s.batch_id = b.batch_id GROUP BY s.stage`,
      [],
    );
  }
  return db.select<RejectedTotal>(
    'recentRejectedRows',
    `SELECT s.stage, COALESCE(SUM(s.rows_rejected), 0) AS total
       FROM etl_batch b FORCE INDEX (ix_batch_created) JOIN etl_batch_stage s ON s.batch_id = b.batch_id
      WHERE b.created_at > ? OR (b.created_at = ? AND b.batch_id >= ?)
      GROUP BY s.stage`,
    [boundary.created_at, boundary.created_at, boundary.batch_id],
  );
}

/** Where a chunk of settledRejectedRowsAfter ends: about 50,000 stage rows on (plus the rest of one batch's). */
const REJECTED_CHUNK_OFFSET = 49_999;

/**
 * Rejected rows per stage of the batches behind `boundary` (none when it is null), over the stage
 * rows of batch ids after `afterBatchId` (from the first when null): a chunk of about 50,000 rows
 * in primary-key order, so that no statement reads the whole history. `next` is where the
 * following chunk starts, or null when this was the last. Stage rows without an etl_batch row are
 * in neither part: their batch could appear later on either side of the boundary.
 */
export async function settledRejectedRowsAfter(
  db: Database,
  boundary: BatchKey | null,
  afterBatchId: string | null,
): Promise<{ totals: RejectedTotal[]; next: string | null }> {
  if (boundary === null) return { totals: [], next: null };
  // No lower bound on the first chunk: under a PAD SPACE collation an id may sort below ''.
  const after = afterBatchId === null ? 'TRUE' : 's.batch_id > ?';
  const afterParams: SqlValue[] = afterBatchId === null ? [] : [afterBatchId];
  const ends = await db.select<RowDataPacket & { batch_id: string }>(
    'rejectedRowsChunkEnd',
    `SELECT s.batch_id FROM etl_batch_stage s WHERE ${after} ORDER BY s.batch_id LIMIT 1 OFFSET ${REJECTED_CHUNK_OFFSET}`,
    afterParams,
  );
  const last = ends[0]?.batch_id ?? null;
  const upTo = last === null ? '' : 'AND s.batch_id <= ?';
  // Behind the boundary: the complement of rejectedRowsFrom's range, so no row is in both.
  const totals = await db.select<RejectedTotal>(
    'rejectedRowsChunk',
    `SELECT s.stage, COALESCE(SUM(s.rows_rejected), 0) AS total
       FROM etl_batch_stage s JOIN etl_batch b ON b.batch_id = s.batch_id
      WHERE ${after} ${upTo} AND (b.created_at < ? OR (b.created_at = ? AND b.batch_id < ?))
      GROUP BY s.stage`,
    [...afterParams, ...(last === null ? [] : [last]), boundary.created_at, boundary.created_at, boundary.batch_id],
  );
  return { totals, next: last };
}
