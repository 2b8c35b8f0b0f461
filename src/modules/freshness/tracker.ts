// How old is the data we serve? The newest staged batch, read at most once per cache period
// whatever the request rate, shared by responses, the e2e histogram and the freshness gauge.
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { sqlMillisToIso, sqlTimestampToMs } from '../../http/timestamps.js';
import { findNewestStagedBatch } from './repository.js';

export const Freshness = z
  .object({
    batchId: z.string().meta({ description: 'The newest batch whose staging stage succeeded.' }),
    ingestedAt: z.string().meta({ format: 'date-time', description: "The batch's ingestion timestamp (UTC)." }),
    ageSeconds: z.number().int().nonnegative().meta({ description: 'Seconds between ingestion and this response.' }),
  })
  .meta({ id: 'Freshness' });
export type Freshness = z.infer<typeof Freshness>;

export const FRESHNESS_HEADER = 'x-data-freshness';

export interface NewestBatch {
  batchId: string;
  ingestedAtIso: string;
  ingestedAtMs: number;
}

export class FreshnessTracker {
  #cached: { value: NewestBatch | null; fetchedAt: number } | undefined;
  #inFlight: Promise<NewestBatch | null> | undefined;

  constructor(
    private readonly db: Database,
    private readonly cacheMs: number,
  ) {}

  /** The last value read, without touching the database (for metrics at scrape time). */
  lastKnown(): NewestBatch | null {
    return this.#cached?.value ?? null;
  }

  async newest(): Promise<NewestBatch | null> {
    const cached = this.#cached;
    if (cached !== undefined && Date.now() - cached.fetchedAt < this.cacheMs) return cached.value;
    this.#inFlight ??= this.refresh().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  private async refresh(): Promise<NewestBatch | null> {
    const batch = await findNewestStagedBatch(this.db);
    const value =
      batch === null
        ? null
        : { batchId: batch.batchId, ingestedAtIso: sqlMillisToIso(batch.ingestedAt), ingestedAtMs: sqlTimestampToMs(batch.ingestedAt) };
    this.#cached = { value, fetchedAt: Date.now() };
    return value;
  }
}

export function freshnessAt(batch: NewestBatch, nowMs: number): Freshness {
  return {
    batchId: batch.batchId,
    ingestedAt: batch.ingestedAtIso,
    ageSeconds: Math.max(0, Math.floor((nowMs - batch.ingestedAtMs) / 1000)),
  };
}

export function freshnessHeader(freshness: Freshness): string {
  return `batchId=${freshness.batchId}; ingestedAt=${freshness.ingestedAt}; ageSeconds=${freshness.ageSeconds}`;
}

export const FRESHNESS_RESPONSE_HEADER = {
  [FRESHNESS_HEADER]: {
    description: 'Freshness of the data served: `batchId=<id>; ingestedAt=<ISO 8601>; ageSeconds=<n>` (absent before the first staged batch).',
    schema: z.string(),
  },
};
