"""Packet headers carried inside flow records (IPFIX dataLinkFrameSection, 315, and
layer2packetSectionData, 104): what pmacct reads out of them.

Such records describe one sampled packet; pmacct parses the frame like a captured packet
and fills whatever the template itself does not carry: addresses, ports, protocol, ToS,
TCP flags, MACs, VLAN and CoS, ethertype, MPLS labels, and, without counters in the
template, one packet of the IP packet's length. Records are few (sampled packets), so a
plain per-record parser is enough.
"""
from __future__ import annotations

import struct

_U16 = struct.Struct("!H")


def parse_frame(b: bytes) -> dict:
    """Header fields of an Ethernet frame (possibly cut short); missing ones are absent."""
    out: dict = {}
    if len(b) < 14:
        return out
    out["dst_mac"] = b[0:6]
    out["src_mac"] = b[6:12]
    etype = _U16.unpack_from(b, 12)[0]
    off = 14
    first_tag = True
    while etype in (0x8100, 0x88A8, 0x9100) and len(b) >= off + 4:
        tci = _U16.unpack_from(b, off)[0]
        if first_tag:
            out["vlan"] = tci & 0x0FFF
            out["cos"] = tci >> 13
            first_tag = False
        etype = _U16.unpack_from(b, off + 2)[0]
        off += 4
    if etype in (0x8847, 0x8848):
        labels = []
        while len(b) >= off + 4:
            v = int.from_bytes(b[off:off + 3], "big")
            labels.append(v)
            off += 4
            if v & 1:
                break
        if labels:
            out["mpls_label_top"] = labels[0] >> 4
            if labels[-1] & 1:
                out["mpls_label_bottom"] = labels[-1] >> 4
            out["mpls_stack_depth"] = len(labels)
        if len(b) > off:
            etype = 0x0800 if b[off] >> 4 == 4 else 0x86DD if b[off] >> 4 == 6 else etype
    out["etype"] = etype
    proto = None
    if etype == 0x0800 and len(b) >= off + 20:
        ihl = (b[off] & 0x0F) * 4
        out["tos"] = b[off + 1]
        out["ip_len"] = _U16.unpack_from(b, off + 2)[0]
        frag = _U16.unpack_from(b, off + 6)[0] & 0x1FFF
        proto = b[off + 9]
        out["src_host"] = (4, b[off + 12:off + 16])
        out["dst_host"] = (4, b[off + 16:off + 20])
        l4 = off + ihl if not frag else None
    elif etype == 0x86DD and len(b) >= off + 40:
        out["tos"] = ((b[off] & 0x0F) << 4) | (b[off + 1] >> 4)
        out["ip_len"] = _U16.unpack_from(b, off + 4)[0] + 40
        proto = b[off + 6]
        out["src_host"] = (6, b[off + 8:off + 24])
        out["dst_host"] = (6, b[off + 24:off + 40])
        l4 = off + 40
    else:
        return out
    out["proto"] = proto
    if l4 is not None and proto in (6, 17) and len(b) >= l4 + 4:     # pmacct: TCP, UDP only
        out["src_port"], out["dst_port"] = struct.unpack_from("!HH", b, l4)
        if proto == 6 and len(b) >= l4 + 14:
            out["tcp_flags"] = b[l4 + 13]
    return out
