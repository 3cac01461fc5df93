"""Packet headers to primitives, a batch of packets at a time.

One parser for every daemon that sees packets: pmacctd and uacctd (captured frames) and
sfacctd (the raw packet headers inside sFlow flow samples). ``parse`` takes a buffer and,
per packet, where its bytes start, how many were captured and what its first layer is,
and returns one array per header field. Every step works on all packets at once: a
layer's fields are gathered with fancy indexing over the buffer, and loops run over
header *depth* (VLAN tags, MPLS labels, IPv6 extension headers: a few iterations), never
over packets.

Layers understood: Ethernet II (802.1Q tags; LLC/SNAP with OUI 0 as sFlow's decoder
does), Linux cooked v1 and v2, BSD null/loopback, raw IP, MPLS label stacks (explicit and
implicit NULL labels, else the first nibble behind the bottom label), IPv4 (options,
fragments: only the first fragment has ports), IPv6 (hop-by-hop, routing, fragment,
destination options and AH headers skipped), TCP, UDP, ICMP/ICMPv6.

A field that a packet does not have (cut short, not IP...) is 0; ``af`` says whether an
IP header was found (4 or 6) and ``l4`` whether the transport header was complete.
"""
from __future__ import annotations

import numpy as np

# first-layer kinds
K_ETH, K_IP, K_IPV4, K_IPV6, K_MPLS, K_SLL, K_SLL2, K_NULL, K_LOOP, K_PPP = range(1, 11)

# pcap link types -> kinds
LINKTYPE_KINDS = {1: K_ETH, 101: K_IP, 12: K_IP, 14: K_IP, 228: K_IPV4, 229: K_IPV6,
                  113: K_SLL, 276: K_SLL2, 0: K_NULL, 108: K_LOOP, 9: K_PPP, 50: K_PPP}

ETH_IPV4, ETH_IPV6, ETH_8021Q = 0x0800, 0x86DD, 0x8100
ETH_MPLS = (0x8847, 0x8848)
_EXT_8 = (0, 43, 60)      # hop-by-hop, routing, destination options: (len + 1) * 8
_PAD = 64

FIELDS = ("af", "dst_mac", "src_mac", "vlan", "cvlan", "cos", "etype", "vlan_tags", "mpls_depth",
          "mpls_top", "mpls_bottom", "ip_off", "src", "dst", "proto", "tos", "ip_len",
          "frag", "more_frags", "frag_id", "l4", "src_port", "dst_port", "tcp_flags",
          "icmp_type", "icmp_code")


class Parsed:
    """Per-packet header fields (arrays of length n); see the module text."""

    def __init__(self, n: int):
        self.n = n
        self.af = np.zeros(n, np.uint8)
        self.dst_mac = np.zeros((n, 6), np.uint8)
        self.src_mac = np.zeros((n, 6), np.uint8)
        self.vlan = np.zeros(n, np.uint16)
        self.cvlan = np.zeros(n, np.uint16)         # the second (inner) 802.1Q tag's id
        self.cos = np.zeros(n, np.uint8)
        self.etype = np.zeros(n, np.uint16)
        self.vlan_tags = np.zeros(n, np.uint8)
        self.mpls_depth = np.zeros(n, np.uint8)
        self.mpls_top = np.zeros(n, np.uint32)
        self.mpls_bottom = np.zeros(n, np.uint32)
        self.l3 = np.zeros(n, np.uint8)             # 4/6: the link layer says IPv4/IPv6
        self.ip_off = np.full(n, -1, np.int64)      # offset of the IP header in the buffer
        self.src = np.zeros((n, 16), np.uint8)
        self.dst = np.zeros((n, 16), np.uint8)
        self.proto = np.zeros(n, np.uint8)
        self.tos = np.zeros(n, np.uint8)
        self.ip_len = np.zeros(n, np.int64)          # IPv4 total length; IPv6 payload + 40
        self.frag = np.zeros(n, bool)                # a fragment other than the first
        self.more_frags = np.zeros(n, bool)          # IPv4 MF or IPv6 M bit
        self.frag_id = np.zeros(n, np.uint32)
        self.l4 = np.zeros(n, bool)
        self.src_port = np.zeros(n, np.uint16)
        self.dst_port = np.zeros(n, np.uint16)
        self.tcp_flags = np.zeros(n, np.uint8)
        self.icmp_type = np.zeros(n, np.uint8)
        self.icmp_code = np.zeros(n, np.uint8)
        self.l4_off = np.full(n, -1, np.int64)
        # where packet_ptr's layers start (-1: not there): the first 802.1Q tag's TCI,
        # the first MPLS label, the header after the IP headers (fragments included)
        self.vlan_off = np.full(n, -1, np.int64)
        self.mpls_off = np.full(n, -1, np.int64)
        self.l4_at = np.full(n, -1, np.int64)
        self.vxlan = np.zeros(n, np.uint32)          # VNI of a VXLAN packet (UDP 4789)
        self.inner = None                            # Parsed of the inner frames, or None
        self.inner_rows = np.zeros(0, np.int64)      # which packets ``inner`` describes


def byte_rows(a: np.ndarray) -> np.ndarray:
    """A C-contiguous (n, k) uint8 array as a view of n void items of k bytes: numpy
    gathers and scatters those several times faster than the rows of a 2-D array."""
    return a.view(f"V{a.shape[1]}").reshape(-1)


def byte_cols4(a: np.ndarray) -> np.ndarray:
    """The first four bytes of each row of a C-contiguous (n, 16) uint8 array, as a
    strided view of n void items (an IPv4 address in an IPv6-wide column)."""
    return a.view("V4")[:, 0]


# byte rows gathered from headers, as named void fields (views, no copies)
_ETH_HDR = np.dtype([("dst", "V6"), ("src", "V6"), ("type", "V2")])
_IPV4_ADDRS = np.dtype([("_", "V12"), ("src", "V4"), ("dst", "V4")])
_IPV6_ADDRS = np.dtype([("_", "V8"), ("src", "V16"), ("dst", "V16")])


class _Buf:
    """A byte buffer padded with zeros so that gathers near its end stay in bounds.

    Big-endian words and fixed-width rows are gathered through overlapping views of
    the buffer (one element per byte offset): one gather per value instead of one per
    byte."""

    def __init__(self, buf, used: int | None = None):
        """``used``: if given, no byte at or past it is read as data; a buffer with
        room for the padding past ``used`` (a savefile read holding the batch's
        datagrams) is used as it is, without the padded copy."""
        if isinstance(buf, _Buf):              # already padded: share it
            self.size, self.a, self.limit = buf.size, buf.a, buf.limit
            self._views = buf._views
            return
        raw = np.frombuffer(buf, np.uint8) if not isinstance(buf, np.ndarray) else buf
        self._views = {}
        if used is not None and len(raw) - used >= _PAD:
            self.size = used
            self.a = raw
            self.limit = len(raw) - 8
            return
        self.size = len(raw)
        self.a = np.concatenate([raw, np.zeros(_PAD, np.uint8)])
        self.limit = self.size + _PAD - 8

    def _view(self, dt):
        v = self._views.get(dt)
        if v is None:
            d = np.dtype(dt)
            v = self._views[dt] = np.ndarray((len(self.a) - d.itemsize + 1,), d,
                                             buffer=self.a, strides=(1,))
        return v

    def u8(self, p):
        return self.a[np.minimum(p, self.limit)]

    def be16(self, p):
        return self._view(">u2")[np.minimum(p, self.limit)].astype(np.uint32)

    def be32(self, p):
        return self._view(">u4")[np.minimum(p, self.limit)].astype(np.uint32)

    def words(self, p, k: int):
        """``k`` consecutive big-endian 32-bit words at each ``p``: an (n, k) array of
        '>u4' gathered in one pass over the buffer (one row copy per position instead of
        one gather per word: the buffer's cache lines are touched once)."""
        p = np.minimum(p, self.limit + 8 - 4 * k)
        return self._view(f"V{4 * k}")[p].view(">u4").reshape(len(p), k)

    def rows(self, p, width: int):
        p = np.minimum(p, self.limit + 8 - width)
        return self._view(f"V{width}")[p].view(np.uint8).reshape(len(p), width)


def parse(buf, start, length, kind, *, max_vlan_tags: int = 8, snap: bool = False,
          max_mpls: int = 16, max_ext: int = 8, min_l4: int = 4, tunnels: bool = False,
          ipip: bool = False, macs: bool = True, transport: bool = True,
          extras: bool = True) -> Parsed:
    """Parse packets whose bytes are ``buf[start[i]:start[i] + length[i]]``; ``kind`` is
    a K_* value (scalar or per packet). ``max_vlan_tags``: how many 802.1Q tags are
    walked (sFlow's decoder takes one); ``snap``: 802.3 frames with LLC/SNAP or the IP
    SAP are followed (sFlow's decoder does); ``min_l4``: transport bytes needed before
    ports and flags are read (sFlow's decoder wants 8); ``tunnels``: the Ethernet frame
    inside VXLAN (UDP port 4789, I flag set) is parsed too (``inner``, ``inner_rows``), and
    with ``ipip`` the IPv4 packet inside IP protocols 4 and 94. ``macs=False`` leaves the
    outer frames' MAC addresses zero (for callers that do not use them); ``transport=False``
    stops at the IP header: no ports, flags, ICMP type, ``l4``, VXLAN or tunnels (for
    callers that use none of them); ``extras=False`` leaves the layer offsets (``vlan_off``,
    ``mpls_off``, ``ip_off``, ``l4_at``, ``l4_off``), the second VLAN id, ``ip_len``,
    ``frag_id``, ``more_frags``, ``l4`` and the ICMP type and code unset (sFlow's decoder
    uses none of them unless packet_ptr primitives are configured)."""
    start = np.asarray(start, np.int64)
    length = np.asarray(length, np.int64)
    n = len(start)
    out = Parsed(n)
    if not n:
        return out
    b = _Buf(buf)
    end = start + np.maximum(length, 0)
    kind = np.broadcast_to(np.asarray(kind, np.int64), (n,))
    # which first layers occur: a layer no packet has costs nothing
    has = np.bincount(np.clip(kind, 0, K_PPP + 1), minlength=K_PPP + 2) > 0
    pos = start.copy()
    et = np.zeros(n, np.int64)          # ethertype to follow; -1: IP, sniff the version
    live = np.zeros(n, bool)

    # --- link layers
    m = (kind == K_ETH) & (length >= 14) if has[K_ETH] else None
    if m is not None and m.any():
        i = np.nonzero(m)[0]
        s = start[i]
        if macs:
            h = b.rows(s, 14)                        # the whole header in one gather
            hv = h.view(_ETH_HDR).reshape(-1)
            byte_rows(out.dst_mac)[i] = hv["dst"]
            byte_rows(out.src_mac)[i] = hv["src"]
            et[i] = h.view(">u2")[:, 6]
        else:
            et[i] = b.be16(s + 12)
        pos[i] = s + 14
        live[i] = True
    for k, hl, eo, halen_at, addr_at in ((K_SLL, 16, 14, 4, 6), (K_SLL2, 20, 0, 11, 12)):
        if not has[k]:
            continue
        m = (kind == k) & (length >= hl)
        if m.any():
            i = np.nonzero(m)[0]
            et[i] = b.be16(start[i] + eo)
            pos[i] = start[i] + hl
            live[i] = True
            # the sender's link address is the source MAC when it is one
            hal = b.be16(start[i] + halen_at) if k == K_SLL else b.u8(start[i] + halen_at)
            if macs:
                j = i[hal == 6]
                out.src_mac[j] = b.rows(start[j] + addr_at, 6)
    if has[K_IP] or has[K_IPV4] or has[K_IPV6]:
        m = (kind == K_IP) | (kind == K_IPV4) | (kind == K_IPV6)
        et[m] = -1
        live[m] = True
    m = ((kind == K_NULL) | (kind == K_LOOP)) & (length >= 4) if has[K_NULL] or has[K_LOOP] \
        else None
    if m is not None and m.any():
        i = np.nonzero(m)[0]
        be = b.be32(start[i]).astype(np.int64)
        le = ((be & 0xFF) << 24) | ((be & 0xFF00) << 8) | ((be >> 8) & 0xFF00) | (be >> 24)
        fams = (2, 10, 24, 28, 30)
        ok = np.isin(be, fams) | ((kind[i] == K_NULL) & np.isin(le, fams))
        et[i[ok]] = -1
        pos[i[ok]] = start[i[ok]] + 4
        live[i[ok]] = True
    m = kind == K_MPLS if has[K_MPLS] else None
    if m is not None and m.any():
        et[m] = ETH_MPLS[0]
        live[m] = True
    # PPP (DLT_PPP, DLT_PPP_SERIAL), as 1.7.7's ppp_handler: 4 bytes at least; an
    # optional ff 03 (address, control); a protocol of one byte when odd, else two;
    # PPP's IPv4/IPv6/MPLS numbers or an Ethernet type
    m = (kind == K_PPP) & (length >= 4) if has[K_PPP] else None
    if m is not None and m.any():
        i = np.nonzero(m)[0]
        p = start[i].copy()
        hdlc = (b.u8(p) == 0xFF) & (b.u8(p + 1) == 0x03)
        p += np.where(hdlc, 2, 0)
        one = (b.u8(p) & 1) == 1
        proto = np.where(one, b.u8(p), b.be16(p)).astype(np.int64)
        p += np.where(one, 1, 2)
        pe = np.where((proto == 0x21) | (proto == ETH_IPV4), ETH_IPV4,
                      np.where((proto == 0x57) | (proto == ETH_IPV6), ETH_IPV6,
                               np.where((proto == 0x281) | (proto == 0x283), ETH_MPLS[0], 0)))
        ok = pe != 0
        et[i[ok]] = pe[ok]
        pos[i[ok]] = p[ok]
        live[i[ok]] = True

    # --- 802.1Q tags
    for _ in range(max_vlan_tags):
        t = np.nonzero(live & (et == ETH_8021Q))[0]
        if not len(t):
            break
        short = pos[t] + 4 > end[t]
        live[t[short]] = False
        t = t[~short]
        tag = b.rows(pos[t], 4).view(">u2")          # TCI, next type
        tci = tag[:, 0]
        first = out.vlan_tags[t] == 0
        f = t[first]
        out.vlan[f] = tci[first] & 0x0FFF
        out.cos[f] = tci[first] >> 13
        if extras:
            out.vlan_off[f] = pos[f]
            second = out.vlan_tags[t] == 1
            out.cvlan[t[second]] = tci[second] & 0x0FFF
        out.vlan_tags[t] += 1
        et[t] = tag[:, 1]
        pos[t] += 4
    # --- 802.3 with LLC (sFlow's decoder)
    if snap:
        t = np.nonzero(live & (et >= 0) & (et <= 1500))[0]
        if len(t):
            p = pos[t]
            enough = p + 8 <= end[t]
            is_snap = enough & (b.u8(p) == 0xAA) & (b.u8(p + 1) == 0xAA) & (b.u8(p + 2) == 3) & \
                (b.u8(p + 3) == 0) & (b.u8(p + 4) == 0) & (b.u8(p + 5) == 0)
            is_ip = enough & ~is_snap & (b.u8(p) == 6) & (b.u8(p + 1) == 6) & ((b.u8(p + 2) & 1) == 1)
            et[t[is_snap]] = b.be16(p[is_snap] + 6)
            pos[t[is_snap]] += 8
            et[t[is_ip]] = ETH_IPV4
            pos[t[is_ip]] += 3
    out.etype[:] = np.where(et > 0, et, 0)

    # --- MPLS label stacks
    t = np.nonzero(live & ((et == ETH_MPLS[0]) | (et == ETH_MPLS[1])))[0]
    if len(t):
        if extras:
            out.mpls_off[t] = pos[t]
        p = pos[t].copy()
        e = end[t]
        going = np.ones(len(t), bool)
        depth = np.zeros(len(t), np.int64)
        last = np.zeros(len(t), np.int64)
        for _ in range(max_mpls):
            g = np.nonzero(going & (p + 4 <= e))[0]
            going[:] = False
            if not len(g):
                break
            lab = b.be32(p[g]).astype(np.int64)
            top = depth[g] == 0
            out.mpls_top[t[g[top]]] = lab[top] >> 12
            depth[g] += 1
            last[g] = lab
            p[g] += 4
            going[g] = (lab & 0x100) == 0
        bos = (last & 0x100) != 0
        out.mpls_depth[t] = np.minimum(depth, 255)
        out.mpls_bottom[t[bos]] = last[bos] >> 12
        label = last >> 12
        nib = b.u8(p)
        nxt = np.where((label == 0) | (label == 3), ETH_IPV4,
                       np.where(label == 2, ETH_IPV6,
                                np.where(bos & (nib >= 0x45) & (nib <= 0x4F), ETH_IPV4,
                                         np.where(bos & (nib >= 0x60) & (nib <= 0x6F), ETH_IPV6, 0))))
        et[t] = np.where(depth > 0, nxt, 0)
        pos[t] = p

    # --- IP version
    t = np.nonzero(live & (et == -1))[0]
    if len(t):
        v = b.u8(pos[t]) >> 4
        k = kind[t]
        want4 = (k == K_IPV4) | ((k != K_IPV6) & (v == 4))
        want6 = (k == K_IPV6) | ((k != K_IPV4) & (v == 6))
        et[t] = np.where(want4, ETH_IPV4, np.where(want6, ETH_IPV6, 0))
    l4pos = np.full(n, -1, np.int64)
    proto = np.zeros(n, np.int64)
    out.l3[live & (et == ETH_IPV4)] = 4
    out.l3[live & (et == ETH_IPV6)] = 6

    # --- IPv4
    t = np.nonzero(live & (et == ETH_IPV4) & (pos + 20 <= end))[0]
    if len(t):
        p = pos[t]
        out.af[t] = 4
        h = b.rows(p, 20)                            # the fixed header in one gather
        h16 = h.view(">u2")
        ihl = (h[:, 0] & 0x0F).astype(np.int64) * 4
        out.tos[t] = h[:, 1]
        fo = h16[:, 3]
        first = (fo & 0x1FFF) == 0
        out.frag[t] = ~first
        if extras:
            out.ip_off[t] = p
            out.ip_len[t] = h16[:, 1]
            out.frag_id[t] = h16[:, 2]
            out.more_frags[t] = (fo & 0x2000) != 0
            out.l4_at[t] = p + ihl
        pr = h[:, 9]
        out.proto[t] = pr
        proto[t] = pr
        hv = h.view(_IPV4_ADDRS).reshape(-1)
        byte_cols4(out.src)[t] = hv["src"]
        byte_cols4(out.dst)[t] = hv["dst"]
        l4pos[t[first]] = p[first] + ihl[first]

    # --- IPv6
    t = np.nonzero(live & (et == ETH_IPV6) & (pos + 40 <= end))[0]
    if len(t):
        p = pos[t]
        out.af[t] = 6
        h = b.rows(p, 40)                            # the fixed header in one gather
        out.tos[t] = ((h[:, 0] & 0x0F) << 4) | (h[:, 1] >> 4)
        if extras:
            out.ip_off[t] = p
            out.ip_len[t] = h.view(">u2")[:, 2].astype(np.int64) + 40
        hv = h.view(_IPV6_ADDRS).reshape(-1)
        byte_rows(out.src)[t] = hv["src"]
        byte_rows(out.dst)[t] = hv["dst"]
        nh = h[:, 6].astype(np.int64)
        q = p + 40
        e = end[t]
        ok = np.ones(len(t), bool)
        for _ in range(max_ext):
            g = np.nonzero(ok & ((nh == 0) | (nh == 43) | (nh == 44) | (nh == 51) | (nh == 60)))[0]
            if not len(g):
                break
            short = q[g] + 8 > e[g]
            ok[g[short]] = False
            g = g[~short]
            h = nh[g]
            hl = b.u8(q[g] + 1).astype(np.int64)
            size = np.where(h == 51, (hl + 2) * 4, np.where(h == 44, 8, (hl + 1) * 8))
            fr = h == 44
            if fr.any():
                gf = g[fr]
                fo = b.be16(q[gf] + 2)
                out.frag[t[gf]] = (fo & 0xFFF8) != 0
                out.more_frags[t[gf]] = (fo & 1) != 0
                out.frag_id[t[gf]] = b.be32(q[gf] + 4)
            nh[g] = b.u8(q[g])
            q[g] += size
        out.proto[t] = np.where(ok, nh, 0)
        proto[t] = nh
        good = ok & ~out.frag[t]
        l4pos[t[good]] = q[good]
        if extras:
            out.l4_at[t[ok]] = q[ok]

    # --- transport
    t = np.nonzero(l4pos >= 0)[0] if transport else ()
    if len(t):
        p = l4pos[t]
        pr = proto[t]
        room = np.where(end[t] - p >= min_l4, end[t] - p, 0)
        # the first 16 transport bytes in one gather (ports, TCP flags, ICMP type and
        # code, the VXLAN header): bytes past a packet's end are read but not used
        h = b.rows(p, 16)
        h16 = h.view(">u2")
        # (each packet is written once here: np.where over all of them, not a boolean
        # selection of some, which numpy indexes several times slower)
        ports = ((pr == 6) | (pr == 17) | (pr == 132)) & (room >= 4)
        out.src_port[t] = np.where(ports, h16[:, 0], 0)
        out.dst_port[t] = np.where(ports, h16[:, 1], 0)
        tcp = (pr == 6) & (room >= 14)
        out.tcp_flags[t] = np.where(tcp, h[:, 13], 0)
        if extras:
            icmp = ((pr == 1) | (pr == 58)) & (room >= 2)
            out.icmp_type[t[icmp]] = h[icmp, 0]
            out.icmp_code[t[icmp]] = h[icmp, 1]
            out.l4[t] = np.where(pr == 6, room >= 20, np.where(pr == 17, room >= 8, room >= 4))
            out.l4_off[t] = p
        vx = (pr == 17) & (out.dst_port[t] == 4789) & (room >= 16) & ((h[:, 8] & 0x08) != 0)
        inner_rows, inner_at, inner_kind = [], [], []
        if vx.any():
            i, q = t[vx], p[vx]
            hv = h[vx]
            out.vxlan[i] = (hv[:, 12].astype(np.uint32) << 16) | \
                (hv[:, 13].astype(np.uint32) << 8) | hv[:, 14]
            inner_rows.append(i)
            inner_at.append(q + 16)
            inner_kind.append(np.full(len(i), K_ETH))
        if ipip:
            # IPv4 in IPv4/IPv6 (protocols 4 and 94), as sFlow's decoder reads them
            ii = (pr == 4) | (pr == 94)
            if ii.any():
                inner_rows.append(t[ii])
                inner_at.append(p[ii])
                inner_kind.append(np.full(int(ii.sum()), K_IPV4))
        if tunnels and inner_rows:
            i = np.concatenate(inner_rows)
            q = np.concatenate(inner_at)
            k = np.concatenate(inner_kind)
            o = np.argsort(i, kind="stable")
            i, q, k = i[o], q[o], k[o]
            out.inner_rows = i
            out.inner = parse(buf, q, end[i] - q, k, max_vlan_tags=max_vlan_tags, snap=snap,
                              max_mpls=max_mpls, max_ext=max_ext, min_l4=min_l4, tunnels=False,
                              extras=extras)
    return out


TUNNEL_FIELDS = ("tunnel_src_mac", "tunnel_dst_mac", "tunnel_src_host", "tunnel_dst_host",
                 "tunnel_proto", "tunnel_tos", "tunnel_src_port", "tunnel_dst_port")


def put_tunnel(out, r: Parsed, sel, tos=None) -> None:
    """Fill the tunnel_* fields of records ``out`` (made of packets ``sel`` of ``r``)
    from the frames inside VXLAN; ``tos(inner)`` may map the inner ToS."""
    names = out.dtype.names
    if "vxlan" in names:
        out["vxlan"] = r.vxlan[sel]
    if r.inner is None or not any(f in names for f in TUNNEL_FIELDS):
        return
    pos = np.full(r.n, -1, np.int64)
    pos[r.inner_rows] = np.arange(len(r.inner_rows))
    k = pos[sel]
    rec = np.nonzero(k >= 0)[0]
    k = k[rec]
    inn = r.inner
    ok = inn.af[k] > 0
    if "tunnel_src_mac" in names:
        out["tunnel_src_mac"][rec] = np.ascontiguousarray(inn.src_mac[k]).view("V6").reshape(-1)
    if "tunnel_dst_mac" in names:
        out["tunnel_dst_mac"][rec] = np.ascontiguousarray(inn.dst_mac[k]).view("V6").reshape(-1)
    for name, raw in (("tunnel_src_host", inn.src), ("tunnel_dst_host", inn.dst)):
        if name in names:
            out[name]["af"][rec] = np.where(ok, inn.af[k], 0)
            out[name]["addr"][rec] = np.ascontiguousarray(raw[k]).view("V16").reshape(-1)
    l4 = (inn.proto[k] == 6) | (inn.proto[k] == 17)
    if "tunnel_proto" in names:
        out["tunnel_proto"][rec] = inn.proto[k]
    if "tunnel_tos" in names:
        t = inn.tos[k] if tos is None else tos(inn, k)
        out["tunnel_tos"][rec] = t
    if "tunnel_src_port" in names:
        out["tunnel_src_port"][rec] = np.where(l4, inn.src_port[k], 0)
    if "tunnel_dst_port" in names:
        out["tunnel_dst_port"][rec] = np.where(l4, inn.dst_port[k], 0)
