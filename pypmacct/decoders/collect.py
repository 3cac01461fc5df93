"""Gathering one decode() call's records, then decoding them group by group.

Parsing a datagram only records *where* its records are: a "chunk" is a run of
records of one template (or of one v5 datagram) plus the header values they need.
Chunks of the same template are concatenated and decoded in one vectorised pass; the
records then land in the output in the order the datagrams arrived.
"""
from __future__ import annotations

import socket

import numpy as np

from ..record import ADDR_DTYPE
from .plan import Env

_ADDR_CACHE: dict[str, tuple] = {}


def addr_of(text: str) -> tuple[int, bytes]:
    """(af, 16-byte address) for an address string; (0, zeros) if it is not one."""
    got = _ADDR_CACHE.get(text)
    if got is None:
        try:
            raw = socket.inet_pton(socket.AF_INET, text)
            got = (4, raw + bytes(12))
        except OSError:
            try:
                got = (6, socket.inet_pton(socket.AF_INET6, text))
            except OSError:
                got = (0, bytes(16))
        if len(_ADDR_CACHE) > 100_000:
            _ADDR_CACHE.clear()
        _ADDR_CACHE[text] = got
    return got


class Group:
    __slots__ = ("key", "pieces", "chunks", "reclen", "dtype")

    def __init__(self, key, reclen: int, dtype):
        self.key = key
        self.pieces: list = []
        self.chunks: list[int] = []
        self.reclen = reclen
        self.dtype = dtype


class Collector:
    def __init__(self):
        self.groups: dict = {}
        # per chunk, in arrival order
        self.c_count: list[int] = []
        self.c_dg: list[int] = []
        self.c_ctx: list[int] = []
        self.c_peer: list[int] = []
        # per datagram
        self.d_version: list[int] = []
        self.d_unix: list[int] = []
        self.d_uptime: list[int] = []
        self.d_seq: list[int] = []
        self.d_sysid: list[int] = []
        self.d_arrival: list[int] = []
        self.d_exporter: list[int] = []
        self.d_sampling: list[int] = []
        self.d_engine: list[int] = []
        self.exporters: dict[str, int] = {}
        self.exporter_list: list[str] = []
        self.peers: dict = {}
        self.peer_list: list[tuple] = []
        self.contexts: dict[int, int] = {}
        self.context_list: list = []
        self.vvalues: list[bytes] = []

    def datagram(self, src: str, version: int, unix: int, uptime: int, seq: int, sysid: int,
                 arrival: int, sampling: int = 0, engine: int = 0) -> int:
        e = self.exporters.get(src)
        if e is None:
            e = self.exporters[src] = len(self.exporter_list)
            self.exporter_list.append(src)
        self.d_version.append(version)
        self.d_unix.append(unix)
        self.d_uptime.append(uptime)
        self.d_seq.append(seq)
        self.d_sysid.append(sysid)
        self.d_arrival.append(arrival)
        self.d_exporter.append(e)
        self.d_sampling.append(sampling)
        self.d_engine.append(engine)
        return len(self.d_version) - 1

    def _peer(self, src: str, ctx) -> int:
        addr = ctx.exporter_addr if ctx is not None and ctx.exporter_addr else None
        key = addr if addr is not None else src
        p = self.peers.get(key)
        if p is None:
            p = self.peers[key] = len(self.peer_list)
            self.peer_list.append(addr if addr is not None else addr_of(src))
        return p

    def _ctx(self, ctx) -> int:
        k = id(ctx)
        i = self.contexts.get(k)
        if i is None:
            i = self.contexts[k] = len(self.context_list)
            self.context_list.append(ctx)
        return i

    def chunk(self, key, reclen: int, dtype, buf, start: int, nbytes: int, count: int,
              dg: int, src: str, ctx) -> None:
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = Group(key, reclen, dtype)
        g.pieces.append((buf, start, nbytes))
        g.chunks.append(len(self.c_count))
        self.c_count.append(count)
        self.c_dg.append(dg)
        self.c_ctx.append(self._ctx(ctx))
        self.c_peer.append(self._peer(src, ctx))

    @property
    def total(self) -> int:
        return sum(self.c_count)

    def assemble(self, record_dtype, decode_group, strings, on_error):
        """Decode every group into one record array in arrival order. ``decode_group``
        is called as (group, raw, tgt, env) and may return a keep mask. Returns the
        records and the exporter index of each."""
        counts = np.asarray(self.c_count, dtype=np.int64)
        total = int(counts.sum()) if len(counts) else 0
        out = np.zeros(total, dtype=record_dtype)
        keep = None
        if total == 0:
            return out, np.zeros(0, np.int64)
        offsets = np.cumsum(counts) - counts
        c_dg = np.asarray(self.c_dg, dtype=np.int64)
        c_ctx = np.asarray(self.c_ctx, dtype=np.int64)
        c_peer = np.asarray(self.c_peer, dtype=np.int64)
        d = {
            "version": np.asarray(self.d_version, np.uint16),
            "unix": np.asarray(self.d_unix, np.int64),
            "uptime": np.asarray(self.d_uptime, np.int64),
            "seq": np.asarray(self.d_seq, np.uint32),
            "sysid": np.asarray(self.d_sysid, np.uint32),
            "arrival": np.asarray(self.d_arrival, np.int64),
            "sampling": np.asarray(self.d_sampling, np.uint16),
            "engine": np.asarray(self.d_engine, np.uint16),
        }
        peers = np.zeros(len(self.peer_list), dtype=ADDR_DTYPE)
        for i, (af, raw) in enumerate(self.peer_list):
            peers[i] = (af, raw)
        failed = np.zeros(total, bool)
        for g in self.groups.values():
            cidx = np.asarray(g.chunks, dtype=np.int64)
            gcounts = counts[cidx]
            gn = int(gcounts.sum())
            if gn == 0:
                continue
            try:
                if len(g.pieces) == 1:
                    buf, start, nbytes = g.pieces[0]
                    raw = np.frombuffer(buf, dtype=g.dtype, count=gn, offset=start)
                else:
                    joined = b"".join(memoryview(b)[s:s + nb] for b, s, nb in g.pieces)
                    raw = np.frombuffer(joined, dtype=g.dtype, count=gn)
                gstarts = np.cumsum(gcounts) - gcounts
                dest = np.repeat(offsets[cidx] - gstarts, gcounts) + np.arange(gn)
                contiguous = dest[-1] - dest[0] == gn - 1
                tgt = out[dest[0]:dest[0] + gn] if contiguous else np.zeros(gn, record_dtype)
                rc = np.repeat(np.arange(len(cidx)), gcounts)
                rdg = c_dg[cidx][rc]
                env = Env(n=gn, version=d["version"][rdg], unix_secs=d["unix"][rdg],
                          uptime=d["uptime"][rdg], seqno=d["seq"][rdg], sysid=d["sysid"][rdg],
                          arrival=d["arrival"][rdg], peer=peers[c_peer[cidx][rc]],
                          ctx_index=c_ctx[cidx][rc], contexts=self.context_list,
                          vvalues=self.vvalues, strings=strings)
                env.sampling = d["sampling"][rdg]
                env.engine = d["engine"][rdg]
                kg = decode_group(g, raw, tgt, env)
                if not contiguous:
                    out[dest] = tgt
                if kg is not None and not kg.all():
                    if keep is None:
                        keep = np.ones(total, bool)
                    keep[dest[~kg]] = False
            except Exception as e:          # never let one group sink the batch
                on_error(g, e)
                failed[np.repeat(offsets[cidx], gcounts) + (np.arange(gn) - np.repeat(np.cumsum(gcounts) - gcounts, gcounts))] = True
        if failed.any():
            keep = ~failed if keep is None else (keep & ~failed)
        rec_exporter = np.asarray(self.d_exporter, np.int64)[np.repeat(c_dg, counts)]
        if keep is not None:
            out = out[keep]
            rec_exporter = rec_exporter[keep]
        return out, rec_exporter
