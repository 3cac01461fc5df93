"""Time bins for historical accounting (``*_history``, ``*_history_roundoff``,
``*_history_offset``) and refresh deadlines, following pmacct's arithmetic.

pmacct's round-off letters name what is zeroed, not what is kept: ``m`` zeroes the
minutes (so rounds to the hour), ``h`` zeroes minutes and hours (to the day), ``d`` also
sets the day of month to 1, ``w`` goes back to Monday, ``M`` to January 1st. Seconds
are always zeroed. Rounding is done in local time unless ``timestamps_utc`` is set.
"""
from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

import numpy as np

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class HistoryError(ValueError):
    pass


def parse_history(value: str) -> tuple[str, int]:
    """``'5m'`` -> ``('m', 5)``. Units: s m h d w M (months)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdwM])\s*", value)
    if not m or int(m.group(1)) <= 0:
        raise HistoryError(f"invalid history value '{value}' (expected e.g. 5m, 1h, 1d, 1M)")
    return m.group(2), int(m.group(1))


def _to_tm(t: int, utc: bool) -> time.struct_time:
    return time.gmtime(t) if utc else time.localtime(t)


def _from_tm(fields: list, utc: bool) -> int:
    # fields: [year, mon, mday, hour, min, sec]
    if utc:
        return calendar.timegm((*fields, 0, 0, 0))
    return int(time.mktime((*fields, 0, 0, -1)))


def roundoff_time(t: int, letters: str | None, utc: bool) -> int:
    tm = _to_tm(int(t), utc)
    year, mon, mday, hour, minute = tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min
    wday = (tm.tm_wday + 1) % 7  # C convention: Sunday = 0
    for c in letters or "":
        if c == "m":
            minute = 0
        elif c == "h":
            minute, hour = 0, 0
        elif c == "d":
            minute, hour, mday = 0, 0, 1
        elif c == "w":
            minute, hour = 0, 0
            while wday > 1:
                mday -= 1
                wday -= 1
        elif c == "M":
            minute, hour, mday, mon = 0, 0, 1, 1
        else:
            raise HistoryError(f"unknown round-off letter '{c}'")
    if mday < 1:  # walking back to Monday crossed a month boundary
        base = _from_tm([year, mon, 1, hour, minute, 0], utc)
        return base + (mday - 1) * 86400
    return _from_tm([year, mon, mday, hour, minute, 0], utc)


def add_months(t: int, n: int, utc: bool) -> int:
    tm = _to_tm(int(t), utc)
    months = tm.tm_year * 12 + (tm.tm_mon - 1) + n
    return _from_tm([months // 12, months % 12 + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec], utc)


def refresh_deadline(now: int, refresh_time: int, startup_delay: int = 0,
                     roundoff: str | None = None, utc: bool = False) -> int:
    """The first purge deadline, as pmacct computes it at plugin start."""
    t = roundoff_time(now, roundoff, utc)
    while t + refresh_time < now:
        t += refresh_time
    return t + refresh_time + startup_delay


@dataclass
class TimeBins:
    """Maps record start times to the start of their time bin (seconds)."""
    unit: str
    count: int
    roundoff: str | None = None
    offset: int = 0
    utc: bool = False
    base: int = 0
    timeslot: int = 0

    @classmethod
    def from_config(cls, history: str, roundoff: str | None, offset: int, utc: bool,
                    now: int | None = None) -> "TimeBins":
        unit, count = parse_history(history)
        tb = cls(unit, count, roundoff, offset, utc)
        tb.init(int(time.time()) if now is None else now)
        return tb

    @property
    def monthly(self) -> bool:
        return self.unit == "M"

    def init(self, now: int) -> None:
        if self.monthly:
            base = roundoff_time(now, "d", self.utc)
            self.timeslot = add_months(base, self.count, self.utc) - base
        else:
            base = now
            self.timeslot = UNIT_SECONDS[self.unit] * self.count
        t = roundoff_time(base, self.roundoff, self.utc)
        while t + self.timeslot < base:
            if self.monthly:
                nt = add_months(t, self.count, self.utc)
                self.timeslot = nt - t
                t = nt
            else:
                t += self.timeslot
        if self.offset:
            if self.offset >= self.timeslot:
                raise HistoryError("history offset must be smaller than the history period")
            t = t - (self.timeslot + self.offset)
        self.base = t

    def bin(self, stamps: np.ndarray) -> np.ndarray:
        """Bin start (seconds) for each stamp (seconds); a zero stamp falls in the base bin."""
        stamps = np.asarray(stamps, dtype=np.int64)
        if self.monthly:
            out = np.full(len(stamps), self.base, dtype=np.int64)
            uniq, inv = np.unique(stamps, return_inverse=True)
            res = np.array([self._month_bin(int(s)) for s in uniq], dtype=np.int64)
            out = res[inv]
            return out
        rel = stamps - self.base
        out = self.base + (rel // self.timeslot) * self.timeslot
        # pmacct places a stamp that is older than the base and sits exactly on a bin
        # edge in the bin *before* that edge (its residual arithmetic gives a full
        # timeslot there). We do the same, so that time bins agree with pmacct's row
        # for row; it only concerns flows that started before the plugin did.
        out = np.where((rel < 0) & (rel % self.timeslot == 0), out - self.timeslot, out)
        return np.where(stamps == 0, self.base, out)

    def _month_bin(self, s: int) -> int:
        if s == 0:
            return self.base
        b = self.base
        while b > s:
            b = add_months(b, -self.count, self.utc)
        while add_months(b, self.count, self.utc) <= s:
            b = add_months(b, self.count, self.utc)
        return b

    def bin_end(self, start: int) -> int:
        if self.monthly:
            return add_months(start, self.count, self.utc)
        return start + self.timeslot
