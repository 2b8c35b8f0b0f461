// The times a pipeline reports (startedAt, finishedAt, ingestedAt): RFC 3339 date-times with an
// explicit offset, inside the range the monitoring table and the metrics can hold, and not ahead
// of this server's clock by more than a small skew.
import { badRequest } from '../../http/problem.js';

/** How far ahead of this server's clock a reported time may be (clocks of the ETL hosts drift). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** Unix epoch: earlier times are typos, and a negative Unix time makes no sense as a metric value. */
export const EARLIEST_PIPELINE_TIME_MS = Date.UTC(1970, 0, 1);
/** The last instant a DATETIME(3) column holds. */
export const LATEST_PIPELINE_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

// RFC 3339 section 5.6 `date-time`: full-date "T" full-time, where full-time carries a "Z" or a
// ±HH:MM offset; "T" and "Z" may be lower case. A fraction may have any number of digits (the
// body field's length bounds it); digits past milliseconds are truncated.
const RFC_3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Epoch ms of an RFC 3339 date-time, or null when the text is not one: no date alone, no missing
 * offset, no space for "T", no "+0000", no day that does not exist (2026-02-30), no hour 24,
 * no leap second (60: a JavaScript instant cannot hold it).
 */
export function parseRfc3339(text: string): number | null {
  const match = RFC_3339.exec(text);
  if (match === null) return null;
  const [, year, month, day, hour, minute, second, fraction = '', zulu, sign, offsetHours = '00', offsetMinutes = '00'] = match;
  const y = Number(year);
  const mo = Number(month);
  const d = Number(day);
  const h = Number(hour);
  const mi = Number(minute);
  const s = Number(second);
  const oh = Number(offsetHours);
  const om = Number(offsetMinutes);
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59) return null;
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: the latter reads years 0-99 as 1900-1999.
  date.setUTCFullYear(y, mo - 1, d);
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return null;
  date.setUTCHours(h, mi, s, Number(fraction.padEnd(3, '0').slice(0, 3)));
  const offsetMs = zulu !== undefined ? 0 : (sign === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  return date.getTime() - offsetMs;
}

/**
 * A reported time as epoch ms, or a 400 naming the body field: not RFC 3339, outside
 * [1970-01-01, 9999-12-31] once converted to UTC, or more than MAX_CLOCK_SKEW_MS ahead of `nowMs`.
 */
export function reportedInstant(name: string, text: string, nowMs: number): number {
  const ms = parseRfc3339(text);
  if (ms === null) {
    throw badRequest({ name, in: 'body', reason: 'must be an RFC 3339 date-time with an offset, e.g. 2026-11-28T10:00:00Z or 2026-11-28T11:00:00.250+01:00' });
  }
  if (ms < EARLIEST_PIPELINE_TIME_MS || ms > LATEST_PIPELINE_TIME_MS) {
    throw badRequest({ name, in: 'body', reason: 'must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z once converted to UTC' });
  }
  if (ms > nowMs + MAX_CLOCK_SKEW_MS) {
    throw badRequest({ name, in: 'body', reason: `must not be more than ${MAX_CLOCK_SKEW_MS / 60_000} minutes ahead of the server's clock` });
  }
  return ms;
}
