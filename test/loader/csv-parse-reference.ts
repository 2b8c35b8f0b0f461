// The reference reader the loader's CSV reader is compared with: csv-parse streaming the file,
// which defines the format (RFC 4180, \n or \r\n line ends, a BOM). It fails the whole file on
// malformed quoting, where readCsv quarantines the record and reads on.
import { createReadStream } from 'node:fs';
import { parse } from 'csv-parse';

export interface ReferenceRow {
  line: number;
  record: string[];
}

function countNewlines(fields: readonly string[]): number {
  let count = 0;
  for (const field of fields) for (let i = field.indexOf('\n'); i >= 0; i = field.indexOf('\n', i + 1)) count += 1;
  return count;
}

/**
 * Data records (header and empty lines skipped) with the physical line each starts on: every
 * record advances the count by one plus the line breaks inside its quoted fields.
 */
export async function* readCsvWithCsvParse(path: string): AsyncGenerator<ReferenceRow> {
  const parser = createReadStream(path).pipe(parse({ bom: true, relax_column_count: true, record_delimiter: ['\r\n', '\n'] }));
  let nextLine = 1;
  try {
    for await (const item of parser) {
      const record = item as string[];
      const line = nextLine;
      nextLine += 1 + countNewlines(record);
      if (line === 1) continue; // header
      if (record.length === 1 && record[0] === '') continue; // empty line
      yield { line, record };
    }
  } finally {
    parser.destroy();
  }
}
