"""NetFlow v5 decoding: every field, pmacct's rules, malformed datagrams, sequence checks."""
from __future__ import annotations

import numpy as np

from pypmacct.record import SAMPLE_FLOW_V5
from tests.unit.nfbuild import addr_text, decoder, dg, v5, v5_record

US = 1_000_000


def test_fields_of_one_record():
    dec, _ = decoder()
    rec = v5_record(src="10.1.2.3", dst="192.168.7.8", nexthop="10.9.9.9", inp=7, out=9,
                    pkts=12, octets=3400, first=3_590_500, last=3_599_999, sport=5555,
                    dport=443, tcp_flags=0x12, proto=6, tos=0x20, src_as=65001, dst_as=65002,
                    src_mask=22, dst_mask=19)
    b = dec.decode([dg(v5([rec], seq=100, uptime=3_600_000, unix=1_700_000_000,
                          engine_type=1, engine_id=7), src="198.51.100.9")])
    assert len(b) == 1
    r = b.records[0]
    assert addr_text(r["src_host"]) == "10.1.2.3"
    assert addr_text(r["dst_host"]) == "192.168.7.8"
    assert addr_text(r["nexthop"]) == "10.9.9.9"
    assert r["peer_dst_ip"]["af"] == 0           # BGP next hop: not in v5
    assert addr_text(r["peer_src_ip"]) == "198.51.100.9"
    assert (r["in_iface"], r["out_iface"]) == (7, 9)
    assert (r["packets"], r["bytes"], r["flows"]) == (12, 3400, 1)
    assert (r["src_port"], r["dst_port"], r["proto"], r["tos"], r["tcp_flags"]) == (5555, 443, 6, 0x20, 0x12)
    assert (r["src_as"], r["dst_as"], r["src_mask"], r["dst_mask"]) == (65001, 65002, 22, 19)
    assert r["etype"] == 0x0800
    assert (r["export_proto_version"], r["export_proto_seqno"]) == (5, 100)
    assert r["export_proto_sysid"] == 7                      # the engine id
    assert (r["engine_type"], r["engine_id"]) == (1, 7)
    assert r["sample_type"] == SAMPLE_FLOW_V5
    assert r["sampling_rate"] == 0 and chr(r["sampling_direction"]) == "u"
    # timestamp_*: export time minus the flow's age in whole seconds
    assert r["ts_start"] == (1_700_000_000 - 9) * US       # (3600000-3590500)/1000 = 9
    assert r["ts_end"] == 1_700_000_000 * US                # 1 ms old: 0 s
    assert r["ts_export"] == 1_700_000_000 * US
    assert r["ts_arrival"] == 1_700_000_000_000_000
    # time bins: pmacct rounds uptime and switched time to seconds separately
    assert r["time_start"] == (1_700_000_000 - 3600 + 3590) * US
    assert r["time_end"] == (1_700_000_000 - 3600 + 3599) * US


def test_ports_and_flags_follow_the_protocol():
    dec, _ = decoder()
    recs = [v5_record(proto=17, sport=53, dport=5353, tcp_flags=0xFF),
            v5_record(proto=1, sport=0, dport=0x0800, tcp_flags=0xFF),
            v5_record(proto=47, sport=9, dport=9, tcp_flags=0xFF)]
    r = dec.decode([dg(v5(recs))]).records
    assert list(r["src_port"]) == [53, 0, 0]
    assert list(r["dst_port"]) == [5353, 0x0800, 0]       # ICMP type/code travels as dst port
    assert list(r["tcp_flags"]) == [0, 0, 0]               # only TCP carries flags


def test_many_datagrams_in_one_call_keep_header_values_per_record():
    dec, _ = decoder()
    dgs = [dg(v5([v5_record(pkts=i + 1)] * 3, seq=3 * i, unix=1_700_000_000 + i, engine_id=i),
              src=f"192.0.2.{i + 1}") for i in range(50)]
    b = dec.decode(dgs)
    assert len(b) == 150
    r = b.records
    assert np.array_equal(r["packets"], np.repeat(np.arange(1, 51), 3))
    assert np.array_equal(r["export_proto_seqno"], np.repeat(np.arange(0, 150, 3), 3))
    assert np.array_equal(r["ts_export"] // US, np.repeat(1_700_000_000 + np.arange(50), 3))
    assert [addr_text(a) for a in r["peer_src_ip"][::3]] == [f"192.0.2.{i + 1}" for i in range(50)]
    assert dec.stats.totals().records == 150
    assert dec.stats.exporter("192.0.2.7").records == 3


def test_sampling_rate_from_header_and_renormalisation():
    rec = v5_record(pkts=3, octets=300)
    dec, _ = decoder()
    r = dec.decode([dg(v5([rec], sampling=0x4000 | 100))]).records[0]
    assert r["sampling_rate"] == 100 and r["packets"] == 3
    dec, _ = decoder(renormalize=True)
    r = dec.decode([dg(v5([rec], sampling=0x4000 | 100))]).records[0]
    assert (r["packets"], r["bytes"], r["sampling_rate"]) == (300, 30000, 1)
    # renormalize without a known rate leaves counters alone and the rate unknown
    r = dec.decode([dg(v5([rec], sampling=0))]).records[0]
    assert (r["packets"], r["sampling_rate"]) == (3, 0)
    # nfacctd_ext_sampling_rate: a fixed rate for everything
    dec, _ = decoder(renormalize=True, ext_sampling_rate=10)
    r = dec.decode([dg(v5([rec], sampling=0))]).records[0]
    assert (r["packets"], r["bytes"]) == (30, 3000)


def test_use_ip_next_hop_fills_peer_dst_ip():
    dec, _ = decoder(use_ip_next_hop=True)
    r = dec.decode([dg(v5([v5_record(nexthop="10.7.7.7")]))]).records[0]
    assert addr_text(r["peer_dst_ip"]) == "10.7.7.7"


def test_time_options():
    rec = v5_record(first=3_590_500, last=3_599_999)
    dec, _ = decoder(time_new=True)
    r = dec.decode([dg(v5([rec]))]).records[0]
    assert r["time_start"] == 0 and r["time_end"] == 0       # bins go by arrival time
    assert r["ts_start"] != 0                                 # the primitives stay
    # nfacctd_time_secs: the exporter counts uptime in seconds
    dec, _ = decoder(time_secs=True)
    r = dec.decode([dg(v5([v5_record(first=3500, last=3590)], uptime=3600))]).records[0]
    assert r["time_start"] == (1_700_000_000 - 100) * US
    assert r["time_end"] == (1_700_000_000 - 10) * US


def test_flow_stamped_after_the_header_and_uptime_wrap():
    dec, _ = decoder()
    # a flow ending 1.5 s "after" the header (exporter clock race): 1 s later, not 49 days
    r = dec.decode([dg(v5([v5_record(first=1000, last=3_601_500)], uptime=3_600_000))]).records[0]
    assert r["ts_end"] == (1_700_000_000 + 1) * US
    # uptime wrapped past 2^32 ms since the flow started: still a few seconds old
    r = dec.decode([dg(v5([v5_record(first=2**32 - 5000, last=2**32 - 5000)], uptime=1000))]).records[0]
    assert r["ts_start"] == (1_700_000_000 - 6) * US


def test_old_flows_and_far_future_stamps_wrap_as_in_pmacct():
    dec, _ = decoder()
    day_ms = 86_400_000
    # 30 days old (past 2^31 ms): 30 days back, as pmacct's unsigned arithmetic gives
    r = dec.decode([dg(v5([v5_record(first=1000, last=1000)], uptime=1000 + 30 * day_ms))]).records[0]
    assert r["ts_start"] == r["ts_end"] == (1_700_000_000 - 30 * 86_400) * US
    # stamped 59 minutes after the header: still jitter, 59 minutes after the export
    r = dec.decode([dg(v5([v5_record(first=3_600_000, last=3_600_000 + 3_540_000)],
                          uptime=3_600_000))]).records[0]
    assert r["ts_end"] == (1_700_000_000 + 3_540) * US
    # stamped 2 hours after the header: beyond clock jitter, so pmacct's wrap (~49.7 days back)
    r = dec.decode([dg(v5([v5_record(first=3_600_000, last=3_600_000 + 7_200_000)],
                          uptime=3_600_000))]).records[0]
    assert r["ts_end"] == (1_700_000_000 - (2**32 - 7_200_000) // 1000) * US
    assert r["ts_start"] == 1_700_000_000 * US


def test_malformed_datagrams_are_counted_and_logged():
    dec, sink = decoder()
    good = v5([v5_record()] * 2)
    bad = [
        good[:20],                                    # short header
        good[:-1],                                    # length does not match the count
        v5([v5_record()] * 2, count=3),               # count past the end
        v5([v5_record()] * 31),                       # more than 30 records
        good + b"\0" * 48,                            # trailing bytes
    ]
    b = dec.decode([dg(x, src="203.0.113.5") for x in bad] + [dg(good)])
    assert len(b) == 2
    c = dec.stats.exporter("203.0.113.5")
    assert c.datagrams == 5 and c.bad_datagrams == 5 and c.records == 0
    assert any("discarding short NetFlow v5 packet" in l and "agent=203.0.113.5:40000" in l for l in sink.lines)
    assert any("discarding malformed NetFlow v5 packet" in l for l in sink.lines)


def test_zero_records_is_not_an_error():
    dec, _ = decoder()
    assert len(dec.decode([dg(v5([]))])) == 0
    assert dec.stats.totals().bad_datagrams == 0


def test_sequence_checks():
    dec, sink = decoder(disable_checks=False)
    recs = [v5_record()] * 5
    dgs = [dg(v5(recs, seq=1000)), dg(v5(recs, seq=1005)), dg(v5(recs, seq=1020)),
           dg(v5(recs, seq=1025))]
    dec.decode(dgs)
    assert dec.stats.exporter("192.0.2.10").seq_errors == 1
    assert "INFO ( default/core ): expecting flow '1010' but received '1020' " \
           "collector=0.0.0.0:2100 agent=192.0.2.10:0" in sink.lines
    # engines are tracked separately (engine id << 8 | engine type)
    dec, sink = decoder(disable_checks=False)
    dec.decode([dg(v5(recs, seq=0 + 1, engine_id=1)), dg(v5(recs, seq=500, engine_id=2)),
                dg(v5(recs, seq=6, engine_id=1)), dg(v5(recs, seq=505, engine_id=2))])
    assert dec.stats.totals().seq_errors == 0
    # pmacct 1.7.7's default: no checks
    dec, sink = decoder()
    dec.decode(dgs)
    assert dec.stats.totals().seq_errors == 0 and not sink.lines


def test_sequence_wraps_at_32_bits():
    dec, _ = decoder(disable_checks=False)
    recs = [v5_record()] * 2
    dec.decode([dg(v5(recs, seq=2**32 - 1)), dg(v5(recs, seq=1))])
    assert dec.stats.totals().seq_errors == 0
