import { z } from 'zod';
import { PIPELINE_STAGES, RUN_STATUSES, type PipelineStage } from '../../db/schema.js';
import { MAX_CLOCK_SKEW_MS } from './times.js';

export const BatchId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/)
  .meta({ description: 'The ETL run id: 1-64 letters, digits, dot, underscore, colon or dash.', example: '0193a1f4-6c2e-7b3a-9d10-5f2b8e7c4a11' });
export const StageName = z.enum(PIPELINE_STAGES);
/** The stages a pipeline reports: every stage but `api`, which the API records itself (first served). */
export const REPORTABLE_STAGES = PIPELINE_STAGES.filter((stage): stage is Exclude<PipelineStage, 'api'> => stage !== 'api');
export const ReportableStage = z
  .enum(REPORTABLE_STAGES)
  .meta({ description: 'The reporting stage. `api` is not reported: the API records it itself when it first serves a batch.' });
export const RunStatus = z.enum(RUN_STATUSES);
// No minLength: a short text gets the RFC 3339 message of times.ts, which says what to send.
const Instant = z
  .string()
  .max(64)
  .meta({
    format: 'date-time',
    description:
      `RFC 3339 date-time with an offset (\`2026-11-28T10:00:00Z\`, \`2026-11-28T11:00:00.250+01:00\`); once converted to UTC between 1970-01-01 and 9999-12-31, and at most ${MAX_CLOCK_SKEW_MS / 60_000} minutes ahead of the server clock.`,
    example: '2026-11-28T10:00:00Z',
  });
const Timestamp = z.string().meta({ format: 'date-time' });
const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const StageParams = z.strictObject({ batchId: BatchId, stage: ReportableStage });
export const BatchParams = z.strictObject({ batchId: BatchId });

export const StageReport = z
  .strictObject({
    startedAt: Instant,
    finishedAt: Instant.optional(),
    rowsIn: Count.optional(),
    rowsOut: Count.optional(),
    rowsRejected: Count.optional().meta({ description: 'Rows the stage rejected; at most rowsIn when both are given (400 otherwise).' }),
    status: RunStatus,
    ingestedAt: Instant.optional().meta({
      description:
        "The batch's ingestion time (RFC 3339, as the other times); used only when this call creates the batch (default: now, or startedAt when earlier). No stage of the batch may finish before it.",
    }),
    source: z.string().min(1).max(128).optional().meta({ description: 'Where the batch comes from; used only when this call creates the batch.' }),
  })
  .meta({ id: 'StageReport' });
export type StageReport = z.infer<typeof StageReport>;

export const StageRun = z
  .object({
    stage: StageName,
    status: RunStatus,
    startedAt: Timestamp,
    finishedAt: Timestamp.nullable(),
    durationSeconds: z.number().nullable().meta({ description: 'finishedAt - startedAt.' }),
    gapSeconds: z.number().nullable().meta({ description: "Time between the previous stage's end (or the ingestion, for the first) and this stage's start; negative when the two overlap." }),
    lagSeconds: z.number().nullable().meta({ description: 'Batch ingestion to the end of this stage.' }),
    rowsIn: z.number().int().nonnegative().nullable(),
    rowsOut: z.number().int().nonnegative().nullable(),
    rowsRejected: z.number().int().nonnegative().nullable(),
  })
  .meta({ id: 'StageRun' });
export type StageRun = z.infer<typeof StageRun>;

export const Batch = z
  .object({
    batchId: z.string(),
    source: z.string(),
    ingestedAt: Timestamp,
    status: RunStatus,
    stages: z.array(StageRun).meta({ description: 'In pipeline order: source, landing, bronze, silver, gold, staging, api.' }),
    endToEndSeconds: z.number().nullable().meta({ description: 'Ingestion to the end of the last finished stage (api = first served).' }),
    slowestStep: z
      .object({ stage: StageName, kind: z.enum(['stage', 'gap']), seconds: z.number() })
      .nullable()
      .meta({ description: 'The stage run or the wait before a stage that took longest: where this batch spent its time.' }),
  })
  .meta({ id: 'Batch' });
export type Batch = z.infer<typeof Batch>;

export const BatchPage = z
  .object({ batches: z.array(Batch), nextCursor: z.string().nullable() })
  .meta({ id: 'BatchPage' });

export const ListBatchesQuery = z.strictObject({
  limit: z.number().int().min(1).max(100).default(20).meta({ description: 'Page size.' }),
  cursor: z.string().min(1).max(512).optional().meta({ description: 'Opaque cursor from the previous page.' }),
});
