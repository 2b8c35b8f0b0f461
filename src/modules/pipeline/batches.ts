// Turns monitoring rows into the batch view: stage times in pipeline order, the gaps between
// stages, and the single step where the batch spent most of its time.
import { PIPELINE_STAGES } from '../../db/schema.js';
import { sqlMillisToIso, sqlTimestampToMs } from '../../http/timestamps.js';
import type { BatchRow, StageRow } from './repository.js';
import type { Batch, StageRun } from './schemas.js';

const seconds = (fromMs: number, toMs: number): number => Math.round(toMs - fromMs) / 1000;

export function toBatch(batch: BatchRow, stages: readonly StageRow[]): Batch {
  const ingestedMs = sqlTimestampToMs(batch.created_at);
  const ordered = [...stages].sort((a, b) => PIPELINE_STAGES.indexOf(a.stage) - PIPELINE_STAGES.indexOf(b.stage));
  let previousEndMs: number | null = ingestedMs;
  let lastFinishedMs: number | null = null;
  let slowest: Batch['slowestStep'] = null;
  const runs: StageRun[] = ordered.map((row) => {
    const startedMs = sqlTimestampToMs(row.started_at);
    const finishedMs = row.finished_at === null ? null : sqlTimestampToMs(row.finished_at);
    const duration = finishedMs === null ? null : seconds(startedMs, finishedMs);
    const gap = previousEndMs === null ? null : seconds(previousEndMs, startedMs);
    if (gap !== null && (slowest === null || gap > slowest.seconds)) slowest = { stage: row.stage, kind: 'gap', seconds: gap };
    if (duration !== null && (slowest === null || duration > slowest.seconds)) {
      slowest = { stage: row.stage, kind: 'stage', seconds: duration };
    }
    previousEndMs = finishedMs;
    if (finishedMs !== null) lastFinishedMs = Math.max(lastFinishedMs ?? finishedMs, finishedMs);
    return {
      stage: row.stage,
      status: row.status,
      startedAt: sqlMillisToIso(row.started_at),
      finishedAt: sqlMillisToIso(row.finished_at),
      durationSeconds: duration,
      gapSeconds: gap,
      lagSeconds: finishedMs === null ? null : seconds(ingestedMs, finishedMs),
      rowsIn: row.rows_in === null ? null : Number(row.rows_in),
      rowsOut: row.rows_out === null ? null : Number(row.rows_out),
      rowsRejected: row.rows_rejected === null ? null : Number(row.rows_rejected),
    };
  });
  return {
    batchId: batch.batch_id,
    source: batch.source,
    ingestedAt: sqlMillisToIso(batch.created_at),
    status: batch.status,
    stages: runs,
    endToEndSeconds: lastFinishedMs === null ? null : seconds(ingestedMs, lastFinishedMs),
    slowestStep: slowest,
  };
}
