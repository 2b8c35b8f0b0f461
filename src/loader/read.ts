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
 * Line numbers are counted rather than taken from the parser's `info` (which allocates two
 * objects per record and halves the parsing speed): every record, empty lines included (the
 * parser yields them as one empty field), advances the count by one plus the line breaks
 * inside its quoted fields, which is exact for \n and \r\n files. `raw` is the fields
 * re-joined as CSV.
 */
export async function* readCsv(path: string, fileName: string = path): AsyncGenerator<CsvRow> {
  const parser = createReadStream(path, { highWaterMark: 1024 * 1024 }).pipe(
    parse({
      bom: true,
      relax_column_count: true,
      record_delimiter: ['\r\n', '\n'],
    }),
  );
  let nextLine = 1;
  try {
    for await (const item of parser) {
      const record = item as string[];
      const line = nextLine;
      nextLine += 1 + countNewlines(record);
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
