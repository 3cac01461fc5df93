"""sFlow decoding details (pypmacct/decoders/sflow.py), on hand-built datagrams."""
from __future__ import annotations

import ipaddress
import socket
import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether

from pypmacct.decoders.sflow import SflowDecoder, SflowOptions
from pypmacct.runtime.log import Logger
from pypmacct.sources import Datagram
from tests.support.sflowgen import _addr, _record, _xdr_opaque


def datagram(samples, agent="192.0.2.9", seq=1, sub=0):
    head = struct.pack("!I", 5) + _addr(agent) + struct.pack("!IIII", sub, seq, 1000, len(samples))
    return head + b"".join(samples)


def flow_sample(records, seq=1, src_id=3, rate=100, pool=1000, in_if=3, out_if=4, expanded=False):
    recs = b"".join(_record(t, b) for t, b in records)
    if expanded:
        body = struct.pack("!11I", seq, 0, src_id, rate, pool, 0, 0, in_if, 0, out_if, len(records))
        return struct.pack("!II", 3, len(body) + len(recs)) + body + recs
    body = struct.pack("!8I", seq, src_id, rate, pool, 0, in_if, out_if, len(records))
    return struct.pack("!II", 1, len(body) + len(recs)) + body + recs


def header(frame, proto=1, size=None, snap=None):
    data = bytes(frame)[:snap] if snap else bytes(frame)
    return (1, struct.pack("!III", proto, size or len(bytes(frame)) + 4, 4) + _xdr_opaque(data))


def decode(payloads, **opts):
    dec = SflowDecoder(SflowOptions(**opts), log=Logger("t", "core"))
    b = dec.decode([Datagram(p, "192.0.2.9", 6343, 1_700_000_000_000_000) for p in payloads])
    return dec, b.records, b.strings


def addr(rec, name):
    a = rec[name]
    raw = bytes(a["addr"])
    return socket.inet_ntop(socket.AF_INET if a["af"] == 4 else socket.AF_INET6,
                            raw[:4] if a["af"] == 4 else raw)


ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
TCP4 = IP(src="10.0.0.1", dst="10.0.0.2", tos=8) / TCP(sport=1000, dport=80, flags="PA")


def test_header_sample_fields():
    _, r, _ = decode([datagram([flow_sample([header(ETH / Dot1Q(vlan=7, prio=2) / TCP4)], rate=10)])])
    assert len(r) == 1
    x = r[0]
    assert addr(x, "src_host") == "10.0.0.1" and addr(x, "peer_src_ip") == "192.0.2.9"
    assert (x["proto"], x["tos"], x["src_port"], x["dst_port"], x["tcp_flags"]) == (6, 8, 1000, 80, 0x18)
    assert (x["vlan"], x["cos"], x["etype"], x["packets"], x["sampling_rate"]) == (7, 2, 0x0800, 1, 10)
    assert x["bytes"] == len(bytes(ETH / Dot1Q(vlan=7) / TCP4)) + 4
    assert (x["in_iface"], x["out_iface"], x["export_proto_version"]) == (3, 4, 5)


def test_switch_record_overrides_the_header_vlan_in_record_order():
    hdr = header(ETH / Dot1Q(vlan=7, prio=2) / TCP4)
    sw = (1001, struct.pack("!4I", 0, 0, 99, 5))
    _, r, _ = decode([datagram([flow_sample([hdr, sw]), flow_sample([sw, hdr]),
                                flow_sample([(1001, struct.pack("!4I", 0, 0, 0, 0)), hdr])])])
    # after: the switch's (in 0, out 99) wins; before: the header's tag counts only when
    # the switch said nothing
    assert [(x["vlan"], x["cos"]) for x in r] == [(99, 5), (99, 5), (7, 2)]


def test_ipv6_extension_headers_are_followed():
    """pmacct 1.7.7 lands two bytes short in each extension header (proto and ports
    garbage); we follow them (docs/differences.md)."""
    f = ETH / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / UDP(sport=7, dport=8)
    _, r, _ = decode([datagram([flow_sample([header(f)])])])
    assert (r[0]["proto"], r[0]["src_port"], r[0]["dst_port"]) == (17, 7, 8)


def test_cut_tcp_header_gives_no_flags():
    """A header cut inside the TCP header: pmacct reads flags from the bytes after it."""
    _, r, _ = decode([datagram([flow_sample([header(ETH / TCP4, snap=14 + 20 + 10)])])])
    assert (r[0]["src_port"], r[0]["tcp_flags"]) == (1000, 0)


def test_sampled_ipv4_ipv6_records_and_expanded_samples():
    v4 = (3, struct.pack("!II4s4sIIII", 400, 6, ipaddress.ip_address("10.9.9.1").packed,
                         ipaddress.ip_address("10.9.9.2").packed, 5, 6, 0x12, 0x20))
    v6 = (4, struct.pack("!II16s16sIIII", 600, 17, ipaddress.ip_address("2001:db8::a").packed,
                         ipaddress.ip_address("2001:db8::b").packed, 7, 8, 0, 3))
    _, r, _ = decode([datagram([flow_sample([v4], expanded=True, in_if=70000, out_if=0x3FFFFFFF),
                                flow_sample([v6])], agent="2001:db8::99")])
    assert [x["bytes"] for x in r] == [400, 600]
    assert addr(r[0], "dst_host") == "10.9.9.2" and addr(r[1], "src_host") == "2001:db8::a"
    assert r[0]["tcp_flags"] == 0          # the sampled IPv4 record's flags are not used
    assert (r[0]["tos"], r[1]["tos"]) == (0x20, 3)
    assert (r[0]["in_iface"], r[0]["out_iface"]) == (70000, 0x3FFFFFFF)
    assert addr(r[1], "peer_src_ip") == "2001:db8::99"


def test_gateway_and_router_records():
    gw = _addr("192.0.2.200") + struct.pack("!III", 65000, 64501, 64502)
    gw += struct.pack("!I", 2) + struct.pack("!IIII", 2, 2, 64510, 64511) + struct.pack("!III", 1, 1, 64520)
    gw += struct.pack("!III", 2, (64600 << 16) | 1, 0xFFFFFF01) + struct.pack("!I", 200)
    rt = _addr("192.0.2.1") + struct.pack("!II", 16, 24)
    _, r, strings = decode([datagram([flow_sample([header(ETH / TCP4), (1003, gw), (1002, rt)])])])
    x = r[0]
    assert (x["src_as"], x["dst_as"], x["peer_src_as"], x["peer_dst_as"], x["local_pref"]) == \
        (64501, 64520, 64502, 64510, 200)
    assert strings[x["as_path"]] == "64510 64511 64520"
    assert strings[x["std_comm"]] == "64600:1 no-export"
    assert (x["src_mask"], x["dst_mask"]) == (16, 24)
    assert addr(x, "peer_dst_ip") == "192.0.2.200"


def test_bad_samples_and_datagrams_are_counted_not_fatal():
    good = flow_sample([header(ETH / TCP4)])
    rec = bytearray(good)
    struct.pack_into("!I", rec, 8 + 32 + 4, 4)             # first record claims 4 bytes
    dec, r, _ = decode([datagram([bytes(rec), good]), b"\0\0\0\x05\0\0\0\x01",
                        datagram([struct.pack("!II", 77, 0)])])
    assert len(r) == 1 and dec.errors == 0
    assert dec.bad_samples == 1
    assert dec.stats.exporter("192.0.2.9").bad_datagrams == 2


def pmacct_renormalize(samples):
    """pmacct's SF_counters_renormalize_handler, one sample at a time."""
    state, out = {}, []
    for key, seq, pool, rate in samples:
        st = state.get(key)
        if st is None:
            state[key] = [seq, pool]
            out.append(rate)
        elif seq > st[0] and pool > st[1]:
            out.append((pool - st[1]) // (seq - st[0]))
            st[:] = [seq, pool]
        else:
            if max(seq, st[0]) > min(seq, st[0]) + 50:
                st[:] = [seq, pool]
            out.append(rate)
    return out


def test_renormalize_matches_pmacct_logic_in_and_out_of_order():
    import random
    rnd = random.Random(3)
    samples, payloads = [], []
    seqs = {1: 0, 2: 0}
    pools = {1: 0, 2: 0}
    for i in range(300):
        src = rnd.choice([1, 2])
        seqs[src] += rnd.choice([1, 1, 2, -1, 80]) if i % 7 else 1
        pools[src] += rnd.choice([50, 100, 0, -30])
        seq, pool = max(seqs[src], 0), max(pools[src], 0)
        samples.append((src, seq, pool, 64))
        payloads.append(datagram([flow_sample([header(ETH / TCP4, size=100)], seq=seq, src_id=src,
                                              rate=64, pool=pool)], seq=i + 1))
    dec, r, _ = decode(payloads[:150], renormalize=True)
    _, r2, _ = decode([], renormalize=True)
    got = list(r["packets"])
    b2 = dec.decode([Datagram(p, "192.0.2.9", 6343, 0) for p in payloads[150:]])
    got += list(b2.records["packets"])
    assert got == pmacct_renormalize(samples)
    assert set(r["sampling_rate"]) == {1}


def test_mpls_vc_record_gives_the_pseudowire_id():
    vc = (1009, _xdr_opaque(b"vc-name") + struct.pack("!II", 4242, 0))
    bad = (1009, _xdr_opaque(b"vc-name") + struct.pack("!I", 4242))
    dec, r, _ = decode([datagram([flow_sample([header(ETH / TCP4), vc]),
                                  flow_sample([header(ETH / TCP4), bad])])])
    assert list(r["mpls_pw_id"]) == [4242]
    assert dec.bad_samples == 1


def test_sequence_checks_per_agent_and_sub_agent():
    hdr = header(ETH / TCP4)
    dgs = [datagram([flow_sample([hdr])], seq=s, sub=sub) for s, sub in
           ((10, 0), (11, 0), (13, 0), (5, 1), (6, 1), (12, 0))]
    dec, r, _ = decode(dgs[:3], disable_checks=False)
    b = dec.decode([Datagram(p, "192.0.2.9", 6343, 0) for p in dgs[3:]])
    assert len(r) + len(b) == 6
    # 11 -> 13 is a jump, 13 -> 12 another; sub-agent 1 counts on its own
    assert dec.stats.exporter("192.0.2.9").seq_errors == 2
    dec2, _, _ = decode(dgs)                     # sfacctd_disable_checks defaults to true
    assert dec2.stats.exporter("192.0.2.9").seq_errors == 0
    assert dec2.seq_state[("192.0.2.9", 0)] == 12 and dec2.seq_state[("192.0.2.9", 1)] == 6


def _v2_datagram(gateway: bytes, agent="192.0.2.9", seq=1):
    frame = bytes(ETH / TCP4)
    sample = struct.pack("!8I", 1, 1, 3, 100, 1000, 0, 3, 4)          # flow sample, 7 words
    sample += struct.pack("!4I", 1, 1, len(frame) + 4, len(frame)) + frame + bytes(-len(frame) % 4)
    sample += struct.pack("!II", 1, 3) + gateway                      # one extended record
    return struct.pack("!I", 2) + _addr(agent) + struct.pack("!III", seq, 1000, 1) + sample


def test_v2_gateway_records_give_the_source_ases_as_pmacct_does():
    # v2 layout: AS, source AS, source peer AS, then a plain list of AS numbers
    good = struct.pack("!6I", 65000, 64501, 64502, 2, 64510, 64520)
    # a path count that runs past the datagram: counted as malformed, not fatal
    short = struct.pack("!6I", 65000, 64501, 64502, 50, 64510, 64520)
    dec, r, strings = decode([_v2_datagram(good), _v2_datagram(short, seq=2)])
    assert len(r) == 1
    x = r[0]
    assert addr(x, "src_host") == "10.0.0.1"
    # pmacct 1.7.7 keeps only these two of a v2 gateway record
    assert (x["src_as"], x["peer_src_as"], x["dst_as"], x["peer_dst_as"]) == (64501, 64502, 0, 0)
    assert strings[x["as_path"]] == ""
    assert dec.stats.exporter("192.0.2.9").bad_datagrams == 1
