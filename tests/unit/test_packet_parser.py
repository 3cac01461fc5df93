"""The shared packet-header parser (pypmacct/decoders/packet.py), on frames made by scapy."""
from __future__ import annotations

import socket

import numpy as np
import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether, Loopback
from scapy.packet import Raw

from pypmacct.decoders import packet as pkt


def parse(frames, kind, **kw):
    frames = [bytes(f) for f in frames]
    lens = np.array([len(f) for f in frames], np.int64)
    return pkt.parse(b"".join(frames), np.cumsum(lens) - lens, lens, kind, **kw)


def ip(r, i, field="src"):
    raw = bytes(getattr(r, field)[i])
    return socket.inet_ntop(socket.AF_INET if r.af[i] == 4 else socket.AF_INET6,
                            raw[:4] if r.af[i] == 4 else raw)


ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def test_ethernet_ipv4_tcp_fields():
    f = ETH / IP(src="10.0.0.1", dst="10.0.0.2", tos=0xB8) / TCP(sport=1234, dport=80, flags="SA") / Raw(b"x" * 10)
    r = parse([f], pkt.K_ETH)
    assert r.af[0] == 4 and ip(r, 0) == "10.0.0.1" and ip(r, 0, "dst") == "10.0.0.2"
    assert (r.proto[0], r.tos[0], r.src_port[0], r.dst_port[0], r.tcp_flags[0]) == (6, 0xB8, 1234, 80, 0x12)
    assert r.ip_len[0] == 20 + 20 + 10
    assert bytes(r.src_mac[0]) == bytes.fromhex("020000000001")
    assert bytes(r.dst_mac[0]) == bytes.fromhex("020000000002")
    assert r.etype[0] == 0x0800 and r.vlan[0] == 0 and r.l4[0]


def test_vlan_qinq_mpls_and_outer_tag_wins():
    l3 = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53, dport=5353)
    frames = [ETH / Dot1Q(vlan=100, prio=5) / l3,
              ETH / Dot1Q(vlan=10, prio=3) / Dot1Q(vlan=20) / l3,
              Ether(type=0x8847) / MPLS(label=100, s=0) / MPLS(label=200, s=1) / l3]
    r = parse(frames, pkt.K_ETH)
    assert list(r.vlan) == [100, 10, 0] and list(r.cos) == [5, 3, 0]
    assert list(r.vlan_tags) == [1, 2, 0]
    assert list(r.mpls_depth) == [0, 0, 2]
    assert (r.mpls_top[2], r.mpls_bottom[2]) == (100, 200)
    assert list(r.src_port) == [53, 53, 53] and list(r.af) == [4, 4, 4]
    # sFlow's decoder walks one tag only: QinQ is then not IP
    r1 = parse(frames, pkt.K_ETH, max_vlan_tags=1)
    assert list(r1.af) == [4, 0, 4]


def test_ipv6_extension_headers_are_walked():
    base = IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xB8)
    l4 = TCP(sport=1, dport=2, flags="S")
    frames = [ETH / base / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / l4,
              ETH / base / IPv6ExtHdrRouting() / l4,
              ETH / base / IPv6ExtHdrFragment(offset=0, m=1) / l4,
              ETH / base / IPv6ExtHdrFragment(offset=100, m=0, nh=6) / Raw(b"\0" * 20)]
    r = parse(frames, pkt.K_ETH)
    assert list(r.af) == [6, 6, 6, 6]
    assert list(r.proto) == [6, 6, 6, 6]
    assert list(r.src_port) == [1, 1, 1, 0]           # a non-first fragment has no ports
    assert list(r.frag) == [False, False, False, True]
    assert list(r.tos) == [0xB8] * 4
    assert ip(r, 0) == "2001:db8::1"


def test_ipv4_fragments_and_icmp():
    frames = [ETH / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", id=7) / UDP(sport=5, dport=6) / Raw(b"a" * 30),
              ETH / IP(src="10.0.0.1", dst="10.0.0.2", frag=5, id=7, proto=17) / Raw(b"b" * 30),
              ETH / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=1)]
    r = parse(frames, pkt.K_ETH)
    assert list(r.more_frags) == [True, False, False]
    assert list(r.frag) == [False, True, False]
    assert list(r.src_port) == [5, 0, 0]
    assert (r.icmp_type[2], r.icmp_code[2]) == (3, 1)
    assert list(r.frag_id[:2]) == [7, 7]


def test_link_types():
    l3 = IP(src="10.1.1.1", dst="10.1.1.2") / TCP(sport=9, dport=10)
    sll = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("0200000000aa") + b"\0\0",
                      proto=0x0800) / l3
    assert ip(parse([sll], pkt.K_SLL), 0) == "10.1.1.1"
    assert bytes(parse([sll], pkt.K_SLL).src_mac[0]) == bytes.fromhex("0200000000aa")
    # SLL2: protocol, reserved, ifindex, arphrd, pkttype, halen, address
    sll2 = (b"\x08\x00\x00\x00" + (3).to_bytes(4, "big") + b"\x00\x01\x00\x06"
            + bytes.fromhex("0200000000bb") + b"\0\0" + bytes(l3))
    r = parse([sll2], pkt.K_SLL2)
    assert ip(r, 0) == "10.1.1.1" and bytes(r.src_mac[0]) == bytes.fromhex("0200000000bb")
    assert ip(parse([l3], pkt.K_IP), 0) == "10.1.1.1"
    v6 = IPv6(src="2001:db8::5", dst="2001:db8::6") / UDP()
    assert parse([v6], pkt.K_IP).af[0] == 6
    for fam in (2, 30):
        frame = Loopback(type=fam) / (l3 if fam == 2 else v6)
        assert parse([frame], pkt.K_NULL).af[0] == (4 if fam == 2 else 6)
    # loop (DLT_LOOP): the family in network order
    assert parse([(2).to_bytes(4, "big") + bytes(l3)], pkt.K_LOOP).af[0] == 4


def test_truncated_frames_read_nothing_beyond_their_end():
    f = bytes(ETH / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="S"))
    cuts = [f[:n] for n in (10, 14, 20, 33, 34, 37, 38, 48, 54)]
    r = parse(cuts, pkt.K_ETH)
    assert list(r.af) == [0, 0, 0, 0, 4, 4, 4, 4, 4]
    assert list(r.src_port) == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert list(r.tcp_flags) == [0, 0, 0, 0, 0, 0, 0, 0x02, 0x02]
    assert list(r.l4) == [False] * 8 + [True]
    # sFlow wants 8 transport bytes before it reads ports
    r8 = parse(cuts, pkt.K_ETH, min_l4=8)
    assert list(r8.src_port) == [0, 0, 0, 0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_batch_sizes(n):
    f = bytes(ETH / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    r = parse([f] * n, pkt.K_ETH)
    assert r.n == n and (r.src_port == 1).all()


def test_vxlan_and_the_frame_inside():
    from scapy.layers.vxlan import VXLAN
    inner = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / \
        IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x20) / UDP(sport=11, dport=12)
    outer = ETH / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=999, dport=4789) / VXLAN(vni=0x123456, flags=0x08)
    plain = ETH / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=999, dport=53)
    r = parse([plain, outer / inner], pkt.K_ETH, tunnels=True)
    assert list(r.vxlan) == [0, 0x123456]
    assert list(r.inner_rows) == [1]
    inn = r.inner
    assert (inn.af[0], inn.proto[0], inn.src_port[0], inn.dst_port[0], inn.tos[0]) == (6, 17, 11, 12, 0x20)
    assert bytes(inn.src_mac[0]) == bytes.fromhex("02000000000a")
    # without tunnels the VNI is still read
    r2 = parse([outer / inner], pkt.K_ETH)
    assert r2.inner is None and r2.vxlan[0] == 0x123456


def test_ppp_headers_and_mpls():
    """DLT_PPP/DLT_PPP_SERIAL: address/control optional, one- or two-byte protocol, PPP's
    or Ethernet's numbers; MPLS unicast (0x281) followed to the IP packet (1.7.7's
    ppp_handler points at the label instead: docs/differences.md); LCP and frames under
    4 bytes give nothing."""
    v4 = bytes(IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=5, dport=6))
    v6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=7, dport=8))
    lab = bytes(MPLS(label=100, s=1, ttl=9))
    frames = [b"\xff\x03\x00\x21" + v4, b"\x21" + v4, b"\x00\x57" + v6, b"\xff\x03\x86\xdd" + v6,
              b"\xff\x03\x02\x81" + lab + v4, b"\xff\x03\xc0\x21\x01\x01\x00\x04", b"\x21\x45\x00"]
    r = parse(frames, pkt.K_PPP)
    assert r.af.tolist() == [4, 4, 6, 6, 4, 0, 0]
    assert [ip(r, i) for i in range(5)] == ["10.1.0.1", "10.1.0.1", "2001:db8::1", "2001:db8::1",
                                            "10.1.0.1"]
    assert r.src_port[:5].tolist() == [5, 5, 7, 7, 5]
    assert (r.mpls_top[4], r.mpls_depth[4]) == (100, 1)
    assert pkt.LINKTYPE_KINDS[9] == pkt.LINKTYPE_KINDS[50] == pkt.K_PPP


EXTRAS = {"vlan_off", "mpls_off", "ip_off", "l4_at", "l4_off", "cvlan", "ip_len", "frag_id",
          "more_frags", "l4", "icmp_type", "icmp_code"}


def test_without_extras_every_other_field_is_the_same():
    """``extras=False`` (sFlow's decoder) leaves exactly the documented fields at their
    defaults and every other field, the inner VXLAN frames' too, as the full parse."""
    inner = ETH / IP(src="10.9.0.1", dst="10.9.0.2") / TCP(sport=7, dport=8, flags="S")
    frames = [
        ETH / IP(src="10.0.0.1", dst="10.0.0.2", tos=4) / TCP(sport=1, dport=2, flags="PA"),
        ETH / Dot1Q(vlan=10, prio=3) / Dot1Q(vlan=20) / IP(src="10.0.0.3") / UDP(sport=3, dport=4),
        ETH / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / UDP(sport=5, dport=6),
        ETH / IP(src="10.0.0.4", flags="MF", frag=0, id=77) / ICMP(type=3, code=1),
        ETH / IP(src="10.0.0.5", frag=10) / Raw(b"y" * 16),
        ETH / MPLS(label=100, s=1) / IP(src="10.0.0.6") / TCP(sport=9, dport=10),
        ETH / IP(src="10.0.0.7") / UDP(sport=999, dport=4789) / Raw(b"\x08\x00\x00\x00\x00\x01\x00\x00")
        / inner,
        ETH / IP(src="10.0.0.8") / IP(src="10.8.0.1", dst="10.8.0.2") / UDP(sport=11, dport=12),
    ]
    kw = dict(max_vlan_tags=2, snap=True, min_l4=8, tunnels=True, ipip=True)
    full = parse(frames, pkt.K_ETH, **kw)
    lean = parse(frames, pkt.K_ETH, extras=False, **kw)
    blank = pkt.Parsed(len(frames))
    for a, b, n in ((full, lean, len(frames)), (full.inner, lean.inner, len(full.inner_rows))):
        fields = [k for k, v in vars(a).items() if isinstance(v, np.ndarray)]
        assert set(fields) >= EXTRAS
        for k in fields:
            if k in EXTRAS:
                assert np.array_equal(getattr(b, k), getattr(pkt.Parsed(n), k)), k
            else:
                assert np.array_equal(getattr(a, k), getattr(b, k)), k
    # the full parse does fill them on these frames (so the comparison above means something)
    for k in EXTRAS:
        assert not np.array_equal(getattr(full, k), getattr(blank, k)), k
    assert len(full.inner_rows) == 2 and ip(lean.inner, 0) == "10.9.0.1"
