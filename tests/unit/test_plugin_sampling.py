"""The plugin-scoped sampling_rate (pypmacct/runtime/sampling.py): exact selections with
fixed seeds."""
from __future__ import annotations

import numpy as np

from pypmacct.record import RECORD_DTYPE
from pypmacct.runtime.sampling import PacketSampler


def test_systematic_every_nth():
    s = PacketSampler(3, systematic=True)
    assert s.take(np.ones(10, np.int64)).tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 1, 0]
    # the countdown carries over: next sample is the 12th packet overall
    assert s.take(np.ones(3, np.int64)).tolist() == [0, 1, 0]


def test_random_skips_are_the_seeded_draws():
    s = PacketSampler(10, seed=5)
    got = np.nonzero(s.take(np.ones(5000, np.int64)))[0] + 1
    gaps = np.random.default_rng(5).integers(1, 20, size=len(got) + 50, dtype=np.int64)
    want = np.cumsum(gaps)
    assert got.tolist() == want[want <= 5000].tolist()
    d = np.diff(np.concatenate([[0], got]))
    assert d.min() >= 1 and d.max() <= 19


def test_batch_boundaries_do_not_matter():
    one = PacketSampler(7, seed=11).take(np.ones(3000, np.int64))
    s = PacketSampler(7, seed=11)
    parts = [s.take(np.ones(n, np.int64)) for n in [1, 13, 700, 0, 2286]]
    assert np.concatenate(parts).tolist() == one.tolist()


def test_multi_packet_records_as_pmacct():
    recs = np.zeros(3, RECORD_DTYPE)
    recs["packets"] = [5, 1, 1]
    recs["bytes"] = [503, 60, 70]
    s = PacketSampler(2, systematic=True)
    out = s.apply(recs)
    # units 1..5 (record 0): samples at 2 and 4; unit 6 (record 1) sampled; 7 not
    assert out["packets"].tolist() == [2, 1]
    assert out["bytes"].tolist() == [(503 // 5) * 2, 60]
    assert recs["packets"].tolist() == [5, 1, 1]      # the shared batch is untouched
