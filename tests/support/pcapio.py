"""Reading and writing packet captures for tests and the bench.

Writers build every frame with plain ``struct``/numpy code: no per-packet scapy objects,
so a capture of a few hundred thousand datagrams is written in well under a second.

- :class:`PcapWriter`: classic libpcap files (microsecond or nanosecond timestamps).
- :class:`PcapngWriter`: pcapng with one section, one interface and Enhanced Packet Blocks.
- :func:`udp_frame`: Ethernet + IPv4/IPv6 + UDP around a payload, with correct IPv4 header
  and UDP checksums (IPv6 requires the UDP checksum; we fill it for IPv4 too).
- :func:`read_frames`: iterate (timestamp_ns, linktype, frame) from either format.
- :func:`udp_datagrams`: decode frames with dpkt and yield the UDP datagrams in a capture.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD

COLLECTOR_MAC = bytes.fromhex("020000c011ec")


def ip_bytes(addr) -> bytes:
    """Address (text, ipaddress object or packed bytes) -> packed network bytes."""
    if isinstance(addr, (bytes, bytearray)):
        return bytes(addr)
    return ipaddress.ip_address(addr).packed


def exporter_mac(src: bytes) -> bytes:
    """A locally administered MAC derived from the exporter's address (stable per exporter)."""
    return b"\x02\x00" + src[-4:]


def inet_checksum(data: bytes) -> int:
    """RFC 1071 one's complement sum, vectorised with numpy."""
    if len(data) % 2:
        data += b"\x00"
    total = int(np.frombuffer(data, dtype=">u2").sum(dtype=np.uint64))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def udp_frame(src, dst, sport: int, dport: int, payload: bytes, *, ttl: int = 64,
              ip_id: int = 0, src_mac: bytes | None = None,
              dst_mac: bytes = COLLECTOR_MAC, linktype: int = LINKTYPE_ETHERNET) -> bytes:
    """One UDP datagram framed for ``linktype`` (Ethernet or raw IP)."""
    src_b, dst_b = ip_bytes(src), ip_bytes(dst)
    if len(src_b) != len(dst_b):
        raise ValueError("source and destination address families differ")
    ulen = 8 + len(payload)
    if len(src_b) == 4:
        pseudo = src_b + dst_b + struct.pack("!BBH", 0, 17, ulen)
    else:
        pseudo = src_b + dst_b + struct.pack("!IxxxB", ulen, 17)
    udp_nocsum = struct.pack("!HHHH", sport, dport, ulen, 0)
    csum = inet_checksum(pseudo + udp_nocsum + payload)
    if csum == 0:
        csum = 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, ulen, csum)
    if len(src_b) == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ip_id & 0xFFFF, 0x4000, ttl, 17, 0,
                          src_b, dst_b)
        hdr = hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]
        etype = ETH_P_IP
    else:
        hdr = struct.pack("!IHBB16s16s", 0x60000000, ulen, 17, ttl, src_b, dst_b)
        etype = ETH_P_IPV6
    ip = hdr + udp + payload
    if linktype == LINKTYPE_RAW:
        return ip
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"cannot frame for linktype {linktype}")
    if src_mac is None:
        src_mac = exporter_mac(src_b)
    return dst_mac + src_mac + struct.pack("!H", etype) + ip


class PcapWriter:
    """Classic pcap writer. Timestamps are given in nanoseconds since the epoch."""

    def __init__(self, path, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144,
                 nanosecond: bool = False):
        self.path = str(path)
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.count = 0
        self._f = open(self.path, "wb")
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts_ns: int, frame: bytes) -> None:
        sec, frac = divmod(int(ts_ns), 1_000_000_000)
        if not self.nanosecond:
            frac //= 1000
        self._f.write(struct.pack("<IIII", sec, frac, len(frame), len(frame)))
        self._f.write(frame)
        self.count += 1

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PcapngWriter:
    """Minimal pcapng writer: SHB, one IDB (ns resolution), EPBs."""

    def __init__(self, path, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144):
        self.path = str(path)
        self.linktype = linktype
        self.count = 0
        self._f = open(self.path, "wb")
        shb_body = struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
        self._block(PCAPNG_SHB, shb_body)
        # if_tsresol option (code 9, length 1): 10^-9
        opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
        self._block(1, struct.pack("<HHI", linktype, 0, snaplen) + opts)

    def _block(self, btype: int, body: bytes) -> None:
        pad = (-len(body)) % 4
        total = 12 + len(body) + pad
        self._f.write(struct.pack("<II", btype, total) + body + b"\x00" * pad + struct.pack("<I", total))

    def write(self, ts_ns: int, frame: bytes) -> None:
        ts = int(ts_ns)
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame
        self._block(6, body)
        self.count += 1

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_writer(path, fmt: str = "pcap", linktype: int = LINKTYPE_ETHERNET):
    if fmt == "pcap":
        return PcapWriter(path, linktype)
    if fmt == "pcapng":
        return PcapngWriter(path, linktype)
    raise ValueError(f"unknown capture format {fmt!r}")


def read_frames(path) -> Iterator[tuple[int, int, bytes]]:
    """Yield (timestamp_ns, linktype, frame) for classic pcap or pcapng files."""
    with open(path, "rb") as f:
        data = f.read()
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or struct.unpack_from(">I", data, 0)[0] in (
            PCAP_MAGIC_US, PCAP_MAGIC_NS):
        endian = "<" if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        (magic,) = struct.unpack_from(endian + "I", data, 0)
        mult = 1 if magic == PCAP_MAGIC_NS else 1000
        linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
            off += 16
            yield sec * 1_000_000_000 + frac * mult, linktype, data[off:off + incl]
            off += incl
        return
    if magic != PCAPNG_SHB:
        raise ValueError(f"{path}: not a pcap or pcapng file")
    off = 0
    endian = "<"
    interfaces: list[tuple[int, int]] = []  # (linktype, ns per tick)
    while off + 12 <= len(data):
        btype = struct.unpack_from("<I", data, off)[0]
        if btype == PCAPNG_SHB:
            bom = struct.unpack_from("<I", data, off + 8)[0]
            endian = "<" if bom == PCAPNG_BYTE_ORDER_MAGIC else ">"
            interfaces = []
        btype, blen = struct.unpack_from(endian + "II", data, off)
        body = data[off + 8:off + blen - 4]
        if btype == 1:
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            tick = 1000  # default microseconds
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack_from(endian + "HH", body, o)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    res = body[o + 4]
                    tick = (10 ** 9 // (10 ** res)) if not res & 0x80 else int(1e9 / (1 << (res & 0x7F)))
                o += 4 + olen + ((-olen) % 4)
            interfaces.append((linktype, max(tick, 1)))
        elif btype == 6:
            ifid, hi, lo, incl, _orig = struct.unpack_from(endian + "IIIII", body, 0)
            lt, tick = interfaces[ifid]
            yield ((hi << 32) | lo) * tick, lt, body[20:20 + incl]
        elif btype == 3:
            incl = struct.unpack_from(endian + "I", body, 0)[0]
            lt, _ = interfaces[0]
            yield 0, lt, body[4:4 + incl]
        off += blen


@dataclass
class Datagram:
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def udp_datagrams(path) -> Iterator[Datagram]:
    """Decode every frame with dpkt and yield the UDP datagrams (any link type dpkt knows)."""
    import dpkt

    for ts_ns, linktype, frame in read_frames(path):
        if linktype == LINKTYPE_ETHERNET:
            l3 = dpkt.ethernet.Ethernet(frame).data
        elif linktype == LINKTYPE_LINUX_SLL:
            l3 = dpkt.sll.SLL(frame).data
        elif linktype == LINKTYPE_RAW:
            l3 = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
        else:
            continue
        if not isinstance(l3, (dpkt.ip.IP, dpkt.ip6.IP6)):
            continue
        udp = l3.data
        if not isinstance(udp, dpkt.udp.UDP):
            continue
        yield Datagram(ts_ns, ipaddress.ip_address(l3.src).compressed, udp.sport,
                       ipaddress.ip_address(l3.dst).compressed, udp.dport, bytes(udp.data))
