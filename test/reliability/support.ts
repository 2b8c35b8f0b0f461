// Shared pieces of the reliability tests: timed requests, problem+json checks, polling.
import type { FastifyInstance } from 'fastify';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { expect } from 'vitest';
import { bearer, mintToken } from '../helpers/tokens.js';

export interface Timed {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
  ms: number;
}

export async function timedInject(app: FastifyInstance, url: string, sellerId?: string): Promise<Timed> {
  const started = performance.now();
  const response = await app.inject({
    method: 'GET',
    url,
    headers: sellerId === undefined ? {} : bearer(mintToken({ sellerId })),
  });
  return { status: response.statusCode, headers: response.headers, body: response.body, ms: performance.now() - started };
}

/** The same request over a real socket: what the server's own handler (and its gate) sees. */
export async function timedFetch(baseUrl: string, url: string, sellerId?: string): Promise<Timed> {
  const started = performance.now();
  const response = await fetch(`${baseUrl}${url}`, { headers: sellerId === undefined ? {} : bearer(mintToken({ sellerId })) });
  const body = await response.text();
  return { status: response.status, headers: Object.fromEntries(response.headers), body, ms: performance.now() - started };
}

/** 503 (or 504) problem+json with a Retry-After a client can act on. */
export function expectUnavailable(response: Timed): void {
  expect([503, 504], `status ${response.status}: ${response.body}`).toContain(response.status);
  expect(String(response.headers['content-type'])).toMatch(/^application\/problem\+json/);
  expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
  const problem = JSON.parse(response.body) as { status: number; title: string; detail: string };
  expect(problem.status).toBe(response.status);
}

/**
 * Holds every table an order-item read can come from (the star tables or the order_item_wide
 * read model, whichever the server is configured to read), so the next read waits on the lock.
 */
export const LOCK_ITEM_TABLES = 'LOCK TABLES fact_order_item WRITE, order_item_wide WRITE, order_item_daily_summary WRITE';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns true; returns the milliseconds it took, or throws after `timeoutMs`. */
export async function waitUntil(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await probe().catch(() => false)) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

export interface ProcessRow {
  Id: number;
  db: string | null;
  Command: string;
  Time: number;
  State: string | null;
  Info: string | null;
}

/** Server threads working in `database`, the asking connection excluded. */
export async function sessionsOn(admin: Connection, database: string): Promise<ProcessRow[]> {
  const [rows] = await admin.query<(RowDataPacket & ProcessRow)[]>(
    'SELECT ID AS Id, DB AS db, COMMAND AS Command, TIME AS Time, STATE AS State, INFO AS Info FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
    [database],
  );
  return rows;
}
