// The rejected-row totals per stage, as the monitoring table holds them, without re-reading the
// whole history on every refresh: summing every stage row took seconds past a few hundred
// thousand batches and then failed the statement budget on every tick.
//
// The first read sums the whole table once, in primary-key chunks. After that only the stage rows
// of the newest batches (RECENT_BATCHES) are read: a row that leaves that window keeps the value it
// had when it was last seen, and so does a row that is deleted (pruning the monitoring table never
// takes a counter back). A change to a stage of a batch older than the window, after start-up, is
// not seen until the process restarts.
import type { PipelineStage } from '../../db/schema.js';
import type { Database } from '../../db/database.js';
import { recentRejectedRows, rejectedRowsAfter } from './repository.js';

export class RejectedRowsTally {
  /** Per stage, the rejected rows of every stage row outside the window. */
  #settled = new Map<PipelineStage, number>();
  /** `batch_id|stage` → the row's rejected count as last read, for the rows inside the window. */
  #window = new Map<string, { stage: PipelineStage; rejected: number }>();
  #started = false;
  /** The first full sum, shared by refreshes that overlap it (it can take seconds). */
  #starting: Promise<void> | undefined;

  constructor(private readonly db: Database) {}

  /** Per stage, the total rejected rows. */
  async totals(): Promise<Map<PipelineStage, number>> {
    if (!this.#started) {
      this.#starting ??= this.#start().finally(() => {
        this.#starting = undefined;
      });
      await this.#starting;
    } else {
      this.#slide(await this.#readWindow());
    }
    const totals = new Map(this.#settled);
    for (const { stage, rejected } of this.#window.values()) totals.set(stage, (totals.get(stage) ?? 0) + rejected);
    return totals;
  }

  // The whole sum first, then the window: a row that grows in between is counted low by that
  // growth (never high), and a counter must never count a row twice.
  async #start(): Promise<void> {
    const whole = new Map<PipelineStage, number>();
    let after: string | null = null;
    do {
      const chunk = await rejectedRowsAfter(this.db, after);
      for (const row of chunk.totals) whole.set(row.stage, (whole.get(row.stage) ?? 0) + Number(row.total));
      after = chunk.next;
    } while (after !== null);
    const window = await this.#readWindow();
    for (const { stage, rejected } of window.values()) whole.set(stage, (whole.get(stage) ?? 0) - rejected);
    for (const [stage, total] of whole) whole.set(stage, Math.max(0, total));
    this.#settled = whole;
    this.#window = window;
    this.#started = true;
  }

  #slide(next: Map<string, { stage: PipelineStage; rejected: number }>): void {
    for (const [key, { stage, rejected }] of this.#window) {
      if (!next.has(key)) this.#settled.set(stage, (this.#settled.get(stage) ?? 0) + rejected);
    }
    this.#window = next;
  }

  async #readWindow(): Promise<Map<string, { stage: PipelineStage; rejected: number }>> {
    const rows = await recentRejectedRows(this.db);
    return new Map(rows.map((row) => [`${row.batch_id}|${row.stage}`, { stage: row.stage, rejected: Number(row.rows_rejected) }]));
  }
}
