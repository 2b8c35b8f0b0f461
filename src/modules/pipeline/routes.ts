// The monitoring table as a contract: upstream stages report here (or by SQL), operators read.
import type { FastifyInstance } from 'fastify';
import { CursorCodec, CursorError } from '../../http/cursor.js';
import { badRequest, conflict, notFound } from '../../http/problem.js';
import { defineRoute, NoQuery } from '../../http/route.js';
import { sqlMillisToIso, sqlTimestampToMs, toSqlTimestamp } from '../../http/timestamps.js';
import { BODY_PROBLEM_RESPONSES, NOT_FOUND_RESPONSE, PROBLEM_RESPONSES } from '../../http/responses.js';
import { toBatch } from './batches.js';
import * as repository from './repository.js';
import { Batch, BatchPage, BatchParams, ListBatchesQuery, StageParams, StageReport, StageRun } from './schemas.js';
import { reportedInstant } from './times.js';

const PIPELINE_CURSOR_BINDING = 'pipeline';

const sameInstant = (a: string | null, b: string | null): boolean =>
  a === null || b === null ? a === b : sqlTimestampToMs(a) === sqlTimestampToMs(b);

function sameRun(existing: repository.StageRow, next: repository.StageWrite): boolean {
  return (
    sameInstant(existing.started_at, next.startedAt) &&
    sameInstant(existing.finished_at, next.finishedAt) &&
    (existing.rows_in === null ? null : Number(existing.rows_in)) === next.rowsIn &&
    (existing.rows_out === null ? null : Number(existing.rows_out)) === next.rowsOut &&
    (existing.rows_rejected === null ? null : Number(existing.rows_rejected)) === next.rowsRejected &&
    existing.status === next.status
  );
}

export default async function pipelineRoutes(app: FastifyInstance, options: { cursors: CursorCodec }): Promise<void> {
  const { cursors } = options;

  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/v1/pipeline/batches/:batchId/stages/:stage',
      operationId: 'reportStage',
      summary: "Report a pipeline stage's run for a batch",
      description:
        'Idempotent: the same report twice leaves one row. Creates the batch on first sight. A finished stage (succeeded or failed) cannot change: 409.',
      tags: ['pipeline'],
      access: { kind: 'service', scope: 'pipeline:write' },
      querystring: NoQuery,
      params: StageParams,
      body: StageReport,
      responses: {
        200: { description: 'The stage run as stored (updated or unchanged)', schema: StageRun },
        201: { description: 'The stage run was created', schema: StageRun },
        ...PROBLEM_RESPONSES,
        409: { description: 'The stage already finished with other values' },
        ...BODY_PROBLEM_RESPONSES,
      },
    },
    async (request, reply) => {
      // The params schema admits only the reportable stages (never `api`).
      const { batchId, stage } = request.params;
      const body = request.body;
      // RFC 3339, within 1970-01-01 .. 9999-12-31 in UTC, at most MAX_CLOCK_SKEW_MS ahead of now.
      const nowMs = Date.now();
      const startedMs = reportedInstant('startedAt', body.startedAt, nowMs);
      const finishedMs = body.finishedAt === undefined ? null : reportedInstant('finishedAt', body.finishedAt, nowMs);
      if (finishedMs !== null && finishedMs < startedMs) {
        throw badRequest({ name: 'finishedAt', in: 'body', reason: 'must not be before startedAt' });
      }
      if (body.status === 'running' && finishedMs !== null) {
        throw badRequest({ name: 'finishedAt', in: 'body', reason: 'must be absent while the stage is running' });
      }
      if (body.status !== 'running' && finishedMs === null) {
        throw badRequest({ name: 'finishedAt', in: 'body', reason: `is required when status is ${body.status}` });
      }
      // Without ingestedAt, a batch this report creates was ingested now, or when the stage started
      // if that was earlier: no stage runs on a batch before its ingestion.
      const ingestedMs = body.ingestedAt === undefined ? Math.min(nowMs, startedMs) : reportedInstant('ingestedAt', body.ingestedAt, nowMs);
      const next: repository.StageWrite = {
        batchId,
        stage,
        startedAt: toSqlTimestamp(startedMs),
        finishedAt: finishedMs === null ? null : toSqlTimestamp(finishedMs),
        rowsIn: body.rowsIn ?? null,
        rowsOut: body.rowsOut ?? null,
        rowsRejected: body.rowsRejected ?? null,
        status: body.status,
      };

      // Safe to re-run (Database.transaction retries it after a deadlock): database work only.
      const outcome = await app.db.transaction('reportStage', async (tx) => {
        // Insert first (a no-op when the batch exists), then lock: concurrent first reports of a
        // new batch queue on the new row instead of deadlocking on the gap where it would go.
        await repository.insertBatch(tx, batchId, body.source ?? 'pipeline-api', toSqlTimestamp(ingestedMs));
        const batch = await repository.lockBatch(tx, batchId);
        if (batch === null) throw new Error('batch vanished inside its transaction');
        const existing = await repository.lockStage(tx, batchId, stage);
        if (existing !== null && sameRun(existing, next)) return { created: false, batch, stage: existing };
        // A stage cannot reject more rows than it read; an absurd count would stay in the
        // monitoring totals (and etl_rejected_rows_total, which never goes back) for good. After
        // the idempotency check: the same report again is still "unchanged", whatever was stored.
        if (body.rowsRejected !== undefined && body.rowsIn !== undefined && body.rowsRejected > body.rowsIn) {
          throw badRequest({ name: 'rowsRejected', in: 'body', reason: `must not be more than rowsIn (${body.rowsIn})` });
        }
        if (finishedMs !== null && finishedMs < sqlTimestampToMs(batch.created_at)) {
          throw badRequest({
            name: 'finishedAt',
            in: 'body',
            reason: `must not be before the batch's ingestion time (${sqlMillisToIso(batch.created_at)})`,
          });
        }
        if (existing !== null && existing.status !== 'running') {
          throw conflict(`stage ${stage} of batch ${batchId} already ${existing.status}; a finished stage cannot change`);
        }
        await repository.writeStage(tx, next);
        // Failed is final: a stage that failed cannot be re-reported, so nothing later undoes it.
        if (next.status === 'failed' && batch.status !== 'failed') await repository.setBatchStatus(tx, batchId, 'failed');
        else if (stage === 'staging' && next.status === 'succeeded' && batch.status !== 'failed') {
          await repository.setBatchStatus(tx, batchId, 'succeeded');
        }
        const stored = await repository.lockStage(tx, batchId, stage);
        if (stored === null) throw new Error('stage vanished inside its transaction');
        return { created: existing === null, batch, stage: stored };
      });
      // The gap is measured from the previous stage's end: the view needs every stage of the batch.
      const stages = await repository.listStagesOf(app.db, [batchId]);
      const others = stages.filter((row) => row.stage !== stage);
      const view = toBatch(outcome.batch, [...others, outcome.stage]).stages.find((s) => s.stage === stage);
      if (view === undefined) throw new Error('stage view missing');
      return reply.code(outcome.created ? 201 : 200).send(view);
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/pipeline/batches',
      operationId: 'listBatches',
      summary: 'Batches, newest ingestion first, with every stage and the end-to-end total',
      tags: ['pipeline'],
      access: { kind: 'service', scope: 'pipeline:read' },
      querystring: ListBatchesQuery,
      responses: { 200: { description: 'A page of batches', schema: BatchPage }, ...PROBLEM_RESPONSES },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      let after: { createdAt: string; batchId: string } | null = null;
      if (cursor !== undefined) {
        try {
          const [createdAt, batchId] = cursors.decode(PIPELINE_CURSOR_BINDING, 'batches', cursor);
          if (typeof createdAt !== 'string' || typeof batchId !== 'string') throw new CursorError('is malformed');
          after = { createdAt, batchId };
        } catch (error) {
          if (error instanceof CursorError) throw badRequest({ name: 'cursor', in: 'query', reason: error.message });
          throw error;
        }
      }
      const rows = await repository.listBatches(app.db, after, limit);
      const page = rows.slice(0, limit);
      const stages = await repository.listStagesOf(app.db, page.map((row) => row.batch_id));
      const last = page.at(-1);
      return {
        batches: page.map((row) => toBatch(row, stages.filter((stage) => stage.batch_id === row.batch_id))),
        nextCursor:
          rows.length > limit && last !== undefined
            ? cursors.encode(PIPELINE_CURSOR_BINDING, 'batches', [last.created_at, last.batch_id])
            : null,
      };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/pipeline/batches/:batchId',
      operationId: 'getBatch',
      summary: 'One batch with every stage, the gaps between them and the end-to-end total',
      tags: ['pipeline'],
      access: { kind: 'service', scope: 'pipeline:read' },
      querystring: NoQuery,
      params: BatchParams,
      responses: { 200: { description: 'The batch', schema: Batch }, ...PROBLEM_RESPONSES, ...NOT_FOUND_RESPONSE },
    },
    async (request) => {
      const batch = await repository.getBatch(app.db, request.params.batchId);
      if (batch === null) throw notFound('no such batch');
      return toBatch(batch, await repository.listStagesOf(app.db, [batch.batch_id]));
    },
  );
}
