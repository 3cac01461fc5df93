"""Packets from Linux NFLOG (netfilter's log target) over netlink, for uacctd.

``NflogSource(group, copy_range, nl_size, threshold)`` opens a NETLINK_NETFILTER socket,
binds the AF_INET and AF_INET6 log handlers and the group, asks for whole packets up to
``copy_range`` bytes (``snaplen``), sets the queue threshold (``uacctd_threshold``: the
kernel gathers that many packets into one netlink message) and the receive buffer
(``uacctd_nl_size``). ``read()`` takes every datagram waiting on the socket and returns
one ``FrameChunk``: netlink messages are found with a pointer-doubling walk over the
joined buffer, and their attributes (payload, timestamp, in/out interfaces, hardware
header) are read an attribute position at a time for all messages, with numpy.

Message layout (linux/netfilter/nfnetlink_log.h): nlmsghdr (host order), nfgenmsg
(family, version, group in network order), then attributes (length and type in host
order, values in network order, 4-byte aligned).
"""
from __future__ import annotations

import os
import select
import socket
import struct
import time

import numpy as np

from ..decoders import packet as pkt
from ..decoders.frames import FrameChunk

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR, NLMSG_DONE = 2, 3
CMD_BIND, CMD_UNBIND, CMD_PF_BIND, CMD_PF_UNBIND = 1, 2, 3, 4
CFG_CMD, CFG_MODE, CFG_NLBUFSIZ, CFG_TIMEOUT, CFG_QTHRESH = 1, 2, 3, 4, 5
COPY_PACKET = 2
A_TIMESTAMP, A_INDEV, A_OUTDEV, A_PHYSINDEV, A_PHYSOUTDEV = 3, 4, 5, 6, 7
A_PAYLOAD, A_HWTYPE, A_HWHEADER, A_HWLEN = 9, 15, 16, 17
MAX_ATTRS = 32

_HOST = "<" if struct.pack("=H", 1) == b"\x01\x00" else ">"
_NLH = struct.Struct(_HOST + "IHHII")


def _attr(kind: int, value: bytes) -> bytes:
    a = struct.pack(_HOST + "HH", 4 + len(value), kind) + value
    return a + bytes(-len(a) % 4)


class NflogError(OSError):
    pass


class NflogSource:
    def __init__(self, group: int, copy_range: int = 128, nl_size: int = 131072,
                 threshold: int = 1, timeout_cs: int = 0):
        self.group = group
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        # the socket buffer holds what arrives while the core is busy with a batch: much
        # more than the kernel's per-message buffer (uacctd_nl_size); beyond rmem_max
        # when we may (root)
        want = max(nl_size * 32, 8 << 20)
        for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, want)
                break
            except OSError:
                continue
        self.sock.bind((0, 0))
        self.seq = 0
        self.received = 0
        self.messages = 0
        self.bad = 0
        self.overruns = 0          # ENOBUFS: the kernel dropped messages for us
        for fam in (socket.AF_INET, socket.AF_INET6):
            self._config(fam, 0, _attr(CFG_CMD, bytes([CMD_PF_UNBIND])), check=False)
            self._config(fam, 0, _attr(CFG_CMD, bytes([CMD_PF_BIND])), check=False)
        self._config(socket.AF_UNSPEC, group, _attr(CFG_CMD, bytes([CMD_BIND])))
        self._config(socket.AF_UNSPEC, group,
                     _attr(CFG_MODE, struct.pack("!IBB", copy_range, COPY_PACKET, 0)))
        self._config(socket.AF_UNSPEC, group, _attr(CFG_QTHRESH, struct.pack("!I", threshold)))
        self._config(socket.AF_UNSPEC, group, _attr(CFG_NLBUFSIZ, struct.pack("!I", nl_size)),
                     check=False)
        if timeout_cs:
            self._config(socket.AF_UNSPEC, group, _attr(CFG_TIMEOUT, struct.pack("!I", timeout_cs)))
        self.sock.setblocking(False)

    def _config(self, family: int, group: int, attrs: bytes, check: bool = True) -> None:
        self.seq += 1
        body = struct.pack("!BBH", family, 0, group) + attrs
        msg = _NLH.pack(16 + len(body), (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
                        NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body
        self.sock.send(msg)
        self.sock.settimeout(2.0)
        try:
            while True:
                data = self.sock.recv(65536)
                ln, typ, _flags, seq, _pid = _NLH.unpack_from(data)
                if typ == NLMSG_ERROR and seq == self.seq:
                    err = struct.unpack_from(_HOST + "i", data, 16)[0]
                    if err and check:
                        raise NflogError(-err, f"NFLOG config (group {group}): {os.strerror(-err)}")
                    return
        except socket.timeout:
            if check:
                raise NflogError("no answer from nfnetlink_log")
        finally:
            self.sock.settimeout(None)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, max_bytes: int = 1 << 22, timeout: float = 0.25) -> FrameChunk:
        parts = []
        size = 0
        r, _, _ = select.select([self.sock], [], [], timeout)
        while r and size < max_bytes:
            try:
                d = self.sock.recv(1 << 17)
            except BlockingIOError:
                break
            except OSError as e:                  # ENOBUFS: the kernel dropped messages
                if e.errno == 105:
                    self.overruns += 1
                    continue
                raise
            if len(d) % 4:
                d += bytes(-len(d) % 4)
            parts.append(d)
            size += len(d)
        return parse_messages(b"".join(parts), self)


def _chain(u32, n_words: int) -> np.ndarray:
    """Offsets of the netlink messages in a buffer of back-to-back messages: the chain
    0 -> 0 + len(0) -> ..., found by pointer doubling over every 4-byte position."""
    if not n_words:
        return np.zeros(0, np.int64)
    pos = np.arange(n_words, dtype=np.int64) * 4
    ln = u32[:n_words].astype(np.int64)
    step = (ln + 3) & ~3
    nxt = np.where(step >= 16, pos + step, n_words * 4) // 4      # in words; end = n_words
    nxt = np.minimum(nxt, n_words)
    jump = np.append(nxt, n_words)                                 # n_words is the sink
    on = np.zeros(n_words + 1, bool)
    on[0] = True
    # after round k: ``on`` holds the chain's first 2**k nodes, ``jump`` goes 2**k steps
    while jump[0] != n_words:
        on[jump[np.nonzero(on)[0]]] = True
        jump = jump[jump]
    on[n_words] = False
    return np.nonzero(on)[0] * 4


def parse_messages(buf: bytes, counters=None) -> FrameChunk:
    """A FrameChunk of the NFLOG packet messages in ``buf``."""
    n = len(buf) // 4
    empty = np.zeros(0, np.int64)
    if not n:
        return FrameChunk(buf, 101, empty, empty, empty, kinds=empty)
    w = np.frombuffer(buf[:n * 4], np.dtype(_HOST + "u4"))
    starts = _chain(w, n)
    b = pkt._Buf(buf)
    h16 = lambda p: (b.a[np.minimum(p, b.limit)].astype(np.int64) |            # noqa: E731
                     (b.a[np.minimum(p + 1, b.limit)].astype(np.int64) << 8)) if _HOST == "<" \
        else b.be16(p).astype(np.int64)
    mlen = w[starts // 4].astype(np.int64)
    mtype = h16(starts + 4)
    ok = (mtype == ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) & (mlen >= 20) & \
        (starts + mlen <= len(buf))
    s = starts[ok]
    e = s + mlen[ok]
    m = len(s)
    if counters is not None:
        counters.messages += m
    fam = b.u8(s + 16).astype(np.int64)
    pay_off = np.full(m, -1, np.int64)
    pay_len = np.zeros(m, np.int64)
    ts = np.zeros(m, np.int64)
    dev = {k: np.zeros(m, np.int64) for k in (A_INDEV, A_OUTDEV, A_PHYSINDEV, A_PHYSOUTDEV)}
    hwtype = np.zeros(m, np.int64)
    hwhdr = np.full(m, -1, np.int64)
    hwlen = np.zeros(m, np.int64)
    cur = s + 20
    live = np.ones(m, bool)
    for _ in range(MAX_ATTRS):
        act = np.nonzero(live & (cur + 4 <= e))[0]
        live[:] = False
        if not len(act):
            break
        c = cur[act]
        alen = h16(c)
        atype = h16(c + 2) & 0x3FFF
        good = (alen >= 4) & (c + alen <= e[act])
        act, c, alen, atype = act[good], c[good], alen[good], atype[good]
        v = c + 4
        vl = alen - 4
        q = atype == A_PAYLOAD
        pay_off[act[q]], pay_len[act[q]] = v[q], vl[q]
        q = (atype == A_TIMESTAMP) & (vl >= 16)
        if q.any():
            sec = (b.be32(v[q]).astype(np.int64) << 32) | b.be32(v[q] + 4).astype(np.int64)
            usec = (b.be32(v[q] + 8).astype(np.int64) << 32) | b.be32(v[q] + 12).astype(np.int64)
            ts[act[q]] = sec * 1_000_000 + usec
        for k, arr in dev.items():
            q = (atype == k) & (vl >= 4)
            arr[act[q]] = b.be32(v[q])
        q = (atype == A_HWTYPE) & (vl >= 2)
        hwtype[act[q]] = b.be16(v[q])
        q = (atype == A_HWLEN) & (vl >= 2)
        hwlen[act[q]] = b.be16(v[q])
        q = atype == A_HWHEADER
        hwhdr[act[q]] = v[q]
        cur[act] = c + ((alen + 3) & ~3)
        live[act] = True
    has = pay_off >= 0
    if counters is not None:
        counters.bad += int(m - has.sum())
    now = time.time_ns() // 1000
    ts = np.where(ts > 0, ts, now)
    idx = np.nonzero(has)[0]
    kinds = np.where(fam[idx] == socket.AF_INET6, pkt.K_IPV6,
                     np.where(fam[idx] == socket.AF_INET, pkt.K_IPV4, pkt.K_IP))
    ifin = np.where(dev[A_PHYSINDEV] != 0, dev[A_PHYSINDEV], dev[A_INDEV])[idx]
    ifout = np.where(dev[A_PHYSOUTDEV] != 0, dev[A_PHYSOUTDEV], dev[A_OUTDEV])[idx]
    eth = (hwtype[idx] == 1) & (hwlen[idx] >= 12) & (hwhdr[idx] >= 0)
    dst_mac = np.zeros((len(idx), 6), np.uint8)
    src_mac = np.zeros((len(idx), 6), np.uint8)
    if eth.any():
        hp = hwhdr[idx][eth]
        dst_mac[eth] = b.rows(hp, 6)
        src_mac[eth] = b.rows(hp + 6, 6)
    if counters is not None:
        counters.received += len(idx)
    return FrameChunk(buf, 101, pay_off[idx], pay_len[idx], ts[idx], kinds=kinds,
                      ifin=ifin, ifout=ifout, src_mac=src_mac, dst_mac=dst_mac)
