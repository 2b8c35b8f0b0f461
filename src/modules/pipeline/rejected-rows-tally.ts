// The rejected-row totals per stage, as the monitoring table holds them, without re-reading the
// whole history on every refresh: summing every stage row took seconds past a few hundred
// thousand batches and then failed the statement budget on every tick.
//
// The table is split at a boundary: the RECENT_BATCHES-th newest batch (by ingestion time, then
// id). Stage rows of batches at or after it ("recent") are summed on every refresh, by an index
// range. The rest ("settled": the older batches) is summed in primary-key chunks, once at
// start-up and again every SETTLED_REFRESH_MS, when the boundary moves forward. Both sums use the
// same boundary, so no row is ever in both: the total is exact for the recent rows at every
// refresh, and for the settled ones as of their last sum (a late change to an old batch shows up
// within SETTLED_REFRESH_MS). Stage rows whose batch is not in etl_batch are in neither: that
// batch could be created later on either side of the boundary and be counted twice.
import type { PipelineStage } from '../../db/schema.js';
import type { Database } from '../../db/database.js';
import { recentBatchesBoundary, rejectedRowsFrom, settledRejectedRowsAfter, type BatchKey } from './repository.js';

/** How often the rows behind the boundary are summed again (and the boundary moves). */
export const SETTLED_REFRESH_MS = 10 * 60_000;

interface Settled {
  /** The oldest recent batch; null while there are fewer than RECENT_BATCHES batches. */
  boundary: BatchKey | null;
  totals: Map<PipelineStage, number>;
  summedAtMs: number;
}

export class RejectedRowsTally {
  #settled: Settled | undefined;
  /** The sum of the settled rows in progress, shared by refreshes that overlap it (it can take seconds). */
  #summing: Promise<Settled> | undefined;

  constructor(
    private readonly db: Database,
    private readonly now: () => number = Date.now,
  ) {}

  /** Per stage, the total rejected rows. */
  async totals(): Promise<Map<PipelineStage, number>> {
    const settled = await this.#currentSettled();
    const totals = new Map(settled.totals);
    for (const row of await rejectedRowsFrom(this.db, settled.boundary)) {
      totals.set(row.stage, (totals.get(row.stage) ?? 0) + Number(row.total));
    }
    return totals;
  }

  async #currentSettled(): Promise<Settled> {
    const settled = this.#settled;
    if (settled !== undefined && this.now() - settled.summedAtMs < SETTLED_REFRESH_MS) return settled;
    this.#summing ??= this.#sumSettled().finally(() => {
      this.#summing = undefined;
    });
    // Past the first sum, a refresh does not wait for the next one: the previous stays exact.
    if (settled !== undefined) {
      this.#summing.catch(() => undefined);
      return settled;
    }
    return this.#summing;
  }

  async #sumSettled(): Promise<Settled> {
    const boundary = await recentBatchesBoundary(this.db);
    const totals = new Map<PipelineStage, number>();
    let after: string | null = null;
    do {
      const chunk = await settledRejectedRowsAfter(this.db, boundary, after);
      for (const row of chunk.totals) totals.set(row.stage, (totals.get(row.stage) ?? 0) + Number(row.total));
      after = chunk.next;
    } while (after !== null);
    const settled = { boundary, totals, summedAtMs: this.now() };
    this.#settled = settled;
    return settled;
  }
}
