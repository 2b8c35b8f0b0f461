// Purchase-time ranges cut at UTC midnight: the summary reads whole days from the daily totals and
// only the partial days at the ends from the items.
const DAY_START = ' 00:00:00.000';

/** The next UTC day of 'YYYY-MM-DD'. */
function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

/**
 * Splits a purchase-time range ('YYYY-MM-DD HH:MM:SS.mmm', `to` exclusive) into the whole days it
 * covers (`days`, dates, `to` exclusive; undefined bound = open; null = no whole day) and the at
 * most two partial days at its ends (`partial`, timestamp ranges).
 */
export function splitAtWholeDays(range: { from?: string; to?: string }): {
  days: { from?: string; to?: string } | null;
  partial: { from: string; to: string }[];
} {
  const firstWholeDay =
    range.from === undefined ? undefined : range.from.endsWith(DAY_START) ? range.from.slice(0, 10) : nextDay(range.from.slice(0, 10));
  const endOfWholeDays = range.to?.slice(0, 10);
  if (range.from !== undefined && range.to !== undefined && (firstWholeDay ?? '') >= (endOfWholeDays ?? '')) {
    // No whole day in between: the range lies within one day or two adjacent partial days.
    return { days: null, partial: range.from < range.to ? [{ from: range.from, to: range.to }] : [] };
  }
  const partial: { from: string; to: string }[] = [];
  if (range.from !== undefined && firstWholeDay !== undefined && !range.from.endsWith(DAY_START)) {
    partial.push({ from: range.from, to: `${firstWholeDay}${DAY_START}` });
  }
  if (range.to !== undefined && endOfWholeDays !== undefined && !range.to.endsWith(DAY_START)) {
    partial.push({ from: `${endOfWholeDays}${DAY_START}`, to: range.to });
  }
  return {
    days: {
      ...(firstWholeDay === undefined ? {} : { from: firstWholeDay }),
      ...(endOfWholeDays === undefined ? {} : { to: endOfWholeDays }),
    },
    partial,
  };
}
