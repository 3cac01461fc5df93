"""Datagrams out of a capture file: ``pcap_savefile`` for nfacctd/sfacctd.

Reads classic pcap (micro- and nanosecond, either byte order) with its own reader and
pcapng (per-interface link type and timestamp resolution). Every UDP datagram in the
capture becomes a ``Datagram``, whatever its ports: pmacct reads a savefile the same way
(it takes the payload of every packet and never looks at the destination port). pmacct
also takes each TCP segment's payload as a datagram (NetFlow can be exported over TCP);
so do we, but only segments that start like an export (``tcp_versions``), so that BGP or
BMP sessions in the same capture are not fed to the decoder.

Link types: Ethernet (802.1Q/802.1ad tags, MPLS), Linux cooked v1 and v2, raw IP,
BSD loopback (null and loop). IPv4 and IPv6 (extension headers skipped), fragments are
reassembled. Frames that are not UDP, or that are cut short, are counted in ``skipped``.

Arrival time: pmacct stamps a datagram read from a savefile with the wall clock, not with
the capture time; ``arrival="capture"`` uses the capture timestamps instead.

``SavefileSource.batches`` yields ``DatagramBatch``es: datagrams that stay in the buffer
they were read into (a regular classic-pcap file is mapped, so that buffer is a span of
the mapping), with per-datagram arrays, so the decoder never copies or wraps them
one by one. In classic pcap files, Ethernet (one VLAN tag at most), Linux cooked and
raw-IP frames carrying unfragmented IPv4/UDP, or IPv6/UDP without extension headers, are
parsed for a whole read at once with vectorised steps; every other frame goes through
``FrameParser`` in file order.
"""
from __future__ import annotations

import mmap
import os
import socket
import stat
import struct
import time
from typing import Iterator

import numpy as np

from . import Datagram

# link types (LINKTYPE_* values as stored in files)
LT_NULL, LT_ETHERNET, LT_RAW, LT_LOOP = 0, 1, 101, 108
LT_SLL, LT_SLL2, LT_IPV4, LT_IPV6 = 113, 276, 228, 229
LT_RAW_ALIASES = (12, 14)

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100, 0x9200)
ETH_MPLS = (0x8847, 0x8848)

# magic as stored -> (byte order, timestamps in nanoseconds)
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True),
}
_PCAPNG_SHB = 0x0A0D0D0A

_MAX_FRAG_CONTEXTS = 1024
_READ_CHUNK = 1 << 22
# a read grows up to this so that it holds about three batches: a batch that spans two
# reads is copied into one buffer (sfacctd's batches of 4096 sFlow datagrams are ~6 MB,
# more than a 4 MB read, so every one of them was copied)
_MAX_READ_CHUNK = 1 << 24
_TAIL = bytes(64)
# a regular file is mapped and walked in place (no read copy, no joined batches); off
# for tests of the read path
_MAP = True

_u16 = struct.Struct("!H")


class SavefileError(Exception):
    pass


def _af_from_null(family: int) -> int:
    if family == 2:
        return 4
    if family in (10, 24, 28, 30):
        return 6
    return 0


class _Reassembler:
    """Minimal IP fragment reassembly, bounded in memory."""

    def __init__(self):
        self.pending: dict = {}

    def add(self, key, offset: int, more: bool, data: bytes) -> bytes | None:
        entry = self.pending.get(key)
        if entry is None:
            if len(self.pending) >= _MAX_FRAG_CONTEXTS:
                self.pending.pop(next(iter(self.pending)))
            entry = self.pending[key] = [{}, None]
        entry[0][offset] = data
        if not more:
            entry[1] = offset + len(data)
        total = entry[1]
        if total is None:
            return None
        pos, parts = 0, []
        pieces = entry[0]
        while pos < total:
            piece = pieces.get(pos)
            if piece is None or not piece:
                return None
            parts.append(piece)
            pos += len(piece)
        del self.pending[key]
        return b"".join(parts)[:total]


class FrameParser:
    """Turns link-layer frames into (src, sport, payload, proto) for UDP and TCP (with
    a payload), else None."""

    def __init__(self, tcp: bool = True):
        self.frags = _Reassembler()
        self.tcp = tcp

    def parse(self, linktype: int, frame: bytes):
        try:
            if linktype == LT_ETHERNET:
                return self._ethernet(frame)
            if linktype == LT_SLL:
                if len(frame) < 16:
                    return None
                return self._ethertype(_u16.unpack_from(frame, 14)[0], frame, 16)
            if linktype == LT_SLL2:
                if len(frame) < 20:
                    return None
                return self._ethertype(_u16.unpack_from(frame, 0)[0], frame, 20)
            if linktype in (LT_RAW, LT_IPV4, LT_IPV6) or linktype in LT_RAW_ALIASES:
                return self._ip(frame, 0)
            if linktype == LT_NULL:
                if len(frame) < 4:
                    return None
                fam = _af_from_null(struct.unpack_from("<I", frame)[0]) or \
                    _af_from_null(struct.unpack_from(">I", frame)[0])
                return self._ip(frame, 4) if fam else None
            if linktype == LT_LOOP:
                if len(frame) < 4:
                    return None
                return self._ip(frame, 4) if _af_from_null(struct.unpack_from(">I", frame)[0]) else None
        except (struct.error, IndexError, ValueError):
            return None
        return None

    def _ethernet(self, frame: bytes):
        if len(frame) < 14:
            return None
        return self._ethertype(_u16.unpack_from(frame, 12)[0], frame, 14)

    def _ethertype(self, etype: int, frame: bytes, off: int):
        while etype in ETH_VLAN_TAGS:
            if len(frame) < off + 4:
                return None
            etype = _u16.unpack_from(frame, off + 2)[0]
            off += 4
        if etype in ETH_MPLS:
            while True:
                if len(frame) < off + 4:
                    return None
                bos = frame[off + 2] & 1
                off += 4
                if bos:
                    break
            return self._ip(frame, off)
        if etype == ETH_IPV4 or etype == ETH_IPV6:
            return self._ip(frame, off)
        return None

    def _ip(self, frame: bytes, off: int):
        if len(frame) <= off:
            return None
        ver = frame[off] >> 4
        if ver == 4:
            return self._ipv4(frame, off)
        if ver == 6:
            return self._ipv6(frame, off)
        return None

    def _ipv4(self, frame: bytes, off: int):
        if len(frame) < off + 20:
            return None
        ihl = (frame[off] & 0x0F) * 4
        total = _u16.unpack_from(frame, off + 2)[0]
        if ihl < 20 or total < ihl:
            return None
        end = min(len(frame), off + total)
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16])
        proto = frame[off + 9]
        flags_frag = _u16.unpack_from(frame, off + 6)[0]
        frag_off = (flags_frag & 0x1FFF) * 8
        more = bool(flags_frag & 0x2000)
        body = frame[off + ihl:end]
        if more or frag_off:
            key = (4, frame[off + 12:off + 20], frame[off + 4:off + 6], proto)
            body = self.frags.add(key, frag_off, more, body)
            if body is None:
                return None
        return self._l4(src, proto, body)

    def _ipv6(self, frame: bytes, off: int):
        if len(frame) < off + 40:
            return None
        plen = _u16.unpack_from(frame, off + 4)[0]
        nxt = frame[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24])
        end = min(len(frame), off + 40 + plen) if plen else len(frame)
        body = frame[off + 40:end]
        pos = 0
        while True:
            if nxt in (0, 43, 60):
                if len(body) < pos + 8:
                    return None
                nxt, hlen = body[pos], (body[pos + 1] + 1) * 8
                pos += hlen
            elif nxt == 51:
                if len(body) < pos + 8:
                    return None
                nxt, hlen = body[pos], (body[pos + 1] + 2) * 4
                pos += hlen
            elif nxt == 44:
                if len(body) < pos + 8:
                    return None
                fnext = body[pos]
                fo = _u16.unpack_from(body, pos + 2)[0]
                key = (6, frame[off + 8:off + 40], body[pos + 4:pos + 8])
                data = self.frags.add(key, fo & 0xFFF8, bool(fo & 1), body[pos + 8:])
                if data is None:
                    return None
                body, pos, nxt = data, 0, fnext
            else:
                break
        return self._l4(src, nxt, body[pos:])

    def _l4(self, src: str, proto: int, seg: bytes):
        if proto == 17:
            if len(seg) < 8:
                return None
            ulen = _u16.unpack_from(seg, 4)[0]
            payload = seg[8:ulen] if ulen >= 8 else seg[8:]   # 0: jumbogram or bogus
        elif proto == 6 and self.tcp:
            if len(seg) < 20:
                return None
            hlen = (seg[12] >> 4) * 4
            if hlen < 20 or len(seg) <= hlen:
                return None
            payload = seg[hlen:]
        else:
            return None
        sport = _u16.unpack_from(seg, 0)[0]
        if src.startswith("::ffff:") and "." in src:
            src = src[7:]
        return src, sport, payload, proto


def _read_pcap(fh, header: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Classic pcap records as (linktype, ts_us, frame)."""
    endian, nanos = _PCAP_MAGICS[header[:4]]
    if len(header) < 24:
        raise SavefileError("truncated pcap header")
    linktype = struct.unpack_from(endian + "I", header, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    buf = header[24:]
    pos = 0
    while True:
        if len(buf) - pos < 16:
            more = fh.read(_READ_CHUNK)
            if not more:
                return
            buf = buf[pos:] + more
            pos = 0
            continue
        sec, frac, incl, _orig = rec.unpack_from(buf, pos)
        if incl > 0x4000000:
            raise SavefileError(f"bogus record length {incl}")
        need = pos + 16 + incl
        if len(buf) < need:
            more = fh.read(max(_READ_CHUNK, incl + 16))
            if not more:
                return        # truncated last record, as libpcap does
            buf = buf[pos:] + more
            pos = 0
            continue
        ts_us = sec * 1_000_000 + (frac // 1000 if nanos else frac)
        yield linktype, ts_us, buf[pos + 16:need]
        pos = need


def _read_pcapng(fh, first: bytes) -> Iterator[tuple[int, int, bytes]]:
    """pcapng packets as (linktype, ts_us, frame), honouring per-interface settings."""
    pending = first
    endian = "<"
    ifaces: list[tuple[int, int, int]] = []   # (linktype, units per second, offset s)

    def take(k: int) -> bytes:
        nonlocal pending
        if len(pending) < k:
            pending += fh.read(k - len(pending))
        out, pending = pending[:k], pending[k:]
        return out

    while True:
        head = take(12)
        if len(head) < 12:
            return
        btype = struct.unpack_from(endian + "I", head)[0]
        if btype == _PCAPNG_SHB:
            endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack_from(endian + "I", head, 4)[0]
        if blen < 12 or blen % 4 or blen > 0x8000000:
            return
        rest = take(blen - 12)
        if len(rest) < blen - 12:
            return
        body = (head[8:] + rest)[:-4]
        if btype == 1 and len(body) >= 8:                         # IDB
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            units, offset = 1_000_000, 0
            opos = 8
            while opos + 4 <= len(body):
                code, olen = struct.unpack_from(endian + "HH", body, opos)
                val = body[opos + 4:opos + 4 + olen]
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    r = val[0]
                    units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** (r & 0x7F)
                elif code == 14 and olen == 8:
                    offset = struct.unpack(endian + "q", val)[0]
                opos += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, units or 1_000_000, offset))
        elif btype == 6 and len(body) >= 20:                      # EPB
            iface, hi, lo, cap, _orig = struct.unpack_from(endian + "IIIII", body, 0)
            if iface < len(ifaces):
                lt, units, offset = ifaces[iface]
                ts_us = offset * 1_000_000 + ((hi << 32) | lo) * 1_000_000 // units
                yield lt, ts_us, body[20:20 + cap]
        elif btype == 3 and len(body) >= 4 and ifaces:             # SPB
            orig = struct.unpack_from(endian + "I", body, 0)[0]
            yield ifaces[0][0], 0, body[4:4 + orig]
        elif btype == 2 and len(body) >= 20:                      # obsolete PB
            iface, _drops, hi, lo, cap, _orig = struct.unpack_from(endian + "HHIIII", body, 0)
            if iface < len(ifaces):
                lt, units, offset = ifaces[iface]
                ts_us = offset * 1_000_000 + ((hi << 32) | lo) * 1_000_000 // units
                yield lt, ts_us, body[20:20 + cap]


def read_frames(path: str) -> Iterator[tuple[int, int, bytes]]:
    """Every frame of a pcap or pcapng file as (linktype, ts_us, frame)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
        if head[:4] in _PCAP_MAGICS:
            yield from _read_pcap(fh, head)
        elif len(head) >= 4 and struct.unpack_from("<I", head)[0] == _PCAPNG_SHB:
            yield from _read_pcapng(fh, head)
        else:
            raise SavefileError(f"{path}: not a pcap or pcapng file")


EXPORT_VERSIONS = (5, 9, 10)


def _wanted(got, tcp_versions) -> bool:
    if got[3] == 17:
        return True
    if tcp_versions is None:
        return True
    p = got[2]
    return len(p) >= 2 and ((p[0] << 8) | p[1]) in tcp_versions


def read_datagrams(path: str, arrival: str = "capture", tcp: bool = True,
                   tcp_versions=EXPORT_VERSIONS) -> Iterator[Datagram]:
    """All datagrams of a capture, in file order (see the module text)."""
    parser = FrameParser(tcp)
    for lt, ts_us, frame in read_frames(path):
        got = parser.parse(lt, frame)
        if got is not None and _wanted(got, tcp_versions):
            src, sport, payload, _ = got
            ts = ts_us if arrival == "capture" else time.time_ns() // 1000
            yield Datagram(payload, src, sport, ts)


class DatagramBatch:
    """A sequence of ``Datagram``s whose payloads lie in one buffer.

    ``packed()`` hands the decoder the buffer and per-datagram arrays (payload start and
    length, exporter index into ``srcs``, port, arrival time); indexing or iterating
    makes ``Datagram`` objects for whoever needs them one by one.
    """
    __slots__ = ("buf", "start", "length", "exp", "srcs", "port", "ts")

    def __init__(self, buf: bytes, start, length, exp, srcs: list[str], port, ts):
        self.buf, self.start, self.length = buf, start, length
        self.exp, self.srcs, self.port, self.ts = exp, srcs, port, ts

    def packed(self):
        return self.buf, self.start, self.length, self.exp, self.srcs, self.port, self.ts

    def __len__(self) -> int:
        return len(self.start)

    def _one(self, i: int) -> Datagram:
        s = int(self.start[i])
        payload = self.buf[s:s + int(self.length[i])]
        if not isinstance(payload, bytes):      # a span of a mapped file
            payload = bytes(payload)
        return Datagram(payload, self.srcs[int(self.exp[i])],
                        int(self.port[i]), int(self.ts[i]))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("datagram index out of range")
        return self._one(i)

    def __iter__(self):
        for i in range(len(self)):
            yield self._one(i)


_BE16 = np.dtype(">u2")
_BE32 = np.dtype(">u4")
_ETH_VLAN = np.array(ETH_VLAN_TAGS, np.int64)


def _window(buf, dt):
    n = len(buf) - dt.itemsize + 1
    return np.ndarray((max(n, 0),), dtype=dt, buffer=buf if n > 0 else bytes(dt.itemsize), strides=(1,))


def _fast_udp4(buf: bytes, linktype: int, fo: np.ndarray, fl: np.ndarray):
    """Frames at ``fo`` (``fl`` bytes each) that carry an unfragmented IPv4 UDP datagram
    behind a link header we know: (mask, payload offset, payload length, source
    address as uint32, source port) for them, the mask over all frames."""
    n = len(fo)
    ok = np.zeros(n, bool)
    zero = np.zeros(0, np.int64)
    if not n:
        return ok, zero, zero, zero, zero
    a = np.frombuffer(buf, np.uint8)
    w16 = _window(buf, _BE16)
    w32 = _window(buf, _BE32)
    l3 = np.full(n, -1, np.int64)
    if linktype == LT_ETHERNET:
        c = np.nonzero(fl >= 14 + 28)[0]
        et = w16[fo[c] + 12]
        l3[c[et == ETH_IPV4]] = 14
        tagged = c[np.isin(et, _ETH_VLAN)]
        if len(tagged):
            inner = w16[fo[tagged] + 16]
            l3[tagged[(inner == ETH_IPV4) & (fl[tagged] >= 18 + 28)]] = 18
    elif linktype == LT_SLL:
        c = np.nonzero(fl >= 16 + 28)[0]
        l3[c[w16[fo[c] + 14] == ETH_IPV4]] = 16
    elif linktype == LT_SLL2:
        c = np.nonzero(fl >= 20 + 28)[0]
        l3[c[w16[fo[c]] == ETH_IPV4]] = 20
    elif linktype in (LT_RAW, LT_IPV4) or linktype in LT_RAW_ALIASES:
        l3[fl >= 28] = 0
    else:
        return ok, zero, zero, zero, zero
    c = np.nonzero(l3 >= 0)[0]
    ip = fo[c] + l3[c]
    vihl = a[ip]
    ihl = (vihl & 0x0F).astype(np.int64) * 4
    tot = w16[ip + 2].astype(np.int64)
    good = ((vihl >> 4) == 4) & (ihl >= 20) & (tot >= ihl) & \
        ((w16[ip + 6] & 0x3FFF) == 0) & (a[ip + 9] == 17)
    c, ip, ihl, tot = c[good], ip[good], ihl[good], tot[good]
    seg = ip + ihl
    seglen = fo[c] + np.minimum(fl[c], l3[c] + tot) - seg
    good = seglen >= 8
    c, ip, seg, seglen = c[good], ip[good], seg[good], seglen[good]
    ulen = w16[seg + 4].astype(np.int64)
    plen = np.where(ulen >= 8, np.minimum(ulen, seglen), seglen) - 8
    ok[c] = True
    return ok, seg + 8, plen, w32[ip + 12].astype(np.int64), w16[seg].astype(np.int64)


def _fast_udp6(buf: bytes, linktype: int, fo: np.ndarray, fl: np.ndarray, todo: np.ndarray):
    """As ``_fast_udp4`` for IPv6 UDP without extension headers, among frames ``todo``:
    (mask over all frames, payload offset, payload length, source address rows (n, 16),
    source port) for the frames it takes. IPv4-mapped sources are left to the frame
    parser (it writes them as IPv4)."""
    n = len(fo)
    ok = np.zeros(n, bool)
    zero = np.zeros(0, np.int64)
    none = (ok, zero, zero, np.zeros((0, 16), np.uint8), zero)
    c = np.nonzero(todo)[0]
    if not len(c):
        return none
    a = np.frombuffer(buf, np.uint8)
    w16 = _window(buf, _BE16)
    l3 = np.full(len(c), -1, np.int64)
    f0, fln = fo[c], fl[c]
    if linktype == LT_ETHERNET:
        big = fln >= 14 + 48
        et = np.where(big, w16[np.where(big, f0 + 12, 0)], 0)
        l3[big & (et == ETH_IPV6)] = 14
        tagged = big & np.isin(et, _ETH_VLAN) & (fln >= 18 + 48)
        if tagged.any():
            inner = w16[f0[tagged] + 16]
            idx = np.nonzero(tagged)[0]
            l3[idx[inner == ETH_IPV6]] = 18
    elif linktype == LT_SLL:
        big = fln >= 16 + 48
        l3[big & (w16[np.where(big, f0 + 14, 0)] == ETH_IPV6)] = 16
    elif linktype == LT_SLL2:
        big = fln >= 20 + 48
        l3[big & (w16[np.where(big, f0, 0)] == ETH_IPV6)] = 20
    elif linktype in (LT_RAW, LT_IPV6) or linktype in LT_RAW_ALIASES:
        l3[fln >= 48] = 0
    else:
        return none
    k = np.nonzero(l3 >= 0)[0]
    c, l3 = c[k], l3[k]
    ip = fo[c] + l3
    plen6 = w16[ip + 4].astype(np.int64)
    src = a[ip[:, None] + 8 + np.arange(16)]
    mapped = (src[:, :10] == 0).all(axis=1) & (src[:, 10] == 0xFF) & (src[:, 11] == 0xFF)
    good = ((a[ip] >> 4) == 6) & (a[ip + 6] == 17) & (plen6 >= 8) & ~mapped
    c, ip, plen6, src, l3 = c[good], ip[good], plen6[good], src[good], l3[good]
    seg = ip + 40
    seglen = np.minimum(fl[c] - l3 - 40, plen6)
    good = seglen >= 8
    c, seg, seglen, src = c[good], seg[good], seglen[good], src[good]
    ulen = w16[seg + 4].astype(np.int64)
    plen = np.where(ulen >= 8, np.minimum(ulen, seglen), seglen) - 8
    ok[c] = True
    return ok, seg + 8, plen, src, w16[seg].astype(np.int64)


def _v6_names(batcher, rows: np.ndarray) -> np.ndarray:
    """Name indices for IPv6 source addresses given as (n, 16) byte rows."""
    if not len(rows):
        return np.zeros(0, np.int64)
    words = np.ascontiguousarray(rows).view(">u8")
    u, first, inv = np.unique(words[:, 0] ^ (words[:, 1] * np.uint64(0x9E3779B97F4A7C15)),
                              return_index=True, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    rep = first[inv]
    clash = np.nonzero((rows != rows[rep]).any(axis=1))[0]
    idx = np.array([batcher.name(socket.inet_ntop(socket.AF_INET6, bytes(rows[f])))
                    for f in first.tolist()], np.int64)
    out = idx[inv]
    for i in clash.tolist():                 # a hash collision: named on its own
        out[i] = batcher.name(socket.inet_ntop(socket.AF_INET6, bytes(rows[i])))
    return out


class _Reader:
    """Classic pcap frames, a large read at a time: (buffer, linktype, frame offsets,
    frame lengths, capture times in microseconds). Each read is its own buffer; a record
    cut by the end of a read is put together on its own."""

    def __init__(self, fh, header: bytes, mapped: bool = True):
        """``mapped=False``: always read, never map (for callers that hand each read's
        buffer on whole: a mapped file is one buffer for all its windows)."""
        self.fh = fh
        self.mapped = mapped
        endian, self.nanos = _PCAP_MAGICS[header[:4]]
        if len(header) < 24:
            raise SavefileError("truncated pcap header")
        self.linktype = struct.unpack_from(endian + "I", header, 20)[0] & 0x0FFFFFFF
        self.u32 = np.dtype(endian + "u4")
        self.incl = struct.Struct(endian + "I")
        self.pending = header[24:]
        self.chunk = _READ_CHUNK             # bytes per read (``fit`` may raise it)

    def fit(self, frames: int, nbytes: int, batch: int) -> None:
        """Size the reads to about three batches of ``batch`` frames, from the first
        read's ``frames`` frames in ``nbytes`` bytes."""
        if frames:
            want = 3 * batch * (nbytes // frames)
            self.chunk = max(_READ_CHUNK, min(_MAX_READ_CHUNK, want))

    def __iter__(self):
        mm = self._map()
        return self._read_walk() if mm is None else self._mapped_walk(mm)

    def _map(self):
        """The whole file mapped read-only, or None (not a regular file, empty, or
        mapping refused: the reads are used then)."""
        if not (_MAP and self.mapped):
            return None
        try:
            fd = self.fh.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size <= 24:
                return None
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError, AttributeError):
            return None

    def _mapped_walk(self, mm):
        """The record walk over the mapped file, a window of ``chunk`` bytes at a time
        (a record larger than a window is a window of its own). All windows share the
        one buffer, so a batch never spans two; pages before the previous window are
        given back (``MADV_DONTNEED``: a file page read again is faulted in from the
        page cache, so this only keeps the mapping out of the resident set)."""
        incl_at = self.incl.unpack_from
        size = len(mm)
        pos = self.fh.tell() - len(self.pending)
        behind = 0                            # the previous window's start
        released = 0
        while pos + 16 <= size:
            begin = pos
            stop = min(size, pos + max(self.chunk, 16))
            last = stop - 16
            heads: list[int] = []
            add = heads.append
            while pos <= last:
                end = pos + 16 + incl_at(mm, pos + 8)[0]
                if end > stop:
                    break
                add(pos)
                pos = end
            # the record at pos (if any) did not fit: bogus, cut by the file's end,
            # or larger than a window
            incl = incl_at(mm, pos + 8)[0] if pos + 16 <= size else 0
            cut = pos + 16 <= size and (incl > 0x4000000 or pos + 16 + incl > size)
            if not heads and not cut:
                heads.append(pos)
                pos += 16 + incl
            if heads:
                yield self._frames(mm, heads)
                upto = behind // mmap.PAGESIZE * mmap.PAGESIZE
                if upto > released:
                    mm.madvise(mmap.MADV_DONTNEED, released, upto - released)
                    released = upto
                behind = begin
            if cut:
                if incl > 0x4000000:
                    raise SavefileError(f"bogus record length {incl}")
                break
        # the mapping's end: a file still being written may have grown since it was
        # mapped; what was added is read, as libpcap's reads would (a record cut by the
        # end, if the file has not grown, is dropped as libpcap does)
        if os.fstat(self.fh.fileno()).st_size > size:
            self.fh.seek(pos)
            self.pending = b""
            yield from self._read_walk()

    def _read_walk(self):
        fh = self.fh
        incl_at = self.incl.unpack_from
        left = self.pending                  # the start of a record cut by a read
        while True:
            chunk = fh.read(self.chunk)
            start = 0
            if left:
                # complete the cut record from this read (and more if it is huge)
                while len(left) < 16 or len(left) < 16 + incl_at(left, 8)[0]:
                    if len(left) >= 16 and incl_at(left, 8)[0] > 0x4000000:
                        raise SavefileError(f"bogus record length {incl_at(left, 8)[0]}")
                    need = 16 - len(left) if len(left) < 16 else 16 + incl_at(left, 8)[0] - len(left)
                    if start >= len(chunk):
                        chunk = fh.read(max(self.chunk, need))
                        start = 0
                        if not chunk:
                            return          # a truncated last record, dropped as libpcap does
                    take = chunk[start:start + need]
                    left += take
                    start += len(take)
                yield self._frames(left, [0])
                left = b""
            if start >= len(chunk):
                if not chunk:
                    return
                continue
            blen = len(chunk)
            last = blen - 16
            pos = start
            heads: list[int] = []
            add = heads.append
            # the per-record walk: kept to the fewest operations (a read is at most
            # _MAX_READ_CHUNK bytes, so a bogus length always runs past its end)
            while pos <= last:
                end = pos + 16 + incl_at(chunk, pos + 8)[0]
                if end > blen:
                    incl = incl_at(chunk, pos + 8)[0]
                    if incl > 0x4000000:
                        if heads:
                            yield self._frames(chunk, heads)
                        raise SavefileError(f"bogus record length {incl}")
                    break
                add(pos)
                pos = end
            if heads:
                yield self._frames(chunk, heads)
            left = chunk[pos:]

    def _frames(self, buf, heads):
        w = _window(buf, self.u32)
        h = np.array(heads, np.int64)
        frac = w[h + 4].astype(np.int64)
        ts = w[h].astype(np.int64) * 1_000_000 + (frac // 1000 if self.nanos else frac)
        return buf, self.linktype, h + 16, w[h + 8].astype(np.int64), ts


class _Batcher:
    """Datagrams in file order, cut into batches of a given size. Datagrams may lie in
    several buffers (successive reads, payloads the frame parser made); a batch whose
    datagrams all lie in one buffer keeps it, others get the used parts copied."""

    def __init__(self):
        self.names: dict[str, int] = {}
        self.name_list: list[str] = []
        self.bufs: dict[int, bytes] = {}
        self.next_buf = 0
        self.parts: list[tuple] = []
        self.n = 0

    def buffer(self, b: bytes) -> int:
        if self.next_buf and self.bufs.get(self.next_buf - 1) is b:
            return self.next_buf - 1          # the next window of a mapped file
        i = self.next_buf
        self.next_buf += 1
        self.bufs[i] = b
        return i

    def name(self, src: str) -> int:
        i = self.names.get(src)
        if i is None:
            i = self.names[src] = len(self.name_list)
            self.name_list.append(src)
        return i

    def push(self, bid, off, length, sidx, port, ts) -> None:
        if len(off):
            self.parts.append((bid, off, length, sidx, port, ts))
            self.n += len(off)

    def pop(self, k: int, now: bool) -> DatagramBatch:
        cols = [np.concatenate(c) if len(self.parts) > 1 else c[0] for c in zip(*self.parts)]
        rest = [c[k:] for c in cols]
        bid, off, length, sidx, port, ts = (c[:k] for c in cols)
        self.parts = [tuple(rest)] if len(rest[0]) else []
        self.n = len(rest[0])
        ub = _distinct(bid)
        if len(ub) == 1:
            buf = self.bufs[int(ub[0])]
            start = off
            if isinstance(buf, mmap.mmap):
                # the batch's span of the mapped file (and the padding's room when
                # the file has it), so that no copy of a batch is ever the whole file
                lo = int(off.min())
                hi = min(len(buf), int((off + length).max()) + len(_TAIL))
                buf = memoryview(buf)[lo:hi]
                start = off - lo
        else:
            pieces = []
            start = np.empty(k, np.int64)
            base = 0
            for b in ub.tolist():
                sel = bid == b
                lo = int(off[sel].min())
                hi = int((off[sel] + length[sel]).max())
                pieces.append(memoryview(self.bufs[b])[lo:hi])     # copied once, by join
                start[sel] = off[sel] - lo + base
                base += hi - lo
            # zeros past the last datagram: room for the decoders' padding (they
            # read such a buffer in place)
            pieces.append(_TAIL)
            buf = b"".join(pieces)
        live = set(_distinct(rest[0]).tolist()) if self.n else set()
        for b in list(self.bufs):
            if b not in live:
                del self.bufs[b]
        un, exp = np.unique(sidx, return_inverse=True)
        srcs = [self.name_list[i] for i in un.tolist()]
        if now:
            ts = np.full(k, time.time_ns() // 1000, np.int64)
        return DatagramBatch(buf, start, length, exp.astype(np.int64), srcs, port, ts)


def _distinct(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` for the few buffer ids of a batch. (numpy 2's plain ``np.unique``
    imports numpy.ma on first use: some 20 ms of start-up CPU.)"""
    if len(a) == 0 or (a[0] == a).all():
        return a[:1]
    s = np.sort(a)
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


_V4_TEXT: dict[int, str] = {}


def _v4_names(batcher: _Batcher, addrs: np.ndarray) -> np.ndarray:
    """Name indices for IPv4 source addresses given as uint32 values."""
    u, inv = np.unique(addrs, return_inverse=True)
    idx = np.empty(len(u), np.int64)
    for i, v in enumerate(u.tolist()):
        t = _V4_TEXT.get(v)
        if t is None:
            if len(_V4_TEXT) > 100_000:
                _V4_TEXT.clear()
            t = _V4_TEXT[v] = socket.inet_ntop(socket.AF_INET, v.to_bytes(4, "big"))
        idx[i] = batcher.name(t)
    return idx[inv]


class SavefileSource:
    """``pcap_savefile`` as a datagram source.

    ``delay`` seconds are slept before each pass over the file (pmacct sleeps 2 s before
    the first when ``pcap_savefile_delay`` is unset; the daemon decides). ``replay`` is the
    number of passes, negative for endless. ``wait`` is only carried for the daemon: with
    ``pcap_savefile_wait`` it keeps running once ``done`` is set, as pmacct does.
    """

    def __init__(self, path: str, wait: bool = False, delay: float = 0, replay: int = 1,
                 arrival: str = "now", sleep=time.sleep, tcp: bool = True,
                 tcp_versions=EXPORT_VERSIONS):
        if arrival not in ("now", "capture"):
            raise ValueError("arrival must be 'now' or 'capture'")
        self.path = path
        self.wait = wait
        self.delay = delay
        self.replay = replay if replay else 1
        self.arrival = arrival
        self.tcp = tcp
        self.tcp_versions = tcp_versions
        self.done = False
        self.rounds = 0
        self.frames = 0
        self.skipped = 0
        self._sleep = sleep
        with open(path, "rb") as fh:          # fail early on a missing/foreign file
            head = fh.read(4)
        if head not in _PCAP_MAGICS and (len(head) < 4 or
                                         struct.unpack("<I", head)[0] != _PCAPNG_SHB):
            raise SavefileError(f"{path}: not a pcap or pcapng file")

    def batches(self, max_datagrams: int = 1024) -> Iterator[DatagramBatch]:
        while self.replay < 0 or self.rounds < self.replay:
            if self.delay:
                self._sleep(self.delay)
            self.rounds += 1
            yield from self._one_pass(max(1, max_datagrams))
        self.done = True

    def _one_pass(self, size: int) -> Iterator[DatagramBatch]:
        parser = FrameParser(self.tcp)
        out = _Batcher()
        now = self.arrival == "now"
        with open(self.path, "rb") as fh:
            head = fh.read(24)
            reader = None
            if head[:4] in _PCAP_MAGICS:
                chunks = reader = _Reader(fh, head)
            else:
                chunks = self._frames_as_chunks(read_frames(self.path))
            for buf, lt, fo, fl, ts in chunks:
                if reader is not None and len(fo) > 1:
                    # from the first read's frames (a mapped file's buffer is all of it)
                    reader.fit(len(fo), int(fo[-1] + fl[-1] - fo[0]) + 16, size)
                    reader = None
                self.frames += len(fo)
                ok, poff, plen, src4, sport = _fast_udp4(buf, lt, fo, fl)
                bid = out.buffer(buf)
                if ok.all():
                    out.push(np.full(len(fo), bid, np.int64), poff, plen, _v4_names(out, src4),
                             sport, ts)
                else:
                    v6 = _fast_udp6(buf, lt, fo, fl, ~ok)
                    self._mixed(out, parser, buf, bid, lt, fo, fl, ts, ok, poff, plen, src4, sport,
                                v6)
                while out.n >= size:
                    yield out.pop(size, now)
        if out.n:
            yield out.pop(out.n, now)

    def _mixed(self, out, parser, buf, bid, lt, fo, fl, ts, ok, poff, plen, src4, sport,
               v6=None) -> None:
        """A read with frames for the frame parser: datagrams in file order. ``v6``: what
        ``_fast_udp6`` took of the frames ``_fast_udp4`` left."""
        n = len(fo)
        d_bid = np.full(n, bid, np.int64)
        d_off = np.zeros(n, np.int64)
        d_len = np.zeros(n, np.int64)
        d_src = np.zeros(n, np.int64)
        d_port = np.zeros(n, np.int64)
        d_off[ok] = poff
        d_len[ok] = plen
        d_src[ok] = _v4_names(out, src4)
        d_port[ok] = sport
        if v6 is not None and v6[0].any():
            ok6, poff6, plen6, src6, sport6 = v6
            d_off[ok6] = poff6
            d_len[ok6] = plen6
            d_src[ok6] = _v6_names(out, src6)
            d_port[ok6] = sport6
            ok = ok | ok6
        have = ok.copy()
        extra: list[bytes] = []
        size = 0
        xbid = out.next_buf          # the buffer the parser's payloads will go to
        tv = self.tcp_versions
        for i in np.nonzero(~ok)[0].tolist():
            s = int(fo[i])
            got = parser.parse(lt, buf[s:s + int(fl[i])])
            if got is None or (got[3] != 17 and not _wanted(got, tv)):
                continue
            src, port, payload, _ = got
            have[i] = True
            d_bid[i] = xbid
            d_off[i] = size
            d_len[i] = len(payload)
            d_src[i] = out.name(src)
            d_port[i] = port
            extra.append(payload)
            size += len(payload)
        if extra:
            out.buffer(b"".join(extra))
        self.skipped += int(n - have.sum())
        out.push(d_bid[have], d_off[have], d_len[have], d_src[have], d_port[have], ts[have])

    @staticmethod
    def _frames_as_chunks(frames):
        """pcapng (or anything read frame by frame) in groups of frames, so that it goes
        through the same batching as classic pcap."""
        group: list = []
        for lt, ts_us, frame in frames:
            if group and (lt != group[0][0] or len(group) >= 4096):
                yield SavefileSource._group(group)
                group = []
            group.append((lt, ts_us, frame))
        if group:
            yield SavefileSource._group(group)

    @staticmethod
    def _group(group):
        lens = np.array([len(f) for _, _, f in group], np.int64)
        return (b"".join(f for _, _, f in group), group[0][0], np.cumsum(lens) - lens, lens,
                np.array([t for _, t, _ in group], np.int64))
