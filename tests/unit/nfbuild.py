"""Test helper: hand-built NetFlow v5 / v9 / IPFIX datagrams, field by field.

Small on purpose: each test spells out the templates and values it decodes, so a failing
assertion points at one element. Values are packed big-endian at the template's length
(an int of any length, or bytes for addresses/MACs/raw fields).
"""
from __future__ import annotations

import ipaddress
import struct

from pypmacct.decoders import NetflowDecoder, NetflowOptions
from pypmacct.runtime.log import Logger, Sink
from pypmacct.runtime.stats import Stats
from pypmacct.sources import Datagram

EXPORTER = "192.0.2.10"


class CaptureSink(Sink):
    """A log sink that keeps lines in memory."""

    def __init__(self, debug: bool = False):
        super().__init__()
        self.lines: list[str] = []
        self.debug = debug

    def write(self, level: str, line: str) -> None:
        if level == "DEBUG" and not self.debug:
            return
        self.lines.append(line)


def decoder(debug: bool = False, **opts):
    sink = CaptureSink(debug)
    dec = NetflowDecoder(NetflowOptions(**opts), log=Logger("default", "core", sink), stats=Stats())
    return dec, sink


def dg(payload: bytes, src: str = EXPORTER, port: int = 40000, ts_us: int = 1_700_000_000_000_000):
    return Datagram(payload, src, port, ts_us)


def ip(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def pack_value(v, length: int) -> bytes:
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v)
        return b if length == 65535 else b[:length].ljust(length, b"\0")
    if isinstance(v, str):
        return ip(v)
    return int(v).to_bytes(length, "big")


def vlen(b: bytes) -> bytes:
    """An IPFIX variable-length value: 1-byte length below 255, else 255 + 2 bytes."""
    if len(b) < 255:
        return bytes([len(b)]) + b
    return b"\xff" + struct.pack("!H", len(b)) + b


# --- NetFlow v5 ---
V5_REC = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")


def v5_record(src="10.0.0.1", dst="10.0.0.2", nexthop="0.0.0.0", inp=1, out=2, pkts=10,
              octets=1000, first=0, last=0, sport=1234, dport=80, tcp_flags=0x1B, proto=6,
              tos=0, src_as=0, dst_as=0, src_mask=24, dst_mask=16) -> bytes:
    return V5_REC.pack(ip(src), ip(dst), ip(nexthop), inp, out, pkts, octets, first, last,
                       sport, dport, 0, tcp_flags, proto, tos, src_as, dst_as, src_mask,
                       dst_mask, 0)


def v5(records, seq=0, uptime=3_600_000, unix=1_700_000_000, nsecs=0, engine_type=0,
       engine_id=0, sampling=0, count=None) -> bytes:
    n = len(records) if count is None else count
    return struct.pack("!HHIIIIBBH", 5, n, uptime, unix, nsecs, seq, engine_type, engine_id,
                       sampling) + b"".join(records)


# --- v9 / IPFIX ---
def field_specs(fields, version: int) -> bytes:
    out = b""
    for f in fields:
        t, ln = f[0], f[1]
        pen = f[2] if len(f) > 2 else 0
        if pen:
            if version != 10:
                raise ValueError("enterprise fields are IPFIX only")
            out += struct.pack("!HHI", t | 0x8000, ln, pen)
        else:
            out += struct.pack("!HH", t, ln)
    return out


def template_set(version: int, templates, pad: int = 0) -> bytes:
    """templates: [(tid, [(type, len[, pen]), ...]), ...]"""
    body = b"".join(struct.pack("!HH", tid, len(fields)) + field_specs(fields, version)
                    for tid, fields in templates)
    body += b"\0" * pad
    return struct.pack("!HH", 0 if version == 9 else 2, 4 + len(body)) + body


def options_template_set(version: int, tid: int, scope, options, pad: int = 0) -> bytes:
    if version == 9:
        body = struct.pack("!HHH", tid, 4 * len(scope), 4 * len(options))
        body += field_specs(scope, 9) + field_specs(options, 9)
        set_id = 1
    else:
        body = struct.pack("!HHH", tid, len(scope) + len(options), len(scope))
        body += field_specs(list(scope) + list(options), 10)
        set_id = 3
    body += b"\0" * pad
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def record(fields, values) -> bytes:
    """Pack ``values`` (a sequence in template order) for ``fields``."""
    out = b""
    for f, v in zip(fields, values):
        if f[1] == 65535:
            out += vlen(v if isinstance(v, bytes) else str(v).encode())
        else:
            out += pack_value(v, f[1])
    return out


def data_set(tid: int, records, pad: int = 0) -> bytes:
    body = b"".join(records) + b"\0" * pad
    return struct.pack("!HH", tid, 4 + len(body)) + body


def ipfix(sets, seq=0, domain=0, export=1_700_000_000) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export, seq, domain) + body


def v9(sets, seq=0, source_id=0, uptime=3_600_000, unix=1_700_000_000, count=None) -> bytes:
    body = b"".join(sets)
    n = len(sets) if count is None else count
    return struct.pack("!HHIIII", 9, n, uptime, unix, seq, source_id) + body


def addr_text(a) -> str:
    if a["af"] == 4:
        return str(ipaddress.IPv4Address(bytes(a["addr"])[:4]))
    if a["af"] == 6:
        return str(ipaddress.IPv6Address(bytes(a["addr"])))
    return ""
