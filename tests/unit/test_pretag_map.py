"""pre_tag_map, tag filters and label filters: exact behaviour on small batches, the
example map, and a 100k-rule map loaded and matched at batch speed."""
from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import numpy as np
import pytest

from pypmacct.maps.pretag import PreTagMap, read_map
from pypmacct.maps.tagfilter import LabelFilter, TagFilter
from pypmacct.record import RECORD_DTYPE

ROOT = Path(__file__).resolve().parents[2]


class Log:
    def __init__(self):
        self.lines = []

    def warn(self, m):
        self.lines.append(m)

    info = debug = warn


def recs(rows):
    r = np.zeros(len(rows), RECORD_DTYPE)
    for i, row in enumerate(rows):
        for k, v in row.items():
            if k in ("peer_src_ip", "src_host", "dst_host"):
                a = ipaddress.ip_address(v)
                r[k]["af"][i] = a.version if a.version == 4 else 6
                r[k]["addr"][i] = a.packed.ljust(16, b"\0")
            else:
                r[k][i] = v
    return r


def load(tmp_path, text, **kw):
    p = tmp_path / "m.map"
    p.write_text(text)
    log = Log()
    return PreTagMap(str(p), "nfacctd", log, **kw), log


def test_first_match_jeq_stack_and_labels(tmp_path):
    m, log = load(tmp_path, """\
! comment
set_tag=1 ip=192.0.2.1 in=1
set_tag=2 ip=192.0.2.1 in=2 jeq=out
set_tag=3 ip=192.0.2.0/24 filter='udp and dst port 53'
set_label=a ip=192.0.2.9 label=la jeq=lb
set_tag2=10 out=1 label=out
set_tag=100 out=2 stack=sum
set_label=b label=lb ip=192.0.2.9
""")
    assert log.lines == [] or all("rules loaded" in x for x in log.lines)
    r = recs([
        {"peer_src_ip": "192.0.2.1", "in_iface": 1, "out_iface": 1},    # tag 1, stop
        {"peer_src_ip": "192.0.2.1", "in_iface": 2, "out_iface": 1},    # 2 then tag2 10
        {"peer_src_ip": "192.0.2.1", "in_iface": 2, "out_iface": 2},    # 2 + 100
        {"peer_src_ip": "192.0.2.7", "proto": 17, "dst_port": 53},      # 3
        {"peer_src_ip": "192.0.2.9"},                                    # labels a,b
        {"peer_src_ip": "198.51.100.1", "out_iface": 9, "tag": 55},     # nothing: tag 0
    ])
    strings = m.apply(r, [""])
    assert r["tag"].tolist() == [1, 2, 102, 3, 0, 0]
    assert r["tag2"].tolist() == [0, 10, 0, 0, 0, 0]
    assert [strings[i] for i in r["label"]] == ["", "", "", "", "a,b", ""]


def test_bad_lines_are_skipped_with_file_and_line(tmp_path):
    m, log = load(tmp_path, "set_tag=1 in=1\nset_tag=x in=2\nfoo\nset_tag=2 wat=3\n"
                            "set_tag=3 in=3 filter='tcp and'\nset_tag=4 in=4\n")
    assert [r.tag for r in m.rules] == [1, 4]
    bad = [x for x in log.lines if x.endswith(": line skipped")]
    assert len(bad) == 4 and all("m.map:" in x for x in bad)
    assert "m.map:2" in bad[0] and "m.map:5" in bad[3]


def test_continuation_lines_and_maps_limits(tmp_path):
    m, log = load(tmp_path, "set_tag=1 \\\n in=1\nset_tag=2 in=2\nset_tag=3 in=3\n",
                  max_entries=2)
    assert [(r.lineno, r.tag) for r in m.rules] == [(1, 1), (3, 2)]
    assert any("maps_entries" in x for x in log.lines)
    m, log = load(tmp_path, "set_tag=1 in=1 " + "x" * 300 + "\n", row_len=256)
    assert m.rules == [] and any("maps_row_len" in x for x in log.lines)


def test_auto_increment_tags(tmp_path):
    m, _ = load(tmp_path, "set_tag=10++ in=1\n")
    r = recs([{"in_iface": 1}, {"in_iface": 2}, {"in_iface": 1}])
    m.apply(r, [""])
    assert r["tag"].tolist() == [10, 0, 11]
    r = recs([{"in_iface": 1}])
    m.apply(r, [""])
    assert r["tag"].tolist() == [12]


def test_tag_filter_like_pmacct():
    tags = np.array([0, 1, 2, 5, 6, 10, 20, 21], np.uint64)
    assert TagFilter("0")(tags).tolist() == [True] + [False] * 7
    assert TagFilter("1,10-20")(tags).tolist() == [False, True, False, False, False, True,
                                                   True, False]
    assert TagFilter("-6")(tags).tolist() == [True] * 4 + [False] + [True] * 3
    # pmacct's order: a negation that does not match lets the record in at once
    assert TagFilter("-6,10")(tags).tolist() == [True] * 4 + [False] + [True] * 3
    assert TagFilter("10,-6")(tags).tolist() == [True] * 4 + [False] + [True] * 3
    with pytest.raises(ValueError):
        TagFilter("1,x")


def test_label_filter_like_pmacct():
    r = recs([{"label": 0}, {"label": 1}, {"label": 2}])
    strings = ["", "blabla", "other"]
    assert LabelFilter("null")(r, strings).tolist() == [True, False, False]
    assert LabelFilter("-null")(r, strings).tolist() == [False, True, True]
    assert LabelFilter("bla")(r, strings).tolist() == [False, True, False]   # prefix
    assert LabelFilter("blabla, other")(r, strings).tolist() == [False, True, True]


def test_example_map_loads_clean():
    rules, problems = read_map(str(ROOT / "examples/pretag.map"), "nfacctd")
    assert problems == [] and len(rules) == 9


def test_100k_rule_map_loads_and_matches(tmp_path):
    n = 100_000
    lines = [f"set_tag={i + 1} ip=10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255} in={i % 7}"
             for i in range(n)]
    p = tmp_path / "big.map"
    p.write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    m = PreTagMap(str(p), "nfacctd", Log(), max_entries=n)
    load_s = time.monotonic() - t0
    assert len(m.rules) == n
    rng = np.random.default_rng(1)
    k = 65536
    idx = rng.integers(0, n, k)
    r = np.zeros(k, RECORD_DTYPE)
    r["peer_src_ip"]["af"] = 4
    raw = np.zeros((k, 16), np.uint8)
    raw[:, 0] = 10
    raw[:, 1] = (idx >> 16) & 255
    raw[:, 2] = (idx >> 8) & 255
    raw[:, 3] = idx & 255
    r["peer_src_ip"]["addr"] = raw.view("V16").ravel()
    r["in_iface"] = np.where(rng.random(k) < 0.8, idx % 7, 99)
    t0 = time.monotonic()
    m.apply(r, [""])
    match_s = time.monotonic() - t0
    want = np.where(r["in_iface"] == idx % 7, idx + 1, 0)
    assert np.array_equal(r["tag"], want)
    print(f"100k rules loaded in {load_s:.2f}s, {k} records matched in {match_s:.2f}s "
          "(measured, not asserted: speed belongs to bench/)")


def test_mpls_vpn_rd(tmp_path):
    m, log = load(tmp_path, "set_tag=1 mpls_vpn_rd=0:65512:1\nset_tag=2 mpls_vpn_rd=1:10.0.0.1:7\n"
                            "set_tag=3 mpls_vpn_rd=2:4200000000:9\nset_tag=4 mpls_vpn_rd=-0:1:1\n"
                            "set_tag=5 mpls_vpn_rd=3:1:1\n")
    assert [r.tag for r in m.rules] == [1, 2, 3, 4]
    import struct
    rds = [struct.pack(">HHI", 0, 65512, 1), struct.pack(">H4sH", 1, bytes([10, 0, 0, 1]), 7),
           struct.pack(">HIH", 2, 4200000000, 9), struct.pack(">HHI", 0, 1, 1)]
    r = np.zeros(4, RECORD_DTYPE)
    for i, b in enumerate(rds):
        r["mpls_vpn_rd"][i] = b
    m.apply(r, [""])
    assert r["tag"].tolist() == [1, 2, 3, 0]


def test_maps_refresh_false_keeps_the_map(tmp_path):
    from pypmacct.runtime.stages import CoreStages

    class C(dict):
        def get(self, k):
            return dict.get(self, k)

        def where(self, k):
            return "x:1"
    p = tmp_path / "m.map"
    p.write_text("set_tag=1 in=1\n")
    for refresh, want in ((False, 1), (True, 2)):
        st = CoreStages(C(pre_tag_map=str(p), maps_refresh=refresh), [], "nfacctd", Log())
        p.write_text("set_tag=2 in=1\n")
        st.reload()
        r = recs([{"in_iface": 1}])
        st.global_map.apply(r, [""])
        assert r["tag"].tolist() == [want]
        p.write_text("set_tag=1 in=1\n")
