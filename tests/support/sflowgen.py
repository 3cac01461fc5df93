"""A seeded sFlow generator: sampled packets (built with scapy) inside sFlow datagrams
(XDR written with struct), saved as a pcap of UDP datagrams to an sFlow collector.

    cap = generate(SflowParams(seed=1, datagrams=200))
    cap.write_pcap(tmp_path / "sflow.pcap")

What it makes, all chosen by the seed:
- agents with IPv4 or IPv6 agent addresses and sub-agent ids, each datagram numbered in
  sequence per agent; sFlow v5 by default (``versions`` may add 2 and 4);
- flow samples (compact and expanded), each with a raw packet header record (Ethernet
  with or without an 802.1Q tag, or bare IPv4/IPv6 headers) or an IPv4/IPv6 sampled
  record; optional extended switch, router and gateway records;
- per data source, sample sequence numbers and sample pools that advance by the
  sampling rate times a random number of packets, as a real agent's do;
- counter samples (generic and Ethernet interface counters) between flow samples.

``Capture.samples`` holds what each flow sample says (the truth a test can check
against without our decoder).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import pcapio

COLLECTOR = "192.0.2.250"
COLLECTOR6 = "2001:db8:ffff::250"


@dataclass(frozen=True)
class SflowParams:
    seed: int = 1
    datagrams: int = 200
    agents: int = 3
    ipv6_agent: bool = True
    samples_per_datagram: tuple = (1, 7)
    versions: tuple = (5,)
    expanded_share: float = 0.3
    counter_share: float = 0.1
    vlan_share: float = 0.3
    ipv6_share: float = 0.25
    sampled_ip_share: float = 0.1        # IPv4/IPv6 sampled records instead of a header
    bare_ip_share: float = 0.1           # header protocol 11/12 (no Ethernet)
    switch_share: float = 0.3
    router_share: float = 0.3
    gateway_share: float = 0.2
    vc_share: float = 0.0                # extended MPLS VC records (mpls_pw_id)
    vxlan_share: float = 0.0             # raw headers of VXLAN packets (UDP 4789) around the frame
    ipip_share: float = 0.0              # IPv4 packets inside IPv4 (protocol 4)
    # (each of these draws from the seed only when not 0, so older captures stay the same)
    out_vlan_share: float = 0.0          # switch records with an out (destination) VLAN too
    egress_share: float = 0.0            # samples whose data source is the output interface
    mcast_share: float = 0.0             # frames to a multicast MAC address
    nexthop6_share: float = 0.0          # router records with an IPv6 next hop
    sub_ids: int = 0                     # > 0: each datagram takes one of this many sub-agent
                                         # ids of its agent (numbered per sub-agent)
    rates: tuple = (1, 64, 256, 1000)
    snaplens: tuple = (128, 128, 96, 256)   # header bytes kept (>= 78: whole TCP headers)
    hosts: int = 12
    start_ns: int = 1_700_000_000_000_000_000
    gap_ns: int = 1_000_000


@dataclass
class Sample:
    agent: str
    sub_id: int
    version: int
    seq: int                 # datagram sequence number
    src_id: int              # class << 24 | index
    rate: int
    pool: int
    sample_seq: int
    in_if: int
    out_if: int
    frame_len: int
    src: str
    dst: str
    proto: int
    sport: int
    dport: int
    tos: int
    flags: int
    vlan: int
    kind: str                # header / ipv4 / ipv6
    out_vlan: int = 0        # the switch record's out VLAN
    expanded: bool = False   # an expanded flow sample


@dataclass
class Capture:
    params: SflowParams
    datagrams: list = field(default_factory=list)   # (agent, udp source, payload)
    samples: list = field(default_factory=list)

    def write_pcap(self, path, fmt: str = "pcap") -> Path:
        p = self.params
        with pcapio.open_writer(path, fmt) as w:
            for i, (src, payload) in enumerate(self.datagrams):
                dst = COLLECTOR6 if ":" in src else COLLECTOR
                w.write(p.start_ns + i * p.gap_ns, pcapio.udp_frame(src, dst, 6343, 6343, payload))
        return Path(path)


def _addr(text: str) -> bytes:
    a = ipaddress.ip_address(text)
    return struct.pack("!I", 1 if a.version == 4 else 2) + a.packed


def _xdr_opaque(b: bytes) -> bytes:
    return struct.pack("!I", len(b)) + b + bytes(-len(b) % 4)


def _record(tag: int, body: bytes) -> bytes:
    return struct.pack("!II", tag, len(body)) + body


class _Packets:
    """Sampled packets built with scapy (imported lazily: tests only)."""

    def __init__(self, p: SflowParams, rng):
        self.p, self.rng = p, rng
        self.v4 = [f"10.{1 + i // 4}.{i % 4}.{10 + i}" for i in range(p.hosts)]
        self.v6 = [f"2001:db8:{i:x}::{10 + i:x}" for i in range(p.hosts)]

    def draw(self):
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
        from scapy.layers.l2 import Dot1Q, Ether
        from scapy.packet import Raw

        rng, p = self.rng, self.p
        six = rng.random() < p.ipv6_share
        pool = self.v6 if six else self.v4
        src, dst = (pool[int(x)] for x in rng.choice(len(pool), 2, replace=False))
        proto = int(rng.choice([6, 17, 1], p=[0.5, 0.35, 0.15]))
        sport, dport = int(rng.integers(1024, 65535)), int(rng.choice([80, 443, 53, 8080, 123]))
        flags = int(rng.choice([0x02, 0x10, 0x18, 0x11, 0x12]))
        tos = 0 if six else int(rng.choice([0, 0x10, 0xB8]))
        payload = Raw(bytes(int(rng.integers(0, 600))))
        if proto == 6:
            l4 = TCP(sport=sport, dport=dport, flags=flags)
        elif proto == 17:
            l4 = UDP(sport=sport, dport=dport)
            flags = 0
        else:
            l4 = ICMPv6EchoRequest() if six else ICMP(type=8, code=0)
            proto = 58 if six else 1
            sport = dport = flags = 0
        ip = IPv6(src=src, dst=dst, nh=proto if proto != 58 else 58) if six else \
            IP(src=src, dst=dst, tos=tos, proto=proto)
        vlan = 0
        if rng.random() < p.vlan_share:
            vlan = int(rng.integers(1, 4095))
            frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / \
                Dot1Q(vlan=vlan, prio=int(rng.integers(0, 8))) / ip / l4 / payload
        else:
            dmac = "02:00:00:00:00:0a"
            if p.mcast_share and rng.random() < p.mcast_share:
                dmac = "01:00:5e:00:00:%02x" % int(rng.integers(1, 4))
            frame = Ether(src="02:00:00:00:00:0%d" % (1 + int(rng.integers(0, 8))),
                          dst=dmac) / ip / l4 / payload
        if rng.random() < p.vxlan_share:
            from scapy.layers.vxlan import VXLAN
            frame = Ether(src="02:00:00:00:00:0b", dst="02:00:00:00:00:0c") / \
                IP(src="192.0.2.101", dst="192.0.2.102") / UDP(sport=int(rng.integers(1024, 65535)), dport=4789) / \
                VXLAN(vni=int(rng.integers(1, 1 << 24)), flags=0x08) / frame
            src, dst, proto, sport, dport, flags, tos, vlan = ("192.0.2.101", "192.0.2.102", 17, 0, 4789,
                                                               0, 0, 0)
            ip = frame[IP]
            six = False
        elif not six and rng.random() < p.ipip_share:
            inner = frame[IP]
            frame = Ether(src="02:00:00:00:00:0d", dst="02:00:00:00:00:0e") / \
                IP(src="192.0.2.111", dst="192.0.2.112", proto=4) / inner
            src, dst, proto, sport, dport, flags, tos, vlan = ("192.0.2.111", "192.0.2.112", 4, 0, 0,
                                                               0, 0, 0)
            ip = frame[IP]
        raw = bytes(frame)
        return dict(raw=raw, six=six, src=src, dst=dst, proto=proto, sport=sport, dport=dport,
                    flags=flags, tos=tos, vlan=vlan, ip=bytes(ip / l4 / payload))


def generate(p: SflowParams) -> Capture:
    rng = np.random.default_rng(p.seed)
    cap = Capture(p)
    pk = _Packets(p, rng)
    agents = []
    for i in range(p.agents):
        six = p.ipv6_agent and i == p.agents - 1
        addr = f"2001:db8:aaaa::{i + 1}" if six else f"192.0.2.{i + 1}"
        agents.append(dict(addr=addr, sub=int(rng.integers(0, 4)), seq=int(rng.integers(1, 1000)),
                           version=int(rng.choice(p.versions)),
                           sources={}, boot=int(rng.integers(1000, 10**6))))
    for _ in range(p.datagrams):
        ag = agents[int(rng.integers(0, len(agents)))]
        if p.sub_ids:
            ag["sub"] = int(rng.integers(0, p.sub_ids))
            seqs = ag.setdefault("seqs", {})
            seqs[ag["sub"]] = ag["seq"] = seqs.get(ag["sub"], 0) + 1
        else:
            ag["seq"] += 1
        version = ag["version"]
        samples = []
        for _ in range(int(rng.integers(*p.samples_per_datagram))):
            if rng.random() < p.counter_share:
                samples.append(_counter_sample(rng, version))
                continue
            samples.append(_flow_sample(p, rng, pk, ag, version, cap))
        ag["boot"] += 1000
        head = struct.pack("!I", version) + _addr(ag["addr"])
        if version == 5:
            head += struct.pack("!I", ag["sub"])
        head += struct.pack("!III", ag["seq"], ag["boot"], len(samples))
        cap.datagrams.append((ag["addr"], head + b"".join(samples)))
    return cap


def _counter_sample(rng, version: int) -> bytes:
    idx = int(rng.integers(1, 48))
    generic = struct.pack("!IIQIIQIIIIIIQIIIIII", idx, 6, 1_000_000_000, 1, 3, 123456789,
                          1000, 20, 30, 0, 0, 0, 987654321, 2000, 40, 50, 0, 0, 0)
    eth = struct.pack("!13I", *range(13))
    if version < 5:
        body = struct.pack("!IIII", 1, idx, 30, 2) + generic + eth
        return struct.pack("!I", 2) + body
    recs = _record(1, generic) + _record(2, eth)
    body = struct.pack("!III", 1, idx, 2) + recs
    return struct.pack("!II", 2, len(body)) + body


def _flow_sample(p, rng, pk, ag, version, cap) -> bytes:
    d = pk.draw()
    rate = int(rng.choice(p.rates))
    ifidx = int(rng.integers(1, 32))
    src_id = ifidx                       # class 0 (ifIndex)
    srcs = ag["sources"].setdefault(src_id, {"seq": 0, "pool": int(rng.integers(0, 10**6))})
    srcs["seq"] += 1
    srcs["pool"] += rate * int(rng.integers(1, 3))
    in_if, out_if = ifidx, int(rng.integers(1, 32))
    if p.egress_share and rng.random() < p.egress_share:
        in_if, out_if = out_if, ifidx
    kind = "header"
    r = rng.random()
    if r < p.sampled_ip_share:
        kind = "ipv6" if d["six"] else "ipv4"
    frame_len = len(d["raw"]) + 4         # with the FCS, as agents report it
    records = []
    vlan = d["vlan"]
    out_vlan = 0
    if kind == "header":
        if version >= 5 or True:
            bare = rng.random() < p.bare_ip_share
            hdr_proto = (12 if d["six"] else 11) if bare else 1
            data = d["ip"] if bare else d["raw"]
            if bare:
                frame_len = len(d["ip"])
                vlan = 0
            snap = min(len(data), int(rng.choice(p.snaplens)))
            body = struct.pack("!II", hdr_proto, frame_len)
            if version >= 5:
                body += struct.pack("!I", 4 if hdr_proto == 1 else 0)
            body += _xdr_opaque(data[:snap])
            records.append((1, body))
    else:
        vlan = 0
        if kind == "ipv4":
            ipl = len(d["ip"])
            body = struct.pack("!II4s4sIIII", ipl, d["proto"], ipaddress.ip_address(d["src"]).packed,
                               ipaddress.ip_address(d["dst"]).packed, d["sport"], d["dport"],
                               d["flags"], d["tos"])
            records.append((3, body))
        else:
            ipl = len(d["ip"])
            body = struct.pack("!II16s16sIIII", ipl, d["proto"], ipaddress.ip_address(d["src"]).packed,
                               ipaddress.ip_address(d["dst"]).packed, d["sport"], d["dport"],
                               d["flags"], 0)
            records.append((4, body))
        frame_len = ipl
    if rng.random() < p.switch_share:
        sv = int(rng.integers(1, 4095))
        dv = 0
        if p.out_vlan_share and rng.random() < p.out_vlan_share:
            dv = sv if rng.random() < 0.3 else int(rng.integers(1, 4095))
        records.append((1001, struct.pack("!IIII", sv, int(rng.integers(0, 8)), dv, 0)))
        vlan, out_vlan = sv, dv
    if rng.random() < p.router_share:
        nh = "192.0.2.%d" % int(rng.integers(100, 200))
        if p.nexthop6_share and rng.random() < p.nexthop6_share:
            nh = "2001:db8:f::%x" % int(rng.integers(1, 5))
        records.append((1002, _addr(nh) + struct.pack("!II", int(rng.choice([8, 16, 24])),
                                                    int(rng.choice([16, 24, 32])))))
    if rng.random() < p.gateway_share:
        path = [int(x) for x in rng.integers(64500, 64600, int(rng.integers(1, 4)))]
        gw = b""
        if version >= 5:
            gw += _addr("192.0.2.%d" % int(rng.integers(200, 250)))
        gw += struct.pack("!III", 65000, int(rng.integers(64500, 64600)), int(rng.integers(64500, 64600)))
        comms = [int(x) for x in rng.integers(0, 2**32, int(rng.integers(0, 3)), dtype=np.uint64)]
        if version == 2:
            # sFlow v2: the destination AS path is a plain list of AS numbers; no
            # segments, communities or local preference (those came with v4)
            gw += struct.pack("!I", len(path)) + b"".join(struct.pack("!I", a) for a in path)
        else:
            gw += struct.pack("!III", 1, 2, len(path)) + b"".join(struct.pack("!I", a) for a in path)
            gw += struct.pack("!I", len(comms)) + b"".join(struct.pack("!I", c) for c in comms)
            gw += struct.pack("!I", 100)
        records.append((1003, gw))
    if rng.random() < p.vc_share:
        name = b"vc-%d" % int(rng.integers(0, 1000))
        records.append((1009, _xdr_opaque(name) + struct.pack("!II", int(rng.integers(1, 1 << 20)), 0)))
    cap.samples.append(Sample(ag["addr"], ag["sub"], version, ag["seq"], src_id, rate, srcs["pool"],
                              srcs["seq"], in_if, out_if, frame_len, d["src"], d["dst"], d["proto"],
                              d["sport"], d["dport"], d["tos"], d["flags"], vlan, kind, out_vlan))
    if version < 5:
        return _flow_sample_v24(records, srcs, src_id, rate, in_if, out_if)
    expanded = cap.samples[-1].expanded = rng.random() < p.expanded_share
    recs = b"".join(_record(t, b) for t, b in records)
    if expanded:
        body = struct.pack("!IIIIIIIIIII", srcs["seq"], 0, src_id, rate, srcs["pool"], 0,
                           0, in_if, 0, out_if, len(records)) + recs
        return struct.pack("!II", 3, len(body)) + body
    body = struct.pack("!IIIIIIII", srcs["seq"], src_id, rate, srcs["pool"], 0, in_if, out_if,
                       len(records)) + recs
    return struct.pack("!II", 1, len(body)) + body


def _flow_sample_v24(records, srcs, src_id, rate, in_if, out_if) -> bytes:
    """sFlow v2/v4 flow sample: no lengths; the packet record comes first, then the
    extended records each as (tag, body)."""
    (tag, body), ext = records[0], records[1:]
    ext = [(t, b) for t, b in ext if t in (1001, 1002, 1003)]
    out = struct.pack("!IIIIIIII", 1, srcs["seq"], src_id, rate, srcs["pool"], 0, in_if, out_if)
    v2tag = {1: 1, 3: 2, 4: 3}[tag]
    out += struct.pack("!I", v2tag) + body
    out += struct.pack("!I", len(ext))
    for t, b in ext:
        out += struct.pack("!I", t - 1000) + b
    return out
