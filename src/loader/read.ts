// Streaming CSV reading: one record at a time with its physical line number (header = line 1)
// and its raw text, whatever the size of the file. Memory stays bounded by the parser's buffer
// and the consumer's pace (async iteration applies back-pressure to the file stream).
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { parse as parseSync } from 'csv-parse/sync';

export interface CsvRow {
  /** Physical line number where the record starts (the header is line 1). */
  readonly line: number;
  /** The fields; empty when the record is malformed. */
  readonly record: string[];
  /** Why the record could not be read as CSV (it is then quarantined whole); undefined when it could. */
  readonly malformed?: string;
  /** The record's text as read, without its line end (bytes that are not UTF-8 read as U+FFFD). */
  readonly raw: string;
}

class Row implements CsvRow {
  constructor(
    readonly line: number,
    readonly record: string[],
    readonly raw: string,
  ) {}
}

class MalformedRow implements CsvRow {
  readonly record: string[] = [];
  constructor(
    readonly line: number,
    readonly malformed: string,
    readonly raw: string,
  ) {}
}

export interface HeaderLine {
  fields: string[];
  /** A carriage return that does not end the line: line ends are not \n or \r\n (a CR-only file). */
  loneCarriageReturn: boolean;
  /** What the file is instead of UTF-8 text, told by its first bytes (then `fields` is empty). */
  notText?: 'gzip-compressed' | 'a zip archive' | 'UTF-16 text' | 'UTF-32 text';
}

/** Signatures of what an export tool writes instead of UTF-8 CSV under the same name. */
function notTextSignature(start: Buffer): HeaderLine['notText'] {
  if (start[0] === 0x1f && start[1] === 0x8b) return 'gzip-compressed';
  if (start[0] === 0x50 && start[1] === 0x4b && start[2] === 0x03 && start[3] === 0x04) return 'a zip archive';
  if (start.subarray(0, 4).equals(Buffer.from([0xff, 0xfe, 0, 0])) || start.subarray(0, 4).equals(Buffer.from([0, 0, 0xfe, 0xff]))) return 'UTF-32 text';
  if ((start[0] === 0xff && start[1] === 0xfe) || (start[0] === 0xfe && start[1] === 0xff)) return 'UTF-16 text';
  return undefined;
}

const HEADER_MAX_BYTES = 64 * 1024;

/**
 * The header's field names (BOM removed, quotes resolved), reading at most 64 KiB: enough for
 * any header, and a file without line breaks is not read whole.
 */
export async function readHeader(path: string): Promise<HeaderLine> {
  const stream = createReadStream(path, { start: 0, end: HEADER_MAX_BYTES - 1 });
  const parts: Buffer[] = [];
  try {
    for await (const chunk of stream) {
      const buffer = chunk as Buffer;
      const newline = buffer.indexOf(0x0a);
      if (newline >= 0) {
        parts.push(buffer.subarray(0, newline));
        break;
      }
      parts.push(buffer);
    }
  } finally {
    stream.destroy();
  }
  const head = Buffer.concat(parts);
  const notText = notTextSignature(head);
  if (notText !== undefined) return { fields: [], loneCarriageReturn: false, notText };
  let text = head.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  text = text.replace(/\r$/, '');
  if (text === '') return { fields: [], loneCarriageReturn: false };
  const rows = parseSync(text, { relax_column_count: true, relax_quotes: true, record_delimiter: ['\r\n', '\n'] }) as string[][];
  return { fields: rows[0] ?? [], loneCarriageReturn: text.includes('\r') };
}

/**
 * Yields the data records of a CSV file (the header record is skipped: check it with
 * readHeader first); empty lines are skipped; rows with a wrong number of fields are yielded as
 * they are, for the caller to quarantine.
 *
 * The format is csv-parse's (RFC 4180 with \n or \r\n line ends, a BOM; test/loader/read.test.ts
 * compares both on any text csv-parse reads). Where csv-parse would stop the whole file, this
 * reader yields one malformed record and reads on, so that one broken row is quarantined like
 * any other garbage and the rest of the file loads:
 * - a quote inside an unquoted field, or text after a closing quote: the record from its first
 *   line to the end of the line where the error is;
 * - a quoted field that never closes (by the end of the file, or within 8 MiB): the record's
 *   first line only, and reading resumes on the next line;
 * - a record longer than 8 MiB: its first line (memory stays bounded whatever the file);
 * - text that is not valid UTF-8 (decoded as U+FFFD): the record.
 * Line numbers are physical lines: a record's is the line it starts on.
 */
export async function* readCsv(
  path: string,
  /** Read buffer size; tests make it tiny so that records straddle buffers. */
  bufferBytes = 1024 * 1024,
  /** Longest record read; tests make it small. */
  maxRecordChars = MAX_RECORD_CHARS,
): AsyncGenerator<CsvRow> {
  for await (const records of readRecords(path, bufferBytes, maxRecordChars)) {
    for (const record of records) {
      if (record.line === 1 && record.malformed === undefined) continue; // header
      if (record.malformed !== undefined) {
        yield new MalformedRow(record.line, record.malformed, record.raw);
        continue;
      }
      const { fields } = record;
      if (fields.length === 1 && fields[0] === '') continue; // empty line
      yield new Row(record.line, fields, record.raw);
    }
  }
}

type RawRecord = { line: number; fields: string[]; raw: string; malformed?: undefined } | { line: number; malformed: string; raw: string };

const MAX_RECORD_CHARS = 8 * 1024 * 1024;
/** The most of an over-long line kept as its raw content. */
const LONG_LINE_KEPT_CHARS = 64 * 1024;

/** Every record of the file (header and empty lines included), one array per read buffer. */
async function* readRecords(path: string, bufferBytes: number, maxRecordChars: number): AsyncGenerator<RawRecord[]> {
  const stream = createReadStream(path, { highWaterMark: bufferBytes });
  const decoder = new MarkingUtf8Decoder();
  let pending = ''; // start of a record whose end is in the next buffer
  let line = 1;
  let first = true;
  let skippingLine = false; // the rest of an over-long line, already quarantined, is dropped
  try {
    for await (const chunk of stream) {
      let text = pending + decoder.write(chunk as Buffer);
      if (first && text.length > 0) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
      }
      if (skippingLine) {
        const newline = text.indexOf('\n');
        if (newline === -1) {
          pending = '';
          continue;
        }
        text = text.slice(newline + 1);
        skippingLine = false;
      }
      const parsed = splitRecords(text, line, false, maxRecordChars);
      line = parsed.nextLine;
      pending = text.slice(parsed.consumed);
      skippingLine = parsed.skipRestOfLine;
      if (skippingLine) pending = '';
      if (parsed.records.length > 0) yield parsed.records;
    }
    pending += decoder.end();
    if (first && pending.charCodeAt(0) === 0xfeff) pending = pending.slice(1);
    if (pending.length > 0 && !skippingLine) yield splitRecords(pending, line, true, maxRecordChars).records;
  } finally {
    stream.destroy();
  }
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;
const NOT_UTF8 = 'contains bytes that are not valid UTF-8 (read as U+FFFD)';

/**
 * Stands for bytes that are not UTF-8 in decoded text. Decoding from UTF-8 never yields a lone
 * surrogate, so it cannot be confused with any character of the file, U+FFFD included (a file
 * may hold that character, validly encoded).
 */
const NOT_UTF8_MARK = '\uDC80';
const REPLACEMENT_CHARACTER_BYTES = Buffer.from('\uFFFD', 'utf8');

/** Decodes a stream of UTF-8 chunks; bytes that are not UTF-8 come out as NOT_UTF8_MARK. */
class MarkingUtf8Decoder {
  #carry: Buffer | undefined; // the start of a character that continues in the next chunk

  write(chunk: Buffer): string {
    const bytes = this.#carry === undefined ? chunk : Buffer.concat([this.#carry, chunk]);
    const complete = completeCharactersLength(bytes);
    this.#carry = complete < bytes.length ? Buffer.from(bytes.subarray(complete)) : undefined;
    return decodeMarking(bytes.subarray(0, complete));
  }

  /** What is left at the end of the file: a character cut short, so not UTF-8. */
  end(): string {
    const carry = this.#carry;
    this.#carry = undefined;
    return carry === undefined ? '' : decodeMarking(carry);
  }
}

/** The length of `bytes` without a multi-byte character that starts in its last 3 bytes and is cut short. */
function completeCharactersLength(bytes: Buffer): number {
  for (let i = bytes.length - 1; i >= 0 && i >= bytes.length - 3; i -= 1) {
    const byte = bytes[i] ?? 0;
    if (byte < 0x80) return bytes.length;
    if (byte >= 0xc0) {
      const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      return bytes.length - i < needed ? i : bytes.length;
    }
  }
  return bytes.length;
}

function decodeMarking(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  // Rare: Node's decoder writes U+FFFD for bad bytes. Between the file's own U+FFFD characters
  // (EF BF BD, a whole sequence the decoder never splits), every U+FFFD it writes is bad bytes.
  const parts: string[] = [];
  let from = 0;
  for (;;) {
    const at = bytes.indexOf(REPLACEMENT_CHARACTER_BYTES, from);
    parts.push(bytes.toString('utf8', from, at === -1 ? bytes.length : at).replaceAll('\uFFFD', NOT_UTF8_MARK));
    if (at === -1) return parts.join('\uFFFD');
    from = at + REPLACEMENT_CHARACTER_BYTES.length;
  }
}

/** Quarantined text as stored: bytes that were not UTF-8 as U+FFFD. */
function readable(raw: string): string {
  return raw.includes(NOT_UTF8_MARK) ? raw.replaceAll(NOT_UTF8_MARK, '\uFFFD') : raw;
}

function withoutLineEnd(text: string): string {
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
}

function countLineBreaks(text: string, from: number, to: number): number {
  let count = 0;
  for (let n = text.indexOf('\n', from); n !== -1 && n < to; n = text.indexOf('\n', n + 1)) count += 1;
  return count;
}

/**
 * The complete records at the start of `text` (all of them when `final`: the end of the text is
 * the end of the file), malformed ones included. `skipRestOfLine`: the last record is an
 * over-long line quarantined before its end, which the caller drops when it reads it.
 */
export function splitRecords(
  text: string,
  firstLine: number,
  final: boolean,
  maxRecordChars = MAX_RECORD_CHARS,
): { records: RawRecord[]; consumed: number; nextLine: number; skipRestOfLine: boolean } {
  const records: RawRecord[] = [];
  let pos = 0;
  let line = firstLine;
  let notUtf8 = text.indexOf(NOT_UTF8_MARK);
  const firstLineMalformed = (reason: string): { skip: boolean } => {
    // The record's first line goes to quarantine; reading resumes on the next one.
    const newline = text.indexOf('\n', pos);
    const end = newline === -1 ? text.length : newline + 1;
    const raw = readable(withoutLineEnd(text.slice(pos, end)));
    records.push({ line, malformed: reason, raw: raw.length > LONG_LINE_KEPT_CHARS ? raw.slice(0, LONG_LINE_KEPT_CHARS) : raw });
    line += 1;
    pos = end;
    return { skip: newline === -1 && !final };
  };
  while (pos < text.length) {
    if (notUtf8 !== -1 && notUtf8 < pos) notUtf8 = text.indexOf(NOT_UTF8_MARK, pos);
    const newline = text.indexOf('\n', pos);
    if (newline === -1 && !final) {
      if (text.length - pos <= maxRecordChars) break;
      firstLineMalformed(`a line longer than ${maxRecordChars} characters`);
      return { records, consumed: text.length, nextLine: line, skipRestOfLine: true };
    }
    const end = newline === -1 ? text.length : newline;
    const quote = text.indexOf('"', pos);
    if (quote === -1 || quote >= end) {
      // The common case: no quote on the line, a plain split (a carriage return that does not
      // end the line is data, as csv-parse reads it).
      let content = text.slice(pos, end);
      if (newline !== -1 && content.charCodeAt(content.length - 1) === CR) content = content.slice(0, -1);
      if (notUtf8 !== -1 && notUtf8 < end) records.push({ line, malformed: NOT_UTF8, raw: readable(content) });
      else records.push({ line, fields: content.split(','), raw: content });
      line += 1;
      pos = end + 1;
      continue;
    }
    const record = splitQuotedRecord(text, pos, final);
    if (record.kind === 'incomplete') {
      if (!final && text.length - pos <= maxRecordChars) break;
      const { skip } = firstLineMalformed(
        final ? 'a quoted field is never closed' : `a quoted field is not closed within ${maxRecordChars} characters`,
      );
      if (skip) return { records, consumed: text.length, nextLine: line, skipRestOfLine: true };
      continue;
    }
    const raw = withoutLineEnd(text.slice(pos, record.next));
    if (record.kind === 'malformed') records.push({ line, malformed: record.reason, raw: readable(raw) });
    else if (notUtf8 !== -1 && notUtf8 < record.next) records.push({ line, malformed: NOT_UTF8, raw: readable(raw) });
    else records.push({ line, fields: record.fields, raw });
    line += 1 + countLineBreaks(text, pos, record.next - 1);
    pos = record.next;
  }
  return { records, consumed: Math.min(pos, text.length), nextLine: line, skipRestOfLine: false };
}

type QuotedRecord =
  | { kind: 'record'; fields: string[]; next: number }
  | { kind: 'malformed'; reason: string; next: number }
  | { kind: 'incomplete' };

/**
 * One record holding quoted fields, from `start`. A malformed one ends with the line where the
 * error is (`next` is the start of the line after it); an incomplete one does not end within
 * `text` (or, when `final`, has a quote that never closes).
 */
function splitQuotedRecord(text: string, start: number, final: boolean): QuotedRecord {
  const fields: string[] = [];
  const malformed = (reason: string, at: number): QuotedRecord => {
    const newline = text.indexOf('\n', at);
    if (newline === -1 && !final) return { kind: 'incomplete' };
    return { kind: 'malformed', reason, next: newline === -1 ? text.length : newline + 1 };
  };
  let i = start;
  for (;;) {
    let value: string;
    let after: number; // index of the character after the field
    if (text.charCodeAt(i) === QUOTE) {
      value = '';
      let segment = i + 1;
      let cursor = i + 1;
      for (;;) {
        const close = text.indexOf('"', cursor);
        if (close === -1 || (close + 1 === text.length && !final)) return { kind: 'incomplete' };
        if (text.charCodeAt(close + 1) === QUOTE) {
          value += text.slice(segment, close + 1); // "" is one quote
          cursor = close + 2;
          segment = cursor;
          continue;
        }
        value += text.slice(segment, close);
        after = close + 1;
        break;
      }
    } else {
      let j = i;
      for (; j < text.length; j += 1) {
        const c = text.charCodeAt(j);
        if (c === COMMA || c === LF) break;
        if (c === CR && text.charCodeAt(j + 1) === LF) break;
        if (c === CR && j + 1 === text.length && !final) return { kind: 'incomplete' };
        if (c === QUOTE) return malformed('a quote inside an unquoted field (quote the field and double its quotes)', j);
      }
      if (j === text.length && !final) return { kind: 'incomplete' };
      value = text.slice(i, j);
      after = j;
    }
    fields.push(value);
    const c = text.charCodeAt(after);
    if (c === COMMA) {
      i = after + 1;
      continue;
    }
    if (c === LF) return { kind: 'record', fields, next: after + 1 };
    if (c === CR) {
      if (text.charCodeAt(after + 1) === LF) return { kind: 'record', fields, next: after + 2 };
      if (after + 1 === text.length && !final) return { kind: 'incomplete' };
    }
    if (after >= text.length) return final ? { kind: 'record', fields, next: text.length } : { kind: 'incomplete' };
    return malformed('text after a closing quote', after);
  }
}
