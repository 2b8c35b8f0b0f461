// Keyset cursors are opaque to clients and bound to the caller and the filters that produced
// them: an edited, foreign or mismatched cursor is refused instead of silently paging elsewhere.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const MAC_BYTES = 16;

export class CursorError extends Error {
  override readonly name = 'CursorError';
}

export type CursorValue = string | number;

const FINGERPRINTS_KEPT = 1000;

export class CursorCodec {
  readonly #key: Buffer;
  // Most pages are asked with a handful of filter combinations; hashing them again for every
  // page was half of the cursor's cost.
  readonly #fingerprints = new Map<string, string>();

  constructor(secret: string | undefined) {
    this.#key =
      secret === undefined ? randomBytes(32) : createHmac('sha256', secret).update('order-items-api/cursor/v1').digest();
  }

  /** `binding` names who may use the cursor (a seller id) and `filters` the query it continues. */
  encode(binding: string, filters: string, position: readonly CursorValue[]): string {
    const payload = Buffer.from(JSON.stringify([this.#fingerprint(filters), ...position])).toString('base64url');
    return `${payload}.${this.#mac(binding, payload).toString('base64url')}`;
  }

  decode(binding: string, filters: string, cursor: string): unknown[] {
    const [payload, mac, extra] = cursor.split('.');
    if (payload === undefined || mac === undefined || extra !== undefined) throw new CursorError('is malformed');
    // Compared as text: decoding base64 first would skip foreign characters and ignore the
    // unused low bits of the last one, so several spellings of a cursor would all be valid.
    const expected = Buffer.from(this.#mac(binding, payload).toString('base64url'));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new CursorError('is not valid for this caller');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw new CursorError('is malformed');
    }
    if (!Array.isArray(parsed) || parsed.length < 1) throw new CursorError('is malformed');
    const [filterPrint, ...position] = parsed as unknown[];
    if (filterPrint !== this.#fingerprint(filters)) throw new CursorError('was issued for other filters');
    return position;
  }

  #fingerprint(filters: string): string {
    let print = this.#fingerprints.get(filters);
    if (print === undefined) {
      print = fingerprint(filters);
      if (this.#fingerprints.size >= FINGERPRINTS_KEPT) this.#fingerprints.clear();
      this.#fingerprints.set(filters, print);
    }
    return print;
  }

  #mac(binding: string, payload: string): Buffer {
    return createHmac('sha256', this.#key).update(binding).update('\0').update(payload).digest().subarray(0, MAC_BYTES);
  }
}

function fingerprint(filters: string): string {
  return createHash('sha256').update(filters).digest('base64url').slice(0, 12);
}
