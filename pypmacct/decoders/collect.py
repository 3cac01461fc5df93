"""Gathering one decode() call's records, then decoding them group by group.

Parsing a datagram only records *where* its records are: a "chunk" is a run of
records of one template (or of one v5 datagram) plus the datagram they came in.
Chunks of the same template are concatenated and decoded in one vectorised pass, in
blocks that stay in the CPU cache while the wide output records are written.

Output order: records come grouped by template (v5: all together); within a group, in
the order the datagrams arrived. Keeping arrival order across templates would cost a
scatter of every output row, so each record carries its arrival index instead
(``arrival_seq``), which plugins use where order matters.
"""
from __future__ import annotations

import socket

import numpy as np

from ..record import ADDR_DTYPE
from .plan import Env

BLOCK = 4096            # records decoded per pass: output rows stay in cache meanwhile

_ADDR_CACHE: dict[str, tuple] = {}

DG_DTYPE = np.dtype([("version", "u2"), ("unix", "i8"), ("uptime", "i8"), ("seq", "u4"),
                     ("sysid", "u4"), ("arrival", "i8"), ("exporter", "i8"),
                     ("sampling", "u2"), ("engine", "u2")])


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


class Collector:
    """Chunks and datagram headers of one decode() call."""

    def __init__(self):
        # (group key, bytes, count, datagram index, context) per chunk, in arrival order
        self.chunks: list[tuple] = []
        # (version, unix, uptime, seq, sysid, arrival, exporter, sampling, engine)
        self.dgs: list[tuple] = []
        self.exporters: dict[str, int] = {}
        self.exporter_list: list[str] = []
        self.vvalues: list[bytes] = []
        self.dtypes: dict = {}          # group key -> numpy dtype of its records

    def exporter(self, src: str) -> int:
        e = self.exporters.get(src)
        if e is None:
            e = self.exporters[src] = len(self.exporter_list)
            self.exporter_list.append(src)
        return e

    def assemble(self, record_dtype, decode_group, strings, on_error):
        """Decode every group into one record array (group after group). ``decode_group``
        is called as (key, raw, tgt, env) and may return a keep mask. Returns the
        records and the exporter index of each."""
        chunks = self.chunks
        nchunks = len(chunks)
        if not nchunks:
            return np.zeros(0, record_dtype), np.zeros(0, np.int64)
        counts = np.fromiter((c[2] for c in chunks), np.int64, nchunks)
        c_dg = np.fromiter((c[3] for c in chunks), np.int64, nchunks)
        total = int(counts.sum())
        out = np.zeros(total, dtype=record_dtype)
        d = np.array(self.dgs, dtype=DG_DTYPE)
        # contexts and peers (the exporter address, or the one options data gave)
        ctx_ids: dict[int, int] = {}
        ctx_list: list = []
        c_ctx = np.empty(nchunks, np.int64)
        groups: dict = {}
        for i, c in enumerate(chunks):
            ctx = c[4]
            k = ctx_ids.get(id(ctx))
            if k is None:
                k = ctx_ids[id(ctx)] = len(ctx_list)
                ctx_list.append(ctx)
            c_ctx[i] = k
            g = groups.get(c[0])
            if g is None:
                groups[c[0]] = [i]
            else:
                g.append(i)
        exp_addr = np.zeros(len(self.exporter_list), dtype=ADDR_DTYPE)
        for i, src in enumerate(self.exporter_list):
            exp_addr[i] = addr_of(src)
        ctx_addr = np.zeros(len(ctx_list), dtype=ADDR_DTYPE)
        ctx_has = np.zeros(len(ctx_list), bool)
        for i, ctx in enumerate(ctx_list):
            if ctx is not None and ctx.exporter_addr:
                ctx_addr[i] = ctx.exporter_addr
                ctx_has[i] = True
        keep = np.ones(total, bool)
        dropped = False
        # where each chunk's records start in arrival order
        chunk_first = np.cumsum(counts) - counts
        rec_exporter = np.empty(total, np.int64)
        pos = 0
        for key, idx in groups.items():
            cidx = np.asarray(idx, dtype=np.int64)
            gcounts = counts[cidx]
            gn = int(gcounts.sum())
            if gn == 0:
                continue
            base = pos
            pos += gn
            try:
                if len(idx) == 1:
                    raw = np.frombuffer(chunks[idx[0]][1], dtype=self.dtypes[key], count=gn)
                else:
                    raw = np.frombuffer(b"".join([chunks[i][1] for i in idx]),
                                        dtype=self.dtypes[key], count=gn)
                rc = np.repeat(np.arange(len(cidx)), gcounts)
                rdg = c_dg[cidx][rc]
                rctx = c_ctx[cidx][rc]
                dd = d[rdg]
                rec_exporter[base:base + gn] = dd["exporter"]
                within = np.arange(gn) - np.repeat(np.cumsum(gcounts) - gcounts, gcounts)
                out["arrival_seq"][base:base + gn] = chunk_first[cidx][rc] + within
                peer = exp_addr[dd["exporter"]]
                if ctx_has.any():
                    sel = ctx_has[rctx]
                    peer[sel] = ctx_addr[rctx[sel]]
                for b0 in range(0, gn, BLOCK):
                    b1 = min(gn, b0 + BLOCK)
                    sl = slice(b0, b1)
                    blk = dd[sl]
                    env = Env(n=b1 - b0, version=blk["version"], unix_secs=blk["unix"],
                              uptime=blk["uptime"], seqno=blk["seq"], sysid=blk["sysid"],
                              arrival=blk["arrival"], peer=peer[sl], ctx_index=rctx[sl],
                              contexts=ctx_list, vvalues=self.vvalues, strings=strings)
                    env.sampling = blk["sampling"]
                    env.engine = blk["engine"]
                    kg = decode_group(key, raw[sl], out[base + b0:base + b1], env)
                    if kg is not None and not kg.all():
                        keep[base + b0:base + b1] = kg
                        dropped = True
            except Exception as e:          # never let one group sink the batch
                on_error(key, e)
                keep[base:base + gn] = False
                dropped = True
        if dropped:
            out = out[keep]
            rec_exporter = rec_exporter[keep]
        return out, rec_exporter
