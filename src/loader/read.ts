// Streaming CSV reading: one record at a time with its physical line number (header = line 1)
// and its raw text, whatever the size of the file. Memory stays bounded by the parser's buffer
// and the consumer's pace (async iteration applies back-pressure to the file stream).
import { createReadStream } from 'node:fs';
import { parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';

export interface CsvRow {
  /** Physical line number where the record starts (the header is line 1). */
  readonly line: number;
  readonly record: string[];
  /** The record as CSV text (fields re-joined), computed on demand: only rejects need it. */
  readonly raw: string;
}

class Row implements CsvRow {
  constructor(
    readonly line: number,
    readonly record: string[],
  ) {}
  get raw(): string {
    return joinCsv(this.record);
  }
}

export class CsvFormatError extends Error {
  override readonly name = 'CsvFormatError';
}

const HEADER_MAX_BYTES = 64 * 1024;

/**
 * The header's field names (BOM removed, quotes resolved), reading at most 64 KiB: enough for
 * any header, and a file without line breaks is not read whole.
 */
export async function readHeader(path: string): Promise<string[]> {
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
  let text = Buffer.concat(parts).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  text = text.replace(/\r$/, '');
  if (text === '') return [];
  const rows = parseSync(text, { relax_column_count: true, relax_quotes: true }) as string[][];
  return rows[0] ?? [];
}

/** Re-joins fields as CSV (quoting when needed): the raw content of a quarantined row. */
export function joinCsv(fields: readonly string[]): string {
  return fields
    .map((f) => (/[",\r\n]/.test(f) || f !== f.trim() ? `"${f.replaceAll('"', '""')}"` : f))
    .join(',');
}

function countNewlines(fields: readonly string[]): number {
  let count = 0;
  for (const field of fields) {
    let index = field.indexOf('\n');
    while (index >= 0) {
      count += 1;
      index = field.indexOf('\n', index + 1);
    }
  }
  return count;
}

/**
 * Yields the data records of a CSV file (the header record is skipped: check it with
 * readHeader first). Rows with a wrong number of fields are yielded as they are, so the caller
 * can quarantine them; empty lines are skipped; malformed quoting cannot be resynchronised and
 * raises CsvFormatError naming the file.
 *
 * csv-parse (readCsvWithCsvParse below) defines the format. Parsing every file with it cost
 * about a third of the loader's CPU, so the records are split by a simpler reader that only
 * knows the well-formed subset of that format: unquoted fields without quotes or stray carriage
 * returns, quoted fields with doubled quotes and line breaks, \n and \r\n line ends, a BOM. On
 * anything else (a quote inside an unquoted field, text after a closing quote, an unclosed
 * quote, a lone \r, a record over 8 MiB) it hands over to csv-parse, which re-reads the file,
 * skips the records already yielded and goes on from there: the records and line numbers are
 * csv-parse's whatever the input, and a broken file fails with csv-parse's error
 * (test/loader/read.test.ts compares both; on an error, how many records were handed out before
 * it depends on buffering, as it did with csv-parse alone).
 */
export async function* readCsv(
  path: string,
  fileName: string = path,
  /** Read buffer size; tests make it tiny so that records straddle buffers. */
  bufferBytes = 1024 * 1024,
): AsyncGenerator<CsvRow> {
  let recordsDone = 0; // parser records handed out so far, header and empty lines included
  try {
    for await (const records of readRecordsFast(path, bufferBytes)) {
      for (const { line, fields } of records) {
        recordsDone += 1;
        if (line === 1) continue; // header
        if (fields.length === 1 && fields[0] === '') continue; // empty line
        yield new Row(line, fields);
      }
    }
    return;
  } catch (error) {
    if (!(error instanceof NeedsCsvParse)) throw error;
  }
  yield* readCsvWithCsvParse(path, fileName, recordsDone);
}

/** The fast reader met something only csv-parse knows how to read (or to refuse). */
class NeedsCsvParse extends Error {}

interface RawRecord {
  line: number;
  fields: string[];
}

/** A single record larger than this goes to csv-parse (the fast reader re-scans an unfinished record). */
const FAST_RECORD_MAX_CHARS = 8 * 1024 * 1024;

/** Every record of the file (header and empty lines included), one array per read buffer. */
async function* readRecordsFast(path: string, bufferBytes: number): AsyncGenerator<RawRecord[]> {
  const stream = createReadStream(path, { highWaterMark: bufferBytes, encoding: 'utf8' });
  let pending = ''; // start of a record whose end is in the next buffer
  let line = 1;
  let first = true;
  try {
    for await (const chunk of stream) {
      let text = pending + (chunk as string);
      if (first) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
      }
      const parsed = splitRecords(text, line, false);
      line = parsed.nextLine;
      pending = text.slice(parsed.consumed);
      if (pending.length > FAST_RECORD_MAX_CHARS) throw new NeedsCsvParse();
      if (parsed.records.length > 0) yield parsed.records;
    }
    if (first && pending.charCodeAt(0) === 0xfeff) pending = pending.slice(1);
    if (pending.length > 0) yield splitRecords(pending, line, true).records;
  } finally {
    stream.destroy();
  }
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

/**
 * The complete records at the start of `text` (all of them when `final`: the end of the text is
 * the end of the file). Throws NeedsCsvParse on anything outside the well-formed subset.
 */
export function splitRecords(text: string, firstLine: number, final: boolean): { records: RawRecord[]; consumed: number; nextLine: number } {
  const records: RawRecord[] = [];
  let pos = 0;
  let line = firstLine;
  while (pos < text.length) {
    const newline = text.indexOf('\n', pos);
    if (newline === -1 && !final) break;
    const end = newline === -1 ? text.length : newline;
    const quote = text.indexOf('"', pos);
    if (quote === -1 || quote >= end) {
      // The common case: no quote on the line, a plain split.
      let content = text.slice(pos, end);
      if (newline !== -1 && content.charCodeAt(content.length - 1) === CR) content = content.slice(0, -1);
      if (content.includes('\r')) throw new NeedsCsvParse();
      records.push({ line, fields: content.split(',') });
      line += 1;
      pos = end + 1;
      continue;
    }
    const record = splitQuotedRecord(text, pos, final);
    if (record === undefined) break; // ends in the next buffer
    records.push({ line, fields: record.fields });
    line += 1 + record.lineBreaks;
    pos = record.next;
  }
  return { records, consumed: Math.min(pos, text.length), nextLine: line };
}

/** One record holding quoted fields, from `start`; undefined when it does not end within `text`. */
function splitQuotedRecord(
  text: string,
  start: number,
  final: boolean,
): { fields: string[]; next: number; lineBreaks: number } | undefined {
  const fields: string[] = [];
  let lineBreaks = 0;
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
        if (close === -1 || (close + 1 === text.length && !final)) {
          if (final) throw new NeedsCsvParse(); // unclosed quote: csv-parse names the error
          return undefined;
        }
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
      for (let n = value.indexOf('\n'); n !== -1; n = value.indexOf('\n', n + 1)) lineBreaks += 1;
    } else {
      let j = i;
      for (; j < text.length; j += 1) {
        const c = text.charCodeAt(j);
        if (c === COMMA || c === LF) break;
        if (c === QUOTE || c === CR) {
          // \r\n ending the record is fine; any other \r, or a quote inside the field, is not ours.
          if (c === CR && text.charCodeAt(j + 1) === LF) break;
          if (c === CR && j + 1 === text.length && !final) return undefined;
          throw new NeedsCsvParse();
        }
      }
      if (j === text.length && !final) return undefined;
      value = text.slice(i, j);
      after = j;
    }
    fields.push(value);
    const c = text.charCodeAt(after);
    if (c === COMMA) {
      i = after + 1;
      continue;
    }
    if (c === LF) return { fields, next: after + 1, lineBreaks };
    if (c === CR) {
      if (text.charCodeAt(after + 1) === LF) return { fields, next: after + 2, lineBreaks };
      if (after + 1 === text.length && !final) return undefined;
      throw new NeedsCsvParse();
    }
    if (after >= text.length) {
      if (final) return { fields, next: text.length, lineBreaks };
      return undefined;
    }
    throw new NeedsCsvParse(); // text after a closing quote
  }
}

/**
 * The reference reader: csv-parse streaming the file. `skipRecords` parser records (header and
 * empty lines included) are read but not yielded: the fast reader already handed them out.
 *
 * Line numbers are counted rather than taken from the parser's `info` (which allocates two
 * objects per record and halves the parsing speed): every record, empty lines included (the
 * parser yields them as one empty field), advances the count by one plus the line breaks
 * inside its quoted fields, which is exact for \n and \r\n files.
 */
export async function* readCsvWithCsvParse(path: string, fileName: string = path, skipRecords = 0): AsyncGenerator<CsvRow> {
  const parser = createReadStream(path, { highWaterMark: 1024 * 1024 }).pipe(
    parse({
      bom: true,
      relax_column_count: true,
      record_delimiter: ['\r\n', '\n'],
    }),
  );
  let nextLine = 1;
  let records = 0;
  try {
    for await (const item of parser) {
      const record = item as string[];
      const line = nextLine;
      nextLine += 1 + countNewlines(record);
      records += 1;
      if (records <= skipRecords) continue;
      if (line === 1) continue; // header
      if (record.length === 1 && record[0] === '') continue; // empty line
      yield new Row(line, record);
    }
  } catch (error) {
    if (error instanceof Error && 'code' in error && typeof error.code === 'string' && error.code.startsWith('CSV_')) {
      throw new CsvFormatError(`${fileName}: invalid CSV near line ${nextLine}: ${error.message}`);
    }
    throw error;
  } finally {
    parser.destroy();
  }
}
