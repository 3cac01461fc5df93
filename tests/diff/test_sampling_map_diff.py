"""sampling_map against pmacct 1.7.7 nfacctd: the sampling_rate primitive and (with
nfacctd_renormalize) the counters, for exporters the map names and ones it does not."""
from __future__ import annotations

import pytest

from tests.support import flowgen, oracle

pytestmark = pytest.mark.diff

MAP = """\
! exporters 203.0.113.1 and .2 announce 1:100 (flowgen); .1 is overridden on two interfaces
id=1024   ip=203.0.113.1   in=2
id=2048   ip=203.0.113.1   out=-3 in=10
id=4096   ip=203.0.113.3
"""

CAPTURES = {
    "v9": dict(version=9, records=3000, seed=61, sampling=100, groups=("ifaces",)),
    "v5": dict(version=5, records=3000, seed=62, sampling=100),
    "ipfix-unsampled": dict(version=10, records=2000, seed=63, exporters=3,
                            groups=("ifaces",)),
}


@pytest.mark.parametrize("renorm", [False, True], ids=["plain", "renormalize"])
@pytest.mark.parametrize("cap", list(CAPTURES))
def test_sampling_map_same_as_pmacct(cap, renorm, tmp_path, pmacct_nfacctd, our_nfacctd):
    capture = tmp_path / "c.pcap"
    flowgen.write_capture(capture, **CAPTURES[cap])
    results = {}
    for who, binary in (("pmacct", pmacct_nfacctd), ("ours", our_nfacctd)):
        wd = tmp_path / who
        wd.mkdir()
        (wd / "sampling.map").write_text(MAP)
        s = oracle.print_settings(capture, "peer_src_ip, in_iface, out_iface, sampling_rate",
                                  "csv", extra={"sampling_map": "sampling.map",
                                                "nfacctd_renormalize": renorm})
        res = oracle.run_daemon(binary, s, wd)
        # pmacct warns that a map with a negation cannot be indexed (maps_index is off)
        oracle.check_run(res, who, strict_log=False)
        assert "Ignored" not in res.log and "ERROR" not in res.log, res.log
        results[who] = res
    oracle.assert_same_output(results["pmacct"], results["ours"], "csv")
    if not renorm:
        rates = {r["SAMPLING_RATE"] for r in oracle.parse_rows(results["ours"].output, "csv")}
        assert {"1024", "2048"} <= rates
