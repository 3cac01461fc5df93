"""NetFlow v9 and IPFIX: templates, data, options, times, NEL, robustness, sequence checks."""
from __future__ import annotations

import struct

import pytest

from pypmacct.decoders import CustomField
from pypmacct.record import SAMPLE_EVENT, SAMPLE_FLOW, SAMPLE_OPTION, make_record_dtype
from tests.unit.nfbuild import (addr_text, data_set, decoder, dg, ipfix, options_template_set,
                                record, template_set, v9)

US = 1_000_000
T = 1_700_000_000

# a typical IPv4 template: (type, length)
F4 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (10, 4), (14, 4),
      (1, 4), (2, 4), (22, 4), (21, 4), (9, 1), (13, 1), (16, 4), (17, 4), (15, 4), (18, 4)]
F6 = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (1, 8), (2, 8), (152, 8), (153, 8),
      (29, 1), (30, 1), (62, 16), (63, 16)]


def v4_values(src="10.0.0.1", dst="10.0.0.2", sport=1000, dport=80, proto=6, tos=0, flags=0x18,
              inp=3, out=4, octets=1500, pkts=3, first=3_590_000, last=3_599_000, smask=24,
              dmask=16, sas=64500, das=64501, nh="10.255.0.1", bgp="10.255.0.2"):
    return [src, dst, sport, dport, proto, tos, flags, inp, out, octets, pkts, first, last,
            smask, dmask, sas, das, nh, bgp]


def test_v9_ipv4_fields():
    dec, _ = decoder()
    p = v9([template_set(9, [(256, F4)]), data_set(256, [record(F4, v4_values())])],
           seq=7, source_id=33, uptime=3_600_000, unix=T)
    b = dec.decode([dg(p)])
    assert len(b) == 1
    r = b.records[0]
    assert addr_text(r["src_host"]) == "10.0.0.1" and addr_text(r["dst_host"]) == "10.0.0.2"
    assert (r["src_port"], r["dst_port"], r["proto"], r["tos"], r["tcp_flags"]) == (1000, 80, 6, 0, 0x18)
    assert (r["in_iface"], r["out_iface"], r["bytes"], r["packets"], r["flows"]) == (3, 4, 1500, 3, 1)
    assert (r["src_mask"], r["dst_mask"], r["src_as"], r["dst_as"]) == (24, 16, 64500, 64501)
    assert addr_text(r["nexthop"]) == "10.255.0.1"
    assert addr_text(r["peer_dst_ip"]) == "10.255.0.2"          # BGP next hop
    assert addr_text(r["peer_src_ip"]) == "192.0.2.10"
    assert (r["export_proto_version"], r["export_proto_seqno"], r["export_proto_sysid"]) == (9, 7, 33)
    assert r["ts_start"] == (T - 10) * US and r["ts_end"] == (T - 1) * US
    assert r["time_start"] == r["ts_start"] and r["time_end"] == r["ts_end"]
    assert r["ts_export"] == T * US and r["etype"] == 0x0800
    assert r["sample_type"] == SAMPLE_FLOW


def test_ipfix_ipv6_fields_and_absolute_times():
    dec, _ = decoder()
    vals = ["2001:db8::1", "2001:db8::2", 5000, 443, 17, 10**10, 7, (T - 5) * 1000 + 123,
            (T - 1) * 1000 + 999, 48, 64, "2001:db8::fe", "2001:db8::ff"]
    p = ipfix([template_set(10, [(300, F6)]), data_set(300, [record(F6, vals)])], seq=1, domain=9)
    r = dec.decode([dg(p)]).records[0]
    assert addr_text(r["src_host"]) == "2001:db8::1" and addr_text(r["dst_host"]) == "2001:db8::2"
    assert (r["bytes"], r["packets"], r["src_mask"], r["dst_mask"]) == (10**10, 7, 48, 64)
    assert r["ts_start"] == (T - 5) * US + 123_000 and r["ts_end"] == (T - 1) * US + 999_000
    assert addr_text(r["nexthop"]) == "2001:db8::fe" and addr_text(r["peer_dst_ip"]) == "2001:db8::ff"
    assert r["etype"] == 0x86DD and r["export_proto_sysid"] == 9 and r["export_proto_version"] == 10


def test_data_before_template_is_counted_and_dropped():
    dec, sink = decoder(debug=True)
    data = data_set(256, [record(F4, v4_values())] * 2)
    b = dec.decode([dg(v9([data])), dg(v9([template_set(9, [(256, F4)])])), dg(v9([data]))])
    assert len(b) == 2
    c = dec.stats.exporter("192.0.2.10")
    assert c.no_template == 1 and c.templates == 1 and c.bad_datagrams == 0
    assert any("unknown template 256" in l for l in sink.lines)


def test_templates_are_per_exporter_and_domain():
    dec, _ = decoder()
    tpl = template_set(9, [(256, F4)])
    data = data_set(256, [record(F4, v4_values())])
    b = dec.decode([dg(v9([tpl], source_id=1)), dg(v9([data], source_id=2)),
                    dg(v9([data], source_id=1), src="192.0.2.99"), dg(v9([data], source_id=1))])
    assert len(b) == 1
    assert dec.stats.totals().no_template == 2


def test_redefinition_within_one_batch():
    dec, _ = decoder()
    fa = [(8, 4), (12, 4), (2, 4), (1, 4)]
    fb = [(12, 4), (8, 4), (1, 4), (2, 4), (5, 1)]
    dgs = [dg(ipfix([template_set(10, [(400, fa)]), data_set(400, [record(fa, ["1.1.1.1", "2.2.2.2", 5, 500])])])),
           dg(ipfix([template_set(10, [(400, fb)]), data_set(400, [record(fb, ["3.3.3.3", "4.4.4.4", 600, 6, 9])])])),
           dg(ipfix([data_set(400, [record(fb, ["5.5.5.5", "6.6.6.6", 700, 7, 1])])]))]
    r = dec.decode(dgs).records
    got = sorted((addr_text(x["src_host"]), int(x["packets"]), int(x["bytes"]), int(x["tos"])) for x in r)
    assert got == [("1.1.1.1", 5, 500, 0), ("4.4.4.4", 6, 600, 9), ("6.6.6.6", 7, 700, 1)]


def test_ipfix_withdrawal():
    dec, _ = decoder()
    f = [(8, 4), (1, 4)]
    data = data_set(500, [record(f, ["1.1.1.1", 10])])
    withdraw_one = struct.pack("!HHHH", 2, 8, 500, 0)
    withdraw_all = struct.pack("!HHHH", 2, 8, 2, 0)
    b = dec.decode([dg(ipfix([template_set(10, [(500, f)]), data])),
                    dg(ipfix([withdraw_one, data])),
                    dg(ipfix([template_set(10, [(500, f), (501, f)]), data])),
                    dg(ipfix([withdraw_all, data, data_set(501, [record(f, ["2.2.2.2", 1])])]))])
    assert len(b) == 2
    assert dec.stats.totals().no_template == 3
    assert len(dec.templates) == 0


def test_padding_never_makes_records():
    dec, _ = decoder()
    f = [(8, 4), (1, 4), (4, 1)]            # 9-byte records
    sets = [template_set(10, [(256, f)], pad=3),
            data_set(256, [record(f, ["1.1.1.1", 100, 6])] * 2, pad=7)]
    b = dec.decode([dg(ipfix(sets))])
    assert len(b) == 2 and dec.stats.totals().bad_datagrams == 0


def test_odd_and_reduced_size_encodings():
    dec, _ = decoder()
    f = [(8, 4), (1, 3), (2, 5), (10, 2), (16, 2), (70, 3), (71, 3), (3, 7)]
    lab1 = (100 << 4)                       # label 100, no bottom-of-stack bit
    lab2 = (200 << 4) | 1                   # label 200, bottom of stack
    vals = ["9.9.9.9", 0xABCDEF, 0x0102030405, 77, 65000, lab1, lab2, 5]
    r = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, [record(f, vals)])]))]).records[0]
    assert (r["bytes"], r["packets"], r["in_iface"], r["src_as"]) == (0xABCDEF, 0x0102030405, 77, 65000)
    assert (r["mpls_label_top"], r["mpls_label_bottom"], r["mpls_stack_depth"]) == (100, 200, 2)
    assert r["flows"] == 5


def test_variable_length_fields_and_enterprise_elements():
    dtype = make_record_dtype([("app_name", "i4"), ("vendor_x", "u4"), ("raw_blob", "i4")])
    custom = (CustomField("app_name", 96, length=0, semantics="str"),
              CustomField("vendor_x", 77, pen=9999, length=4),
              CustomField("raw_blob", 1000, pen=9999, semantics="raw"))
    dec, _ = decoder(record_dtype=dtype, custom_fields=custom)
    f = [(8, 4), (96, 65535), (77, 4, 9999), (1, 4), (1000, 65535, 9999), (3, 2, 12345), (12, 4)]
    long_name = b"x" * 300                  # needs the 3-byte length form
    recs = [record(f, ["1.1.1.1", b"http", 0xAABBCCDD, 100, b"\x01\x02", 1, "2.2.2.2"]),
            record(f, ["3.3.3.3", long_name, 5, 200, b"", 2, "4.4.4.4"])]
    b = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, recs, pad=2)]))])
    assert len(b) == 2
    r = b.records
    assert [addr_text(x) for x in r["src_host"]] == ["1.1.1.1", "3.3.3.3"]
    assert [addr_text(x) for x in r["dst_host"]] == ["2.2.2.2", "4.4.4.4"]
    assert list(r["bytes"]) == [100, 200]
    assert [b.strings[i] for i in r["app_name"]] == ["http", "x" * 300]
    assert list(r["vendor_x"]) == [0xAABBCCDD, 5]
    # raw: pmacct 1.7.7 prints upper-case hex bytes joined by "-" (tests/diff/test_custom_primitives_diff.py)
    assert [b.strings[i] for i in r["raw_blob"]] == ["01-02", ""]


def test_pmacct_enterprise_tag_and_label():
    dec, _ = decoder()
    f = [(8, 4), (1, 4), (1, 8, 43874), (2, 8, 43874), (3, 65535, 43874)]
    p = ipfix([template_set(10, [(256, f)]),
               data_set(256, [record(f, ["1.1.1.1", 1, 42, 43, b"blue"])])])
    b = dec.decode([dg(p)])
    r = b.records[0]
    assert (r["tag"], r["tag2"]) == (42, 43) and b.strings[r["label"]] == "blue"


def test_mixed_ipv4_ipv6_template():
    dec, _ = decoder()
    f = [(8, 4), (12, 4), (27, 16), (28, 16), (1, 4), (9, 1), (29, 1)]
    recs = [record(f, ["1.2.3.4", "5.6.7.8", "::", "::", 10, 24, 0]),
            record(f, ["0.0.0.0", "0.0.0.0", "2001:db8::1", "2001:db8::2", 20, 0, 64])]
    r = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, recs)]))]).records
    r = sorted(r, key=lambda x: int(x["bytes"]))
    assert addr_text(r[0]["src_host"]) == "1.2.3.4" and r[0]["src_mask"] == 24 and r[0]["etype"] == 0x800
    assert addr_text(r[1]["src_host"]) == "2001:db8::1" and r[1]["src_mask"] == 64 and r[1]["etype"] == 0x86DD
    # an explicit ipVersion wins
    f2 = f + [(60, 1)]
    recs = [record(f2, ["1.2.3.4", "5.6.7.8", "2001:db8::1", "2001:db8::2", 10, 24, 64, 6])]
    r = dec.decode([dg(ipfix([template_set(10, [(257, f2)]), data_set(257, recs)]))]).records[0]
    assert addr_text(r["src_host"]) == "2001:db8::1"


def test_traffic_without_addresses_is_dropped_like_pmacct():
    dec, _ = decoder()
    f = [(1, 4), (2, 4), (7, 2)]
    b = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, [record(f, [1, 1, 1])])]))])
    assert len(b) == 0 and dec.stats.totals().bad_datagrams == 0


def test_nat_events():
    dec, _ = decoder()
    f = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (225, 4), (226, 4), (227, 2), (228, 2), (230, 1),
         (323, 8)]
    vals = ["10.0.0.5", "8.8.8.8", 3333, 53, 17, "198.51.100.7", "8.8.8.8", 40001, 53, 1,
            (T - 2) * 1000 + 5]
    b = dec.decode([dg(ipfix([template_set(10, [(260, f)]), data_set(260, [record(f, vals)])]))])
    r = b.records[0]
    assert r["sample_type"] == SAMPLE_EVENT
    assert addr_text(r["post_nat_src_host"]) == "198.51.100.7" and addr_text(r["post_nat_dst_host"]) == "8.8.8.8"
    assert (r["post_nat_src_port"], r["post_nat_dst_port"], r["nat_event"], r["fw_event"]) == (40001, 53, 1, 1)
    assert (r["packets"], r["bytes"], r["flows"]) == (0, 0, 1)
    assert r["ts_start"] == (T - 2) * US + 5000          # observationTimeMilliseconds


def test_asa_nsel_elements():
    dec, _ = decoder()
    f = [(8, 4), (12, 4), (40001, 4), (40002, 4), (40003, 2), (40004, 2), (40005, 1)]
    vals = ["10.0.0.5", "8.8.4.4", "203.0.113.1", "8.8.4.4", 1111, 53, 2]
    r = dec.decode([dg(v9([template_set(9, [(263, f)]), data_set(263, [record(f, vals)])]))]).records[0]
    assert addr_text(r["post_nat_src_host"]) == "203.0.113.1"
    assert (r["post_nat_src_port"], r["post_nat_dst_port"], r["nat_event"]) == (1111, 53, 2)


def test_l2_fields_and_direction():
    dec, _ = decoder()
    f = [(8, 4), (1, 4), (56, 6), (80, 6), (58, 2), (59, 2), (61, 1), (244, 1), (256, 2), (245, 2)]
    recs = [record(f, ["1.1.1.1", 1, b"\x00\x11\x22\x33\x44\x55", b"\x66\x77\x88\x99\xaa\xbb", 10, 20, 0, 5, 0x8100, 7]),
            record(f, ["1.1.1.2", 2, b"\x00" * 6, b"\x01" * 6, 10, 20, 1, 0, 0x86DD, 0])]
    r = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, recs)]))]).records
    r = sorted(r, key=lambda x: int(x["bytes"]))
    assert bytes(r[0]["src_mac"]).hex() == "001122334455" and bytes(r[0]["dst_mac"]).hex() == "66778899aabb"
    assert r[0]["vlan"] == 10 and r[1]["vlan"] == 20          # ingress vs egress VLAN
    assert chr(r[0]["sampling_direction"]) == "i" and chr(r[1]["sampling_direction"]) == "e"
    assert r[0]["cos"] == 5 and r[0]["etype"] == 0x8100 and r[0]["cvlan"] == 7


def test_time_variants():
    dec, _ = decoder()
    # IPFIX: flowStartSeconds / flowEndSeconds
    f = [(8, 4), (1, 4), (150, 4), (151, 4)]
    r = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, [record(f, ["1.1.1.1", 1, T - 9, T - 2])])]))]).records[0]
    assert (r["ts_start"], r["ts_end"]) == ((T - 9) * US, (T - 2) * US)
    # IPFIX: flowStartSysUpTime + systemInitTimeMilliseconds
    f = [(8, 4), (1, 4), (22, 4), (21, 4), (160, 8)]
    r = dec.decode([dg(ipfix([template_set(10, [(257, f)]), data_set(257, [record(f, ["1.1.1.1", 1, 5_000, 8_000, (T - 100) * 1000])])]))]).records[0]
    assert (r["ts_start"], r["ts_end"]) == ((T - 95) * US, (T - 92) * US)
    # ... without systemInitTime pmacct has no start: the export time stands in, no end
    f = [(8, 4), (1, 4), (22, 4), (21, 4)]
    r = dec.decode([dg(ipfix([template_set(10, [(258, f)]), data_set(258, [record(f, ["1.1.1.1", 1, 5_000, 8_000])])]))]).records[0]
    assert (r["ts_start"], r["ts_end"]) == (T * US, 0)
    # delta microseconds before export
    f = [(8, 4), (1, 4), (158, 4), (159, 4)]
    r = dec.decode([dg(ipfix([template_set(10, [(259, f)]), data_set(259, [record(f, ["1.1.1.1", 1, 2_500_000, 500_000])])]))]).records[0]
    assert (r["ts_start"], r["ts_end"]) == (T * US - 2_500_000, T * US - 500_000)
    # dateTimeMicroseconds (NTP format)
    f = [(8, 4), (1, 4), (154, 8), (155, 8)]
    ntp = lambda s, frac: ((s + 2208988800) << 32) | frac
    r = dec.decode([dg(ipfix([template_set(10, [(261, f)]), data_set(261, [record(f, ["1.1.1.1", 1, ntp(T - 3, 1 << 31), ntp(T - 1, 0)])])]))]).records[0]
    assert (r["ts_start"], r["ts_end"]) == ((T - 3) * US + 500_000, (T - 1) * US)
    # no time at all: start is the export time, end unknown
    f = [(8, 4), (1, 4)]
    r = dec.decode([dg(ipfix([template_set(10, [(262, f)]), data_set(262, [record(f, ["1.1.1.1", 1])])]))]).records[0]
    assert (r["ts_start"], r["ts_end"], r["time_start"]) == (T * US, 0, T * US)


def test_time_new_zeroes_bins_only():
    dec, _ = decoder(time_new=True)
    r = dec.decode([dg(v9([template_set(9, [(256, F4)]), data_set(256, [record(F4, v4_values())])]))]).records[0]
    assert r["time_start"] == 0 and r["time_end"] == 0
    assert r["ts_start"] == (T - 10) * US


def test_v9_uptime_wrap_and_clock_race():
    dec, _ = decoder()
    vals = v4_values(first=2**32 - 4_000, last=3_601_200)
    r = dec.decode([dg(v9([template_set(9, [(256, F4)]), data_set(256, [record(F4, vals)])], uptime=1_000))]).records[0]
    assert r["ts_start"] == (T - 5) * US           # 5 s old across the 2^32 ms wrap
    vals = v4_values(first=3_590_000, last=3_601_200)
    r = dec.decode([dg(v9([data_set(256, [record(F4, vals)])], uptime=3_600_000))]).records[0]
    assert r["ts_end"] == (T + 1) * US             # stamped 1.2 s after the header
    # 30 days old: 30 days back (pmacct's unsigned (uptime - switched)), not 19.7 days ahead
    vals = v4_values(first=1_000, last=1_000)
    r = dec.decode([dg(v9([data_set(256, [record(F4, vals)])], uptime=1_000 + 30 * 86_400_000))]).records[0]
    assert r["ts_start"] == r["ts_end"] == (T - 30 * 86_400) * US
    # stamped 2 h after the header, past the jitter window: wrapped as pmacct does
    vals = v4_values(first=3_600_000, last=10_800_000)
    r = dec.decode([dg(v9([data_set(256, [record(F4, vals)])], uptime=3_600_000))]).records[0]
    assert r["ts_end"] == (T - (2**32 - 7_200_000) // 1000) * US


def test_sampling_options_v9():
    dec, _ = decoder()
    # options: scope system, sampler id (1 byte) -> random interval (4 bytes)
    opt = options_template_set(9, 300, [(1, 4)], [(48, 1), (49, 1), (50, 4)])
    odata = data_set(300, [record([(1, 4), (48, 1), (49, 1), (50, 4)], [0, 5, 2, 100])])
    f = F4 + [(48, 1)]
    data = data_set(256, [record(f, v4_values() + [5]), record(f, v4_values() + [6])])
    b = dec.decode([dg(v9([opt, odata, template_set(9, [(256, f)]), data]))])
    rates = sorted(int(x) for x in b.records["sampling_rate"])
    assert rates == [0, 100]
    dec, _ = decoder(renormalize=True)
    r = dec.decode([dg(v9([opt, odata, template_set(9, [(256, f)]), data]))]).records
    r = sorted(r, key=lambda x: int(x["packets"]))
    assert (r[0]["packets"], r[0]["sampling_rate"]) == (3, 0)         # sampler 6: unknown
    assert (r[1]["packets"], r[1]["bytes"], r[1]["sampling_rate"]) == (300, 150000, 1)


def test_sampling_options_ipfix_without_sampler_id_in_data():
    dec, _ = decoder()
    # selector id (4 bytes) scoping packet interval/space: 1 out of 1+99
    opt = options_template_set(10, 301, [(302, 4)], [(305, 4), (306, 4)])
    odata = data_set(301, [record([(302, 4), (305, 4), (306, 4)], [1, 1, 99])])
    f = [(8, 4), (1, 4), (2, 4)]
    data = data_set(256, [record(f, ["1.1.1.1", 100, 1])])
    r = dec.decode([dg(ipfix([opt, odata, template_set(10, [(256, f)]), data]))]).records[0]
    assert r["sampling_rate"] == 100
    # random n-out-of-N (samplingSize/samplingPopulation), selector id in the data
    opt = options_template_set(10, 302, [(302, 4)], [(309, 4), (310, 4)])
    odata = data_set(302, [record([(302, 4), (309, 4), (310, 4)], [7, 1, 256])])
    f = [(8, 4), (1, 4), (2, 4), (302, 4)]
    data = data_set(257, [record(f, ["1.1.1.1", 100, 1, 7])])
    dec, _ = decoder(renormalize=True)
    r = dec.decode([dg(ipfix([opt, odata, template_set(10, [(257, f)]), data]))]).records[0]
    assert (r["packets"], r["bytes"]) == (256, 25600)


def test_sampling_interval_inline_in_data():
    dec, _ = decoder()
    f = [(8, 4), (1, 4), (34, 4)]
    r = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, [record(f, ["1.1.1.1", 1, 64])])]))]).records[0]
    assert r["sampling_rate"] == 64


def test_sampling_rate_change_applies_from_its_datagram_on():
    dec, _ = decoder()
    opt = options_template_set(9, 300, [(1, 4)], [(48, 1), (50, 4)])
    of = [(1, 4), (48, 1), (50, 4)]
    f = F4 + [(48, 1)]
    tpl = template_set(9, [(256, f)])
    d = lambda: data_set(256, [record(f, v4_values() + [1])])
    dgs = [dg(v9([opt, data_set(300, [record(of, [0, 1, 10])]), tpl, d()])),
           dg(v9([d()])),
           dg(v9([data_set(300, [record(of, [0, 1, 20])]), d()])),
           dg(v9([d()]))]
    b = dec.decode(dgs)
    assert sorted(int(x) for x in b.records["sampling_rate"]) == [10, 10, 20, 20]


def test_exporter_address_from_options():
    dec, _ = decoder()
    opt = options_template_set(10, 310, [(144, 4)], [(130, 4)])
    odata = data_set(310, [record([(144, 4), (130, 4)], [1, "203.0.113.77"])])
    f = [(8, 4), (1, 4)]
    b = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data_set(256, [record(f, ["1.1.1.1", 1])])])),
                    dg(ipfix([opt, odata, data_set(256, [record(f, ["1.1.1.1", 2])])]))])
    got = sorted((int(x["bytes"]), addr_text(x["peer_src_ip"])) for x in b.records)
    assert got == [(1, "192.0.2.10"), (2, "203.0.113.77")]


def test_vrf_to_rd_from_options_and_vrfid_without_map():
    dec, _ = decoder()
    rd = bytes.fromhex("0002fbf1a2ca0076")           # type 2, 4226851530:118
    opt = options_template_set(10, 311, [(234, 4)], [(235, 4), (90, 8)])
    odata = data_set(311, [record([(234, 4), (235, 4), (90, 8)], [7, 0, rd])])
    f = [(8, 4), (1, 4), (234, 4), (235, 4)]
    data = data_set(256, [record(f, ["1.1.1.1", 1, 7, 0]), record(f, ["1.1.1.1", 2, 9, 0])])
    r = dec.decode([dg(ipfix([template_set(10, [(256, f)]), data, opt, odata, data]))]).records
    got = sorted((int(x["bytes"]), bytes(x["mpls_vpn_rd"]).hex()) for x in r)
    assert got == sorted([
        (1, "1000000000000007"),     # vrf 7 before the options: typed "vrf id 7"
        (2, "1000000000000009"),
        (1, rd.hex()),               # vrf 7 after: the RD the exporter mapped it to
        (2, "0000000000000000"),     # vrf 9 is not in the map that now exists
    ])
    # an RD element in the data itself
    f = [(8, 4), (1, 4), (90, 8)]
    r = dec.decode([dg(ipfix([template_set(10, [(257, f)]), data_set(257, [record(f, ["1.1.1.1", 1, rd])])]))]).records[0]
    assert bytes(r["mpls_vpn_rd"]) == rd


def test_options_records_accounted_when_asked():
    f_opt = [(1, 4)], [(48, 1), (50, 4)]
    opt = options_template_set(9, 300, *f_opt)
    odata = data_set(300, [record([(1, 4), (48, 1), (50, 4)], [0, 1, 10])])
    dec, _ = decoder()
    assert len(dec.decode([dg(v9([opt, odata]))])) == 0
    dec, _ = decoder(account_options=True)
    b = dec.decode([dg(v9([opt, odata]))])
    assert len(b) == 1 and b.records[0]["sample_type"] == SAMPLE_OPTION


def test_application_names_become_class():
    dec, _ = decoder()
    opt = options_template_set(10, 320, [(144, 4)], [(95, 4), (96, 16)])
    odata = data_set(320, [record([(144, 4), (95, 4), (96, 16)], [1, (13 << 24) | 80, b"http"])])
    f = [(8, 4), (1, 4), (95, 4)]
    b = dec.decode([dg(ipfix([opt, odata, template_set(10, [(256, f)]),
                              data_set(256, [record(f, ["1.1.1.1", 1, (13 << 24) | 80])])]))])
    assert b.strings[b.records[0]["class"]] == "http"


def test_sequence_checks_v9_and_ipfix():
    dec, sink = decoder(disable_checks=False)
    tpl = template_set(9, [(256, F4)])
    d = data_set(256, [record(F4, v4_values())] * 3)
    dec.decode([dg(v9([tpl, d], seq=10)), dg(v9([d], seq=11)), dg(v9([d], seq=15))])
    assert dec.stats.totals().seq_errors == 1
    assert "INFO ( default/core ): expecting flow '12' but received '15' collector=0.0.0.0:2100 agent=192.0.2.10:0" in sink.lines
    # IPFIX counts data records (options records included)
    dec, sink = decoder(disable_checks=False)
    f = [(8, 4), (1, 4)]
    d = data_set(256, [record(f, ["1.1.1.1", 1])] * 4)
    dec.decode([dg(ipfix([template_set(10, [(256, f)]), d], seq=100, domain=5)),
                dg(ipfix([d], seq=104, domain=5)), dg(ipfix([d], seq=108, domain=5)),
                dg(ipfix([d], seq=100, domain=5))])
    assert dec.stats.totals().seq_errors == 1
    assert any("expecting flow '112' but received '100'" in l and "agent=192.0.2.10:5" in l for l in sink.lines)


@pytest.mark.parametrize("payload,what", [
    (b"\x00\x09" + b"\0" * 10, "short NetFlow v9/IPFIX"),
    (b"\x00\x0a" + b"\0" * 10, "short NetFlow v9/IPFIX"),
    (ipfix([struct.pack("!HH", 256, 0)]), "flow_len 0"),
    (ipfix([struct.pack("!HH", 256, 2)]), "flowsetlen < NfDataHdrV9Sz"),
    (ipfix([struct.pack("!HH", 256, 400) + b"\0" * 20]), "incomplete"),
    (ipfix([b"\x00\x02"]), "incomplete"),
    (ipfix([struct.pack("!HHHH", 2, 12, 300, 5) + b"\0" * 4]), "malformed"),
    (ipfix([struct.pack("!HHHH", 2, 8 + 4 * 300, 300, 300) + b"\0\x01\0\x04" * 300]), "too long"),
    (ipfix([struct.pack("!HHHHH", 3, 14, 300, 1, 2) + b"\0\x01\0\x04"]), "malformed"),
    (b"\x00\x07" + b"\0" * 30, "discarding unknown packet"),
])
def test_malformed(payload, what):
    dec, sink = decoder()
    b = dec.decode([dg(payload, src="203.0.113.9")])
    assert len(b) == 0
    assert dec.stats.exporter("203.0.113.9").bad_datagrams == 1
    assert any(what in l and "agent=203.0.113.9:40000" in l for l in sink.lines), sink.lines


def test_template_key_ignores_the_version():
    # pmacct keys templates by exporter, source id/domain and id only
    dec, _ = decoder()
    f = [(8, 4), (1, 4)]
    b = dec.decode([dg(ipfix([template_set(10, [(256, f)])])),
                    dg(v9([data_set(256, [record(f, ["1.1.1.1", 1])])]))])
    assert len(b) == 1


def test_records_before_a_malformed_set_are_kept():
    dec, _ = decoder()
    f = [(8, 4), (1, 4)]
    good = data_set(256, [record(f, ["1.1.1.1", 1])])
    p = ipfix([template_set(10, [(256, f)]), good, struct.pack("!HH", 256, 900)])
    b = dec.decode([dg(p)])
    assert len(b) == 1 and dec.stats.totals().bad_datagrams == 1


def test_zero_length_records_template_is_refused():
    dec, _ = decoder()
    p = ipfix([template_set(10, [(256, [(8, 0), (1, 0)])]), data_set(256, [b"\0" * 8])])
    b = dec.decode([dg(p)])
    assert len(b) == 0 and dec.stats.totals().bad_datagrams == 1


def test_template_cache_is_bounded_per_exporter():
    dec, sink = decoder(max_templates_per_exporter=10)
    f = [(8, 4), (1, 4)]
    dec.decode([dg(ipfix([template_set(10, [(256 + i, f) for i in range(30)])]))])
    assert len(dec.templates) == 10
    assert any("template cache full" in l for l in sink.lines)
    dec.decode([dg(ipfix([template_set(10, [(256, f)])]), src="192.0.2.77")])
    assert len(dec.templates) == 11


def test_identical_resend_keeps_the_compiled_plan():
    dec, _ = decoder()
    f = [(8, 4), (1, 4)]
    p = ipfix([template_set(10, [(256, f)]), data_set(256, [record(f, ["1.1.1.1", 1])])])
    dec.decode([dg(p)])
    t1 = dec.templates.get("192.0.2.10", 0, 256)
    dec.decode([dg(p)])
    assert dec.templates.get("192.0.2.10", 0, 256) is t1 and t1.plan is not None
    assert dec.stats.totals().templates == 2


def test_stats_add_up():
    dec, _ = decoder()
    f = [(8, 4), (1, 4)]
    dgs = [dg(ipfix([template_set(10, [(256, f)])])),
           dg(ipfix([data_set(256, [record(f, ["1.1.1.1", 1])] * 3)])),
           dg(ipfix([data_set(999, [b"\0" * 8])])),
           dg(b"\x00\x0a\x00"),
           dg(v9([data_set(256, [record(f, ["1.1.1.1", 1])])], source_id=3))]
    b = dec.decode(dgs)
    t = dec.stats.totals()
    assert (t.datagrams, t.records, t.templates, t.no_template, t.bad_datagrams) == (5, 3, 1, 2, 1)
    assert len(b) == t.records


def test_packet_sections_fill_what_the_template_lacks():
    frame = bytes.fromhex(
        "66778899aabb001122334455" "8100602a" "0800"                 # MACs, VLAN 42 prio 3
        "4520008c00010000400600000a0101010a020202"                  # IPv4, tos 0x20, len 140
        "04d20050" "00000000" "00000000" "5012" "0000" "0000" "0000") + b"x" * 100  # TCP, SYN+ACK
    f = [(315, 65535), (7, 2)]
    dec, _ = decoder(renormalize=True)
    opt = options_template_set(10, 300, [(144, 4)], [(34, 4)])
    od = data_set(300, [record([(144, 4), (34, 4)], [1, 10])])
    r = dec.decode([dg(ipfix([opt, od, template_set(10, [(256, f)]),
                              data_set(256, [record(f, [frame, 999])])]))]).records[0]
    assert addr_text(r["src_host"]) == "10.1.1.1" and addr_text(r["dst_host"]) == "10.2.2.2"
    assert (r["src_port"], r["dst_port"], r["proto"], r["tos"], r["tcp_flags"]) == (999, 80, 6, 0x20, 0x12)
    assert (r["vlan"], r["cos"], r["etype"]) == (42, 3, 0x0800)
    assert bytes(r["src_mac"]).hex() == "001122334455"
    assert (r["packets"], r["bytes"], r["sampling_rate"]) == (10, 1400, 1)   # one packet, renormalised
