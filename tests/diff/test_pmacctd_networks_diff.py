"""networks_file, networks_mask, pmacctd_net and pmacctd_as in pmacctd against pmacct
1.7.7's pmacctd: same pcap savefile, identical CSV for every combination.

What 1.7.7 does (and these runs check): a networks_file alone gives src_net/dst_net and
the masks from the file but leaves src_as/dst_as/peer_*_as at 0; the ASNs come from the
file only with pmacctd_as 'file' or 'longest'. AS primitives without a networks_file, or
network primitives without pmacctd_net/networks_file/networks_mask, stop start-up;
'netflow'/'sflow' are not values for pmacctd and are ignored with a warning.
"""
from __future__ import annotations

import hashlib

import pytest

from tests.support import multirun, oracle, pktgen

pytestmark = pytest.mark.diff

# pktgen's hosts: 10.0.0.20 10.0.1.21 10.0.2.22 10.0.3.23 10.1.0.24 10.1.1.25 10.1.2.26
# 10.1.3.27 10.2.0.28 10.2.1.29 and 2001:db8:N::(20+N). 10.2.1.29 is in no network.
# One IPv6 network, without an ASN: 1.7.7 drops IPv6 ASNs and nesting
# (docs/differences.md), which tests/unit/test_networks.py covers for ours.
NETWORKS = """\
! pmacctd networks
65001,10.0.0.0/16
64512_65002,10.1.0.0/16
10.0.0.1,65003,10.1.2.0/24
10.2.0.0/24
65005,10.0.2.0/23
2001:db8::/32
"""
NETS_FILE = f"nets-{hashlib.sha256(NETWORKS.encode()).hexdigest()[:8]}.lst"

AS_PLUGINS = {
    "as": ("src_host, dst_host, src_as, dst_as", "csv", None),
    "sumas": ("sum_as", "csv", None),
    "peer": ("src_host, dst_host, peer_src_as, peer_dst_as", "csv", None),
}
NET_PLUGINS = {
    "nets": ("src_host, dst_host, src_net, dst_net, src_mask, dst_mask", "csv", None),
    "netsonly": ("src_net, dst_net", "csv", None),
    "masks": ("src_host, src_mask, dst_mask", "csv", None),
    "all": ("src_net, dst_net, src_mask, dst_mask, src_as, dst_as, peer_src_as, "
            "peer_dst_as", "csv", None),
}
# (with networks_file, extra keys)
RUNS = {
    "file": (True, {}),
    "file-as-file": (True, {"pmacctd_as": "file"}),
    "file-as-longest": (True, {"pmacctd_as": "longest"}),
    "file-as-true": (True, {"pmacctd_as": "true"}),
    "file-as-netflow": (True, {"pmacctd_as": "netflow"}),
    "file-net-file": (True, {"pmacctd_net": "file"}),
    "file-net-longest": (True, {"pmacctd_net": "longest"}),
    "file-net-mask": (True, {"pmacctd_net": "mask", "networks_mask": 20}),
    "file-mask": (True, {"networks_mask": 20}),
    "file-mask-as-file": (True, {"networks_mask": 20, "pmacctd_as": "file"}),
    "file-both-file": (True, {"pmacctd_as": "file", "pmacctd_net": "file"}),
    "file-both-longest": (True, {"pmacctd_as": "longest", "pmacctd_net": "longest"}),
    "file-as-file-net-mask": (True, {"pmacctd_as": "file", "pmacctd_net": "mask",
                                     "networks_mask": 20}),
    "file-as-longest-net-mask": (True, {"pmacctd_as": "longest", "pmacctd_net": "mask",
                                        "networks_mask": 20}),
    "mask": (False, {"networks_mask": 20}),
    "net-mask": (False, {"pmacctd_net": "mask", "networks_mask": 12}),
    "net-longest": (False, {"pmacctd_net": "longest"}),
    "mask-as-netflow": (False, {"networks_mask": 20, "pmacctd_as": "netflow"}),
}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    d = tmp_path_factory.mktemp("pm-nets")
    return pktgen.write_capture(d / "c.pcap", pktgen.PktParams(seed=61, packets=400))


def plugins_for(with_file: bool, extra: dict) -> dict:
    plugins = dict(NET_PLUGINS)
    if not with_file:
        del plugins["all"]           # AS primitives need a networks_file (checked below)
        return plugins
    plugins.update(AS_PLUGINS)
    if extra.get("pmacctd_as") == "longest":
        # 1.7.7 leaves peer_src_as/peer_dst_as at 0 with 'longest'; ours takes them from
        # the file by the src_as/dst_as rule (docs/differences.md)
        del plugins["peer"], plugins["all"]
    return plugins


def prepare(tmp_path, with_file: bool, extra: dict) -> dict:
    extra = dict(extra)
    if with_file:
        for who in ("pmacct", "ours"):
            (tmp_path / who).mkdir(parents=True, exist_ok=True)
            (tmp_path / who / NETS_FILE).write_text(NETWORKS)
        extra["networks_file"] = NETS_FILE
    return extra


@pytest.mark.parametrize("run", list(RUNS))
def test_pmacctd_networks_same_as_pmacct(run, capture, tmp_path, oracle_cache):
    with_file, extra = RUNS[run]
    plugins = plugins_for(with_file, extra)
    extra = prepare(tmp_path, with_file, extra)
    theirs, ours = multirun.run_both("pmacctd", capture, plugins, tmp_path, oracle_cache,
                                     extra)
    oracle.check_run(theirs, "pmacct pmacctd", strict_log=False)
    oracle.check_run(ours, "our pmacctd", strict_log=False)
    d = multirun.compare(theirs, ours, plugins)
    assert not d, d + "\n" + ours.describe()
    if with_file and extra.get("pmacctd_as") in ("file", "longest", "true"):
        rows = oracle.parse_rows(ours.outputs["out-as.txt"], "csv")
        assert {r["SRC_AS"] for r in rows} >= {"65001", "65002", "65005", "0"}
        assert "65003" in {r["DST_AS"] for r in rows}


ERRORS = {
    # AS primitives, no networks_file: pmacctd_as or not
    "as-no-file": ("src_as, dst_as", {}, "AS aggregation selected"),
    "as-file-no-file": ("src_as", {"pmacctd_as": "file"}, "AS aggregation selected"),
    "sumas-no-file": ("sum_as", {"networks_mask": 20}, "AS aggregation selected"),
    # network primitives with nothing to take them from
    "net-nothing": ("src_net, dst_mask", {}, "network aggregation selected"),
    "net-netflow": ("dst_net", {"pmacctd_net": "netflow"}, "network aggregation selected"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_pmacctd_networks_refused_as_pmacct(case, capture, tmp_path):
    agg, extra, text = ERRORS[case]
    plugins = {"p": (agg, "csv", None)}
    for who in ("pmacct", "ours"):
        s = multirun.settings(capture, plugins, extra)
        res = oracle.run_daemon(oracle.pmacct_binary("pmacctd") if who == "pmacct"
                                else oracle.our_binary("pmacctd"), s, tmp_path / who,
                                output_glob="out-*.txt", timeout=60)
        assert res.returncode != 0, (who, res.describe())
        assert not res.outputs, who
        assert text in res.log + res.stderr, (who, res.log + res.stderr)
