"""Projection of records onto aggregate keys."""
import ipaddress

import numpy as np

from pypmacct.aggregate import KeyBuilder, mask_addresses
from pypmacct.record import ADDR_DTYPE, RECORD_DTYPE
from pypmacct.timebins import TimeBins


def addr(text):
    ip = ipaddress.ip_address(text)
    out = np.zeros(1, ADDR_DTYPE)
    out["af"] = ip.version
    out["addr"] = ip.packed.ljust(16, b"\0")
    return out[0]


def text(a):
    raw = bytes(a["addr"])
    return str(ipaddress.ip_address(raw[:4] if a["af"] == 4 else raw))


def records(n):
    return np.zeros(n, RECORD_DTYPE)


def test_mask_addresses_v4_and_v6():
    a = np.array([addr("10.1.2.3"), addr("2001:db8:abcd::1"), addr("192.168.7.9")])
    m = np.array([8, 36, 40], np.uint8)  # 40 on IPv4 is clamped to 32
    out = mask_addresses(a, m)
    assert [text(x) for x in out] == ["10.0.0.0", "2001:db8:a000::", "192.168.7.9"]
    assert out["af"].tolist() == [4, 6, 4]


def test_copy_and_net_keys():
    r = records(2)
    r["src_host"][0] = addr("10.9.8.7")
    r["src_mask"][0] = 16
    r["src_port"] = [80, 443]
    kb = KeyBuilder(["src_net", "src_port", "tcpflags"])
    assert kb.key_dtype.names == ("src_net", "src_port")
    assert kb.or_tcp_flags
    assert {"src_host", "src_mask", "src_port", "tcp_flags", "packets"} <= kb.input_fields
    keys, vals, _ = kb.build(r)
    assert text(keys["src_net"][0]) == "10.9.0.0"
    assert keys["src_port"].tolist() == [80, 443]
    assert "tcp_flags" in vals


def test_sum_host_counts_both_sides():
    r = records(1)
    r["src_host"][0] = addr("10.0.0.1")
    r["dst_host"][0] = addr("10.0.0.2")
    r["bytes"] = 100
    kb = KeyBuilder(["sum_host"])
    keys, vals, _ = kb.build(r)
    assert [text(k) for k in keys["src_host"]] == ["10.0.0.1", "10.0.0.2"]
    assert vals["bytes"].tolist() == [100, 100]


def test_none_has_empty_key_and_history_adds_stamp():
    tb = TimeBins.from_config("5m", None, 0, utc=True, now=1_000_000)
    r = records(3)
    r["time_start"] = np.array([1_000_000, 1_000_299, 1_000_300]) * 1_000_000
    kb = KeyBuilder(["none"], time_bins=tb)
    assert kb.key_dtype.names == ("stamp_inserted",)
    keys, _, _ = kb.build(r)
    # without a round-off, pmacct anchors bins at the (seconds-zeroed) start time
    assert tb.base == 999_960
    assert keys["stamp_inserted"].tolist() == [999_960, 1_000_260, 1_000_260]


def test_string_fields_are_remapped():
    r = records(2)
    r["as_path"] = [1, 2]
    kb = KeyBuilder(["as_path"])
    lut = np.array([0, 7, 9], np.int32)
    keys, _, _ = kb.build(r, lut)
    assert keys["as_path"].tolist() == [7, 9]


def test_misspelt_primitive_gets_a_suggestion():
    import pytest
    from pypmacct.primitives import AggregateError, parse_aggregate
    with pytest.raises(AggregateError, match="unknown primitive 'src_hots'. Did you mean 'src_host'"):
        parse_aggregate("src_hots, dst_port", "nfacctd")
    with pytest.raises(AggregateError, match="not supported by nfacctd"):
        parse_aggregate("tunnel_src_host", "nfacctd")
    with pytest.raises(AggregateError, match="mutually exclusive"):
        parse_aggregate("sum_host, dst_port", "nfacctd")


def test_next_hop_family_is_a_value_not_part_of_the_key():
    # pmacct 1.7.7 keeps one aggregate per next hop whatever the flows' families and
    # prints it in the family of the last flow (corpus-100: ::ffff:0.0.0.0)
    r = records(3)
    r["src_host"][0] = addr("10.0.0.1")
    r["src_host"][1] = addr("2001:db8::1")
    r["src_host"][2] = addr("10.0.0.2")
    kb = KeyBuilder(["peer_dst_ip"])
    keys, vals, _ = kb.build(r)
    assert "flow_af" not in keys.dtype.names
    assert vals["flow_af"].tolist() == [4, 6, 4]
    assert len(np.unique(keys)) == 1
