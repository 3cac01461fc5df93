#!/usr/bin/env python3
"""A paced UDP sender of pre-built datagrams (NetFlow v9 for the live bench).

    .venv/bin/python bench/udp_sender.py --max            # how fast can it send at all
    .venv/bin/python bench/udp_sender.py --rate 20000 --seconds 2 --port 2100

The datagrams are built once (tests/support/flowgen.py, one exporter, so every
datagram comes from 127.0.0.1 and the templates are the exporter's own; the generator
resends them every 20 datagrams) and sent round the pool as often as needed. Sending
uses ``sendmmsg(2)`` through ctypes on a connected socket: one system call hands the
kernel a batch of up to 256 datagrams, so the Python cost is per batch, not per
datagram. Pacing: the sender keeps the count it has sent on the line ``rate * elapsed``
and sleeps when ahead. On schedule it sends half a millisecond's worth of datagrams
at a time (at least one), so a low rate is not sent as a few big bursts; after a stall
(the sender itself waiting for a CPU) it catches up with what is due in one call, up
to 256 datagrams. ``max_burst`` reports the largest such call: a default receive
buffer holds about 90 of these datagrams, so a catch-up burst larger than that is lost
in part unless the collector drains the socket while it arrives.

A paced send runs its thread under ``SCHED_FIFO`` (priority 1) where the system allows
it (root, or CAP_SYS_NICE), back to the normal policy when it returns: an exporter is
another machine, whose pace does not depend on the collector's load, but this sender
shares the collector's two cores, and without it a busy collector holds the sender off
for milliseconds, which then reach the collector as one catch-up burst. The sender
sleeps between its half-millisecond chunks, so it takes a few percent of a core.

``send(...)`` returns what was actually sent (datagrams, records, packets, bytes, the
achieved rate); the live bench compares the packets with what the collector accounted.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support import flowgen  # noqa: E402

BATCH = 256
REALTIME_PRIORITY = 1           # SCHED_FIFO priority of a paced send (0: never real-time)
STALLED_NAP = 0.0002            # seconds to sleep after a call that sent nothing


@contextlib.contextmanager
def realtime(on: bool = True):
    """Run the calling thread under SCHED_FIFO while inside (yields whether it does);
    processes started meanwhile would inherit it, so nothing else is done inside."""
    if not on or not REALTIME_PRIORITY or not hasattr(os, "sched_setscheduler"):
        yield False
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except OSError:                 # not permitted: an unprivileged run stays normal
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


class _iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_libc.sendmmsg.restype = ctypes.c_int


@dataclass
class Pool:
    """Pre-built datagrams and what each one carries."""
    payloads: list
    records: np.ndarray     # per datagram
    packets: np.ndarray
    bytes: np.ndarray

    @property
    def records_per_datagram(self) -> float:
        return float(self.records.sum()) / len(self.payloads)


def build_pool(records: int = 200_000, seed: int = 4242, version: int = 9) -> Pool:
    p = flowgen.GenParams(version=version, records=records, seed=seed, exporters=1,
                          hosts=4096, ports=1000, flow_pool=65536, ipv6_share=0.2,
                          groups=("tos", "tcpflags", "ifaces", "as", "masks", "nexthop"),
                          duration=600)
    exp = flowgen.generate(p)
    n = len(exp.datagrams)
    t = exp.truth
    idx = t["packet"].astype(np.int64)
    return Pool([d[2] for d in exp.datagrams],
                np.bincount(idx, minlength=n).astype(np.int64),
                np.bincount(idx, weights=t["packets"].astype(np.float64), minlength=n).astype(np.int64),
                np.bincount(idx, weights=t["bytes"].astype(np.float64), minlength=n).astype(np.int64))


FLUSH_SRC = "198.51.100.99"


def flush_pool(datagrams: int = 16, records: int = 30) -> Pool:
    """Datagrams whose records all have source 198.51.100.99 (1 packet, 100 bytes each),
    with their own v9 template (source id 999) in every datagram. Sent after a trial
    they push the trial's last records out of the daemon's partly filled plugin buffer,
    and the table's sum for that one source tells them apart from the trial's."""
    import struct
    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)]
    tmpl = struct.pack("!HH", 300, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
    tset = struct.pack("!HH", 0, 4 + len(tmpl)) + tmpl
    rec = (socket.inet_aton(FLUSH_SRC) + socket.inet_aton("198.51.100.100")
           + struct.pack("!HHBII", 9, 9, 17, 1, 100))
    body = rec * records
    pad = (-len(body)) % 4
    dset = struct.pack("!HH", 300, 4 + len(body) + pad) + body + b"\0" * pad
    out = []
    for i in range(datagrams):
        hdr = struct.pack("!HHIIII", 9, records + 1, 1000, 1704067200, i, 999)
        out.append(hdr + tset + dset)
    n = len(out)
    return Pool(out, np.full(n, records), np.full(n, records), np.full(n, records * 100))


class Sender:
    def __init__(self, pool: Pool, port: int, host: str = "127.0.0.1"):
        self.pool = pool
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.connect((host, port))
        n = len(pool.payloads)
        self._bufs = [ctypes.create_string_buffer(p, len(p)) for p in pool.payloads]
        self._iov = (_iovec * n)()
        self._msgs = (_mmsghdr * n)()
        for i, b in enumerate(self._bufs):
            self._iov[i].iov_base = ctypes.addressof(b)
            self._iov[i].iov_len = len(pool.payloads[i])
            self._msgs[i].msg_hdr.msg_iov = ctypes.addressof(self._iov[i])
            self._msgs[i].msg_hdr.msg_iovlen = 1
        self._base = ctypes.addressof(self._msgs)
        self._size = ctypes.sizeof(_mmsghdr)
        self.pos = 0            # next datagram of the pool to send
        self.cum = [np.concatenate([[0], np.cumsum(a)]) for a in (pool.records, pool.packets, pool.bytes)]

    def _sendmmsg(self, start: int, count: int) -> int:
        r = _libc.sendmmsg(self.sock.fileno(), self._base + start * self._size, count, 0)
        if r < 0:
            err = ctypes.get_errno()
            if err in (11, 105, 111):      # EAGAIN, ENOBUFS, ECONNREFUSED: nothing sent
                return 0
            raise OSError(err, "sendmmsg")
        return r

    def _carried(self, start: int, count: int) -> tuple[int, int, int]:
        """records, packets, bytes of ``count`` datagrams from pool index ``start`` (wrapping)."""
        n = len(self.pool.payloads)
        loops, rest = divmod(start + count, n)
        out = []
        for c in self.cum:
            tot = c[-1]
            out.append(int(loops * tot + c[rest] - c[start]))
        return tuple(out)

    def send(self, rate: float, seconds: float | None = None, datagrams: int | None = None) -> dict:
        """Send at ``rate`` datagrams/s (0: as fast as possible) for ``seconds`` or until
        ``datagrams`` are out; returns what was sent."""
        n = len(self.pool.payloads)
        total = datagrams if datagrams is not None else int(rate * seconds)
        sent = 0
        records = packets = nbytes = 0
        biggest = 0             # the largest burst (one sendmmsg call) sent
        # on schedule, half a millisecond's worth a call (at least one datagram); behind
        # schedule, all that is due (up to BATCH), so that the rate holds
        chunk = max(1, min(BATCH, int(rate * 0.0005)))
        with realtime(rate > 0) as rt:
            t0 = time.monotonic()
            while sent < total:
                if rate > 0:
                    due = int((time.monotonic() - t0) * rate) + 1 - sent
                    if due < min(chunk, total - sent):
                        time.sleep(max(0.0, (sent + chunk) / rate - (time.monotonic() - t0)))
                        continue
                else:
                    due = BATCH
                k = min(due, BATCH, total - sent, n - self.pos)
                got = self._sendmmsg(self.pos, k)
                biggest = max(biggest, got)
                if not got:             # nothing went out: never spin, real-time or not
                    time.sleep(STALLED_NAP)
                else:
                    r, p, b = self._carried(self.pos, got)
                    records += r
                    packets += p
                    nbytes += b
                    sent += got
                    self.pos = (self.pos + got) % n
            wall = time.monotonic() - t0
        return {"datagrams": sent, "records": records, "packets": packets, "bytes": nbytes,
                "seconds": wall, "rate": sent / wall if wall > 0 else 0.0, "target": rate,
                "max_burst": biggest, "chunk": chunk if rate > 0 else BATCH, "realtime": rt}

    def close(self):
        self.sock.close()


def max_rate(pool: Pool, seconds: float = 1.5) -> dict:
    """The sender's own ceiling: unpaced, to a bound socket nobody reads (the kernel
    drops what does not fit; the sender's cost is the same)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    s = Sender(pool, rx.getsockname()[1])
    try:
        s.send(0, datagrams=2000)
        t0 = time.monotonic()
        best = None
        while time.monotonic() - t0 < seconds:
            r = s.send(0, datagrams=20000)
            best = r if best is None or r["rate"] > best["rate"] else best
        return best
    finally:
        s.close()
        rx.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max", action="store_true", help="measure the unpaced ceiling")
    ap.add_argument("--rate", type=float, default=10000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--port", type=int, default=2100)
    ap.add_argument("--records", type=int, default=200_000, help="records in the pool")
    a = ap.parse_args(argv)
    pool = build_pool(a.records)
    print(f"pool: {len(pool.payloads)} datagrams, {pool.records_per_datagram:.1f} records each")
    if a.max:
        r = max_rate(pool)
    else:
        s = Sender(pool, a.port)
        r = s.send(a.rate, a.seconds)
        s.close()
    print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
