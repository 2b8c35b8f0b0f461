// MySQL DATETIME values arrive as 'YYYY-MM-DD HH:MM:SS[.fff]' strings in UTC (dateStrings);
// the API speaks ISO 8601 with a Z.

/** 'YYYY-MM-DDTHH:MM:SSZ' back to the 'YYYY-MM-DD HH:MM:SS' a statement binds. */
export function isoSecondToSql(value: string): string {
  return `${value.slice(0, 10)} ${value.slice(11, 19)}`;
}

/**
 * For DATETIME(3) columns: the binary protocol drops a zero fraction ('10:00:00' for
 * '10:00:00.000'), so the value is normalised to exactly three decimals.
 */
export function sqlMillisToIso(value: string): string;
export function sqlMillisToIso(value: string | null): string | null;
export function sqlMillisToIso(value: string | null): string | null {
  return value === null ? null : new Date(sqlTimestampToMs(value)).toISOString();
}

export function sqlTimestampToMs(value: string): number {
  return Date.parse(`${value.replace(' ', 'T')}Z`);
}

/** A Date or epoch ms as 'YYYY-MM-DD HH:MM:SS.mmm' UTC, the form the schema stores. */
export function toSqlTimestamp(value: Date | number): string {
  return new Date(value).toISOString().replace('T', ' ').replace('Z', '');
}

// Extended (2017-01-01T08:00:00+02:00) or basic (20170101T080000+0200) format, not mixed;
// a space may stand for T (as RFC 3339 allows); the offset may be hours only (+02), and an
// extended time may carry a basic offset (+0200), as many clients write it.
const ISO_8601_EXTENDED =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;
const ISO_8601_BASIC = /^(\d{4})(\d{2})(\d{2})(?:[Tt](\d{2})(\d{2})(?:(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?:\d{2})?)?)?$/;

/**
 * Parses an ISO 8601 date or date-time (a missing offset means UTC) into epoch ms, or null when
 * the text is not one or names a day that does not exist (2021-02-30). A fraction finer than a
 * millisecond rounds up to the next one: stored times are whole seconds, so a bound taken up keeps
 * `from` inclusive and `to` exclusive (truncated, 00:00:00.0001 would let 00:00:00 in as a `from`).
 */
export function parseIsoInstant(text: string): number | null {
  const match = ISO_8601_EXTENDED.exec(text) ?? ISO_8601_BASIC.exec(text);
  if (match === null) return null;
  const [, year, month, day, hour = '00', minute = '00', second = '00', fraction = '', zone = 'Z'] = match;
  const offset = zone.toUpperCase();
  const ms = Number(fraction.padEnd(3, '0').slice(0, 3));
  const beyondMs = /[1-9]/.test(fraction.slice(3)) ? 1 : 0;
  const utc = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second), ms);
  const check = new Date(utc);
  if (
    check.getUTCFullYear() !== Number(year) ||
    check.getUTCMonth() !== Number(month) - 1 ||
    check.getUTCDate() !== Number(day) ||
    Number(hour) > 23 ||
    Number(minute) > 59 ||
    Number(second) > 59
  ) {
    return null;
  }
  if (offset === 'Z') return utc + beyondMs;
  const sign = offset.startsWith('-') ? -1 : 1;
  const digits = offset.slice(1).replace(':', '').padEnd(4, '0');
  const offsetMinutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4));
  if (Number(digits.slice(0, 2)) > 23 || Number(digits.slice(2, 4)) > 59) return null;
  return utc - sign * offsetMinutes * 60_000 + beyondMs;
}
