"""A batch of datagrams as the decoder reads them: every payload back to back in one
buffer, with per-datagram arrays (where each starts, its length, its exporter's index,
port and arrival time).

``pack(datagrams)`` accepts a list of ``sources.Datagram`` or any object with a
``packed()`` method returning ``Packed``'s first seven arguments (the savefile source's
batches do, so their payloads are never copied one by one).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..sources import Datagram


class DgRef(NamedTuple):
    src: str
    port: int


class Packed:
    __slots__ = ("buf", "start", "length", "exp", "srcs", "port", "ts", "_dgs")

    def __init__(self, buf, start, length, exp, srcs, port, ts, dgs=None):
        self.buf = buf                  # bytes: the payloads (and maybe more) back to back
        self.start = start              # int64 per datagram: where its payload starts
        self.length = length            # int64 per datagram
        self.exp = exp                  # int64 per datagram: index into ``srcs``
        self.srcs = srcs                # list[str]: exporter addresses
        self.port = port                # int64 per datagram (exporter port)
        self.ts = ts                    # int64 per datagram: arrival, microseconds
        self._dgs = dgs                 # the Datagram objects, if the caller had them

    @property
    def n(self) -> int:
        return len(self.start)

    def ref(self, i: int) -> "DgRef":
        """Who sent datagram ``i`` (for log lines and counters), without its payload."""
        return DgRef(self.srcs[int(self.exp[i])], int(self.port[i]))

    def dgram(self, i: int):
        """Datagram ``i`` as a ``Datagram`` (for logging and the one-by-one path)."""
        if self._dgs is not None:
            return self._dgs[i]
        s = int(self.start[i])
        return Datagram(self.buf[s:s + int(self.length[i])], self.srcs[int(self.exp[i])],
                        int(self.port[i]), int(self.ts[i]))


def pack(datagrams) -> Packed:
    p = getattr(datagrams, "packed", None)
    if p is not None:
        return Packed(*p())
    dl = datagrams if isinstance(datagrams, (list, tuple)) else list(datagrams)
    n = len(dl)
    try:                                         # Datagram tuples: columns in one go
        payloads, srcs, ports, tss = zip(*dl) if n else ((), (), (), ())
    except (TypeError, ValueError):
        payloads = [d.payload for d in dl]
        srcs = [d.src for d in dl]
        ports = [d.port for d in dl]
        tss = [d.ts_us for d in dl]
    names = list(dict.fromkeys(srcs))           # exporters in order of first appearance
    index = {s: i for i, s in enumerate(names)}
    exp = np.fromiter(map(index.__getitem__, srcs), np.int64, n)
    length = np.fromiter(map(len, payloads), np.int64, n)
    start = np.cumsum(length) - length
    return Packed(b"".join(payloads), start, length, exp, names,
                  np.array(ports, np.int64).reshape(n), np.array(tss, np.int64).reshape(n), dl)
