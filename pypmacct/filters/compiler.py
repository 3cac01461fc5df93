"""Compile a parsed filter into a vectorised predicate over a record batch.

pmacct's nfacctd/sfacctd cannot run a BPF program on a flow record, so for every
record they build a small fake Ethernet frame (MACs, an optional 802.1Q tag, the MPLS
label stack, an IPv4 or IPv6 header with the addresses, protocol and ToS, and a
transport header with the ports and TCP flags; a fixed frame length of 100 bytes, 128
for IPv6 over MPLS) and run libpcap's compiled filter on it. The predicate here gives
the verdict that filter would give on that frame, computed on whole columns at once:

- the frame kind comes from the record: 802.1Q when ``vlan`` is non-zero (nfacctd:
  256 or more, see VLAN_MIN), a second (inner) tag when ``cvlan`` is non-zero too
  (not for nfacctd, whose fake frame has one tag at most), MPLS when
  ``mpls_stack_depth`` (or, without it, ``mpls_label_top``) is non-zero, IPv6 when an
  address is IPv6, else IPv4;
- a test that libpcap would make at a given depth (after ``vlan``/``mpls`` keywords)
  is true only on frames whose headers sit at that depth, as with libpcap;
- ``vlan`` and ``mpls`` themselves read the bytes libpcap reads at their depth (a tag's
  type and id, the ethertype, the previous label's bottom-of-stack bit, a label) from
  the frame's first bytes, built per record (``frame``): so ``mpls or mpls`` is true on
  an IPv4 frame without labels, as libpcap finds a clear bit in the IP header there;
- IPv6 ``tcp``/``udp``/``proto N`` also match a next header of 44 (fragment) whose
  following byte (the high byte of the source port in the fake frame) is N, as
  libpcap's code does.
"""
from __future__ import annotations

import numpy as np

from .parser import And, BinOp, FilterError, Leaf, Len, Load, Not, Num, Or, parse

_FRAME_FIELDS = ("src_host", "dst_host", "vlan", "mpls_stack_depth", "mpls_label_top")
_STACK_FIELDS = ("cvlan", "mpls_label_bottom", "tos", "proto", "src_port", "dst_port",
                 "tcp_flags", "export_proto_version")
_TPIDS = (0x8100, 0x88A8, 0x9100)
_L4 = (6, 17, 132)


class _View:
    """Lazily derived columns of one record array."""

    def __init__(self, records: np.ndarray, vlan_min: int = 1, inner_vlan: bool = True,
                 width: int = 0):
        self.r = records
        self.vlan_min = vlan_min
        self.inner_vlan = inner_vlan
        self.width = width
        self.n = len(records)
        self._c = {}

    def col(self, name, dtype=None):
        if name in self.r.dtype.names:
            a = self.r[name]
            return a.astype(dtype) if dtype is not None else a
        return np.zeros(self.n, dtype=dtype or np.uint32)

    def get(self, key):
        c = self._c.get(key)
        if c is None:
            c = self._c[key] = getattr(self, "_" + key)()
        return c

    def _addr_bytes(self, which):
        key = "addr_" + which
        c = self._c.get(key)
        if c is not None:
            return c
        if which not in self.r.dtype.names:
            c = np.zeros((self.n, 16), np.uint8), np.zeros(self.n, np.uint8)
        else:
            a = self.r[which]
            c = np.ascontiguousarray(a["addr"]).view(np.uint8).reshape(self.n, 16), a["af"]
        self._c[key] = c
        return c

    def _v6(self):
        s_af = self._addr_bytes("src_host")[1]
        d_af = self._addr_bytes("dst_host")[1]
        return (s_af == 6) | ((s_af == 0) & (d_af == 6))

    def _v4(self):
        return ~self.get("v6")

    def _src4(self):
        raw = self._addr_bytes("src_host")[0]
        return np.ascontiguousarray(raw[:, :4]).view(">u4").reshape(self.n).astype(np.uint32)

    def _dst4(self):
        raw = self._addr_bytes("dst_host")[0]
        return np.ascontiguousarray(raw[:, :4]).view(">u4").reshape(self.n).astype(np.uint32)

    def _src6(self):
        raw = self._addr_bytes("src_host")[0]
        return np.ascontiguousarray(raw).view(">u8").reshape(self.n, 2).astype(np.uint64)

    def _dst6(self):
        raw = self._addr_bytes("dst_host")[0]
        return np.ascontiguousarray(raw).view(">u8").reshape(self.n, 2).astype(np.uint64)

    def _proto(self):
        return self.col("proto", np.int32)

    def _sport(self):
        return self.col("src_port", np.int32)

    def _dport(self):
        return self.col("dst_port", np.int32)

    def _fv(self):
        return self.col("vlan", np.int32) >= self.vlan_min

    def _nv(self):
        """802.1Q tags in the frame: 0, 1, or 2 (an inner one from cvlan)."""
        fv = self.get("fv")
        n = fv.astype(np.int32)
        if self.inner_vlan:
            n += fv & (self.col("cvlan", np.int32) != 0)
        return n

    def _fm(self):
        if "mpls_stack_depth" in self.r.dtype.names:
            d = self.r["mpls_stack_depth"].astype(np.int32)
            if "mpls_label_top" in self.r.dtype.names:
                d = np.where((d == 0) & (self.r["mpls_label_top"] != 0), 1, d)
            return d
        return (self.col("mpls_label_top") != 0).astype(np.int32)

    def _flen(self):
        return np.where(self.get("v6") & (self.get("fm") > 0), 128, 100)

    # --- the fake frame's bytes, for proto[offset:size] loads ------------------------
    def _ip4_bytes(self):
        """IPv4 header + transport header as pmacct's fake frame holds them (n x 40)."""
        n = self.n
        b = np.zeros((n, 40), np.uint8)
        ver = self.col("export_proto_version", np.int32)
        b[:, 0] = np.where(ver == 5, 0x05, 0x45)     # nfacctd's v5 path leaves version 0
        b[:, 1] = self.col("tos", np.uint8)
        b[:, 9] = self.col("proto", np.uint8)
        raw = self._addr_bytes("src_host")[0]
        b[:, 12:16] = raw[:, :4]
        b[:, 16:20] = self._addr_bytes("dst_host")[0][:, :4]
        b[:, 20:40] = self.get("l4_bytes")
        return b

    def _ip6_bytes(self):
        n = self.n
        b = np.zeros((n, 60), np.uint8)
        b[:, 0] = 0x60
        b[:, 5] = 100
        b[:, 6] = self.col("proto", np.uint8)
        b[:, 7] = 64
        b[:, 8:24] = self._addr_bytes("src_host")[0]
        b[:, 24:40] = self._addr_bytes("dst_host")[0]
        b[:, 40:60] = self.get("l4_bytes")
        return b

    def _l4_bytes(self):
        n = self.n
        b = np.zeros((n, 20), np.uint8)
        sp, dp = self.col("src_port", np.uint16), self.col("dst_port", np.uint16)
        b[:, 0], b[:, 1] = sp >> 8, sp & 0xFF
        b[:, 2], b[:, 3] = dp >> 8, dp & 0xFF
        b[:, 13] = self.col("tcp_flags", np.uint8)
        return b

    def _ether_bytes(self):
        n = self.n
        b = np.zeros((n, 14), np.uint8)
        for name, at in (("dst_mac", 0), ("src_mac", 6)):
            if name in self.r.dtype.names:
                b[:, at:at + 6] = np.ascontiguousarray(self.r[name]).view(np.uint8).reshape(n, 6)
        et = np.where(self.get("fv"), 0x8100, np.where(self.get("fm") > 0, 0x8847,
                                                       np.where(self.get("v6"), 0x86DD, 0x0800)))
        b[:, 12], b[:, 13] = et >> 8, et & 0xFF
        return b

    def _frame(self):
        """The fake frame's first ``width`` bytes (n x width) and, per byte, whether the
        record does not know it (labels inside a stack deeper than two: the record has
        the top and the bottom one only). Ethernet header, the tags (TPID 0x8100, the
        id), the ethertype, the labels (bottom-of-stack bit on the last, TTL 0), then the
        IPv4/IPv6 and transport headers. Built per layout (tags, labels), a few slice
        assignments each."""
        n, w = self.n, self.width + 4
        nv, fm, v6 = self.get("nv"), self.get("fm"), self.get("v6")
        b = np.zeros((n, w), np.uint8)
        unk = np.zeros((n, w), bool)
        # (the MACs, bytes 0-11, are not built: the tests reading the frame start at 12)
        l3 = np.zeros((n, max(0, w - 14)), np.uint8)
        k = min(l3.shape[1], 40)
        l3[:, :k] = self.get("ip4_bytes")[:, :k]
        if v6.any():
            k6 = min(l3.shape[1], 60)
            l3[v6, :k6] = self.get("ip6_bytes")[v6, :k6]
        tci = [self.col(x, np.int64) & 0xFFF for x in ("vlan", "cvlan")]
        top = self.col("mpls_label_top", np.int64) & 0xFFFFF
        bottom = self.col("mpls_label_bottom", np.int64) & 0xFFFFF
        et = np.where(fm > 0, 0x8847, np.where(v6, 0x86DD, 0x0800))
        maxl = (w - 14) // 4 + 1                # labels past it lie beyond the bytes built
        depth = np.minimum(fm, maxl + 1)
        for lay_nv in range(3):
            for lay_fm in range(maxl + 2):
                rows = np.nonzero((nv == lay_nv) & (depth == lay_fm))[0]
                if not len(rows):
                    continue
                pos = 12
                for t in range(lay_nv):
                    b[rows, pos], b[rows, pos + 1] = 0x81, 0
                    b[rows, pos + 2], b[rows, pos + 3] = tci[t][rows] >> 8, tci[t][rows] & 0xFF
                    pos += 4
                b[rows, pos], b[rows, pos + 1] = et[rows] >> 8, et[rows] & 0xFF
                pos += 2
                d = fm[rows]
                for q in range(1, lay_fm + 1):
                    if pos >= w:
                        break
                    lab = top[rows] if q == 1 else np.where(d == q, bottom[rows], 0)
                    word = (lab << 12) | np.where(d == q, 0x100, 0)
                    for j in range(min(4, w - pos)):
                        b[rows, pos + j] = (word >> (24 - 8 * j)) & 0xFF
                    if q > 1:
                        unk[rows[d > q], pos:pos + 4] = True
                    pos += 4
                if lay_fm <= maxl and pos < w:
                    b[rows, pos:w] = l3[rows, :w - pos]
        return b, unk

    def be(self, offset: int, size: int):
        """Big-endian value of ``size`` frame bytes at ``offset``, and whether known."""
        b, unk = self.get("frame")
        val = np.zeros(self.n, np.int64)
        for j in range(size):
            val = (val << 8) | b[:, offset + j].astype(np.int64)
        return val, ~unk[:, offset:offset + size].any(axis=1)

    def mac(self, which):
        key = "mac_" + which
        c = self._c.get(key)
        if c is None:
            if which in self.r.dtype.names:
                raw = np.ascontiguousarray(self.r[which]).view(np.uint8).reshape(self.n, 6)
                pad = np.zeros((self.n, 8), np.uint8)
                pad[:, 2:] = raw
                c = pad.view(">u8").reshape(self.n).astype(np.uint64)
            else:
                c = np.zeros(self.n, np.uint64)
            self._c[key] = c
        return c

    def aligned(self, level):
        """Frames where libpcap's test for an IP header at this (vlan, mpls) depth
        passes. Without mpls: the ethertype after ``lv`` tags, so exactly ``lv`` tags
        and no label. After mpls: the bottom-of-stack bit of the label before and the
        IP version nibble, which hold where the tags and labels before the IP header
        add up to the depth (one tag and one label look like two labels)."""
        lv, lm = level
        nv, fm = self.get("nv"), self.get("fm")
        if not lm:
            return (nv == lv) & (fm == 0)
        ver = self.col("export_proto_version", np.int32)
        nibble = self.get("v6") | (ver != 5)        # NetFlow v5's fake IP header: 0x05
        return (fm >= 1) & (nv + fm == lv + lm) & nibble


def _dir(d, s, t):
    if d == "src":
        return s
    if d == "dst":
        return t
    if d == "and":
        return s & t
    return s | t


def _ip6proto(v, num):
    p = v.get("proto")
    return (p == num) | ((p == 44) & ((v.get("sport") >> 8) == num))


_PROTO_OF = {"tcp": 6, "udp": 17, "icmp": 1}
_M32 = np.uint64(0xFFFFFFFF)


def _arith(v: _View, node, level):
    """(values as uint64 holding 32-bit results, validity) of an arithmetic tree. A load
    is valid where libpcap's protocol check for it passes; a division by zero rejects."""
    if isinstance(node, Num):
        return np.full(v.n, node.value & 0xFFFFFFFF, np.uint64), None
    if isinstance(node, Len):
        return v.get("flen").astype(np.uint64), None
    if isinstance(node, Load):
        p = node.proto
        if p == "ether":
            raw, ok = v.get("ether_bytes"), None
        elif p == "ip":
            raw, ok = v.get("ip4_bytes"), v.aligned(level) & v.get("v4")
        elif p == "ip6":
            raw, ok = v.get("ip6_bytes"), v.aligned(level) & v.get("v6")
        else:
            # IPv4 only: on the IPv6 fake frame libpcap's fragment check never passes
            raw = v.get("l4_bytes")
            ok = v.aligned(level) & v.get("v4") & (v.get("proto") == _PROTO_OF[p])
        val = np.zeros(v.n, np.uint64)
        for i in range(node.size):
            val = (val << np.uint64(8)) | raw[:, node.offset + i].astype(np.uint64)
        return val, ok
    if isinstance(node, BinOp):
        a, oka = _arith(v, node.a, level)
        b, okb = _arith(v, node.b, level)
        ok = oka if okb is None else (okb if oka is None else oka & okb)
        op = node.op
        if op == "+":
            r = a + b
        elif op == "-":
            r = a - b
        elif op == "*":
            r = a * b
        elif op in ("/", "%"):
            zero = b == 0
            safe = np.where(zero, 1, b)
            r = a // safe if op == "/" else a % safe
            ok = ~zero if ok is None else ok & ~zero
        elif op == "&":
            r = a & b
        elif op == "|":
            r = a | b
        elif op == "^":
            r = a ^ b
        elif op == "<<":
            r = np.where(b < 32, a << np.minimum(b, np.uint64(31)), 0)
        else:
            r = np.where(b < 32, a >> np.minimum(b, np.uint64(31)), 0)
        return r & _M32, ok
    raise FilterError("internal: bad arithmetic node")


def _leaf(v: _View, lf: Leaf):
    k = lf.kind
    if k == "rel":
        op, a, b = lf.args
        x, oka = _arith(v, a, lf.level)
        y, okb = _arith(v, b, lf.level)
        r = {"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y,
             ">=": x >= y}[op]
        for ok in (oka, okb):
            if ok is not None:
                r = r & ok
        return r
    if k == "len":
        op, n = lf.args
        fl = v.get("flen")
        return fl <= n if op == "<=" else fl >= n
    if k == "ether":
        mac = int.from_bytes(lf.args[0], "big")
        return _dir(lf.dir, v.mac("src_mac") == mac, v.mac("dst_mac") == mac)
    if k == "vlan":
        # libpcap: a TPID where the ethertype is after lv tags, and the tag's id
        vid = lf.args[0]
        if not lf.level[0]:                       # the outer tag: the record's vlan
            out = v.get("nv") >= 1
            if vid is not None:
                out &= (v.col("vlan", np.int32) & 0xFFF) == vid
            return out
        at = 12 + 4 * lf.level[0]
        tpid, _ = v.be(at, 2)
        out = np.isin(tpid, _TPIDS)
        if vid is not None:
            tci, known = v.be(at + 2, 2)
            out &= known & ((tci & 0xFFF) == vid)
        return out
    if k == "mpls":
        # libpcap: the first 'mpls' checks the ethertype (after the tags), later ones
        # that the label before is not the bottom of the stack; then the label itself
        label = lf.args[0]
        lv, lm = lf.level
        pl = 14 + 4 * lv + 4 * lm                 # where this label would be
        if not lv and not lm:                     # the outer label: the record's top
            out = (v.get("nv") == 0) & (v.get("fm") >= 1)
            if label is not None:
                out &= (v.col("mpls_label_top", np.int64) & 0xFFFFF) == label
            return out
        if not lm:
            out = v.be(12 + 4 * lv, 2)[0] == 0x8847
        else:
            out = (v.be(pl - 2, 1)[0] & 1) == 0
        if label is not None:
            word, known = v.be(pl, 4)
            out &= known & ((word >> 12) == label)
        return out
    if k == "ethertype":
        num = lf.args[0]
        if lf.level[1]:
            raise FilterError("'ether proto' after 'mpls' is not supported", lf.pos)
        if num <= 1500:                 # an 802.3 length: LLC frames, none here
            return np.zeros(v.n, bool)
        if not lf.level[0]:
            fm, nv = v.get("fm"), v.get("nv")
            et = np.where(nv >= 1, 0x8100, np.where(fm > 0, 0x8847,
                                                    np.where(v.get("v6"), 0x86DD, 0x0800)))
            return et == num
        return v.be(12 + 4 * lf.level[0], 2)[0] == num
    al = v.aligned(lf.level)
    v4, v6 = v.get("v4"), v.get("v6")
    if k == "l3":
        return al & (v4 if lf.family == 4 else v6)
    if k == "proto":
        num = lf.args[0]
        p = v.get("proto")
        four = v4 & (p == num)
        six = v6 & _ip6proto(v, num)
        if lf.family == 4:
            return al & four
        if lf.family == 6:
            return al & six
        return al & (four | six)
    if k == "host4":
        value, mask = lf.args
        m = np.uint32(mask)
        s = (v.get("src4") & m) == np.uint32(value)
        d = (v.get("dst4") & m) == np.uint32(value)
        return al & v4 & _dir(lf.dir, s, d)
    if k == "host6":
        value, mask = lf.args
        hi, lo = np.uint64(value >> 64), np.uint64(value & (2**64 - 1))
        mh, ml = np.uint64(mask >> 64), np.uint64(mask & (2**64 - 1))
        s6, d6 = v.get("src6"), v.get("dst6")
        s = ((s6[:, 0] & mh) == hi) & ((s6[:, 1] & ml) == lo)
        d = ((d6[:, 0] & mh) == hi) & ((d6[:, 1] & ml) == lo)
        return al & v6 & _dir(lf.dir, s, d)
    if k == "port":
        lo, hi = lf.args
        p = v.get("proto")
        l4 = np.isin(p, _L4) if lf.l4 is None else (p == lf.l4)
        sp, dp = v.get("sport"), v.get("dport")
        hit = _dir(lf.dir, (sp >= lo) & (sp <= hi), (dp >= lo) & (dp <= hi))
        fam = v4 if lf.family == 4 else (v6 if lf.family == 6 else None)
        out = al & l4 & hit
        return out & fam if fam is not None else out
    raise FilterError(f"internal: unknown filter leaf {k}", lf.pos)


def _eval(v: _View, node):
    if isinstance(node, Leaf):
        return _leaf(v, node)
    if isinstance(node, Not):
        return ~_eval(v, node.item)
    if isinstance(node, And):
        out = _eval(v, node.items[0])
        for it in node.items[1:]:
            out = out & _eval(v, it)
        return out
    if isinstance(node, Or):
        out = _eval(v, node.items[0])
        for it in node.items[1:]:
            out = out | _eval(v, it)
        return out
    raise TypeError(node)


def _leaves(node):
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from _leaves(node.item)
    else:
        for it in node.items:
            yield from _leaves(it)


class Filter:
    """A compiled filter: ``f(records)`` is a boolean array, one verdict per record.
    ``vlan_min``: the lowest VLAN id that makes a tagged frame; ``inner_vlan``: whether
    ``cvlan`` makes a second tag (see VLAN_MIN, INNER_VLAN)."""

    def __init__(self, text: str, vlan_min: int = 1, inner_vlan: bool = True):
        self.text = text
        self.vlan_min = vlan_min
        self.inner_vlan = inner_vlan
        self.tree = parse(text)
        fields = set(_FRAME_FIELDS)
        self.width = 0                  # frame bytes the vlan/mpls/ether proto tests read
        for lf in _leaves(self.tree):
            if lf.kind in ("vlan", "mpls", "ethertype") and any(lf.level):
                self.width = max(self.width, 14 + 4 * (lf.level[0] + lf.level[1]) + 4)
                fields.update(_STACK_FIELDS)
            if any(lf.level):
                fields.update(("cvlan", "mpls_label_bottom"))
            if lf.kind in ("proto", "port"):
                fields.update(("proto", "src_port", "dst_port"))
            if lf.kind == "ether":
                fields.update(("src_mac", "dst_mac"))
            if lf.kind == "rel":
                fields.update(("proto", "src_port", "dst_port", "tcp_flags", "tos",
                               "src_mac", "dst_mac", "export_proto_version"))
        self.fields = frozenset(fields)
        # evaluate once on an empty batch so that errors found late surface now
        self(np.zeros(1, dtype=[("src_host", [("af", "u1"), ("addr", "V16")])]))

    def __call__(self, records: np.ndarray) -> np.ndarray:
        if len(records) == 0:
            return np.zeros(0, bool)
        view = _View(records, self.vlan_min, self.inner_vlan, self.width)
        return np.asarray(_eval(view, self.tree), dtype=bool)

    def __repr__(self):
        return f"Filter({self.text!r})"


# How a daemon's fake frame carries a VLAN: pmacct 1.7.7's nfacctd builds the 802.1Q frame
# only when the first (high) byte of the template's VLAN field is non-zero, so VLAN ids
# below 256 travel in an untagged frame (and "vlan 10" never matches there).
VLAN_MIN = {"nfacctd": 256}
# Whether a record's cvlan is a second tag of its frame: nfacctd's fake frame has one tag
# at most (a second 'vlan' reads the inner ethertype there and never matches); the other
# daemons run pmacct's filters on the packet itself, whose inner tag is our cvlan.
INNER_VLAN = {"nfacctd": False}


def compile_filter(text: str, daemon: str | None = None) -> Filter:
    return Filter(text, vlan_min=VLAN_MIN.get(daemon, 1),
                  inner_vlan=INNER_VLAN.get(daemon, True))
