"""Seeded captures of conversations (packets of the same flows, both directions), for
tests of pmacctd's flows counter.

    write_conversations(path, seed=1, flows=40, packets=600)

Each flow is a 5-tuple (IPv4 or IPv6; TCP, UDP, ICMP echo or GRE); its packets go both
ways and are interleaved with the other flows'. TCP flows open with SYN / SYN+ACK / ACK,
carry data and may end with FIN or RST (and then go on, as ports are reused).
"""
from __future__ import annotations

import numpy as np

from . import pcapio


def frames(seed: int = 1, flows: int = 40, packets: int = 600, ipv6_share: float = 0.3,
           icmp4: bool = False):
    from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    rng = np.random.default_rng(seed)
    specs = []
    for i in range(flows):
        six = rng.random() < ipv6_share
        a, b = (f"2001:db8::{i + 1:x}", f"2001:db8:1::{i % 5 + 1:x}") if six else \
            (f"10.0.{i // 200}.{i % 200 + 1}", f"10.1.0.{i % 5 + 1}")
        proto = int(rng.choice([6, 17, 1, 47], p=[0.5, 0.3, 0.15, 0.05]))
        if proto == 1 and not six and not icmp4:
            proto = 47          # pmacct 1.7.7's pmacctd crashes on IPv4 ICMP with flows
        sport = int(rng.integers(1024, 65535))
        dport = int(rng.choice([80, 443, 53, 1024, sport]))
        specs.append([six, a, b, proto, sport, dport, 0])      # last: TCP step
    out = []
    for k in range(packets):
        i = int(rng.integers(0, flows))
        six, a, b, proto, sport, dport, step = specs[i]
        rev = bool(rng.random() < 0.4)
        if proto == 6:
            if step == 0:
                flags, rev = 0x02, False
            elif step == 1:
                flags, rev = 0x12, True
            elif step == 2:
                flags, rev = 0x10, False
            else:
                flags = int(rng.choice([0x10, 0x18, 0x11, 0x04, 0x14, 0x10],
                                       p=[0.5, 0.3, 0.08, 0.04, 0.04, 0.04]))
            specs[i][6] = step + 1
            if flags & 0x05 and rng.random() < 0.5:
                specs[i][6] = 0                 # a new connection on the same ports
            seq = 1000 + step if not rev else 5000 + step
            if step == 2:
                seq = 1001
            l4 = TCP(sport=sport, dport=dport, flags=flags, seq=seq)
            if rev:
                l4 = TCP(sport=dport, dport=sport, flags=flags, seq=seq)
        elif proto == 17:
            l4 = UDP(sport=dport, dport=sport) if rev else UDP(sport=sport, dport=dport)
        elif proto == 1:
            l4 = (ICMPv6EchoRequest(id=i, seq=k % 3) if six else ICMP(id=i, seq=k % 3))
        else:
            l4 = GRE()
        src, dst = (b, a) if rev else (a, b)
        ip = IPv6(src=src, dst=dst) if six else IP(src=src, dst=dst)
        if proto == 47 and six:
            ip.nh = 47
        payload = Raw(bytes(int(rng.integers(0, 300))))
        out.append(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4 / payload))
    return out


def write_conversations(path, seed: int = 1, flows: int = 40, packets: int = 600,
                        ipv6_share: float = 0.3, start_ns: int = 1_700_000_000_000_000_000,
                        gap_ns: int = 1_000_000, icmp4: bool = False):
    with pcapio.PcapWriter(path, linktype=1) as w:
        for i, f in enumerate(frames(seed, flows, packets, ipv6_share, icmp4)):
            w.write(start_ns + i * gap_ns, f)
    return path
