"""A plugin's own packet sampling (the plugin-scoped ``sampling_rate`` key).

pmacct 1.7.7 (plugin_hooks.c, evaluate_sampling) keeps, per plugin channel, a countdown
of packets to the next sampled one; when it is spent a new one is drawn: for nfacctd a
systematic N, for the other daemons a random skip uniform in 1..2N-1 (libc random(),
seeded from the clock, so runs differ). A record of several packets consumes several
units of the countdown; if any is sampled the record is kept with ``packets`` = the
sampled count (and ``bytes`` scaled as (bytes // packets) * count when it had more than
one packet), otherwise it is dropped. Counters are not renormalised, and the
'sampling_rate' primitive stays as the core sets it (1 unless an external rate is set).

Ours draws the random skips from a numpy generator seeded from the plugin's name (so a
run is reproducible) and works on whole batches: the sampled positions are a cumulative
sum of skips, matched to records with searchsorted. The countdown and the skips drawn
beyond a batch carry over, so batch boundaries do not change what is sampled.
"""
from __future__ import annotations

import zlib

import numpy as np


class PacketSampler:
    def __init__(self, rate: int, systematic: bool = False, seed: int | None = None):
        self.rate = int(rate)
        self.systematic = systematic
        self.rng = np.random.default_rng(seed)
        self.buf = np.zeros(0, np.int64)
        self.next = int(self._draw(1)[0])   # units to the next sampled one (1-based)

    @classmethod
    def for_plugin(cls, name: str, rate: int, daemon: str) -> "PacketSampler":
        return cls(rate, systematic=daemon == "nfacctd",
                   seed=zlib.crc32(f"sampling_rate:{name}".encode()))

    def _draw(self, k: int) -> np.ndarray:
        if self.systematic or self.rate <= 1:
            return np.full(k, max(self.rate, 1), np.int64)
        take = self.buf[:k]
        self.buf = self.buf[k:]
        if len(take) < k:
            more = self.rng.integers(1, 2 * self.rate, size=k - len(take), dtype=np.int64)
            take = np.concatenate([take, more])
        return take

    def take(self, units: np.ndarray) -> np.ndarray:
        """Sampled units per record, for records of ``units`` packets each."""
        units = np.asarray(units, np.int64)
        ends = np.cumsum(units)
        total = int(ends[-1]) if len(ends) else 0
        if total == 0:
            return np.zeros(len(units), np.int64)
        parts = [np.array([self.next], np.int64)]
        last = self.next
        while last <= total:
            est = int((total - last) / self.rate * 1.1) + 16
            c = last + np.cumsum(self._draw(est))
            parts.append(c)
            last = int(c[-1])
        pos = np.concatenate(parts)
        n_in = int(np.searchsorted(pos, total, side="right"))
        inside, beyond = pos[:n_in], pos[n_in:]
        self.next = int(beyond[0] - total)
        self.buf = np.concatenate([np.diff(beyond), self.buf])
        starts = ends - units
        return (np.searchsorted(inside, ends, side="right")
                - np.searchsorted(inside, starts, side="right"))

    def apply(self, recs: np.ndarray) -> np.ndarray:
        """The sampled records (a new array: the batch is shared by every channel)."""
        pk = recs["packets"].astype(np.int64)
        cnt = self.take(pk)
        keep = cnt > 0
        out = recs[keep]
        pk, cnt = pk[keep], cnt[keep]
        multi = pk > 1
        if multi.any():
            b = out["bytes"].astype(np.int64)
            out["bytes"] = np.where(multi, (b // np.maximum(pk, 1)) * cnt, b)
            out["packets"] = np.where(multi, cnt, pk)
        return out
