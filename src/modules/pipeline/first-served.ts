// The API's own pipeline stage: the first time this process serves data from a batch, it records
// stage `api` once, in the background. Replicas race harmlessly: the row keeps the earliest time.
import type { FastifyBaseLogger } from 'fastify';
import type { Database } from '../../db/database.js';
import { toSqlTimestamp } from '../../http/timestamps.js';
import { recordFirstServed } from './repository.js';

const REMEMBERED_BATCHES = 1000;

export class FirstServedRecorder {
  readonly #recorded = new Set<string>();
  readonly #pending = new Map<string, number>();
  #flushing: Promise<void> | undefined;

  constructor(
    private readonly db: Database,
    private readonly log: FastifyBaseLogger,
    private readonly onRecorded: (batchId: string, servedAtMs: number) => void = () => undefined,
  ) {}

  /** Cheap and synchronous on the request path: a set lookup, at most one write scheduled per batch. */
  note(batchId: string, servedAtMs: number): void {
    if (this.#recorded.has(batchId) || this.#pending.has(batchId)) return;
    this.#pending.set(batchId, servedAtMs);
    this.#flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush());
  }

  /** Resolves when every batch noted so far has been written (or has failed and been forgotten). */
  async settled(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.size > 0) {
        const [batchId, servedAtMs] = this.#pending.entries().next().value as [string, number];
        try {
          await recordFirstServed(this.db, batchId, toSqlTimestamp(servedAtMs));
          this.#remember(batchId);
          this.onRecorded(batchId, servedAtMs);
        } catch (error) {
          // Not remembered, so the next request served from this batch tries again.
          this.log.warn({ err: error, batchId }, 'could not record first-served stage');
        } finally {
          this.#pending.delete(batchId);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  #remember(batchId: string): void {
    this.#recorded.add(batchId);
    if (this.#recorded.size > REMEMBERED_BATCHES) {
      const oldest = this.#recorded.values().next().value;
      if (oldest !== undefined) this.#recorded.delete(oldest);
    }
  }
}
