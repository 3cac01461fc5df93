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


# --- uacctd: the same rules, on packets from NFLOG in a namespace made by the test ---

U_NETWORKS = "65100,127.0.0.0/8\n64600_65101,127.0.0.0/24\n"
U_TRAFFIC = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(300):
    s.sendto(b'x' * (i % 80), ('127.0.0.%d' % (1 + i % 3) if i % 2 else '127.0.1.7', 5000 + i % 5))
"""
U_RULES = """
table inet pypmacct_nets {
  chain out {
    type filter hook output priority 0;
    meta l4proto udp udp dport 5000-5999 log group 21
    meta l4proto udp udp dport 5000-5999 log group 22
  }
}
"""


def _uacctd_conf(d, group, extra):
    d.mkdir()
    (d / "n.lst").write_text(U_NETWORKS)
    s = {**extra, "daemonize": False, "plugins": "print[as], print[nets], print[peer]",
         "aggregate[as]": "src_host, dst_host, src_as, dst_as",
         "aggregate[nets]": "dst_host, dst_net, dst_mask, src_mask",
         # (1.7.7 reads peer_src_as as 0 when no source address primitive is in the
         # aggregate, it does not copy the address then: docs/differences.md)
         "aggregate[peer]": "src_host, dst_host, peer_dst_as, peer_src_as",
         "networks_file": str(d / "n.lst"), "print_refresh_time": 86400,
         "logfile": str(d / "log"), "uacctd_group": group, "snaplen": 128}
    for p in ("as", "nets", "peer"):
        s[f"print_output[{p}]"] = "csv"
        s[f"print_output_file[{p}]"] = str(d / f"{p}.txt")
    (d / "uacctd.conf").write_text(oracle.render_config(s))
    return d


@pytest.mark.parametrize("uacctd_as", [None, "file"])
def test_uacctd_networks_same_as_pmacct(uacctd_as, tmp_path):
    from tests.support.netns import namespace, run_uacctd_pair

    extra = {"uacctd_as": uacctd_as} if uacctd_as else {}
    theirs = _uacctd_conf(tmp_path / "pmacct", 21, extra)
    ours = _uacctd_conf(tmp_path / "ours", 22, extra)
    with namespace(U_RULES, "pmn", "the uacctd networks test") as ns:
        run_uacctd_pair(ns, theirs, ours, U_TRAFFIC)
    for name in ("as.txt", "nets.txt", "peer.txt"):
        want = (theirs / name).read_text()
        got = (ours / name).read_text()
        d = oracle.diff_message(oracle.normalise(want, "csv"), oracle.normalise(got, "csv"))
        assert not d, name + "\n" + d + "\n" + (ours / "log").read_text()[-2000:]
    rows = oracle.parse_rows((ours / "as.txt").read_text(), "csv")
    assert sum(int(r["PACKETS"]) for r in rows) == 300
    assert {r["DST_AS"] for r in rows} == ({"65100", "65101"} if uacctd_as else {"0"})
    masks = {r["DST_MASK"] for r in oracle.parse_rows((ours / "nets.txt").read_text(), "csv")}
    assert masks == {"8", "24"}
