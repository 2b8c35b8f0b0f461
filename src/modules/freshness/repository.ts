// Batch metadata is not tenant data: the newest staged batch is the same for every seller.
import type { RowDataPacket } from 'mysql2/promise';
import type { Database } from '../../db/database.js';

export interface StagedBatch {
  batchId: string;
  /** 'YYYY-MM-DD HH:MM:SS.mmm', UTC. */
  ingestedAt: string;
}

export async function findNewestStagedBatch(db: Database): Promise<StagedBatch | null> {
  const rows = await db.select<RowDataPacket & { batch_id: string; created_at: string }>(
    'newestStagedBatch',
    `SELECT b.batch_id, b.created_at
       FROM etl_batch_stage s
       JOIN etl_batch b ON b.batch_id = s.batch_id
      WHERE s.stage = 'staging' AND s.status = 'succeeded'
      ORDER BY b.created_at DESC, b.batch_id DESC
      LIMIT 1`,
    [],
  );
  const row = rows[0];
  return row === undefined ? null : { batchId: row.batch_id, ingestedAt: row.created_at };
}
