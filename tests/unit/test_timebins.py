"""Time bins and refresh deadlines follow pmacct's arithmetic."""
import calendar

import numpy as np
import pytest

from pypmacct.timebins import HistoryError, TimeBins, parse_history, refresh_deadline, roundoff_time


def ts(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


def test_parse_history():
    assert parse_history("5m") == ("m", 5)
    assert parse_history("1M") == ("M", 1)
    for bad in ("", "0m", "5x", "m5", "-1h"):
        with pytest.raises(HistoryError):
            parse_history(bad)


def test_roundoff_letters_zero_the_named_unit():
    t = ts(2026, 11, 19, 13, 47, 31)  # a Thursday
    assert roundoff_time(t, None, utc=True) == ts(2026, 11, 19, 13, 47)
    assert roundoff_time(t, "m", utc=True) == ts(2026, 11, 19, 13)
    assert roundoff_time(t, "h", utc=True) == ts(2026, 11, 19)
    assert roundoff_time(t, "d", utc=True) == ts(2026, 11, 1)
    assert roundoff_time(t, "w", utc=True) == ts(2026, 11, 16)  # back to Monday
    assert roundoff_time(t, "M", utc=True) == ts(2026, 1, 1)


def test_week_roundoff_crossing_a_month():
    assert roundoff_time(ts(2026, 10, 2, 9), "w", utc=True) == ts(2026, 9, 28)


def test_bins_minutes_with_roundoff():
    now = ts(2026, 11, 19, 13, 47, 31)
    tb = TimeBins.from_config("5m", "m", 0, utc=True, now=now)
    stamps = np.array([now, ts(2026, 11, 19, 13, 50), ts(2026, 11, 19, 12, 3, 1), 0])
    assert tb.bin(stamps).tolist() == [ts(2026, 11, 19, 13, 45), ts(2026, 11, 19, 13, 50),
                                       ts(2026, 11, 19, 12, 0), tb.base]


def test_monthly_bins():
    now = ts(2026, 11, 19, 13)
    tb = TimeBins.from_config("1M", None, 0, utc=True, now=now)
    assert tb.base == ts(2026, 11, 1)
    got = tb.bin(np.array([ts(2026, 12, 3), ts(2026, 10, 31, 23), ts(2026, 11, 30)])).tolist()
    assert got == [ts(2026, 12, 1), ts(2026, 10, 1), ts(2026, 11, 1)]


def test_refresh_deadline_is_aligned():
    now = ts(2026, 11, 19, 13, 47, 31)
    assert refresh_deadline(now, 60, utc=True) == ts(2026, 11, 19, 13, 48)
    assert refresh_deadline(now, 300, roundoff="m", utc=True) == ts(2026, 11, 19, 13, 50)
    assert refresh_deadline(now, 60, startup_delay=5, utc=True) == ts(2026, 11, 19, 13, 48, 5)


def test_past_stamp_on_a_bin_edge_goes_to_the_previous_bin_as_in_pmacct():
    now = ts(2026, 11, 19, 13, 47, 31)
    tb = TimeBins.from_config("1m", None, 0, utc=True, now=now)
    assert tb.base == ts(2026, 11, 19, 13, 47)
    edge_past, edge_future = ts(2026, 11, 19, 13, 40), ts(2026, 11, 19, 13, 50)
    got = tb.bin(np.array([edge_past, edge_past + 1, edge_future, tb.base])).tolist()
    assert got == [ts(2026, 11, 19, 13, 39), ts(2026, 11, 19, 13, 40), edge_future, tb.base]
