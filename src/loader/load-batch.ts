// The batch loader: the ETL's last step (gold → staging). Checks the folder, then streams the six
// files in dependency order, validates every row against the contract, quarantines what breaks
// it, and upserts the rest chunk by chunk (one transaction per chunk) while the next chunk is
// being parsed. One etl_batch row per run, with a landing and a staging stage row.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Pool, PoolConnection } from 'mysql2/promise';
import { createPool } from '../db/client.js';
import { migrationState } from '../db/migrate.js';
import { parseIsoInstant } from '../http/timestamps.js';
import { uuidv7 } from './batch-id.js';
import { DEFAULT_STALL_TIMEOUT_MS, dropConnection, LoadInterruptedError, startHeartbeat, type Heartbeat } from './heartbeat.js';
import {
  FILES,
  HEADERS,
  KEY_OF,
  LOAD_ORDER,
  validateRecord,
  type FileKind,
  type ItemRow,
  type OrderRow,
  type ProductRow,
  type RowsByKind,
} from './contract.js';
import { readCsv, readHeader } from './read.js';
import {
  countWritten,
  failBatch,
  type FailedBatchCounts,
  fillCalendarYears,
  findItemReferenceProblems,
  finishStage,
  insertBatch,
  insertRejected,
  newerLoadExists,
  prepareConnection,
  propagateTranslations,
  readTranslations,
  markSummaryForRecategorizedProducts,
  markSummaryForStagedItems,
  holdBatchLock,
  isRetryable,
  MAX_ATTEMPTS,
  recomputeDailySummary,
  refreshWideForItems,
  setBatchStatus,
  sqlTimestamp,
  staleKeys,
  stageCustomers,
  stageItems,
  stageOrders,
  stageProducts,
  startStage,
  updateWideCustomers,
  updateWideProducts,
  upsertCustomers,
  upsertItems,
  upsertOrders,
  upsertProducts,
  upsertSellers,
  upsertTranslations,
  withRetriedTransaction,
  withTransaction,
  type RejectedRow,
  type StagingMethod,
} from './upsert.js';

export type FileName = (typeof FILES)[FileKind];

export interface LoadOptions {
  databaseUrl: string;
  dir: string;
  /** Free text naming the origin; default `olist-csv:<basename of dir>`. */
  source?: string;
  /** The batch's ingestion timestamp (etl_batch.created_at); default now. */
  ingestedAt?: Date | string;
  /** Valid rows per chunk (split over the writers, one transaction each); default 10,000. */
  chunkSize?: number;
  /** Concurrent writer connections; default 4. */
  writers?: number;
  /**
   * How chunks reach the per-connection staging tables: 'load-data' (default) uses LOAD DATA
   * LOCAL INFILE and falls back to 'insert' (multi-row INSERT) when the server refuses it.
   */
  staging?: StagingMethod;
  /** Progress messages (the CLI sends them to stderr); default silent. */
  log?: (message: string) => void;
  /** Aborts the load (the CLI's SIGINT/SIGTERM): the batch is marked failed, as on any error. */
  signal?: AbortSignal;
  /**
   * How long the database may leave a ping unanswered before the load gives up on it (a paused
   * server, a network black hole); default 30 s.
   */
  stallTimeoutMs?: number;
}

export interface FileSummary {
  /** Data rows read (header excluded). */
  read: number;
  /** Distinct rows this batch wrote to the file's table. */
  loaded: number;
  /** Rows quarantined in etl_rejected_row (contract or reference broken). */
  rejected: number;
  /** Valid rows superseded by a later row with the same key in the batch. */
  duplicates: number;
  /** Valid rows not applied because a newer batch had already written their key (a batch loaded out of order). */
  stale: number;
}

export interface LoadSummary {
  batchId: string;
  status: 'succeeded';
  files: Record<FileName, FileSummary>;
  durationMs: number;
}

/**
 * An expected failure. `input`: the folder is unusable (missing file, wrong header, bad option);
 * nothing was written. `failed`: the batch started and was marked failed.
 */
export class LoadError extends Error {
  override readonly name = 'LoadError';
  constructor(
    message: string,
    readonly kind: 'input' | 'failed',
    readonly batchId?: string,
  ) {
    super(message);
  }
}

const DEFAULT_CHUNK_SIZE = 10_000;
const MAX_CHUNK_SIZE = 50_000;
/** Chunks queued for writing while the next one is parsed: bounds memory. */
const MAX_PENDING_WRITES = 2;
const DEFAULT_WRITERS = 4;
/** Rows parsed between two yields to the event loop (see loadFile). */
const YIELD_EVERY_ROWS = 500;

/** Checks that every file exists and carries exactly its expected header; returns problems. */
export async function checkFolder(dir: string): Promise<string[]> {
  try {
    const info = await stat(dir);
    if (!info.isDirectory()) return [`${dir}: not a directory`];
  } catch {
    return [`${dir}: folder not found`];
  }
  const problems: string[] = [];
  for (const kind of LOAD_ORDER) {
    const name = FILES[kind];
    const file = path.join(dir, name);
    try {
      const info = await stat(file);
      if (!info.isFile()) {
        problems.push(`${name}: not a regular file`);
        continue;
      }
    } catch (error) {
      const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
      problems.push(code === 'ENOENT' ? `${name}: file missing in ${dir}` : `${name}: cannot be read (${code || 'unknown error'})`);
      continue;
    }
    let header: Awaited<ReturnType<typeof readHeader>>;
    try {
      header = await readHeader(file);
    } catch (error) {
      // Not readable by this user (EACCES), or a header line that is not CSV (an unclosed quote).
      const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
      const reason = code.startsWith('CSV_') ? `the header line is not CSV (${error instanceof Error ? error.message : String(error)})` : `cannot be read (${code || 'unknown error'})`;
      problems.push(`${name}: ${reason}`);
      continue;
    }
    const { fields: found, loneCarriageReturn, notText } = header;
    const expected: readonly string[] = HEADERS[kind];
    if (notText !== undefined) {
      problems.push(`${name}: the file is ${notText}, not UTF-8 CSV text`);
    } else if (loneCarriageReturn) {
      problems.push(`${name}: line ends must be \\n or \\r\\n; the header line holds a carriage return alone (a file with \\r line ends?)`);
    } else if (found.length !== expected.length || found.some((field, i) => field !== expected[i])) {
      problems.push(
        `${name}: unexpected header: expected "${expected.join(',')}", found "${found.length === 0 ? '(empty)' : printable(found.join(','))}"`,
      );
    }
  }
  return problems;
}

const SHOWN_HEADER_CHARS = 300;

/**
 * A header as a message may show it: control and invisible characters (a second BOM, NUL, ESC)
 * escaped, so that it neither garbles a terminal nor looks like the expected one; cut to a line.
 */
function printable(text: string): string {
  const characters = [...text];
  const shown = characters.length > SHOWN_HEADER_CHARS ? characters.slice(0, SHOWN_HEADER_CHARS).join('') : text;
  const escaped = shown.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
  return characters.length > SHOWN_HEADER_CHARS ? `${escaped}… (${characters.length} characters)` : escaped;
}

/** Runs write tasks one after the other on one connection, at most `limit` queued at a time. */
class SerialWriter {
  private tail: Promise<void> = Promise.resolve();
  private readonly inflight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly conn: PoolConnection,
    private readonly limit: number,
  ) {}

  async push(task: (conn: PoolConnection) => Promise<void>): Promise<void> {
    this.throwIfFailed();
    while (this.inflight.size >= this.limit) {
      await Promise.race(this.inflight);
      this.throwIfFailed();
    }
    const run = this.tail
      .then(async () => {
        if (this.failure === undefined) await task(this.conn);
      })
      .catch((error: unknown) => {
        this.failure ??= { error };
      });
    this.tail = run;
    this.inflight.add(run);
    void run.then(() => this.inflight.delete(run));
  }

  async drain(): Promise<void> {
    await this.tail;
    this.throwIfFailed();
  }

  /**
   * Skips every task not yet started and waits for the running one to end (its transaction
   * committed or rolled back): only then may the connection go back to the pool, where the
   * batch's own bookkeeping would otherwise run inside a writer's open transaction.
   */
  async stop(): Promise<void> {
    this.failure ??= { error: new Error('writer stopped') };
    await this.tail;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure.error;
  }
}

/**
 * One SerialWriter per connection; a row goes to the partition of its key's hash, so the
 * chunks holding a given key are always written in file order by the same connection (the last
 * occurrence wins) while different keys are written concurrently.
 */
class PartitionedWriter {
  constructor(readonly partitions: SerialWriter[]) {}

  async drain(): Promise<void> {
    for (const writer of this.partitions) await writer.drain();
  }

  async stop(): Promise<void> {
    await Promise.all(this.partitions.map((writer) => writer.stop()));
  }
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Key ranges, not a hash: the ids are random hex, so the first two hex digits split them evenly,
 * and each writer then inserts into its own contiguous stretch of every key-ordered index. With a
 * hash, the writers' sorted rows interleave across the whole index, and the gap locks InnoDB
 * takes for duplicate-key checks (even in READ COMMITTED) put every writer in every other's way:
 * re-running a batch over existing rows then deadlocked chunk after chunk.
 */
export function partitionOf(key: string, partitions: number): number {
  if (/^[0-9a-f]{2}/.test(key)) return Math.floor((Number.parseInt(key.slice(0, 2), 16) * partitions) / 256);
  // Not an id (a category name of the translations file): any stable spread will do.
  let hash = 0;
  for (let i = 0; i < key.length; i += 1) hash = (hash * 31 + key.charCodeAt(i)) | 0;
  return (hash >>> 0) % partitions;
}

interface FileStats {
  read: number;
  valid: number;
  contractRejected: number;
  referenceRejected: number;
  /** Rows written by the chunks committed so far (what a failed batch reports as staged). */
  committed: number;
  /** Valid rows whose key a newer batch had already written: not applied (the newest batch wins). */
  stale: number;
}

const newFileStats = (): FileStats => ({ read: 0, valid: 0, contractRejected: 0, referenceRejected: 0, committed: 0, stale: 0 });

/** A valid row with where it came from, so that a later (reference) reject can quote it. */
export interface SourcedRow<T> {
  row: T;
  line: number;
  /** The record's text as read. */
  raw: string;
  /**
   * The valid row this one superseded (same key, earlier in the same chunk): what the key keeps
   * if this one is refused on its references, so that the last *valid* occurrence wins whatever
   * the chunk boundaries (across chunks, the earlier one is already written).
   */
  earlier?: SourcedRow<T>;
}

interface ChunkResult {
  /** Rows rejected on references, quarantined in the same transaction. */
  refused?: RejectedRow[];
  /** Runs once the transaction committed. */
  committed?: () => void;
}

/** Writes one partition of a chunk inside its transaction. Must be safe to retry. */
type ChunkWriter<K extends FileKind> = (
  conn: PoolConnection,
  rows: SourcedRow<RowsByKind[K]>[],
  partition: number,
) => Promise<ChunkResult | void>;

interface Context {
  signal: AbortSignal | undefined;
  batchId: string;
  dir: string;
  chunkSize: number;
  writer: PartitionedWriter;
  log: (message: string) => void;
  /** Each file's counts, from its first row on: a failed batch still reports how far it got. */
  stats: Map<FileKind, FileStats>;
  /** Whether a load newer than this batch exists (then rows of this one may be stale); true stays true. */
  newerLoadExists: (conn: PoolConnection) => Promise<boolean>;
}

async function loadFile<K extends FileKind>(
  ctx: Context,
  kind: K,
  writeChunk: ChunkWriter<K>,
  partitionKey: (row: RowsByKind[K]) => string = KEY_OF[kind] as (row: RowsByKind[K]) => string,
): Promise<void> {
  const name = FILES[kind];
  const stats = newFileStats();
  ctx.stats.set(kind, stats);
  const keyOf = KEY_OF[kind] as (row: RowsByKind[K]) => string;
  const partitions = ctx.writer.partitions;
  const started = Date.now();
  let rows = new Map<string, SourcedRow<RowsByKind[K]>>();
  let superseded = 0; // rows kept as `earlier` of another: they count towards the chunk's size
  let rejected: RejectedRow[] = [];
  let writeMs = 0; // time spent in transactions, summed over writers
  let blockedMs = 0; // time the parser waited for a free writer slot

  const flush = async (): Promise<void> => {
    if (rows.size === 0 && rejected.length === 0) return;
    const parts: SourcedRow<RowsByKind[K]>[][] = partitions.map(() => []);
    for (const entry of rows.values()) parts[partitionOf(partitionKey(entry.row), partitions.length)]?.push(entry);
    // Key order inside a statement: neighbouring rows land on the same B-tree pages.
    for (const part of parts) part.sort((a, b) => compareKeys(keyOf(a.row), keyOf(b.row)));
    const chunkRejected = rejected;
    rows = new Map();
    superseded = 0;
    rejected = [];
    for (let p = 0; p < partitions.length; p += 1) {
      const partRows = parts[p] ?? [];
      // Contract rejects ride with the first partition.
      const partRejected = p === 0 ? chunkRejected : [];
      if (partRows.length === 0 && partRejected.length === 0) continue;
      const waitStart = performance.now();
      await partitions[p]?.push(async (conn) => {
        const taskStart = performance.now();
        for (let attempt = 1; ; attempt += 1) {
          try {
            // Rows and their quarantine commit together: a chunk is all or nothing.
            const { result, staleRows, staleStaged } = await withTransaction(conn, async () => {
              // Counted before the upsert, which leaves these rows as the newer batch wrote them.
              const stale =
                partRows.length > 0 && (await ctx.newerLoadExists(conn))
                  ? await staleKeys(conn, kind, ctx.batchId, partRows.map((r) => r.row))
                  : undefined;
              // Every occurrence of a stale key is stale, the ones it superseded in this chunk
              // included, so that the count does not depend on where chunks split.
              let staleRows = 0;
              let staleStaged = 0;
              for (const entry of partRows) {
                if (stale?.has(keyOf(entry.row)) !== true) continue;
                staleStaged += 1;
                for (let occurrence: SourcedRow<RowsByKind[K]> | undefined = entry; occurrence !== undefined; occurrence = occurrence.earlier) staleRows += 1;
              }
              const written = partRows.length > 0 ? await writeChunk(conn, partRows, p) : undefined;
              await insertRejected(conn, ctx.batchId, [...partRejected, ...(written?.refused ?? [])]);
              return { result: written, staleRows, staleStaged };
            });
            stats.referenceRejected += result?.refused?.length ?? 0;
            stats.stale += staleRows;
            stats.committed += partRows.length - (result?.refused?.length ?? 0) - staleStaged;
            result?.committed?.();
            writeMs += performance.now() - taskStart;
            return;
          } catch (error) {
            if (!isRetryable(error) || attempt >= MAX_ATTEMPTS) throw error;
            ctx.log(`${name}: ${error instanceof Error ? error.message : 'lock conflict'}; retrying chunk (attempt ${attempt + 1})`);
            // Writers that deadlocked once collide again if they retry in lockstep: back off
            // with jitter (reliability: a rerun after a crash upserts existing rows, and those
            // take next-key locks that make deadlocks between writers frequent).
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * 2 ** attempt));
          }
        }
      });
      blockedMs += performance.now() - waitStart;
    }
  };

  for await (const { line, record, malformed, raw } of readCsv(path.join(ctx.dir, name))) {
    if (ctx.signal?.aborted === true) throw new Error(`interrupted (${String(ctx.signal.reason)})`);
    stats.read += 1;
    const result = malformed === undefined ? validateRecord(kind, record) : ({ ok: false, reason: `malformed CSV: ${malformed}` } as const);
    if (result.ok) {
      stats.valid += 1;
      // Same key twice: the later occurrence replaces the earlier one.
      const key = keyOf(result.row);
      const earlier = rows.get(key);
      if (earlier === undefined) {
        rows.set(key, { row: result.row, line, raw });
      } else {
        rows.set(key, { row: result.row, line, raw, earlier });
        superseded += 1;
      }
    } else {
      stats.contractRejected += 1;
      rejected.push({ file: name, line, reason: result.reason, raw });
    }
    if (rows.size + superseded + rejected.length >= ctx.chunkSize) await flush();
    // Records already buffered by the parser come out of the async iterator in microtasks, so a
    // whole read buffer (thousands of rows) would be processed before any database reply is
    // handled: writers would sit idle with a finished statement. Yield to the event loop now
    // and then so that replies are read and the next statement of each writer is sent.
    if (stats.read % YIELD_EVERY_ROWS === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await flush();
  const seconds = (Date.now() - started) / 1000;
  ctx.log(
    `${name}: read ${stats.read}, contract rejects ${stats.contractRejected} in ${seconds.toFixed(2)} s ` +
      `(${Math.round(stats.read / Math.max(seconds, 0.001))} rows/s; writers busy ${Math.round(writeMs)} ms, parser blocked ${Math.round(blockedMs)} ms)`,
  );
}

/** propagateTranslations over `categories`, in transactions of bounded size, retried on lock conflicts; the products renamed. */
async function renameTranslatedProducts(conn: PoolConnection | undefined, batchId: string, categories: readonly string[]): Promise<number> {
  if (conn === undefined || categories.length === 0) return 0;
  let renamed = 0;
  for (let i = 0; i < categories.length; i += 1000) {
    const slice = categories.slice(i, i + 1000);
    renamed += await withRetriedTransaction(conn, () => propagateTranslations(conn, batchId, 0, slice));
  }
  return renamed;
}

/** The stage counts of a batch that failed: what was read, checked and committed before it stopped. */
function countsSoFar(stats: ReadonlyMap<FileKind, FileStats>): FailedBatchCounts {
  const counts: FailedBatchCounts = {
    landing: { rowsIn: 0, rowsOut: 0, rowsRejected: 0 },
    staging: { rowsIn: 0, rowsOut: 0, rowsRejected: 0 },
  };
  for (const s of stats.values()) {
    counts.landing.rowsIn += s.read;
    counts.landing.rowsOut += s.valid;
    counts.landing.rowsRejected += s.contractRejected;
    counts.staging.rowsIn += s.valid;
    counts.staging.rowsOut += s.committed;
    counts.staging.rowsRejected += s.referenceRejected;
  }
  return counts;
}

/** How far ahead of this machine's clock an ingestion timestamp may be (clocks of two hosts). */
const INGESTED_AT_MAX_AHEAD_MS = 5 * 60_000;

/**
 * The batch's ingestion time: an ISO 8601 instant (no offset means UTC, as in the API), not
 * before 1970 (batch ids are UUIDv7 of it and sort by it) and not in the future: upserts keep
 * the newest batch's values, so a batch dated ahead would turn every later load into a no-op.
 */
function parseIngestedAt(value: Date | string | undefined, now: number): Date {
  if (value === undefined) return new Date(now);
  const ms = value instanceof Date ? value.getTime() : parseIsoInstant(value);
  const shown = value instanceof Date ? (Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString()) : value;
  if (ms === null || Number.isNaN(ms)) {
    throw new LoadError(`invalid ingestion timestamp "${shown}": expected an ISO 8601 date or date-time such as 2024-05-01 or 2024-05-01T10:00:00Z`, 'input');
  }
  if (ms < 0 || ms > now + INGESTED_AT_MAX_AHEAD_MS) {
    throw new LoadError(`invalid ingestion timestamp "${shown}": must be between 1970-01-01T00:00:00Z and now`, 'input');
  }
  return new Date(ms);
}

export async function loadBatch(options: LoadOptions): Promise<LoadSummary> {
  const began = Date.now();
  const log = options.log ?? (() => undefined);
  const dir = path.resolve(options.dir);
  const ingestedAt = parseIngestedAt(options.ingestedAt, began);
  // Characters, not UTF-16 units: the column holds 128 characters. The default is cut to fit.
  const source = options.source ?? [...`olist-csv:${path.basename(dir)}`].slice(0, 128).join('');
  const sourceLength = [...source].length;
  if (sourceLength === 0 || sourceLength > 128) {
    throw new LoadError(`invalid source "${source}": 1 to 128 characters`, 'input');
  }
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new LoadError(`invalid chunk size ${chunkSize}: an integer from 1 to ${MAX_CHUNK_SIZE}`, 'input');
  }

  // Nothing is written before the whole folder is known to be readable.
  const problems = await checkFolder(dir);
  if (problems.length > 0) {
    throw new LoadError(`folder rejected, nothing loaded:\n  ${problems.join('\n  ')}`, 'input');
  }

  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  if (!Number.isInteger(stallTimeoutMs) || stallTimeoutMs < 100) {
    throw new LoadError(`invalid stall timeout ${stallTimeoutMs} ms: an integer of at least 100`, 'input');
  }

  const writers = options.writers ?? DEFAULT_WRITERS;
  // Writers, one connection for bookkeeping, one that holds the batch's liveness lock.
  const pool: Pool = createPool(options.databaseUrl, { connectionLimit: writers + 2 });
  // Every connection the pool opens: what an interrupted load drops. Bookkeeping goes through the
  // pool (an idle connection the server closed is replaced there), so no list of held ones would do.
  const opened = new Set<unknown>();
  pool.on('connection', (connection) => opened.add(connection));
  const batchId = uuidv7(ingestedAt.getTime(), began);
  let batchStarted = false;
  let liveness: PoolConnection | undefined;
  let heartbeat: Heartbeat | undefined;
  let interrupted: LoadInterruptedError | undefined;
  const stats = new Map<FileKind, FileStats>();
  try {
    // A database an older (or no) migration left would take the rows under other rules (case-
    // folding category keys, a TEXT quarantine): refused before anything is written.
    const { applied, expected } = await migrationState(pool);
    if (applied < expected) {
      throw new LoadError(
        `the database is not migrated to this version (${applied} of ${expected} migrations applied): run npm run db:migrate`,
        'input',
      );
    }
    const startedAt = sqlTimestamp(new Date());
    liveness = await pool.getConnection();
    await holdBatchLock(liveness, batchId);
    heartbeat = startHeartbeat(liveness, stallTimeoutMs, (error) => {
      interrupted = error;
      log(error.message);
      // Dropped, every statement waiting on them fails at once, and the batch with them.
      for (const connection of opened) dropConnection(connection, error);
    });
    await insertBatch(pool, { batchId, source, createdAt: sqlTimestamp(ingestedAt) });
    batchStarted = true;
    await startStage(pool, { batchId, stage: 'landing', startedAt });
    await startStage(pool, { batchId, stage: 'staging', startedAt });
    log(`batch ${batchId} started (source ${source})`);

    const conns: PoolConnection[] = [];
    let writer: PartitionedWriter | undefined;
    try {
      let staging: StagingMethod = options.staging ?? 'load-data';
      for (let i = 0; i < writers; i += 1) {
        const conn = await pool.getConnection();
        conns.push(conn);
        // The first connection finds out whether the server accepts LOAD DATA LOCAL; the others follow.
        staging = await prepareConnection(conn, staging);
      }
      log(`staging tables filled with ${staging === 'load-data' ? 'LOAD DATA LOCAL INFILE' : 'multi-row INSERT (LOAD DATA LOCAL refused or not asked for)'}`);
      writer = new PartitionedWriter(conns.map((c) => new SerialWriter(c, MAX_PENDING_WRITES)));
      let newerLoadSeen = false;
      const newerLoadExistsOnce = async (conn: PoolConnection): Promise<boolean> => (newerLoadSeen ||= await newerLoadExists(conn, batchId));
      const ctx: Context = { signal: options.signal, batchId, dir, chunkSize, writer, log, stats, newerLoadExists: newerLoadExistsOnce };

      // The categories this batch translated: stored products of those categories take the new
      // English name once this batch's own products are written (below).
      const translatedCategories = new Set<string>();
      await loadFile(
        ctx,
        'translation',
        async (c, rows) => {
          await upsertTranslations(c, batchId, rows.map((r) => r.row));
          return { committed: () => rows.forEach((r) => translatedCategories.add(r.row.categoryName)) };
        },
        // Tens of rows: one writer, so translation chunks never deadlock each other.
        () => '',
      );
      await ctx.writer.drain();
      // The translations of this batch are committed (drained): products look them up. No other
      // drain is needed before the products, whose chunks then overlap the customers' last ones.
      const translations = await readTranslations(pool);
      await loadFile(ctx, 'sellers', async (c, rows) => {
        await upsertSellers(c, batchId, rows.map((r) => r.row));
      });
      await loadFile(ctx, 'customers', async (c, rows) => {
        await stageCustomers(c, staging, rows.map((r) => r.row));
        await upsertCustomers(c, batchId);
        await updateWideCustomers(c);
      });

      await loadFile(ctx, 'products', async (c, rows: SourcedRow<ProductRow>[], partition) => {
        await stageProducts(
          c,
          staging,
          rows.map(({ row: r }) => ({
            ...r,
            categoryNameEnglish: r.categoryName === null ? null : (translations.get(r.categoryName) ?? null),
          })),
        );
        await upsertProducts(c, batchId);
        await markSummaryForRecategorizedProducts(c, batchId, partition);
        await updateWideProducts(c);
      });
      // Products already stored take this batch's new translations, after this batch's own
      // products are written (those got their English name from the translations above): what is
      // renamed here is only what the products file did not rewrite, so the file's count of rows
      // it wrote stays its own. Before the items, whose wide rows copy the English name.
      await ctx.writer.drain();
      const renamedProducts = await renameTranslatedProducts(conns[0], batchId, [...translatedCategories]);
      if (renamedProducts > 0) log(`${renamedProducts} stored product(s) renamed by this batch's translations`);

      // dim_date: a chunk fills the calendar years its dates fall in, in its own transaction, so
      // that a committed order or item always finds its days; a year is filled once per batch.
      const calendarYearsCommitted = new Set<number>();
      const newYears = (years: Set<number>, timestamp: string | null): void => {
        if (timestamp === null) return;
        const year = Number(timestamp.slice(0, 4));
        if (!calendarYearsCommitted.has(year)) years.add(year);
      };
      const fillCalendar = async (c: PoolConnection, years: Set<number>): Promise<() => void> => {
        const filled = await fillCalendarYears(c, batchId, years);
        return () => {
          // Writers that meet a new year at once each fill it (the later ones' rows are no-ops): logged once.
          const first = filled.filter((year) => !calendarYearsCommitted.has(year));
          if (first.length > 0) log(`dim_date: calendar year(s) ${first.join(', ')} filled`);
          years.forEach((year) => calendarYearsCommitted.add(year));
        };
      };
      await loadFile(
        ctx,
        'orders',
        async (c, rows: SourcedRow<OrderRow>[], partition) => {
          const years = new Set<number>();
          for (const { row } of rows) {
            newYears(years, row.purchasedAt);
            newYears(years, row.approvedAt);
            newYears(years, row.deliveredCarrierAt);
            newYears(years, row.deliveredCustomerAt);
            newYears(years, row.estimatedDeliveryAt);
          }
          const calendarCommitted = await fillCalendar(c, years);
          await stageOrders(c, staging, rows.map((r) => r.row));
          await upsertOrders(c, batchId, partition);
          return { committed: calendarCommitted };
        },
        (row) => row.orderId,
      );
      // Items check their order and seller in the database: every order and seller chunk is
      // committed (drained) before the first item chunk is parsed.
      await ctx.writer.drain();
      await loadFile(
        ctx,
        'items',
        async (c, rows: SourcedRow<ItemRow>[], partition) => {
          const years = new Set<number>();
          for (const { row } of rows) newYears(years, row.shippingLimitAt);
          const calendarCommitted = await fillCalendar(c, years);
          // Items whose order or seller is missing are left out by the upsert's joins. Only when
          // some were (rare) are they looked for, set-based (only those rows come back), and
          // quarantined; the staging table is refilled without them (and with the valid row each
          // superseded in this chunk, if any) and the upsert runs again: an order or seller
          // committed by a concurrent load in between is then either seen missing (the item
          // quarantined, not written) or present (written), never neither. Orders and sellers
          // are never deleted.
          const refused: RejectedRow[] = [];
          let staged = rows;
          await stageItems(c, staging, staged);
          let { selected } = await upsertItems(c, batchId);
          let mayHaveProblems = selected !== staged.length;
          while (mayHaveProblems) {
            const problems = await findItemReferenceProblems(c);
            if (problems.length === 0) break;
            const byLine = new Map(staged.map((r) => [r.line, r]));
            const refusedLines = new Set<number>();
            const fallbacks: SourcedRow<ItemRow>[] = [];
            for (const { line, unknownOrder, unknownSeller } of problems) {
              const item = byLine.get(line);
              if (item === undefined) continue;
              const reasons: string[] = [];
              if (unknownOrder) {
                reasons.push(`order_id: unknown order, neither in this batch nor in the database (got "${item.row.orderId}")`);
              }
              if (unknownSeller) {
                reasons.push(`seller_id: unknown seller, neither in this batch nor in the database (got "${item.row.sellerId}")`);
              }
              refused.push({ file: FILES.items, line, reason: reasons.join('; '), raw: item.raw });
              refusedLines.add(line);
              if (item.earlier !== undefined) fallbacks.push(item.earlier);
            }
            staged = [...staged.filter((r) => !refusedLines.has(r.line)), ...fallbacks];
            await stageItems(c, staging, staged);
            ({ selected } = await upsertItems(c, batchId));
            // Only a fallback can be refused now (every other staged item was just upserted).
            mayHaveProblems = fallbacks.length > 0 && selected !== staged.length;
          }
          // The day totals the items change, recomputed when the batch ends.
          await markSummaryForStagedItems(c, batchId, partition);
          await refreshWideForItems(c);
          return { refused, committed: calendarCommitted };
        },
        // Same partition as the item's order: its purchased_at re-alignment runs on that writer.
        (row) => row.orderId,
      );
      const landingFinishedAt = sqlTimestamp(new Date());
      await ctx.writer.drain();
      // Every chunk is committed: the day totals the batch touched can be recomputed once.
      const summaryStarted = performance.now();
      const { batches, pairs } = await recomputeDailySummary(conns, batchId);
      log(`daily summary: ${pairs} (seller, day) pairs of ${batches} batch(es) recomputed in ${Math.round(performance.now() - summaryStarted)} ms`);

      const files = {} as Record<FileName, FileSummary>;
      let landingIn = 0;
      let landingOut = 0;
      let landingRejected = 0;
      let stagingOut = 0;
      let stagingRejected = 0;
      for (const kind of LOAD_ORDER) {
        const s = stats.get(kind) ?? newFileStats();
        const written = await countWritten(pool, kind, batchId);
        // Products renamed by a translation carry this batch's id but were not in its products file.
        const loaded = kind === 'products' ? written - renamedProducts : written;
        files[FILES[kind]] = {
          read: s.read,
          loaded,
          rejected: s.contractRejected + s.referenceRejected,
          duplicates: s.valid - s.referenceRejected - s.stale - loaded,
          stale: s.stale,
        };
        landingIn += s.read;
        landingOut += s.valid;
        landingRejected += s.contractRejected;
        stagingOut += loaded;
        stagingRejected += s.referenceRejected;
      }
      await finishStage(pool, {
        batchId,
        stage: 'landing',
        finishedAt: landingFinishedAt,
        status: 'succeeded',
        rowsIn: landingIn,
        rowsOut: landingOut,
        rowsRejected: landingRejected,
      });
      await finishStage(pool, {
        batchId,
        stage: 'staging',
        finishedAt: sqlTimestamp(new Date()),
        status: 'succeeded',
        rowsIn: landingOut,
        rowsOut: stagingOut,
        rowsRejected: stagingRejected,
      });
      await setBatchStatus(pool, batchId, 'succeeded');
      const summary: LoadSummary = { batchId, status: 'succeeded', files, durationMs: Date.now() - began };
      log(`batch ${batchId} succeeded in ${summary.durationMs} ms`);
      return summary;
    } finally {
      // After a failure the other writers may still hold chunks: none may start, and a running
      // one must end before its connection is released (and the batch marked failed).
      await writer?.stop();
      for (const conn of conns) conn.release();
    }
  } catch (error) {
    if (error instanceof LoadError) throw error;
    // An interrupted load fails its statements with the interruption, or with "connection closed".
    const cause = interrupted ?? error;
    const message = cause instanceof Error ? cause.message : String(cause);
    if (batchStarted) {
      // The original error is what the caller must see; a failure to record it is logged.
      await failBatch(pool, batchId, sqlTimestamp(new Date()), countsSoFar(stats)).catch((recordError: unknown) => {
        log(`could not mark batch ${batchId} failed: ${recordError instanceof Error ? recordError.message : String(recordError)}`);
      });
      throw new LoadError(`batch ${batchId} failed: ${message}`, 'failed', batchId);
    }
    throw new LoadError(`cannot start the batch: ${message}`, 'failed');
  } finally {
    heartbeat?.stop();
    liveness?.release();
    // Closing the connections of a server that just died can fail (ECONNRESET), and those of a
    // server that stopped answering never close; neither may replace the batch's outcome, already
    // decided and recorded above, nor hold the caller.
    let closing: NodeJS.Timeout | undefined;
    await Promise.race([
      pool.end(),
      new Promise<void>((resolve) => {
        closing = setTimeout(resolve, Math.min(stallTimeoutMs, 5_000));
        closing.unref();
      }),
    ])
      .catch((error: unknown) => {
        log(`closing the database connections: ${error instanceof Error ? error.message : String(error)}`);
      })
      .finally(() => clearTimeout(closing));
  }
}
