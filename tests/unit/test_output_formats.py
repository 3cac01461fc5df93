"""The formatted, CSV and JSON writers: exact headers, widths, values and key order."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pypmacct.aggregate import KeyBuilder
from pypmacct.output import FormatterError, OutputOptions, make_formatter
from pypmacct.output.json import purge_close, purge_init
from pypmacct.primitives import parse_aggregate
from pypmacct.timebins import TimeBins

from .print_support import keys_for

T = 1677577561088000        # 2023-02-28 09:46:01.088000 UTC

ROWS = [
    dict(src_host="10.0.0.1", dst_host="2001:db8::2", src_port=1024, dst_port=80, proto=6,
         tcp_flags=18, packets=3, bytes=1500, flows=1, ts_start=T),
    dict(src_host=None, dst_host="192.168.1.1", src_port=0, dst_port=53, proto=17,
         tcp_flags=0, packets=1, bytes=64, flows=1, ts_start=0),
]
AGG = "src_host,dst_host,src_port,dst_port,proto,tcpflags,flows,timestamp_start"


def render(kind, agg=AGG, rows=ROWS, strings=("",), **opts):
    opts.setdefault("utc", True)
    kb, k, v = keys_for(agg, rows)
    f = make_formatter(kind, kb.primitives, kb.key_dtype, OutputOptions(**opts))
    return f.header(), f.render(k, v, list(strings))


# ---- formatted -----------------------------------------------------------------------
def test_formatted_header_as_pmacct_prints_it():
    # header line written by pmacct 1.7.7 for this aggregate (corpus test 100)
    agg = ("src_host,dst_host,src_port,dst_port,proto,tos,peer_src_ip,peer_dst_ip,in_iface,"
           "out_iface,tcpflags,timestamp_start,timestamp_end,mpls_vpn_rd,src_mac,etype,"
           "sampling_direction")
    kb = KeyBuilder(parse_aggregate(agg, "nfacctd"))
    f = make_formatter("formatted", kb.primitives, kb.key_dtype)
    assert f.header() == (
        "SRC_MAC            ETYPE  PEER_SRC_IP                                    "
        "PEER_DST_IP                                    IN_IFACE    OUT_IFACE   "
        "MPLS_VPN_RD         SRC_IP                                         "
        "DST_IP                                         SRC_PORT  DST_PORT  TCP_FLAGS  "
        "PROTOCOL    TOS    SAMPLING_DIRECTION TIMESTAMP_START                "
        "TIMESTAMP_END                  PACKETS               BYTES\n")


def test_formatted_rows_fixed_widths():
    header, body = render("formatted")
    assert header == ("SRC_IP".ljust(47) + "DST_IP".ljust(47) + "SRC_PORT  DST_PORT  "
                      "TCP_FLAGS  PROTOCOL    TIMESTAMP_START                "
                      "PACKETS               FLOWS                 BYTES\n")
    assert body.splitlines(True) == [
        "10.0.0.1".ljust(47) + "2001:db8::2".ljust(47) + "1024      80        18         "
        "tcp         2023-02-28 09:46:01.088000     3                     1                     "
        "1500\n",
        # an unset address prints as :: in formatted output
        "::".ljust(47) + "192.168.1.1".ljust(47) + "0         53        0          "
        "udp         0000-00-00 00:00:00.000000     1                     1                     "
        "64\n",
    ]


def test_formatted_flows_column_only_with_flows():
    header, body = render("formatted", agg="dst_port")
    assert header == "DST_PORT  PACKETS               BYTES\n"
    assert body == "80        3                     1500\n53        1                     64\n"


def test_event_formatted_has_no_counters():
    header, body = render("event_formatted", agg="dst_port,proto")
    assert header == "DST_PORT  PROTOCOL    \n"
    assert body == "80        tcp         \n53        udp         \n"


def test_formatted_long_value_is_not_cut():
    rows = [dict(tag=12345678901234567890, packets=1, bytes=2)]
    header, body = render("formatted", agg="tag", rows=rows)
    assert header == "TAG         PACKETS               BYTES\n"
    assert body == "12345678901234567890  1                     2\n"


def test_formatted_refuses_variable_length_primitives():
    kb = KeyBuilder(parse_aggregate("label,src_host", "nfacctd"))
    with pytest.raises(FormatterError, match="variable-length primitives"):
        make_formatter("formatted", kb.primitives, kb.key_dtype)
    with pytest.raises(FormatterError):
        make_formatter("event_formatted", kb.primitives, kb.key_dtype)
    make_formatter("csv", kb.primitives, kb.key_dtype)
    make_formatter("json", kb.primitives, kb.key_dtype)


def test_unknown_format_is_refused():
    kb = KeyBuilder(("src_host",))
    with pytest.raises(FormatterError, match="not supported"):
        make_formatter("avro", kb.primitives, kb.key_dtype)


# ---- CSV ---------------------------------------------------------------------------------
def test_csv_rows_and_empty_values():
    header, body = render("csv")
    assert header == ("SRC_IP,DST_IP,SRC_PORT,DST_PORT,TCP_FLAGS,PROTOCOL,TIMESTAMP_START,"
                      "PACKETS,FLOWS,BYTES\n")
    assert body == ("10.0.0.1,2001:db8::2,1024,80,18,tcp,2023-02-28 09:46:01.088000,3,1,1500\n"
                    ",192.168.1.1,0,53,0,udp,0000-00-00 00:00:00.000000,1,1,64\n")


@pytest.mark.parametrize("sep,want", [("\\s", " "), ("\\t", "\t"), (";", ";"), (None, ",")])
def test_csv_separator(sep, want):
    header, body = render("csv", agg="src_port,dst_port", separator=sep)
    assert header == want.join(["SRC_PORT", "DST_PORT", "PACKETS", "BYTES"]) + "\n"
    assert body.splitlines()[0] == want.join(["1024", "80", "3", "1500"])


def test_event_csv_has_no_counters():
    header, body = render("event_csv", agg="src_port,dst_port")
    assert header == "SRC_PORT,DST_PORT\n"
    assert body == "1024,80\n0,53\n"


def test_csv_num_protos():
    _, body = render("csv", agg="proto", num_protos=True)
    assert body == "6,3,1500\n17,1,64\n"


def test_column_order_is_pmacct_order_not_aggregate_order():
    header, _ = render("csv", agg="proto,dst_port,src_host,tag,in_iface,src_mac,src_as")
    assert header == "TAG,SRC_MAC,SRC_AS,IN_IFACE,SRC_IP,DST_PORT,PROTOCOL,PACKETS,BYTES\n"


def test_sum_primitives_print_as_source_columns():
    for agg, col in [("sum_host", "SRC_IP"), ("sum_net", "SRC_NET"), ("sum_port", "SRC_PORT"),
                     ("sum_as", "SRC_AS"), ("sum_mac", "SRC_MAC")]:
        header, _ = render("csv", agg=agg)
        assert header == f"{col},PACKETS,BYTES\n", agg
    _, body = render("csv", agg="sum_port")
    assert sorted(body.splitlines()) == sorted(
        ["1024,3,1500", "80,3,1500", "0,1,64", "53,1,64"])


def test_none_gives_counters_only():
    header, body = render("csv", agg="none")
    assert header == "PACKETS,BYTES\n"
    assert body == "3,1500\n1,64\n"      # the cache sums them into one in a real purge
    header, body = render("formatted", agg="none")
    assert header == "PACKETS               BYTES\n"


def test_csv_strings_as_pmacct_prints_them():
    strings = ["", "65000 65001", "my,label"]
    rows = [dict(as_path=1, label=2, packets=1, bytes=10)]
    header, body = render("csv", agg="as_path,label", rows=rows, strings=strings)
    assert header == "LABEL,AS_PATH,PACKETS,BYTES\n"
    assert body == "my,label,65000_65001,1,10\n"      # no quoting, as in pmacct


def test_peer_dst_ip_follows_flow_family():
    rows = [dict(src_host="10.0.0.1", peer_dst_ip="0.0.0.0", packets=1, bytes=1),
            dict(src_host="2001:db8::1", peer_dst_ip="0.0.0.0", packets=1, bytes=1),
            dict(src_host="2001:db8::1", peer_dst_ip="2001:db8::ff", packets=1, bytes=1),
            dict(src_host=None, peer_dst_ip=None, packets=1, bytes=1)]
    _, body = render("csv", agg="peer_dst_ip", rows=rows)
    assert body.splitlines() == ["0.0.0.0,1,1", "::ffff:0.0.0.0,1,1", "2001:db8::ff,1,1", ",1,1"]
    _, body = render("formatted", agg="peer_dst_ip", rows=rows)
    assert body.splitlines()[3].startswith(":: ")


def test_mac_etype_rd_vlan():
    rows = [dict(src_mac="00:1b:21:aa:bc:ff", etype=0x86DD, vlan=100, cos=5,
                 mpls_vpn_rd=bytes.fromhex("0000fde800000064"), packets=1, bytes=2)]
    header, body = render("csv", agg="src_mac,dst_mac,vlan,cos,etype,mpls_vpn_rd", rows=rows)
    assert header == "SRC_MAC,DST_MAC,VLAN,COS,ETYPE,MPLS_VPN_RD,PACKETS,BYTES\n"
    assert body == "00:1b:21:aa:bc:ff,00:00:00:00:00:00,100,5,86dd,0:65000:100,1,2\n"
    _, body = render("formatted", agg="src_mac,etype,mpls_vpn_rd", rows=rows)
    assert body == ("00:1b:21:aa:bc:ff  86dd   0:65000:100         1                     2\n")


# ---- JSON --------------------------------------------------------------------------------
def test_json_keys_order_and_types():
    _, body = render("json")
    lines = body.splitlines()
    assert lines[0] == (
        '{"event_type": "purge", "ip_src": "10.0.0.1", "ip_dst": "2001:db8::2", '
        '"port_src": 1024, "port_dst": 80, "tcp_flags": "18", "ip_proto": "tcp", '
        '"timestamp_start": "2023-02-28 09:46:01.088000", "flows": 1, "packets": 3, '
        '"bytes": 1500}')
    assert json.loads(lines[1])["ip_src"] == ""


def test_json_order_differs_from_csv_order():
    agg = ("peer_src_ip,in_iface,src_as,med,local_pref,timestamp_export,export_proto_seqno,"
           "tag,label,sampling_rate,tos,proto")
    kb = KeyBuilder(parse_aggregate(agg, "nfacctd"))
    f = make_formatter("json", kb.primitives, kb.key_dtype)
    body = f.render(np.zeros(1, kb.key_dtype), {"packets": np.array([1], np.uint64),
                                                 "bytes": np.array([2], np.uint64),
                                                 "flows": np.array([0], np.uint64)}, [""])
    keys = list(json.loads(body))
    assert keys == ["event_type", "tag", "label", "as_src", "local_pref", "med", "peer_ip_src",
                    "iface_in", "ip_proto", "tos", "sampling_rate", "export_proto_seqno",
                    "timestamp_export", "packets", "bytes"]
    line = json.loads(body)
    assert line["ip_proto"] == "0" and line["label"] == "" and line["peer_ip_src"] == ""
    assert line["timestamp_export"].startswith("0000-00-00") or line["timestamp_export"]


def test_json_escapes_strings():
    strings = ["", 'a "quoted"\\label\twith\ncontrol\x01', "65000 65001"]
    rows = [dict(label=1, as_path=2, packets=1, bytes=2)]
    _, body = render("json", agg="label,as_path", rows=rows, strings=strings)
    obj = json.loads(body)
    assert obj["label"] == strings[1]
    assert obj["as_path"] == "65000_65001"
    assert '\\u0001' in body


def test_json_history_stamps():
    tb = TimeBins.from_config("5m", None, 0, True, now=1677577500)
    kb = KeyBuilder(("src_port",), time_bins=tb)
    keys = np.zeros(2, kb.key_dtype)
    keys["src_port"] = [1, 2]
    keys["stamp_inserted"] = [1677577500, 0]
    vals = {"packets": np.array([1, 2], np.uint64), "bytes": np.array([3, 4], np.uint64),
            "flows": np.zeros(2, np.uint64)}
    f = make_formatter("json", kb.primitives, kb.key_dtype, OutputOptions(utc=True))
    lines = f.render(keys, vals, [""], now=1677577800).splitlines()
    assert lines[0] == ('{"event_type": "purge", "port_src": 1, "stamp_inserted": '
                        '"2023-02-28 09:45:00", "stamp_updated": "2023-02-28 09:50:00", '
                        '"packets": 1, "bytes": 3}')
    # no time bin: pmacct leaves both stamps out
    assert lines[1] == '{"event_type": "purge", "port_src": 2, "packets": 2, "bytes": 4}'
    f = make_formatter("json", kb.primitives, kb.key_dtype,
                       OutputOptions(since_epoch=True))
    assert '"stamp_inserted": "1677577500", "stamp_updated": "1677577800"' in \
        f.render(keys, vals, [""], now=1677577800)
    f = make_formatter("json", kb.primitives, kb.key_dtype, OutputOptions(rfc3339=True, utc=True))
    assert '"stamp_inserted": "2023-02-28T09:45:00Z"' in f.render(keys, vals, [""], now=1)
    # text formats show no stamps (as pmacct's print plugin)
    f = make_formatter("csv", kb.primitives, kb.key_dtype)
    assert f.header() == "SRC_PORT,PACKETS,BYTES\n"


def test_json_markers():
    assert purge_init("a", 123) == b'{"event_type": "purge_init", "writer_id": "a/123"}\n'
    assert purge_close("a", 123, 5, 7, 0) == (
        b'{"event_type": "purge_close", "writer_id": "a/123", "purged_entries": 5, '
        b'"total_entries": 7, "duration": 0}\n')


def test_json_lines_are_valid_json_for_every_column():
    from pypmacct.output.columns import COLUMNS
    prims = sorted({p for c in COLUMNS for p in c.primitives
                    if not p.startswith("sum_") and p != "class"})
    prims = [p for p in prims if p in __import__("pypmacct.primitives").primitives.PRIMITIVES]
    kb = KeyBuilder(tuple(prims))
    keys = np.zeros(3, kb.key_dtype)
    vals = {"packets": np.arange(3, dtype=np.uint64), "bytes": np.arange(3, dtype=np.uint64),
            "flows": np.arange(3, dtype=np.uint64), "tcp_flags": np.array([1, 2, 3], np.uint8)}
    f = make_formatter("json", kb.primitives, kb.key_dtype)
    for line in f.render(keys, vals, [""]).splitlines():
        obj = json.loads(line)
        assert obj["event_type"] == "purge"
    f = make_formatter("csv", kb.primitives, kb.key_dtype)
    body = f.render(keys, vals, [""])
    assert all(len(l.split(",")) == len(f.header().split(",")) for l in body.splitlines())


def test_rendering_many_rows_in_chunks_matches_small_renders():
    rng = np.random.default_rng(5)
    n = 40000
    rows = []
    kb = KeyBuilder(parse_aggregate("src_host,dst_port,proto", "nfacctd"))
    keys = np.zeros(n, kb.key_dtype)
    keys["src_host"]["af"] = 4
    raw = np.zeros((n, 16), np.uint8)
    raw[:, :4] = rng.integers(0, 256, (n, 4))
    keys["src_host"]["addr"] = raw.view("V16").reshape(-1)
    keys["dst_port"] = rng.integers(0, 65536, n)
    keys["proto"] = rng.integers(0, 256, n)
    vals = {"packets": rng.integers(0, 2**40, n).astype(np.uint64),
            "bytes": rng.integers(0, 2**63, n).astype(np.uint64),
            "flows": np.zeros(n, np.uint64)}
    for kind in ("csv", "formatted", "json"):
        f = make_formatter(kind, kb.primitives, kb.key_dtype)
        whole = f.render(keys, vals, [""]).splitlines()
        assert len(whole) == n
        for i in (0, 17, 16383, 16384, n - 1):
            one = f.render(keys[i:i + 1], {k: v[i:i + 1] for k, v in vals.items()}, [""])
            assert whole[i] + "\n" == one


def test_json_leaves_counters_out_of_event_and_option_aggregates():
    kb = KeyBuilder(("src_port", "flows"))
    keys = np.zeros(3, kb.key_dtype)
    keys["src_port"] = [1, 2, 3]
    vals = {"packets": np.array([1, 2, 3], np.uint64), "bytes": np.array([4, 5, 6], np.uint64),
            "flows": np.array([7, 8, 9], np.uint64),
            "flow_type": np.array([1, 3, 2], np.uint8)}     # flow, event, option
    lines = make_formatter("json", kb.primitives, kb.key_dtype).render(keys, vals).splitlines()
    assert lines == ['{"event_type": "purge", "port_src": 1, "flows": 7, "packets": 1, '
                     '"bytes": 4}',
                     '{"event_type": "purge", "port_src": 2}',
                     '{"event_type": "purge", "port_src": 3}']


def test_wide_values_shift_formatted_lines_as_pmacct():
    # a tag wider than its 10-character column pushes the rest of its line right; the
    # other lines keep the fixed layout
    kb = KeyBuilder(("tag", "src_port"))
    keys = np.zeros(2, kb.key_dtype)
    keys["tag"] = [7, 123456789012345]
    keys["src_port"] = [80, 443]
    vals = {"packets": np.array([1, 2], np.uint64), "bytes": np.array([3, 40], np.uint64),
            "flows": np.zeros(2, np.uint64)}
    f = make_formatter("formatted", kb.primitives, kb.key_dtype)
    lines = f.render(keys, vals).splitlines()
    assert lines == ["%-10s  %-5s     %-20s  %s" % (7, 80, 1, 3),
                     "%-10s  %-5s     %-20s  %s" % (123456789012345, 443, 2, 40)]
