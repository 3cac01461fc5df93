"""packet_ptr custom primitives in uacctd against pmacct 1.7.7's uacctd: the same NFLOG
traffic as test_uacctd_diff (a namespace, nftables logging to two groups), read with
l3, l4 and payload pointers (the layers pypmacct's uacctd takes); identical CSV.

Needs root, iproute2 and nftables."""
from __future__ import annotations


import pytest

from tests.diff.test_uacctd_diff import TRAFFIC, netns  # noqa: F401 (fixture)
from tests.support import oracle
from tests.support.netns import run_uacctd_pair

pytestmark = pytest.mark.diff

PRIMITIVES = """\
name=ttl_pm   packet_ptr=l3:0x800+8  packet_ptr=l3:0x86dd+7  len=1  semantics=u_int
name=udp_len  packet_ptr=l4:17+4     len=2  semantics=u_int
name=tcp_off  packet_ptr=l4:6+12     len=1  semantics=hex
name=pay_raw  packet_ptr=payload     len=4  semantics=raw
name=pay_str  packet_ptr=payload+40  len=2  semantics=str
name=v6_dst   packet_ptr=l3:0x86dd+24  len=16  semantics=ip
"""
AGG = "dst_port, proto, ttl_pm, udp_len, tcp_off, pay_raw, pay_str, v6_dst"


def _conf(tmp, who, group, **more):
    d = tmp / who
    d.mkdir()
    (d / "p.lst").write_text(PRIMITIVES)
    (d / "uacctd.conf").write_text(oracle.render_config({
        **more, "daemonize": False, "plugins": "print[a]", "aggregate[a]": AGG,
        "aggregate_primitives": str(d / "p.lst"),
        "print_output[a]": "csv", "print_output_file[a]": str(d / "a.txt"),
        "print_refresh_time": 86400, "logfile": str(d / "log"), "uacctd_group": group,
        "snaplen": 128}))
    return d


def test_uacctd_packet_ptr_same_as_pmacct(netns, tmp_path):  # noqa: F811
    theirs = _conf(tmp_path, "pmacct", 11)
    ours = _conf(tmp_path, "ours", 12, uacctd_threshold=16)
    run_uacctd_pair(netns, theirs, ours, TRAFFIC)
    want = (theirs / "a.txt").read_text()
    got = (ours / "a.txt").read_text()
    d = oracle.diff_message(oracle.normalise(want, "csv"), oracle.normalise(got, "csv"))
    assert not d, d + "\n" + (ours / "log").read_text()[-2000:]
    rows = oracle.parse_rows(got, "csv")
    assert sum(int(r["PACKETS"]) for r in rows if r["PROTOCOL"] == "udp") == 550
    assert {"64"} <= {r["ttl_pm"] for r in rows}
    assert any(r["pay_raw"] == "78-78-78-78" for r in rows)      # b'x' payloads
    assert any(r["pay_str"] == "zz" for r in rows)               # TCP b'z' * 100
    assert any(r["v6_dst"] == "::1" for r in rows)
