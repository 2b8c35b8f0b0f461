// readCsv splits records with a fast reader that only knows well-formed CSV and hands over to
// csv-parse (readCsvWithCsvParse, the format's definition) on anything else. Whatever the bytes and
// wherever the read buffers split the file, both must give the same records and line numbers and,
// on a broken file, the same error. (On an error, csv-parse drops the records it had parsed but not
// yet handed out, a number that depends on buffering: there the reference's rows must be a prefix
// of readCsv's, and the "near line" of the message, counted from the records handed out, may differ.
// The batch fails either way.)
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCsv, readCsvWithCsvParse, type CsvRow } from '../../src/loader/read.js';

type Outcome = { rows: { line: number; record: string[] }[]; error?: string };

async function collect(rows: AsyncGenerator<CsvRow>): Promise<Outcome> {
  const out: Outcome = { rows: [] };
  try {
    for await (const row of rows) out.rows.push({ line: row.line, record: row.record });
  } catch (error) {
    out.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }
  return out;
}

let dir: string;
let fileCount = 0;

async function fileWith(content: string | Buffer): Promise<string> {
  fileCount += 1;
  const file = path.join(dir, `f${fileCount}.csv`);
  await writeFile(file, content);
  return file;
}

async function expectSameAsCsvParse(content: string | Buffer, bufferBytes?: number): Promise<Outcome> {
  const file = await fileWith(content);
  const reference = await collect(readCsvWithCsvParse(file, 'f.csv'));
  const fast = await collect(readCsv(file, 'f.csv', bufferBytes));
  if (reference.error === undefined) {
    expect(fast).toEqual(reference);
  } else {
    const withoutNearLine = (message: string | undefined) => message?.replace(/near line \d+: /, 'near line N: ');
    expect(withoutNearLine(fast.error)).toBe(withoutNearLine(reference.error));
    expect(fast.rows.slice(0, reference.rows.length)).toEqual(reference.rows);
  }
  return fast;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'oi-read-test-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readCsv', () => {
  it('reads well-formed files like csv-parse: quotes, doubled quotes, line breaks in fields, CRLF, BOM, no final newline', async () => {
    const header = '"a","b","c"\n';
    const cases = [
      `${header}1,2,3\n4,5,6\n`,
      `${header}1,2,3\n4,5,6`,
      `\uFEFF${header}"x","y ""quoted""",z\r\n"multi\nline","crlf\r\ninside",\n\n7,8,9\r\n`,
      `${header}"",,\n,"",\n"a,b","c""","d"\n`,
      `${header}são paulo,"joão, josé",ñ\n`,
      `${header}1,2\n1,2,3,4\n\n\n5,6,7`,
    ];
    for (const content of cases) {
      for (const bufferBytes of [undefined, 1, 2, 3, 5, 8]) await expectSameAsCsvParse(content, bufferBytes);
    }
    const { rows } = await expectSameAsCsvParse(cases[2] as string, 4);
    expect(rows.map((r) => r.line)).toEqual([2, 3, 7]);
  });

  it('hands malformed quoting over to csv-parse: the rows before the error, then the same error', async () => {
    const header = 'a,b\n';
    const cases = [
      `${header}1,2\n3,"unclosed\n4,5\n`,
      `${header}1,2\nx"y,3\n`,
      `${header}1,2\n"closed"after,3\n`,
      `${header}1,2\nlone\rcr,3\n`,
      `${header}1,2\n"q"\r,3\n`,
      `${header}1,2\n3,4\r`,
    ];
    for (const content of cases) {
      for (const bufferBytes of [undefined, 1, 3, 7]) await expectSameAsCsvParse(content, bufferBytes);
    }
    const unclosed = await expectSameAsCsvParse(cases[0] as string, 3);
    expect(unclosed.rows).toEqual([{ line: 2, record: ['1', '2'] }]);
    expect(unclosed.error).toMatch(/quote/i);
  });

  it('gives what csv-parse gives on any text from a CSV-heavy alphabet, whatever the buffer size', async () => {
    const alphabet = fc.constantFrom('a', 'b', '1', ',', '"', '""', '\n', '\r\n', '\r', ' ', 'é', '\uFEFF');
    await fc.assert(
      fc.asyncProperty(
        fc.array(alphabet, { maxLength: 60 }).map((parts) => parts.join('')),
        fc.boolean(),
        fc.integer({ min: 1, max: 16 }),
        async (body, bom, bufferBytes) => {
          await expectSameAsCsvParse(`${bom ? '\uFEFF' : ''}h1,h2\n${body}`, bufferBytes);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('reads records made of well-formed fields identically, including across many buffers', async () => {
    const field = fc.oneof(
      fc.stringMatching(/^[a-z0-9 .:-]{0,12}$/),
      fc.array(fc.constantFrom('x', ',', '"', '\n', '\r\n', 'ã'), { maxLength: 8 }).map((p) => `"${p.join('').replaceAll('"', '""')}"`),
    );
    const record = fc.array(field, { minLength: 1, maxLength: 6 }).map((f) => f.join(','));
    await fc.assert(
      fc.asyncProperty(
        fc.array(record, { maxLength: 30 }),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        fc.integer({ min: 1, max: 64 }),
        async (records, eol, finalNewline, bufferBytes) => {
          const content = `h\n${records.join(eol)}${finalNewline ? eol : ''}`;
          const out = await expectSameAsCsvParse(content, bufferBytes);
          expect(out.error).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});
