"""Captured frames to records: what pmacctd and uacctd account for each packet.

``FrameDecoder.decode(chunk)`` takes a ``FrameChunk`` (frames back to back in one buffer,
with per-frame offsets, captured lengths, capture times and a link type) and returns a
record batch with one record per IPv4/IPv6 packet, as pmacct 1.7.7's pmacctd does:
packets 1, bytes the IP length (IPv4 total length, IPv6 payload length + 40), times
from the capture. Frames that carry no IP packet (ARP, truncated headers...) are
counted in ``skipped`` and dropped. Parsing is ``decoders.packet``: vectorised over the
chunk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..record import RECORD_DTYPE, Batch
from . import packet as pkt


@dataclass
class FrameChunk:
    buf: bytes
    linktype: int
    offset: np.ndarray        # int64 per frame
    length: np.ndarray        # captured bytes per frame
    ts: np.ndarray            # microseconds since the epoch
    ifindex_in: int = 0
    ifindex_out: int = 0
    kinds: np.ndarray | None = None   # per-frame K_* (overrides linktype), e.g. NFLOG
    # per-frame values some sources have (NFLOG): interfaces, MACs from the hw header
    ifin: np.ndarray | None = None
    ifout: np.ndarray | None = None
    src_mac: np.ndarray | None = None
    dst_mac: np.ndarray | None = None


@dataclass
class FrameOptions:
    record_dtype: np.dtype = RECORD_DTYPE
    ext_sampling_rate: int = 0          # pmacctd_ext_sampling_rate
    renormalize: bool = False           # pmacctd_renormalize (with ext_sampling_rate)


class FrameDecoder:
    def __init__(self, opts: FrameOptions | None = None):
        self.opts = opts or FrameOptions()
        self.fields = frozenset(self.opts.record_dtype.names)
        self.frames = 0
        self.skipped = 0
        self.unsupported_links: set = set()

    def decode(self, c: FrameChunk) -> Batch:
        dtype = self.opts.record_dtype
        n = len(c.offset)
        self.frames += n
        if c.kinds is not None:
            kind = c.kinds
        else:
            k = pkt.LINKTYPE_KINDS.get(c.linktype)
            if k is None:
                self.unsupported_links.add(c.linktype)
                self.skipped += n
                return Batch(np.zeros(0, dtype))
            kind = k
        tun = any(f in self.fields for f in pkt.TUNNEL_FIELDS)
        r = pkt.parse(c.buf, c.offset, c.length, kind, tunnels=tun)
        keep = r.af > 0
        # non-first fragments are kept, without ports (no fragment table yet: pmacct
        # joins them to their first fragment; docs/pmacctd.md)
        sel = np.nonzero(keep)[0]
        self.skipped += n - int(keep.sum())
        m = len(sel)
        out = np.zeros(m, dtype)
        names = out.dtype.names

        def put(name, values):
            if name in names:
                out[name] = values

        put("arrival_seq", np.arange(m))
        mult = 1
        sr = self.opts.ext_sampling_rate or 1
        if self.opts.renormalize and sr > 1:
            mult = sr
        put("packets", np.full(m, mult, np.int64))
        put("bytes", r.ip_len[sel] * mult)
        af = r.af[sel]
        for name, raw in (("src_host", r.src), ("dst_host", r.dst)):
            if name in names:
                out[name]["af"] = af
                out[name]["addr"] = np.ascontiguousarray(raw[sel]).view("V16").reshape(-1)
        put("proto", r.proto[sel])
        put("tos", r.tos[sel])
        put("src_port", r.src_port[sel])
        put("dst_port", r.dst_port[sel])
        put("tcp_flags", np.where(r.proto[sel] == 6, r.tcp_flags[sel], 0))
        smac = r.src_mac if c.src_mac is None else c.src_mac
        dmac = r.dst_mac if c.dst_mac is None else c.dst_mac
        if "src_mac" in names:
            out["src_mac"] = np.ascontiguousarray(smac[sel]).view("V6").reshape(-1)
        if "dst_mac" in names:
            out["dst_mac"] = np.ascontiguousarray(dmac[sel]).view("V6").reshape(-1)
        put("vlan", r.vlan[sel])
        put("cos", r.cos[sel])
        put("etype", np.where(af == 4, pkt.ETH_IPV4, pkt.ETH_IPV6))
        put("mpls_label_top", r.mpls_top[sel])
        put("mpls_label_bottom", r.mpls_bottom[sel])
        put("mpls_stack_depth", r.mpls_depth[sel])
        put("in_iface", np.full(m, c.ifindex_in, np.int64) if c.ifin is None else c.ifin[sel])
        put("out_iface", np.full(m, c.ifindex_out, np.int64) if c.ifout is None else c.ifout[sel])
        put("sampling_rate", np.full(m, 1 if self.opts.renormalize else sr, np.int64))
        pkt.put_tunnel(out, r, sel)
        ts = c.ts[sel]
        put("ts_arrival", ts)
        put("time_start", ts)
        put("sample_type", np.ones(m, np.int64))
        return Batch(out)
