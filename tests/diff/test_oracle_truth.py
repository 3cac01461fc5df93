"""pmacct 1.7.7 against flowgen's ground truth: validates the generator and the oracle harness.

Every generated capture is read by pmacct's nfacctd with several print plugins at once;
each plugin's rows must equal the rows computed from the records flowgen put on the wire,
exactly (every column, every counter). These tests do not need our daemon.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import flowgen, oracle, truth
from tests.support.diffcases import FIVE_TUPLE

pytestmark = pytest.mark.oracle

WIDE = ["peer_src_ip", "peer_dst_ip", "src_host", "dst_host", "src_net", "dst_net",
        "src_port", "dst_port", "proto", "tos", "tcpflags", "in_iface", "out_iface", "src_as",
        "dst_as", "src_mask", "dst_mask", "src_mac", "dst_mac", "vlan", "timestamp_start",
        "timestamp_end", "export_proto_seqno", "export_proto_version", "export_proto_sysid",
        "mpls_label_top", "mpls_label_bottom", "mpls_stack_depth"]
NAT = ["src_host", "dst_host", "src_port", "dst_port", "proto", "post_nat_src_host",
       "post_nat_dst_host", "post_nat_src_port", "post_nat_dst_port", "nat_event"]

PLUGINS = {
    "wide": WIDE,
    "5tuple": FIVE_TUPLE,
    "src_host": ["src_host"],
    "sampling": ["peer_src_ip", "src_host", "sampling_rate"],
    "none": ["none"],
    "flows": ["peer_src_ip", "export_proto_sysid", "flows"],
}

_C = dict(records=4000, exporters=3, hosts=80, ports=30)
CAPTURES = {
    "v5": flowgen.GenParams(version=5, seed=31, **_C),
    "v5-sampled": flowgen.GenParams(version=5, seed=32, sampling=256, domains=2, **_C),
    "v9": flowgen.GenParams(version=9, seed=33, **_C),
    "v9-edges": flowgen.GenParams(version=9, seed=34, padding=True, redefine=True, domains=2,
                                  exporter_family="mix", template_every=3, sampling=100, **_C),
    "ipfix": flowgen.GenParams(version=10, seed=35, **_C),
    "ipfix-edges": flowgen.GenParams(version=10, seed=36, padding=True, redefine=True, domains=3,
                                     exporter_family="6", sampling=2000, nat=True, **_C),
    "ipfix-lean": flowgen.GenParams(version=10, seed=37, groups=(), records=6000, exporters=1),
}
PCAPNG = {"ipfix-edges"}


def _settings(capture):
    s = {"daemonize": False, "pcap_savefile": str(capture), "logfile": "daemon.log",
         "print_refresh_time": 86400, "print_cache_entries": 4001, **oracle.ORACLE_BUFFERS}
    names = list(PLUGINS) + (["nat"] if "nat" in str(capture) else [])
    s["plugins"] = ", ".join(f"print[{n}]" for n in names)
    for n in names:
        s[f"aggregate[{n}]"] = ", ".join(NAT if n == "nat" else PLUGINS[n])
        s[f"print_output[{n}]"] = "csv"
        s[f"print_output_file[{n}]"] = f"out-{n}.csv"
    return s


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pmacct_nfacctd, oracle_cache):
    """Generate every capture and run pmacct on each, four at a time."""
    root = tmp_path_factory.mktemp("oracle-truth")

    def one(name):
        p = CAPTURES[name]
        exp = flowgen.generate(p)
        fmt = "pcapng" if name in PCAPNG else "pcap"
        cap = exp.write_pcap(root / f"{name}{'-nat' if p.nat else ''}.{fmt}", fmt)
        res = oracle.cached_oracle_run(oracle_cache / "pmacct", pmacct_nfacctd, _settings(cap),
                                       cap, root / name, output_glob="out-*", timeout=120)
        return name, (exp, res)

    with ThreadPoolExecutor(4) as ex:
        return dict(ex.map(one, CAPTURES))


CASES = [(c, p) for c in CAPTURES for p in PLUGINS] + [(c, "nat") for c, p in CAPTURES.items() if p.nat]


@pytest.mark.parametrize("capture,plugin", CASES, ids=[f"{c}-{p}" for c, p in CASES])
def test_pmacct_prints_the_generated_truth(runs, capture, plugin):
    exp, res = runs[capture]
    oracle.check_run(res, "pmacct")
    text = res.outputs[f"out-{plugin}.csv"]
    got = oracle.parse_rows(text, "csv")
    agg = NAT if plugin == "nat" else PLUGINS[plugin]
    want = truth.expected_rows(exp, agg)
    msg = truth.compare_rows(want, got)
    assert not msg, f"{capture}/{plugin}: pmacct's rows differ from the generated truth\n{msg}"
    # and the counters add up to what the capture holds
    tot = oracle.column_totals(text, "csv")
    t = truth.totals(exp)
    assert (tot["PACKETS"], tot["BYTES"]) == (t["PACKETS"], t["BYTES"])
    if plugin == "flows":
        assert tot["FLOWS"] == t["FLOWS"]
