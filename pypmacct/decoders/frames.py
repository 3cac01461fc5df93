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

import time
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
    flows: bool = False                 # some plugin aggregates 'flows': the flow buffer
    flow_buffer_size: int = 0           # pmacctd_flow_buffer_size (0: pmacct's 16 MB)
    flow_buffer_buckets: int = 256
    flow_lifetime: int = 0              # pmacctd_flow_lifetime (0: 60 s)
    flow_tcp_lifetime: int = 0          # pmacctd_flow_tcp_lifetime (0: the generic one)
    frag_buffer_size: int = 0           # pmacctd_frag_buffer_size (0: pmacct's 4096000)
    force_frag_handling: bool = False   # pmacctd_force_frag_handling
    classifier: object = None           # a classifiers.FlowClassifier: the 'class' field
    packet_ptrs: tuple = ()             # custom primitives with packet_ptr (CustomPrimitive)


# pmacct 1.7.7's fragment tables (ip_frag.c): pmacctd_frag_buffer_size bytes (default
# 4096000) divided by its node size, 72 bytes per IPv4 datagram and 96 per IPv6 one on
# x86-64 (sizeof struct ip_fragment / ip6_fragment; confirmed by the diff test with small
# sizes). A node stays until its 60 s (wall clock) deadline passes; when a table is full a
# new datagram's fragments are all skipped (not accounted), with "Fragment/4 buffer full"
# logged and expired nodes pruned at most once a minute.
DEFAULT_FRAG_BUFFER_SIZE = 4096000
FRAG_NODE_SIZE = {4: 72, 6: 96}
FRAG_TIMEOUT = 60
FRAG_EMERGENCY_INTERVAL = 60


class FrameDecoder:
    def __init__(self, opts: FrameOptions | None = None):
        self.opts = opts or FrameOptions()
        self.fields = frozenset(self.opts.record_dtype.names)
        self.frames = 0
        self.skipped = 0
        self.unsupported_links: set = set()
        # pmacct's fragment table is on when some plugin needs ports or TCP flags
        # (or pmacctd_force_frag_handling asks for it, for filters on ports, or a classifier)
        self.classifier = self.opts.classifier if "class" in self.fields else None
        self.handle_fragments = bool({"src_port", "dst_port", "tcp_flags"} & self.fields) \
            or self.opts.flows or self.opts.force_frag_handling or self.classifier is not None
        self.packet_ptrs = tuple(cp for cp in self.opts.packet_ptrs if cp.name in self.fields)
        self.flow_table = None
        if self.opts.flows and "flows" in self.fields:       # pmacct's flow buffer (the flows counter)
            from .ipflows import FlowTable
            o = self.opts
            self.flow_table = FlowTable(o.flow_buffer_size, o.flow_buffer_buckets,
                                        o.flow_lifetime, o.flow_tcp_lifetime)
        # datagram key -> [got_first, sport, dport, pkts, bytes, deadline]
        self.frag_states: dict = {}
        self.fragments_pending = 0
        size = self.opts.frag_buffer_size or DEFAULT_FRAG_BUFFER_SIZE
        self.frag_capacity = {af: size // n for af, n in FRAG_NODE_SIZE.items()}
        self.frag_used = {4: 0, 6: 0}
        self.frag_emergency = {4: 0, 6: 0}
        self.fragments_skipped = 0
        self.log = None                 # a Logger, set by the daemon
        self.progname = "pmacctd"
        self.clock = time.time

    def _frag_room(self, af: int, now: int) -> bool:
        """Whether family ``af``'s table has room for a new datagram; when it is full,
        logs and prunes expired nodes at most once a minute (as pmacct)."""
        if self.frag_used[af] < self.frag_capacity[af]:
            return True
        if now > self.frag_emergency[af] + FRAG_EMERGENCY_INTERVAL:
            self.frag_emergency[af] = now
            if self.log is not None:
                self.log.info(f"Fragment/{af} buffer full. Skipping fragments. "
                              f"Increase {self.progname}_frag_buffer_size")
            old = [k for k, v in self.frag_states.items() if k[0] == af and v[5] < now]
            for k in old:
                del self.frag_states[k]
            self.frag_used[af] -= len(old)
        return False

    def _fragments(self, r, sel):
        """pmacct's fragment tables (IPv4 and IPv6) for TCP/UDP fragments among ``sel``:
        a fragment that comes before its first fragment is held back (counted into the
        first one when it comes), later fragments take the first one's ports. Returns
        (kept selection, ports source, extra packets, extra bytes) per kept packet."""
        n = len(sel)
        sport = r.src_port[sel].astype(np.int64)
        dport = r.dst_port[sel].astype(np.int64)
        xp = np.zeros(n, np.int64)
        xb = np.zeros(n, np.int64)
        fr = (r.af[sel] > 0) & ((r.proto[sel] == 6) | (r.proto[sel] == 17)) & \
            (r.frag[sel] | r.more_frags[sel])
        idx = np.nonzero(fr)[0]
        keep = np.ones(n, bool)
        if not len(idx):
            return sel, sport, dport, xp, xb
        rows = sel[idx]
        # the datagram key as bytes: family, IP id, protocol (IPv4 only, as pmacct),
        # source, destination; grouped exactly with one np.unique
        v4 = r.af[rows] == 4
        key = np.zeros((len(rows), 40), np.uint8)
        key[:, 0] = r.af[rows]
        key[:, 1:5] = r.frag_id[rows].astype(">u4").view(np.uint8).reshape(-1, 4)
        key[:, 5] = np.where(v4, r.proto[rows], 0)
        key[:, 8:24] = r.src[rows]
        key[:, 24:40] = r.dst[rows]
        kv = key.view(np.dtype((np.void, 40))).reshape(-1)
        ukeys, grp = np.unique(kv, return_inverse=True)
        grp = np.asarray(grp).reshape(-1)
        order = np.lexsort((idx, grp))
        g_idx, g_grp = idx[order], grp[order]
        start = np.ones(len(order), bool)
        start[1:] = g_grp[1:] != g_grp[:-1]
        bounds = np.append(np.nonzero(start)[0], len(order))
        is_first = ~r.frag[sel][g_idx]
        ln = r.ip_len[sel][g_idx]
        states = self.frag_states
        now = int(self.clock())
        # datagrams in the order their first packet came (who finds room in a full table)
        starts, ends = bounds[:-1], bounds[1:]
        by_arrival = np.argsort(g_idx[starts], kind="stable")
        for a, b in zip(starts[by_arrival].tolist(), ends[by_arrival].tolist()):
            key = ukeys[g_grp[a]].tobytes()
            st = states.get(key)
            members = g_idx[a:b]
            firsts = np.nonzero(is_first[a:b])[0]
            if st is None or st[5] <= now:
                af = key[0]
                if st is None:
                    if not self._frag_room(af, now):
                        keep[members] = False
                        self.fragments_skipped += b - a
                        continue
                    self.frag_used[af] += 1
                st = [False, 0, 0, 0, 0, now + FRAG_TIMEOUT]
            if not st[0]:
                if not len(firsts):
                    keep[members] = False
                    st[3] += b - a
                    st[4] += int(ln[a:b].sum())
                else:
                    f = int(firsts[0])
                    keep[members[:f]] = False
                    fi = members[f]
                    xp[fi] = st[3] + f
                    xb[fi] = st[4] + int(ln[a:a + f].sum())
                    st[:5] = [True, int(sport[fi]), int(dport[fi]), 0, 0]
                    later = members[f + 1:]
                    sport[later], dport[later] = st[1], st[2]
            else:
                sport[members], dport[members] = st[1], st[2]
            states[key] = st
        self.fragments_pending = sum(1 for v in states.values() if not v[0])
        return sel[keep], sport[keep], dport[keep], xp[keep], xb[keep]

    def _flows(self, c, r, sel, sport, dport):
        """The flows counter: what pmacct's flow code reads as ports (TCP/UDP: theirs,
        the first fragment's for later fragments; ICMP/ICMPv6: type, code, checksum;
        others: none) and the TCP flags and sequence number, into the flow table."""
        proto = r.proto[sel]
        icmp = (proto == 1) | (proto == 58)
        raw = np.frombuffer(c.buf, np.uint8) if len(c.buf) else np.zeros(8, np.uint8)
        raw = np.concatenate([raw, np.zeros(8, np.uint8)])
        l4 = r.l4_off[sel]
        ok = l4 >= 0
        base = np.where(ok, l4, 0)
        b = [raw[np.minimum(base + i, len(raw) - 1)].astype(np.int64) for i in range(8)]
        isport = ((proto == 6) | (proto == 17))
        sp = np.where(isport, sport, np.where(icmp & ok, (b[0] << 8) | b[1], 0))
        dp = np.where(isport, dport, np.where(icmp & ok, (b[2] << 8) | b[3], 0))
        seq = np.where((proto == 6) & ok, (b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7], 0)
        return self.flow_table.new_flows(r.af[sel], r.src[sel], r.dst[sel], proto, sp, dp,
                                         np.where(proto == 6, r.tcp_flags[sel], 0), seq)

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
        r = pkt.parse(c.buf, c.offset, c.length, kind, tunnels=tun,
                      macs=bool(self.fields & {"src_mac", "dst_mac"}))
        keep = r.af > 0
        sel = np.nonzero(keep)[0]
        self.skipped += n - int(keep.sum())
        if self.handle_fragments:
            sel, sport, dport, xp, xb = self._fragments(r, sel)
        else:
            sport, dport = r.src_port[sel], r.dst_port[sel]
            xp = xb = 0
        m = len(sel)
        out = np.zeros(m, dtype)
        names = out.dtype.names

        def put(name, values):
            if name in names:
                out[name] = values

        if "arrival_seq" in names:
            put("arrival_seq", np.arange(m))
        mult = 1
        sr = self.opts.ext_sampling_rate or 1
        if self.opts.renormalize and sr > 1:
            mult = sr
        if "packets" in names:
            put("packets", (1 + xp) * mult)
        if "bytes" in names:
            put("bytes", (r.ip_len[sel] + xb) * mult)
        af = r.af[sel]
        for name, raw in (("src_host", r.src), ("dst_host", r.dst)):
            if name in names:
                out[name]["af"] = af
                out[name]["addr"] = np.ascontiguousarray(raw[sel]).view("V16").reshape(-1)
        if "proto" in names:
            put("proto", r.proto[sel])
        if "tos" in names:
            put("tos", r.tos[sel])
        if "src_port" in names:
            put("src_port", sport)
        if "dst_port" in names:
            put("dst_port", dport)
        if "tcp_flags" in names:
            put("tcp_flags", np.where(r.proto[sel] == 6, r.tcp_flags[sel], 0))
        if "icmp_type" in names:
            put("icmp_type", r.icmp_type[sel])
        if "icmp_code" in names:
            put("icmp_code", r.icmp_code[sel])
        smac = r.src_mac if c.src_mac is None else c.src_mac
        dmac = r.dst_mac if c.dst_mac is None else c.dst_mac
        if "src_mac" in names:
            out["src_mac"] = np.ascontiguousarray(smac[sel]).view("V6").reshape(-1)
        if "dst_mac" in names:
            out["dst_mac"] = np.ascontiguousarray(dmac[sel]).view("V6").reshape(-1)
        if "vlan" in names:
            put("vlan", r.vlan[sel])
        if "cvlan" in names:            # the inner tag of QinQ frames (filters: 'vlan and vlan')
            put("cvlan", r.cvlan[sel])
        if "cos" in names:
            put("cos", r.cos[sel])
        if "etype" in names:
            put("etype", np.where(af == 4, pkt.ETH_IPV4, pkt.ETH_IPV6))
        if "mpls_label_top" in names:
            put("mpls_label_top", r.mpls_top[sel])
        if "mpls_label_bottom" in names:
            put("mpls_label_bottom", r.mpls_bottom[sel])
        if "mpls_stack_depth" in names:
            put("mpls_stack_depth", r.mpls_depth[sel])
        if "in_iface" in names:
            put("in_iface", np.full(m, c.ifindex_in, np.int64) if c.ifin is None else c.ifin[sel])
        if "out_iface" in names:
            put("out_iface", np.full(m, c.ifindex_out, np.int64) if c.ifout is None else c.ifout[sel])
        if self.flow_table is not None:
            out["flows"] = self._flows(c, r, sel, sport, dport)
        if "sampling_rate" in names:
            put("sampling_rate", np.full(m, 1 if self.opts.renormalize else sr, np.int64))
        pkt.put_tunnel(out, r, sel)
        ts = c.ts[sel]
        if "ts_arrival" in names:
            put("ts_arrival", ts)
        if "time_start" in names:
            put("time_start", ts)
        if "sample_type" in names:
            put("sample_type", np.ones(m, np.int64))
        strings = None
        if self.packet_ptrs:
            strings = self._packet_ptrs(c, r, sel, kind, out)
        if self.classifier is not None:
            return self._classify(c, r, sel, sport, dport, out)
        return Batch(out, strings.strings) if strings is not None else Batch(out)

    def _packet_ptrs(self, c, r, sel, kind, out):
        """packet_ptr custom primitives, read from the captured bytes."""
        from ..record import StringTable
        from . import packet_ptr as PP
        raw = np.frombuffer(c.buf, np.uint8) if len(c.buf) else np.zeros(0, np.uint8)
        raw = np.concatenate([raw, np.zeros(64, np.uint8)])
        start = np.asarray(c.offset, np.int64)[sel]
        end = start + np.asarray(c.length, np.int64)[sel]
        k = np.broadcast_to(np.asarray(kind, np.int64), (len(c.offset),))[sel]
        offs, protos = PP.layer_offsets(r, sel, start, end, raw, k == pkt.K_ETH)
        # with a classifier the texts join its string table (after the class names),
        # which every batch it returns carries (the packets it holds back keep their ids)
        if self.classifier is None:
            strings = StringTable()
        else:
            if getattr(self, "_cl_strings", None) is None:
                self._cl_strings = PP.ListTable(self.classifier.strings)
            strings = self._cl_strings
        PP.fill(out, self.packet_ptrs, raw, start, end, offs, protos, strings)
        return strings

    def _classify(self, c, r, sel, sport, dport, out) -> Batch:
        """The 'class' field (ids into the batch's string table of class names)."""
        from ..classifiers import payload_bounds
        raw = np.frombuffer(c.buf, np.uint8) if len(c.buf) else np.zeros(0, np.uint8)
        raw = np.concatenate([raw, np.zeros(64, np.uint8)])
        start, end = payload_bounds(raw, r, sel, (c.offset + c.length)[sel])
        cl = self.classifier
        # the packets of flows that may still be classified are held back by the
        # classifier and come out later with their class (docs/classifiers.md)
        out = cl.account(out, r.af[sel], r.src[sel], r.dst[sel], r.proto[sel], sport, dport,
                         c.buf, start, end,
                         tcp_flags=np.where(r.proto[sel] == 6, r.tcp_flags[sel], 0))
        if "arrival_seq" in out.dtype.names:
            out["arrival_seq"] = np.arange(len(out))
        return Batch(out, list(cl.strings))

    def flush(self) -> Batch:
        """What the classifier still holds back, as 'unknown' (end of input, shutdown)."""
        cl = self.classifier
        recs = cl.release_all() if cl is not None else None
        if recs is None or not len(recs):
            return Batch(np.zeros(0, self.opts.record_dtype))
        if "arrival_seq" in recs.dtype.names:
            recs["arrival_seq"] = np.arange(len(recs))
        return Batch(recs, list(cl.strings))
