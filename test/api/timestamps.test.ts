import { describe, expect, it } from 'vitest';
import { parseIsoInstant } from '../../src/http/timestamps.js';

describe('parseIsoInstant: the ISO 8601 forms a from/to bound may take', () => {
  const instant = Date.UTC(2017, 0, 1, 6, 0, 0);

  it.each([
    '2017-01-01T06:00:00Z',
    '2017-01-01t06:00:00z',
    '2017-01-01 06:00:00',
    '2017-01-01T06:00',
    '2017-01-01T08:00:00+02:00',
    '2017-01-01T08:00:00+0200',
    '2017-01-01T08:00:00+02',
    '2017-01-01T03:00:00.000-03:00',
    '2017-01-01T06:00:00,000Z',
    '20170101T060000Z',
    '20170101T080000+0200',
    '20170101T0800+02',
  ])('%s is 2017-01-01 06:00 UTC', (text) => {
    expect(parseIsoInstant(text)).toBe(instant);
  });

  it('takes a fraction finer than a millisecond up to the next one (stored times are whole seconds: bounds keep their sides)', () => {
    expect(parseIsoInstant('2017-01-01T06:00:00.0001Z')).toBe(instant + 1);
    expect(parseIsoInstant('2017-01-01T06:00:00.000000000Z')).toBe(instant);
    expect(parseIsoInstant('2017-01-01T06:00:00.1234+00:00')).toBe(instant + 124);
    expect(parseIsoInstant('2017-01-01T06:00:00.123Z')).toBe(instant + 123);
    // The last instant of a year, taken up: the next year, not a refused date.
    expect(parseIsoInstant('2016-12-31T23:59:59.9999Z')).toBe(Date.UTC(2017, 0, 1));
  });

  it('reads a date alone as its midnight UTC, in either format', () => {
    expect(parseIsoInstant('2017-01-01')).toBe(Date.UTC(2017, 0, 1));
    expect(parseIsoInstant('20170101')).toBe(Date.UTC(2017, 0, 1));
  });

  it.each([
    '2017-02-30',
    '2017-01-01T24:00:00Z',
    '2017-01-01T06:00:60Z',
    '2017-01-01T06:00:00+24:00',
    '2017-01-01T06:00:00+02:60',
    '2017-01-01T060000Z', // extended date, basic time: not one format
    '20170101T06:00:00Z',
    '2017-0101',
    '2017-01-01T06Z',
    '1e3',
    '',
  ])('refuses %j', (text) => {
    expect(parseIsoInstant(text)).toBeNull();
  });
});
