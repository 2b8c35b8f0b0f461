// A half-open range [from, to) on one column, as SQL fragments with placeholders.

/**
 * ` AND <column> >= ?` and ` AND <column> < ?` for the bounds that are set (none for an open
 * side); their values are pushed onto `params`. `column` must be a constant of the caller: only
 * values come from outside.
 */
export function halfOpenRange(column: string, range: { from?: string; to?: string }, params: (string | number | null)[]): string {
  let sql = '';
  if (range.from !== undefined) {
    sql += ` AND ${column} >= ?`;
    params.push(range.from);
  }
  if (range.to !== undefined) {
    sql += ` AND ${column} < ?`;
    params.push(range.to);
  }
  return sql;
}
