"""A plugin's sampling_rate against pmacct 1.7.7's pmacctd.

pmacct picks packets with a random skip seeded from the clock, so rows cannot match;
the totals can be bounded. With skips uniform in 1..2N-1 (mean N, variance
((2N-1)^2 - 1) / 12) the number sampled among T packets is a renewal count with mean
~T/N and standard deviation ~sqrt(T * var / N^3): for T = 20000 and N = 10, mean 2000
and sd sqrt(20000 * 30 / 1000) ~ 24.5. Both totals must lie within 2000 +- 160 (6.5
sd: pmacct's side fails by chance with probability below 1e-9; ours is seeded from the
plugin's name, so it is fixed)."""
from __future__ import annotations

import pytest

from tests.support import multirun, oracle, pktgen

pytestmark = pytest.mark.diff

PLUGINS = {
    "sampled": ("proto, sampling_rate", "csv", {"sampling_rate": 10}),
    "all": ("proto", "csv", None),
}
T = 20000


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    p = pktgen.PktParams(seed=51, link="ethernet", packets=T)
    return pktgen.write_capture(tmp_path_factory.mktemp("smp") / "smp.pcap", p)


def _totals(run, name):
    rows = oracle.parse_rows(run.outputs[f"out-{name}.txt"], "csv")
    return (sum(int(r["PACKETS"]) for r in rows), sum(int(r["BYTES"]) for r in rows), rows)


def test_sampling_rate_totals_like_pmacct(capture, tmp_path, oracle_cache):
    theirs, ours = multirun.run_both("pmacctd", capture, PLUGINS, tmp_path, oracle_cache)
    oracle.check_run(theirs, "pmacct pmacctd", strict_log=False)
    oracle.check_run(ours, "our pmacctd", strict_log=False)
    # the plugin without sampling_rate sees every packet, identically
    assert not multirun.compare(theirs, ours, {"all": PLUGINS["all"]})
    all_pk, all_by, _ = _totals(ours, "all")
    assert all_pk == T
    for run in (theirs, ours):
        pk, by, rows = _totals(run, "sampled")
        assert abs(pk - T // 10) <= 160, (run.binary, pk)
        # bytes follow packets: the mean packet size of the sample stays near the
        # whole capture's (sizes here: mean ~500, sd ~260, so the mean of ~2000 has a
        # relative sd of ~1.2% and 10% is > 8 sd)
        assert abs(by / pk - all_by / all_pk) <= 0.1 * all_by / all_pk, (run.binary, by, pk)
        # the sampling_rate primitive: 1.7.7 reports the external rate or 1, not the
        # plugin's own rate, and does not renormalise
        assert {r["SAMPLING_RATE"] for r in rows} == {"1"}
    # ours is reproducible: the same totals on a second run
    again = multirun.run_both("pmacctd", capture, PLUGINS, tmp_path / "again", oracle_cache)[1]
    assert _totals(again, "sampled")[:2] == _totals(ours, "sampled")[:2]
