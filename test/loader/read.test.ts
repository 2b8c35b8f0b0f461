// readCsv reads csv-parse's format (csv-parse-reference.ts) without stopping at a malformed
// record: that record comes out marked malformed, with its physical line and the text as read,
// and reading goes on. Whatever the bytes and wherever the read buffers split the file: where
// csv-parse reads the whole file, both give the same records and line numbers; where it fails,
// readCsv gives the records csv-parse gave before failing, then at least one malformed record,
// and never throws.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCsv } from '../../src/loader/read.js';
import { readCsvWithCsvParse } from './csv-parse-reference.js';

interface Read {
  line: number;
  record: string[];
  malformed?: string;
  raw?: string;
}

async function readAll(file: string, bufferBytes?: number, maxRecordChars?: number): Promise<Read[]> {
  const out: Read[] = [];
  for await (const row of readCsv(file, bufferBytes, maxRecordChars)) {
    out.push(row.malformed === undefined ? { line: row.line, record: row.record } : { line: row.line, record: row.record, malformed: row.malformed, raw: row.raw });
  }
  return out;
}

async function reference(file: string): Promise<{ rows: Read[]; failed: boolean }> {
  const rows: Read[] = [];
  try {
    for await (const row of readCsvWithCsvParse(file)) rows.push(row);
    return { rows, failed: false };
  } catch {
    return { rows, failed: true };
  }
}

let dir: string;
let fileCount = 0;

async function fileWith(content: string | Buffer): Promise<string> {
  fileCount += 1;
  const file = path.join(dir, `f${fileCount}.csv`);
  await writeFile(file, content);
  return file;
}

/** readCsv's records, the same for every buffer size given, in increasing line order. */
async function expectBufferIndependent(file: string, bufferSizes: (number | undefined)[]): Promise<Read[]> {
  const whole = await readAll(file);
  for (const bufferBytes of bufferSizes) expect(await readAll(file, bufferBytes)).toEqual(whole);
  const lines = whole.map((r) => r.line);
  expect(lines).toEqual([...lines].sort((a, b) => a - b));
  expect(new Set(lines).size).toBe(lines.length);
  return whole;
}

/** readCsv's records, checked against csv-parse's and for every buffer size given. */
async function expectConsistent(content: string | Buffer, bufferSizes: (number | undefined)[] = [undefined]): Promise<Read[]> {
  const file = await fileWith(content);
  const expected = await reference(file);
  const whole = await expectBufferIndependent(file, bufferSizes);
  if (!expected.failed) {
    expect(whole).toEqual(expected.rows);
  } else {
    const firstMalformed = whole.findIndex((r) => r.malformed !== undefined);
    expect(firstMalformed).toBeGreaterThanOrEqual(0);
    expect(whole.slice(0, expected.rows.length)).toEqual(expected.rows);
  }
  return whole;
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
      // A carriage return that does not end a line is data, as csv-parse reads it.
      `${header}lone\rcr,3\n"q",x\ry\n`,
      `${header}1,2\n3,4\r`,
    ];
    for (const content of cases) await expectConsistent(content, [1, 2, 3, 5, 8]);
    const rows = await expectConsistent(cases[2] as string, [4]);
    expect(rows.map((r) => r.line)).toEqual([2, 3, 7]);
  });

  it('quarantines a malformed record with its line and text, and reads on', async () => {
    const header = 'a,b\n';
    const cases: [string, Read[]][] = [
      [
        `${header}1,2\n3,"unclosed\n4,5\n`,
        [
          { line: 2, record: ['1', '2'] },
          { line: 3, record: [], malformed: 'a quoted field is never closed', raw: '3,"unclosed' },
          { line: 4, record: ['4', '5'] },
        ],
      ],
      [
        `${header}1,2\nsao "paulo",3\r\n5,6\n`,
        [
          { line: 2, record: ['1', '2'] },
          { line: 3, record: [], malformed: 'a quote inside an unquoted field (quote the field and double its quotes)', raw: 'sao "paulo",3' },
          { line: 4, record: ['5', '6'] },
        ],
      ],
      [
        `${header}"multi\nline"after,3\n5,6`,
        [
          { line: 2, record: [], malformed: 'text after a closing quote', raw: '"multi\nline"after,3' },
          { line: 4, record: ['5', '6'] },
        ],
      ],
      [`${header}"q"\r,3\n5,6\n`, [{ line: 2, record: [], malformed: 'text after a closing quote', raw: '"q"\r,3' }, { line: 3, record: ['5', '6'] }]],
    ];
    for (const [content, expected] of cases) expect(await expectConsistent(content, [1, 2, 3, 7])).toEqual(expected);
  });

  it('quarantines a record that is not valid UTF-8 (where csv-parse reads U+FFFD)', async () => {
    const content = Buffer.concat([Buffer.from('a,b\n1,2\ns'), Buffer.from([0xe3]), Buffer.from('o paulo,3\n"x\ny",4\n5,6\n')]);
    const rows = await expectBufferIndependent(await fileWith(content), [1, 2, 5]);
    expect(rows).toEqual([
      { line: 2, record: ['1', '2'] },
      { line: 3, record: [], malformed: 'contains bytes that are not valid UTF-8 (read as U+FFFD)', raw: 's\uFFFDo paulo,3' },
      { line: 4, record: ['x\ny', '4'] },
      { line: 6, record: ['5', '6'] },
    ]);
  });

  it('reads a U+FFFD the file really holds as text, and still quarantines bad bytes next to one', async () => {
    const content = Buffer.concat([
      Buffer.from('a,b\ncaf\uFFFD,1\n"\uFFFD\n",2\n'), // lines 2, 3-4: valid UTF-8 encodings of U+FFFD
      Buffer.from('x'),
      Buffer.from([0xc3]), // line 5: a character cut short, then a real U+FFFD
      Buffer.from('\uFFFD,3\n\uFFFD'),
      Buffer.from([0xe2, 0x82]), // line 6: a cut-short character at the very end of the file
    ]);
    const rows = await expectBufferIndependent(await fileWith(content), [1, 2, 3, 5]);
    expect(rows).toEqual([
      { line: 2, record: ['caf\uFFFD', '1'] },
      { line: 3, record: ['\uFFFD\n', '2'] },
      { line: 5, record: [], malformed: 'contains bytes that are not valid UTF-8 (read as U+FFFD)', raw: 'x\uFFFD\uFFFD,3' },
      { line: 6, record: [], malformed: 'contains bytes that are not valid UTF-8 (read as U+FFFD)', raw: '\uFFFD\uFFFD' },
    ]);
  });

  it('gives each record its text as read, quotes included and line end excluded', async () => {
    const file = await fileWith('a,b,c\r\n"x",01,"say ""hi"""\r\nplain,2,3\n"multi\r\nline",4,5');
    const raws: string[] = [];
    for (const bufferBytes of [undefined, 1, 4]) {
      raws.length = 0;
      for await (const row of readCsv(file, bufferBytes)) raws.push(row.raw);
      expect(raws).toEqual(['"x",01,"say ""hi"""', 'plain,2,3', '"multi\r\nline",4,5']);
    }
  });

  it('keeps memory bounded: a line or an open quote longer than the record limit is quarantined by its first line', async () => {
    const longLine = `${'x'.repeat(40)},y`;
    const openQuote = `3,"open${'z'.repeat(40)}`;
    const file = await fileWith(`a,b\n1,2\n${longLine}\n${openQuote}\n4,5\n6,7\n`);
    for (const bufferBytes of [1, 4, 16]) {
      const rows = await readAll(file, bufferBytes, 16);
      // Line 4 is refused as a long line or as an open quote, depending on whether its end was
      // in the buffer; the raw text kept is the part of the line read before it was refused.
      expect(rows.map((r) => [r.line, r.record, r.malformed !== undefined])).toEqual([
        [2, ['1', '2'], false],
        [3, [], true],
        [4, [], true],
        [5, ['4', '5'], false],
        [6, ['6', '7'], false],
      ]);
      expect(longLine.startsWith(rows[1]?.raw ?? 'none')).toBe(true);
      expect(openQuote.startsWith(rows[2]?.raw ?? 'none')).toBe(true);
    }
  });

  it('agrees with csv-parse on any text from a CSV-heavy alphabet, whatever the buffer size', async () => {
    const alphabet = fc.constantFrom('a', 'b', '1', ',', '"', '""', '\n', '\r\n', '\r', ' ', 'é', '\uFEFF');
    await fc.assert(
      fc.asyncProperty(
        fc.array(alphabet, { maxLength: 60 }).map((parts) => parts.join('')),
        fc.boolean(),
        fc.integer({ min: 1, max: 16 }),
        async (body, bom, bufferBytes) => {
          await expectConsistent(`${bom ? '\uFEFF' : ''}h1,h2\n${body}`, [bufferBytes]);
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
          const rows = await expectConsistent(content, [bufferBytes]);
          expect(rows.every((r) => r.malformed === undefined)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
