// The summary's cut of a purchase-time range into whole UTC days (read from the daily totals) and
// partial days at its ends (read from the items). Together they must cover the range exactly once.
import { describe, expect, it } from 'vitest';
import { splitAtWholeDays } from '../../src/modules/order-items/day-range.js';

describe('splitAtWholeDays', () => {
  it('when both bounds are midnights, then all days are whole and nothing is partial', () => {
    expect(splitAtWholeDays({ from: '2017-01-01 00:00:00.000', to: '2018-01-01 00:00:00.000' })).toEqual({
      days: { from: '2017-01-01', to: '2018-01-01' },
      partial: [],
    });
  });

  it('when the bounds fall inside days, then the first and last day are partial', () => {
    expect(splitAtWholeDays({ from: '2017-01-01 10:00:00.000', to: '2017-01-05 06:30:00.250' })).toEqual({
      days: { from: '2017-01-02', to: '2017-01-05' },
      partial: [
        { from: '2017-01-01 10:00:00.000', to: '2017-01-02 00:00:00.000' },
        { from: '2017-01-05 00:00:00.000', to: '2017-01-05 06:30:00.250' },
      ],
    });
  });

  it('when a bound is missing, then that side of the days is open and never partial', () => {
    expect(splitAtWholeDays({})).toEqual({ days: {}, partial: [] });
    expect(splitAtWholeDays({ from: '2017-12-31 23:59:59.999' })).toEqual({
      days: { from: '2018-01-01' },
      partial: [{ from: '2017-12-31 23:59:59.999', to: '2018-01-01 00:00:00.000' }],
    });
    expect(splitAtWholeDays({ to: '2017-03-01 00:00:00.001' })).toEqual({
      days: { to: '2017-03-01' },
      partial: [{ from: '2017-03-01 00:00:00.000', to: '2017-03-01 00:00:00.001' }],
    });
  });

  it('when no whole day lies between the bounds, then the range is read from the items only', () => {
    // Inside one day, across one midnight, and an empty range.
    expect(splitAtWholeDays({ from: '2017-01-01 10:00:00.000', to: '2017-01-01 12:00:00.000' })).toEqual({
      days: null,
      partial: [{ from: '2017-01-01 10:00:00.000', to: '2017-01-01 12:00:00.000' }],
    });
    expect(splitAtWholeDays({ from: '2017-01-01 10:00:00.000', to: '2017-01-02 12:00:00.000' })).toEqual({
      days: null,
      partial: [{ from: '2017-01-01 10:00:00.000', to: '2017-01-02 12:00:00.000' }],
    });
    expect(splitAtWholeDays({ from: '2017-01-01 00:00:00.000', to: '2017-01-01 00:00:00.000' })).toEqual({ days: null, partial: [] });
  });

  it('when the range runs over the end of a month or a leap day, then the next day is the calendar’s', () => {
    expect(splitAtWholeDays({ from: '2016-02-28 01:00:00.000', to: '2016-03-02 00:00:00.000' }).days).toEqual({
      from: '2016-02-29',
      to: '2016-03-02',
    });
  });
});
