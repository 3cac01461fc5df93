"""Gathering one decode() call's records, then decoding them group by group.

Parsing only records *where* records are: a "chunk" is a run of records of one group
(a template, or all v5 records) in one datagram: its group, where its first record
starts, how many records, the datagram it came in and the context (options data state)
its records decode with. Records lie either in the batch buffer (all datagrams back to
back: fixed-length templates and v5 are never copied) or in an extra buffer (records of
templates with variable-length fields, re-laid out to a fixed size).

Each group is decoded in one vectorised pass: its records' rows are gathered from the
buffer with one fancy index over a sliding-window view, then ``decode_group`` fills the
output in blocks that stay in the CPU cache.

Output order: records come grouped by template (v5: all together), groups in the order
their first record arrived; within a group, in the order the datagrams arrived. Keeping
arrival order across templates would cost a scatter of every output row, so each record
carries its arrival index instead (``arrival_seq``), which plugins use where order
matters.
"""
from __future__ import annotations

import socket

import numpy as np

from ..record import ADDR_DTYPE
from .plan import DgColumns, Env

BLOCK = 4096                 # records decoded per pass, at least
BLOCK_BYTES = 1 << 20        # ... or as many as fill this many output bytes

_ADDR_CACHE: dict[str, tuple] = {}

SRC_BATCH, SRC_EXTRA = 0, 1


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


def window(buf, dtype: np.dtype) -> np.ndarray:
    """Every offset of ``buf`` read as one ``dtype`` item: element i starts at byte i."""
    n = len(buf) - dtype.itemsize + 1
    if n <= 0:
        return np.zeros(0, dtype)
    return np.ndarray((n,), dtype=dtype, buffer=buf, strides=(1,))


class Collector:
    """Datagram headers and chunks of one decode() call.

    ``buf`` is the batch buffer and ``srcs`` the batch's exporter addresses (datagram
    headers name them by index). Chunk order is given by an order key: datagram number
    times 65536 plus the set's position in its datagram.
    """

    def __init__(self, buf, ndg: int, srcs: list[str]):
        self.buf = buf
        self.d = DgColumns(ndg)
        self.exporter_list = srcs
        self.vvalues: list[bytes] = []
        self._parts: list[tuple] = []       # bulk chunks: tuples of arrays
        self._singles: list[tuple] = []     # one chunk each
        self._extra: list[bytes] = []
        self._extra_len = 0
        self._gids: dict = {}               # group key -> group number
        self.gkeys: list = []
        self.gdtypes: list[np.dtype] = []
        self._ctx_ids: dict[int, int] = {}
        self.contexts: list = []

    # --- registries ---
    def group(self, key, raw_dtype: np.dtype) -> int:
        g = self._gids.get(key)
        if g is None:
            g = self._gids[key] = len(self.gkeys)
            self.gkeys.append(key)
            self.gdtypes.append(raw_dtype)
        return g

    def ctx_id(self, ctx) -> int:
        k = self._ctx_ids.get(id(ctx))
        if k is None:
            k = self._ctx_ids[id(ctx)] = len(self.contexts)
            self.contexts.append(ctx)
        return k

    def header(self, di: int, version: int, unix: int, uptime: int, seq: int, sysid: int,
               arrival: int, exporter: int, sampling: int = 0, engine: int = 0) -> None:
        """The header values of datagram ``di`` (the one-at-a-time path)."""
        d = self.d
        d.version[di] = version
        d.unix[di] = unix
        d.uptime[di] = uptime
        d.seq[di] = seq
        d.sysid[di] = sysid
        d.arrival[di] = arrival
        d.exporter[di] = exporter
        d.sampling[di] = sampling
        d.engine[di] = engine

    # --- chunks ---
    def add(self, gid: int, off: int, count: int, di: int, ctx, order: int) -> None:
        """A chunk whose records lie in the batch buffer from ``off``."""
        self._singles.append((gid, SRC_BATCH, off, count, di, self.ctx_id(ctx), order))

    def add_bytes(self, gid: int, data: bytes, count: int, di: int, ctx, order: int) -> None:
        """A chunk whose records are ``data`` (kept in the extra buffer)."""
        self._singles.append((gid, SRC_EXTRA, self._extra_len, count, di, self.ctx_id(ctx), order))
        self._extra.append(data)
        self._extra_len += len(data)

    def add_many(self, gid, off, count, di, ctx_ids, order) -> None:
        """Chunks in the batch buffer, one per array element (``gid`` may be a scalar)."""
        n = len(off)
        if not n:
            return
        self._parts.append((np.broadcast_to(np.asarray(gid, np.int64), (n,)), np.zeros(n, np.int64),
                            np.asarray(off, np.int64), np.asarray(count, np.int64),
                            np.asarray(di, np.int64), np.broadcast_to(np.asarray(ctx_ids, np.int64), (n,)),
                            np.asarray(order, np.int64)))

    def _columns(self):
        parts = list(self._parts)
        if self._singles:
            cols = list(zip(*self._singles))
            parts.append(tuple(np.array(c, np.int64) for c in cols))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(c) for c in zip(*parts))

    # --- decoding ---
    def peers(self):
        """A function (rdg, rctx) -> the address (af + 16 bytes, as ``V17``) per
        record: the exporter's, or the one options data announced for the record's
        context."""
        exp_addr = np.zeros(len(self.exporter_list), dtype=ADDR_DTYPE)
        for i, src in enumerate(self.exporter_list):
            exp_addr[i] = addr_of(src)
        ctxs = self.contexts
        ctx_addr = np.zeros(len(ctxs), dtype=ADDR_DTYPE)
        ctx_has = np.zeros(len(ctxs), bool)
        for i, ctx in enumerate(ctxs):
            if ctx is not None and ctx.exporter_addr:
                ctx_addr[i] = ctx.exporter_addr
                ctx_has[i] = True
        any_ctx = bool(ctx_has.any())
        exp_v = exp_addr.view("V17")
        ctx_v = ctx_addr.view("V17")
        exporter = self.d.exporter

        def peers(rdg, rctx):
            peer = exp_v[exporter[rdg]]
            if any_ctx:
                sel = ctx_has[rctx]
                peer[sel] = ctx_v[rctx[sel]]
            return peer
        return peers

    def assemble(self, record_dtype, decode_group, strings, on_error):
        """Decode every group into one record array (group after group). ``decode_group``
        is called as (key, raw, tgt, env) and may return a keep mask. Returns the
        records and the exporter index of each."""
        cols = self._columns()
        if cols is None:
            return np.zeros(0, record_dtype), np.zeros(0, np.int64)
        gid, src, off, cnt, di, ctx, order = cols
        nz = cnt > 0
        if not nz.all():
            gid, src, off, cnt, di, ctx, order = (c[nz] for c in cols)
        if len(order) > 1 and not (order[1:] >= order[:-1]).all():
            o = np.argsort(order, kind="stable")
            gid, src, off, cnt, di, ctx = gid[o], src[o], off[o], cnt[o], di[o], ctx[o]
        nchunks = len(cnt)
        if not nchunks:
            return np.zeros(0, record_dtype), np.zeros(0, np.int64)
        total = int(cnt.sum())
        # zeroed block by block just before it is filled, so that the rows are still in
        # cache when the steps write their fields (a wide record spans many lines)
        out = np.empty(total, dtype=record_dtype)
        flat = out.view(np.uint8)
        isz = record_dtype.itemsize
        has_seq = "arrival_seq" in record_dtype.names
        chunk_first = np.cumsum(cnt) - cnt           # arrival index of each chunk's first record
        # groups, in the order of their first chunk; each group's chunks in order
        if len(self.gkeys) == 1:
            gorder = [int(gid[0])]
            bounds = {gorder[0]: np.arange(nchunks)}
        else:
            srt = np.argsort(gid, kind="stable")
            sg = gid[srt]
            ug, ufirst = np.unique(gid, return_index=True)
            gorder = [int(g) for g in ug[np.argsort(ufirst)]]
            lo = np.searchsorted(sg, ug, "left")
            hi = np.searchsorted(sg, ug, "right")
            bounds = {int(g): srt[a:b] for g, a, b in zip(ug, lo, hi)}
        extra = None
        peers = self.peers()
        block = max(BLOCK, BLOCK_BYTES // max(record_dtype.itemsize, 1))
        keep = None
        rec_exporter = np.empty(total, np.int64)
        exporter = self.d.exporter
        pos = 0
        for g in gorder:
            cidx = bounds[g]
            gcnt = cnt[cidx]
            gn = int(gcnt.sum())
            base = pos
            pos += gn
            key = self.gkeys[g]
            try:
                rdt = self.gdtypes[g]
                # per record: where its row starts, its datagram, its context and its
                # arrival index; each is a per-chunk value repeated plus a running count
                step = np.arange(gn, dtype=np.int64)
                if len(cidx) == 1:
                    c0 = int(cidx[0])
                    roff = step * rdt.itemsize + off[c0]
                    rdg = np.full(gn, di[c0], np.int64)
                    rctx = np.full(gn, ctx[c0], np.int64)
                    seqs = step + chunk_first[c0] if has_seq else None
                else:
                    cstart = np.cumsum(gcnt) - gcnt     # chunk starts within the group
                    roff = np.repeat(off[cidx] - cstart * rdt.itemsize, gcnt) + step * rdt.itemsize
                    rdg = np.repeat(di[cidx], gcnt)
                    rctx = np.repeat(ctx[cidx], gcnt)
                    seqs = np.repeat(chunk_first[cidx] - cstart, gcnt) + step if has_seq else None
                rec_exporter[base:pos] = exporter[rdg]
                gsrc = src[cidx]
                if not gsrc.any():
                    buf = self.buf
                else:
                    if extra is None:
                        extra = b"".join(self._extra)
                    if gsrc.all():
                        buf = extra
                    else:           # not made by the parsers today; kept correct anyway
                        buf = bytes(self.buf) + extra
                        roff = roff + np.repeat(src[cidx], gcnt) * len(self.buf)
                # gather whole rows as plain bytes (a structured dtype would copy field
                # by field), then read them through the template's dtype
                raw = window(buf, np.dtype(f"V{rdt.itemsize}"))[roff].view(rdt)
                vs = self.d.version[di[cidx]]
                only = int(vs[0]) if (vs == vs[0]).all() else 0
                for b0 in range(0, gn, block):
                    b1 = min(gn, b0 + block)
                    flat[(base + b0) * isz:(base + b1) * isz] = 0
                    tgt = out[base + b0:base + b1]
                    if has_seq:
                        tgt["arrival_seq"] = seqs[b0:b1]
                    env = Env(rdg[b0:b1], rctx[b0:b1], self.d, self.contexts, self.vvalues,
                              strings, peers, only)
                    kg = decode_group(key, raw[b0:b1], tgt, env)
                    if kg is not None and not kg.all():
                        if keep is None:
                            keep = np.ones(total, bool)
                        keep[base + b0:base + b1] = kg
            except Exception as e:          # never let one group sink the batch
                on_error(key, e)
                if keep is None:
                    keep = np.ones(total, bool)
                keep[base:pos] = False
        if keep is not None:
            out = out[keep]
            rec_exporter = rec_exporter[keep]
        return out, rec_exporter
