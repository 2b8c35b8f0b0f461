// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, 12 + 62 random bits. Batch ids sort
// by ingestion time, which keeps etl_batch's index append-only and makes ids readable in logs.
// Upserts keep the values of the greater batch id, so between two batches with the same
// ingestion time the bits after the timestamp decide: with `startedAt`, they begin with the time
// the load started (42 bits of milliseconds, RFC 9562's "method 3"-like monotonic counter), so the
// later load wins, as it would with a later ingestion time; 32 random bits still follow.
import { randomBytes } from 'node:crypto';

export function uuidv7(now: number = Date.now(), startedAt?: number): string {
  const bytes = randomBytes(16);
  const ms = BigInt(Math.max(0, Math.floor(now)));
  for (let i = 0; i < 6; i += 1) {
    bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  }
  if (startedAt !== undefined) {
    const started = BigInt(Math.max(0, Math.floor(startedAt))) & ((1n << 42n) - 1n);
    // 12 bits in rand_a (bytes 6-7), 6 bits after the variant (byte 8), 24 bits in bytes 9-11.
    bytes[6] = Number((started >> 38n) & 0x0fn);
    bytes[7] = Number((started >> 30n) & 0xffn);
    bytes[8] = Number((started >> 24n) & 0x3fn);
    bytes[9] = Number((started >> 16n) & 0xffn);
    bytes[10] = Number((started >> 8n) & 0xffn);
    bytes[11] = Number(started & 0xffn);
  }
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70; // version 7
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // variant 10
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const UUID_V7_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
