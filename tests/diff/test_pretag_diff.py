"""pre_tag_map, pre_tag_filter, pre_tag2_filter, pre_tag_label_filter and post_tag against
pmacct 1.7.7: one capture, one map, a print plugin per tag filter; identical CSV."""
from __future__ import annotations

import pytest

from tests.support import flowgen, oracle

pytestmark = pytest.mark.diff

MAP = """\
! exporters are 203.0.113.1 and .2 (flowgen); interfaces 1, 2, 3, 10, 100, 65535/70000
set_tag=1     ip=203.0.113.1 in=1
set_tag=2     ip=203.0.113.1 in=2  jeq=outs
set_tag=3     ip=203.0.113.2 filter='tcp and dst port 80'
set_tag=4     ip=203.0.113.2 out=-3 in=10 src_net=10.0.0.0/9
set_label=web ip=203.0.113.2 filter='tcp and (dst port 443 or src port 443)'
set_tag=5     ip=203.0.113.0/24 in=100 jeq=outs
set_tag=6     ip=203.0.113.0/24 out=100
set_tag2=20   out=1 label=outs
set_tag2=30   out=2
set_tag=100   out=3 stack=sum
set_tag2=40   ip=203.0.113.2
"""

PLUGINS = {
    "all": ("tag, tag2, label, proto", {}),
    "t13": ("tag, src_host", {"pre_tag_filter": "1,3"}),
    "untagged": ("tag, tag2, dst_host", {"pre_tag_filter": "0"}),
    "neg": ("tag, in_iface", {"pre_tag_filter": "-2"}),
    "range": ("tag, tag2, out_iface", {"pre_tag_filter": "2-9,100-200",
                                       "pre_tag2_filter": "20-30"}),
    "lab": ("label, dst_port", {"pre_tag_label_filter": "web"}),
    "nolab": ("tag, label", {"pre_tag_label_filter": "-web"}),
    "post": ("tag, tag2, proto", {"post_tag": "77"}),
    # a plugin with its own map (pre_tag_map[own]) instead of the global one
    "own": ("tag, tag2, label, in_iface", {"pre_tag_map": "own.map", "pre_tag_filter": "-0"}),
}

OWN_MAP = """\
set_tag=500 in=1 jeq=more
set_tag=600 in=2
set_label=own ip=203.0.113.2
set_tag=1 in=3 label=more stack=or
set_tag2=9 ip=203.0.113.1 in=1
"""

CAPTURES = {
    "v9": dict(version=9, records=4000, seed=41, groups=("tos", "tcpflags", "ifaces")),
    "ipfix": dict(version=10, records=3000, seed=42, groups=("ifaces", "as")),
    "v5": dict(version=5, records=3000, seed=43),
}


def settings(capture, workdir) -> dict:
    (workdir / "pretag.map").write_text(MAP)
    (workdir / "own.map").write_text(OWN_MAP)
    s = oracle.print_settings(capture, "tag", "csv")
    del s["aggregate"], s["print_output_file"]
    s["plugins"] = ", ".join(f"print[{n}]" for n in PLUGINS)
    s["pre_tag_map"] = "pretag.map"
    for n, (agg, extra) in PLUGINS.items():
        s[f"aggregate[{n}]"] = agg
        s[f"print_output_file[{n}]"] = f"{n}.csv"
        for k, v in extra.items():
            s[f"{k}[{n}]"] = v
    return s


@pytest.mark.parametrize("cap", list(CAPTURES))
def test_pre_tag_map_same_as_pmacct(cap, tmp_path, pmacct_nfacctd, our_nfacctd, oracle_cache):
    capture = tmp_path / f"{cap}.pcap"
    flowgen.write_capture(capture, **CAPTURES[cap])
    results = {}
    for who, binary in (("pmacct", pmacct_nfacctd), ("ours", our_nfacctd)):
        wd = tmp_path / who
        wd.mkdir()
        s = settings(capture, wd)
        res = oracle.run_daemon(binary, s, wd, output_glob="*.csv")
        # pmacct warns that a map with a negation cannot be indexed (maps_index is off)
        oracle.check_run(res, who, strict_log=False)
        assert "Ignored" not in res.log and "ERROR" not in res.log, res.log
        results[who] = res
    rows = oracle.parse_rows(results["pmacct"].outputs["all.csv"], "csv")
    assert len({r["TAG"] for r in rows}) >= 4, "the map should give several tags"
    own = oracle.parse_rows(results["ours"].outputs["own.csv"], "csv")
    assert {r["TAG"] for r in own} >= {"500", "600"} and "0" not in {r["TAG"] for r in own}
    oracle.assert_same_output(results["pmacct"], results["ours"], "csv")
