"""Splitting NetFlow v5/v9/IPFIX datagrams into one datagram per flow, and sFlow v5
datagrams into one per flow sample, for tee plugins whose pre_tag_map needs flow fields
(1.7.7's "complex" map, QUICKSTART XVa).

As 1.7.7 does it (nfacctd.c, pkt_handlers.c): each flow record travels in a datagram of
its own made of the original header (v5: ``count`` 1; v9: ``count`` as it was; IPFIX:
``length`` of the new datagram), for v9/IPFIX a set header whose length covers the one
record, then the record. Template and options template sets, and options data sets, go
whole (with the header) to every pool whatever the tags: they are "broadcast". Records
of a template not seen yet are not sent; a v5 datagram whose length does not match its
count is not split. Sequence numbers are left alone.

The flow fields the map reads come from our own decoder run on the split datagrams
(one record each), so a flow is tagged from exactly the values a collector would see.
"""
from __future__ import annotations

import struct

import numpy as np

from ..decoders import NetflowDecoder
from ..record import RECORD_DTYPE, subset_dtype
from ..sources import Datagram
from .stats import Stats

_SET = struct.Struct("!HH")


class Element:
    __slots__ = ("dg", "payload", "bcast")

    def __init__(self, dg: int, payload: bytes, bcast: bool):
        self.dg, self.payload, self.bcast = dg, payload, bcast


class Dissector:
    def __init__(self, options, fields, log, daemon: str = "nfacctd"):
        names = set(fields) & set(RECORD_DTYPE.names)
        names |= {"arrival_seq"}
        self.dtype = subset_dtype(RECORD_DTYPE, names)
        options.record_dtype = self.dtype
        self.sflow = daemon == "sfacctd"
        if self.sflow:
            from ..decoders.sflow import SflowDecoder
            options.counters = False
            self.decoder = SflowDecoder(options, log=log, stats=Stats())
        else:
            options.templates_file = None
            self.decoder = NetflowDecoder(options, log=log, stats=Stats())
        self.templates: dict = {}    # (exporter, domain, template id) -> (length|None, options)
        self.log = log

    # ---- splitting --------------------------------------------------------------
    def split(self, payload: bytes, src: str, dg: int) -> list[Element]:
        if self.sflow:
            return self._sflow(payload, dg)
        ver = int.from_bytes(payload[:2], "big")
        if ver == 5:
            return self._v5(payload, dg)
        if ver in (9, 10):
            return self._templated(payload, src, dg, ver)
        return []

    @staticmethod
    def _sflow(p: bytes, dg: int) -> list[Element]:
        """sFlow v5: one datagram per flow sample (plain or expanded), its header's sample
        count set to 1; counter samples are not sent (1.7.7's process_SF_raw_packet)."""
        if len(p) < 8 or int.from_bytes(p[:4], "big") != 5:
            return []
        atype = int.from_bytes(p[4:8], "big")
        hlen = 28 if atype == 1 else 40 if atype == 2 else 0
        if not hlen or len(p) < hlen:
            return []
        nsamples = int.from_bytes(p[hlen - 4:hlen], "big")
        head = p[:hlen - 4] + b"\x00\x00\x00\x01"
        out, off = [], hlen
        for _ in range(nsamples):
            if off + 8 > len(p):
                break
            stype = int.from_bytes(p[off:off + 4], "big")
            end = off + 8 + int.from_bytes(p[off + 4:off + 8], "big")
            if end > len(p):
                break
            if stype in (1, 3):
                out.append(Element(dg, head + p[off:end], False))
            off = end
        return out

    @staticmethod
    def _v5(p: bytes, dg: int) -> list[Element]:
        count = int.from_bytes(p[2:4], "big")
        if count > 30 or 24 + 48 * count != len(p):
            return []
        head = p[:2] + b"\x00\x01" + p[4:24]
        return [Element(dg, head + p[24 + 48 * i:72 + 48 * i], False) for i in range(count)]

    def _templated(self, p: bytes, src: str, dg: int, ver: int) -> list[Element]:
        hlen = 20 if ver == 9 else 16
        if len(p) < hlen:
            return []
        domain = int.from_bytes(p[16:20] if ver == 9 else p[12:16], "big")
        head = p[:hlen]
        out: list[Element] = []
        off = hlen
        while off + 4 <= len(p):
            sid, slen = _SET.unpack_from(p, off)
            if slen < 4 or off + slen > len(p):
                break
            body = p[off:off + slen]
            if sid in ((0, 1) if ver == 9 else (2, 3)):
                self._learn(body, src, domain, ver, options=sid in (1, 3))
                out.append(Element(dg, self._head(head, ver, slen) + body, True))
            elif sid >= 256:
                tpl = self.templates.get((src, domain, sid))
                if tpl is not None:
                    length, options = tpl
                    if options:
                        out.append(Element(dg, self._head(head, ver, slen) + body, True))
                    elif length:
                        h = self._head(head, ver, 4 + length)
                        q = 4
                        while q + length <= slen:
                            out.append(Element(dg, h + _SET.pack(sid, 4 + length)
                                               + body[q:q + length], False))
                            q += length
            off += slen
        return out

    @staticmethod
    def _head(head: bytes, ver: int, rest: int) -> bytes:
        if ver == 10:
            return head[:2] + struct.pack("!H", len(head) + rest) + head[4:]
        return head

    def _learn(self, body: bytes, src: str, domain: int, ver: int, options: bool) -> None:
        q, end = 4, len(body)
        while q + 4 <= end:
            tid = int.from_bytes(body[q:q + 2], "big")
            if ver == 9 and options:
                if q + 6 > end:
                    return
                scope_len = int.from_bytes(body[q + 2:q + 4], "big")
                opt_len = int.from_bytes(body[q + 4:q + 6], "big")
                nfields = (scope_len + opt_len) // 4
                q += 6
            else:
                nfields = int.from_bytes(body[q + 2:q + 4], "big")
                q += 4
                if ver == 10 and options:
                    q += 2                          # scope field count
            if tid < 256:
                return                              # padding, or not a template
            length = 0
            for _ in range(nfields):
                if q + 4 > end:
                    return
                ftype, flen = struct.unpack_from("!HH", body, q)
                q += 4
                if ver == 10 and ftype & 0x8000:
                    q += 4
                if flen == 0xFFFF:
                    length = None                   # variable length: not split
                elif length is not None:
                    length += flen
            if nfields == 0:
                self.templates.pop((src, domain, tid), None)    # withdrawn
            else:
                self.templates[(src, domain, tid)] = (length, options)

    # ---- decoding the split flows -----------------------------------------------------
    def records(self, elems: list[Element], dgrams: list) -> np.ndarray:
        """One record per element (zeros for broadcast ones), decoded from the split
        datagrams; the template sets among them teach the decoder its templates."""
        out = np.zeros(len(elems), dtype=self.dtype)
        if not elems:
            return out
        minis = [Datagram(e.payload, dgrams[e.dg].src, dgrams[e.dg].port, dgrams[e.dg].ts_us)
                 for e in elems]
        data = np.array([not e.bcast for e in elems], dtype=bool)
        recs = self.decoder.decode(minis).records
        if len(recs) == int(data.sum()):
            out[data] = recs[np.argsort(recs["arrival_seq"], kind="stable")]
            return out
        # the decoder kept another number of records: one at a time
        for i, m in enumerate(minis):
            r = self.decoder.decode([m]).records
            if len(r) and data[i]:
                out[i] = r[0]
        return out
