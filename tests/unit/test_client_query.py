"""The pmacct client's parsing of -c and of matching data, as 1.7.7 parses them."""
from __future__ import annotations

import pytest

from pypmacct.client.query import (ClientError, c_atoi, parse_primitives, parse_query,
                                   read_query_file, split_queries)


def test_c_atoi():
    assert [c_atoi(s) for s in ("80", " 80", "80x", "x80", "", "-5", "+7", "0x10")] == \
        [80, 80, 80, 0, 0, -5, 7, 0]


def test_primitives_are_lower_cased_and_sum_is_sum_host():
    assert parse_primitives("SRC_HOST,sum,Dst_Port") == (["src_host", "sum_host", "dst_port"],
                                                         [])
    assert parse_primitives("flows,tcpflags,src_port") == (
        ["flows", "tcpflags", "src_port"], ["flows", "tcpflags"])


def test_queries_split_and_walk_like_pmacct():
    assert split_queries(";;80;;53;") == ["80", "53"]
    prims = ["src_host", "dst_port", "proto"]
    # a wildcard drops the primitive; missing data leaves it at zero
    assert parse_query(prims, "10.0.0.1,*") == {"src_host": "10.0.0.1", "proto": 0}
    assert parse_query(prims, "10.0.0.1,80,") == {"src_host": "10.0.0.1", "dst_port": 80,
                                                  "proto": 0}
    assert parse_query(prims, "::1,80x,udp,extra") == {"src_host": "::1", "dst_port": 80,
                                                       "proto": 17}
    # numbers wrap into the field's width, as C's assignments do
    assert parse_query(["dst_port", "tos"], "65537,257") == {"dst_port": 1, "tos": 1}


@pytest.mark.parametrize("prims, text, message", [
    (["src_host"], "10.0.0", "ERROR: src_host: Invalid IP address: '10.0.0'"),
    (["src_net"], "10.0.0.0/8", "ERROR: src_host: Invalid IP network: '10.0.0.0/8'"),
    (["dst_net"], "x", "ERROR: dst_host: Invalid IP network: 'x'"),
    (["src_mac"], "00:11:22", "ERROR: src_mac: Invalid MAC address: '00:11:22'"),
    (["proto"], "ip", "ERROR: invalid protocol: 'ip'"),
    (["proto"], "256", "ERROR: invalid protocol: '256'"),
    (["mpls_vpn_rd"], "9:1:1", "ERROR: Invalid RD type specified\n"
                               "ERROR: mpls_vpn_rd: Invalid MPLS VPN RD value: '9'"),
    (["class"], "http", "ERROR: Server has not loaded any classifier for 'http'."),
])
def test_errors(prims, text, message):
    with pytest.raises(ClientError) as e:
        parse_query(prims, text)
    assert str(e.value) == message


def test_values():
    q = parse_query(["src_mac", "etype", "as_path", "std_comm", "mpls_vpn_rd", "class"],
                    "0:1:2:a:b:c,0x800,^$,0,0:65000:7,unknown")
    assert q == {"src_mac": "00:01:02:0a:0b:0c", "etype": 0x800, "as_path": "",
                 "std_comm": "", "mpls_vpn_rd": "0000fde800000007", "class": ""}
    assert parse_query(["as_path", "std_comm"], "1_2_3,65000:1_65000:2") == {
        "as_path": "1 2 3", "std_comm": "65000:1 65000:2"}
    assert parse_query(["proto"], "6", numeric_protos=True) == {"proto": 6}
    with pytest.raises(ClientError):
        parse_query(["proto"], "tcp", numeric_protos=True)


def test_query_file(tmp_path):
    f = tmp_path / "q"
    f.write_text("! a comment\n 10.0.0.1 , * \n\n\t\n10.0.0.2,80\n")
    assert read_query_file(str(f)) == ["10.0.0.1,*", "10.0.0.2,80"]
    with pytest.raises(ClientError) as e:
        read_query_file(str(tmp_path / "none"))
    assert str(e.value) == f"ERROR: file '{tmp_path / 'none'}' not found"
