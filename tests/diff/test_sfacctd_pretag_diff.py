"""pre_tag_map in sfacctd against pmacct 1.7.7: every key 1.7.7's pretag.map.example lists
as valid for sfacctd, on seeded sFlow captures (tests/support/sflowgen.py) with compact and
expanded flow samples, counter samples, several agents (IPv4 and IPv6) each with several
sub-agent ids, v4 and v5 datagrams. One print plugin per map (``pre_tag_map[name]``), each
map exercising a few keys with negations and flow control; the CSV must be identical.

Keys 1.7.7 reads and then ignores in sfacctd (cvlan, engine_type, engine_id/source_id,
nat_event, flowset_id, is_bi_flow, fwdstatus, set_tos) are in the maps too: the rule
matches as if they were absent. What 1.7.7 refuses without a BGP daemon (peer_src_as,
peer_dst_as, local_pref, src_local_pref) and what it does not know (mpls_label_*) is not
here: see docs/differences.md.
"""
from __future__ import annotations

import hashlib

import pytest

from tests.support import multirun, oracle, sflowgen

pytestmark = pytest.mark.diff

CAPTURES = {
    "v5": sflowgen.SflowParams(seed=21, datagrams=300, agents=4, expanded_share=0.4,
                               counter_share=0.2, out_vlan_share=0.5, egress_share=0.3,
                               mcast_share=0.2, vc_share=0.3, switch_share=0.5, sub_ids=3,
                               nexthop6_share=0.4),
    # 192.0.2.2 sends v4 datagrams, the others v5
    "v4v5": sflowgen.SflowParams(seed=24, datagrams=250, agents=3, versions=(4, 5),
                                 expanded_share=0.5, counter_share=0.2, out_vlan_share=0.5,
                                 egress_share=0.3, mcast_share=0.2, switch_share=0.5,
                                 sub_ids=3),
}

L2_MAP = """\
set_tag=1 is_multicast=true jeq=mac
set_tag=2 src_mac=02:00:00:00:00:03
set_tag=3 dst_mac=02:00:00:00:00:02 is_multicast=-true
set_tag=4 src_mac=-02:00:00:00:00:01 dst_mac=-02:00:00:00:00:0a
set_label=m1 dst_mac=01:00:5e:00:00:01 label=mac
set_label=m2 src_mac=02:00:00:00:00:05
"""
# name -> (aggregate, map text); {VLAN} is an out VLAN of the capture that is not the
# sample's in VLAN (1.7.7 matches vlan= against either)
MAPS = {
    # sample_type <Enterprise>:<Format>; agent_id is the sub-agent id (0 in v2/v4)
    "stype": ("tag, tag2, peer_src_ip, export_proto_sysid, export_proto_version", """\
set_tag=2 sample_type=0:2
set_tag=4 sample_type=0:4
set_tag=1991 sample_type=1991:1
set_tag=10 sample_type=-0:3 jeq=sub
set_tag=30 sample_type=0:3 jeq=sub
set_tag2=5 agent_id=0 label=sub
set_tag2=6 agent_id=-1 ip=192.0.2.0/24
set_tag2=7 ip=::/0 agent_id=1
set_tag2=8 ip=192.0.2.1
"""),
    # direction: the data source is the input (0) or output (1) interface; in, out
    "dirvlan": ("tag, tag2, in_iface, out_iface, vlan", """\
set_tag=3 direction=-0 in=-16 out=-3 jeq=vlan
set_tag=1 direction=1 jeq=vlan
set_tag=2 direction=0 in=-13 jeq=vlan
set_tag=4 direction=2 jeq=vlan
set_tag=5 in=13 stack=sum label=noway
set_tag2=50 vlan={VLAN} label=vlan
set_tag2=51 vlan=-0
set_tag2=52 vlan=0
"""),
    # MACs and is_multicast
    "l2": ("tag, label, src_mac, dst_mac, peer_src_ip", L2_MAP),
    # the same map, labels only: 1.7.7 prints a label of an IPv6 agent's sample on a row
    # of its own (see LABEL_ROWS below)
    "labelsum": ("tag, label", L2_MAP),
    # agent ip (exact, prefix, IPv6), src_net/dst_net with negation, filter, labels
    "l3": ("tag, tag2, label, peer_src_ip, src_host, dst_host, proto", """\
set_tag=1 ip=192.0.2.1 in=29
set_tag=2 ip=192.0.2.0/30 out=-4 src_net=10.1.0.0/16 jeq=lab
set_tag=3 ip=::/0 dst_net=2001:db8:4::/48
set_tag=4 filter='tcp and dst port 443' jeq=lab
set_tag=5 dst_net=-10.0.0.0/8 src_net=2001:db8::/32
set_tag2=9 ip=192.0.2.3 src_net=10.2.0.0/16
set_label=web filter='udp or icmp' label=lab
set_label=v6 ip=2001:db8:aaaa::/48
"""),
    # what the extended router/gateway/MPLS VC records carry
    "ext": ("tag, src_as, dst_as, peer_dst_ip", """\
set_tag=4 mpls_pw_id=-0 src_as=-0
set_tag=1 nexthop=0.0.0.0 bgp_nexthop=0.0.0.0
set_tag=6 nexthop=2001:db8:f::2 bgp_nexthop=0.0.0.0
set_tag=7 nexthop=-0.0.0.0 bgp_nexthop=0.0.0.0 dst_as=0
set_tag=2 bgp_nexthop=-0.0.0.0 src_as=-0 nexthop=-0.0.0.0
set_tag=3 bgp_nexthop=-0.0.0.0 dst_as=-0
set_tag=5 nexthop=-0.0.0.0
"""),
    # read and ignored by sfacctd: the rules match as if the keys were not there
    "ignored": ("tag, tos, peer_src_ip", """\
set_tag=1 cvlan=5 engine_type=3 nat_event=2 ip=192.0.2.1
set_tos=7 ip=192.0.2.2
set_tag=3 engine_id=1 source_id=2 ip=192.0.2.2
set_tag=4 flowset_id=300 fwdstatus=3 is_bi_flow=true
"""),
}


def _summed(rows) -> dict:
    out = {}
    for r in rows:
        k = (r["TAG"], r["LABEL"])
        p, b = out.get(k, (0, 0))
        out[k] = (p + int(r["PACKETS"]), b + int(r["BYTES"]))
    return out


def _out_vlan(cap) -> int:
    return next(s.out_vlan for s in cap.samples if s.out_vlan and s.out_vlan != s.vlan)


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    d = tmp_path_factory.mktemp("sflow-pretag")
    out = {}
    for k, p in CAPTURES.items():
        cap = sflowgen.generate(p)
        out[k] = (cap.write_pcap(d / f"{k}.pcap"), cap)
    return out


def _plugins(cap):
    """(plugins, {map file: text}); a map's file name carries a digest of its text, so
    the cached 1.7.7 run (keyed by the config) changes with the maps."""
    vlan = _out_vlan(cap)
    plugins, files = {}, {}
    for name, (agg, text) in MAPS.items():
        text = text.replace("{VLAN}", str(vlan))
        fname = f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.map"
        plugins[name] = (agg, "csv", {"pre_tag_map": fname})
        files[fname] = text
    return plugins, files


@pytest.mark.parametrize("cap", sorted(CAPTURES))
def test_sfacctd_pre_tag_map_same_as_pmacct(captures, cap, tmp_path, oracle_cache):
    path, truth = captures[cap]
    plugins, maps = _plugins(truth)
    s = multirun.settings(path, plugins)
    results = {}
    for who, binary in (("pmacct", oracle.pmacct_binary("sfacctd")),
                        ("ours", oracle.our_binary("sfacctd"))):
        wd = tmp_path / who
        wd.mkdir()
        for fname, text in maps.items():
            (wd / fname).write_text(text)
        if who == "pmacct":
            res = oracle.cached_oracle_run(oracle_cache, binary, s, path, wd,
                                           output_glob="out-*.txt")
        else:
            res = oracle.run_daemon(binary, s, wd, output_glob="out-*.txt")
        oracle.check_run(res, who, strict_log=False)
        # every map line is accepted by both
        for bad in ("Line ignored", "unknown key", "malformed", "line skipped"):
            assert bad not in res.log, res.log
        results[who] = res
    theirs, ours = results["pmacct"], results["ours"]
    d = multirun.compare(theirs, ours, {k: v for k, v in plugins.items() if k != "labelsum"})
    assert not d, d
    # labels set by rules without 'ip': 1.7.7 copies such a rule for IPv6 agents with the
    # label one byte longer (its terminating NUL), so its print cache keeps the IPv6
    # agents' aggregates apart from the IPv4 ones and prints the same key twice
    # (docs/differences.md). Ours prints each key once, with the sum of the two rows.
    mine = oracle.parse_rows(ours.outputs["out-labelsum.txt"], "csv")
    split = oracle.parse_rows(theirs.outputs["out-labelsum.txt"], "csv")
    keys = [(r["TAG"], r["LABEL"]) for r in split]
    assert len(set(keys)) < len(keys), "1.7.7 no longer splits label rows: update the docs"
    assert _summed(split) == _summed(mine) and len(mine) == len(set(keys))
    # the maps really split the traffic: every rule meant to match does, in 1.7.7's output
    def values(name, col):
        return {r[col] for r in oracle.parse_rows(theirs.outputs[f"out-{name}.txt"], "csv")}
    assert values("stype", "TAG") == {"10", "30"}
    assert values("stype", "TAG2") >= {"5", "6", "7", "8"}
    assert values("dirvlan", "TAG") == {"1", "2", "3", "5"}
    assert values("dirvlan", "TAG2") >= {"50", "51", "52"}
    assert values("l2", "TAG") >= {"1", "2", "4"}
    assert values("l2", "LABEL") >= {"m1"}
    assert values("l3", "TAG") >= {"1", "2", "4", "5"}
    assert values("l3", "LABEL") >= {"web", "v6"}
    assert values("ext", "TAG") >= {"1", "2", "3"} and {"5", "7"} & values("ext", "TAG")
    if cap == "v5":                                 # IPv6 router next hops
        assert values("ext", "TAG") >= {"6", "7"}
    assert values("ignored", "TAG") == {"1", "0", "4"}
    assert values("ignored", "TOS") != {"7"}
    # v4 datagrams have no sub-agent id: agent_id=0 takes all of theirs
    old = {x.agent for x in truth.samples if x.version < 5}
    assert (cap == "v4v5") == bool(old)
    rows = oracle.parse_rows(theirs.outputs["out-stype.txt"], "csv")
    assert {r["TAG2"] for r in rows if r["PEER_SRC_IP"] in old} <= {"5"}
    if cap == "v5":
        assert "4" in values("ext", "TAG")          # extended MPLS VC records


@pytest.mark.parametrize("line, problem", [
    ("set_tag=1 sample_type=flow", "Enterprise"),        # NetFlow keywords: nfacctd only
    ("set_tag=1 sample_type=0:1:2", "Enterprise"),
    ("set_tag=1 sample_type=1048576:1", "Enterprise"),
    ("set_tag=1 sample_type=0:4096", "Enterprise"),
    ("set_tag=1 vlan=4097", "out of range"),
])
def test_sfacctd_refuses_what_pmacct_refuses(tmp_path, line, problem):
    """The lines 1.7.7's sfacctd logs as ignored are skipped by ours too (with why)."""
    from pypmacct.maps.pretag import read_map
    m = tmp_path / "p.map"
    m.write_text(line + "\nset_tag=2 sample_type=0:1\n")
    rules, problems = read_map(str(m), "sfacctd")
    assert len(rules) == 1 and rules[0].tag == 2
    assert len(problems) == 1 and problem in problems[0] and ":1:" in problems[0]


# IPv4 only: 1.7.7 does not look IPv6 networks up right (docs/differences.md, networks_file:
# IPv6 networks keep their ASN and nesting)
NETS = """\
65001,10.1.0.0/16
65002,10.2.0.0/16
"""
AS_MAP = """\
set_tag=1 src_as=65001 jeq=dst
set_tag=3 src_as=65002 jeq=dst
set_tag=9 src_as=-65001
set_tag2=2 dst_as=65002 label=dst
set_tag2=4 dst_as=-65001
"""


@pytest.mark.parametrize("method", ["file", "longest"])
def test_sfacctd_as_from_networks_file_same_as_pmacct(captures, method, tmp_path,
                                                       oracle_cache):
    """With sfacctd_as 'file' and a networks_file, 1.7.7 matches src_as/dst_as against the
    networks_file's ASN of the sample's addresses, not what the sFlow gateway record
    says; with 'longest' against the gateway record's."""
    path, _ = captures["v5"]
    plugins = {"as": ("tag, tag2, src_host, dst_host", "csv", None)}
    s = multirun.settings(path, plugins, {"pre_tag_map": "as.map", "sfacctd_as": method,
                                          "networks_file": "nets.lst"})
    results = {}
    for who, binary in (("pmacct", oracle.pmacct_binary("sfacctd")),
                        ("ours", oracle.our_binary("sfacctd"))):
        wd = tmp_path / who
        wd.mkdir()
        (wd / "as.map").write_text(AS_MAP)
        (wd / "nets.lst").write_text(NETS)
        res = oracle.run_daemon(binary, s, wd, output_glob="out-*.txt")
        oracle.check_run(res, who, strict_log=False)
        results[who] = res
    d = multirun.compare(results["pmacct"], results["ours"], plugins)
    assert not d, d
    rows = oracle.parse_rows(results["pmacct"].outputs["out-as.txt"], "csv")
    tags = {r["TAG"] for r in rows}
    if method == "file":
        # the file's ASNs; addresses it has no network for read 0
        assert tags == {"1", "3", "9"}
        assert {r["TAG2"] for r in rows} >= {"2", "4"}
    else:
        # 'longest' (no BGP daemon): the gateway records' ASNs (645xx), as without a file
        assert tags == {"9"}


def test_sample_type_notation_per_daemon(tmp_path):
    """<Enterprise>:<Format> is sfacctd's, the keywords nfacctd's (1.7.7 refuses each in
    the other daemon); set_tos alone is a rule in sfacctd that sets nothing."""
    from pypmacct.maps.pretag import read_map
    m = tmp_path / "p.map"
    m.write_text("set_tag=1 sample_type=0:1\nset_tag=2 sample_type=flow\n"
                 "set_tos=5 sample_type=-0:3 cvlan=7 engine_type=1\n")
    nf, nf_problems = read_map(str(m), "nfacctd")
    assert [r.tag for r in nf] == [2] and len(nf_problems) == 2
    sf, sf_problems = read_map(str(m), "sfacctd")
    assert [r.tag for r in sf] == [1, None] and len(sf_problems) == 1
    last = sf[1]
    assert last.tos is None and [(x.field, x.value, x.neg) for x in last.matches] == \
        [("sf_sample_type", 3, True)]


def test_pmacctd_as_from_networks_file_same_as_pmacct(tmp_path):
    """The same lookup in pmacctd, where 1.7.7 always takes src_as/dst_as from the
    networks_file (the packets carry no ASN)."""
    from tests.support import pktgen
    cap = pktgen.write_capture(tmp_path / "p.pcap",
                               pktgen.PktParams(seed=3, packets=800, ipv6_share=0))
    plugins = {"as": ("tag, src_host, dst_host", "csv", None)}
    s = multirun.settings(cap, plugins, {"pre_tag_map": "as.map",
                                         "networks_file": "nets.lst"})
    results = {}
    for who, binary in (("pmacct", oracle.pmacct_binary("pmacctd")),
                        ("ours", oracle.our_binary("pmacctd"))):
        wd = tmp_path / who
        wd.mkdir()
        (wd / "as.map").write_text("set_tag=1 src_as=65001\nset_tag=2 dst_as=65002\n"
                                   "set_tag=3 src_as=-0\n")
        (wd / "nets.lst").write_text("65001,10.0.0.0/16\n65002,10.1.0.0/16\n")
        res = oracle.run_daemon(binary, s, wd, output_glob="out-*.txt")
        oracle.check_run(res, who, strict_log=False)
        results[who] = res
    d = multirun.compare(results["pmacct"], results["ours"], plugins)
    assert not d, d
    rows = oracle.parse_rows(results["pmacct"].outputs["out-as.txt"], "csv")
    assert {r["TAG"] for r in rows} == {"0", "1", "2", "3"}
