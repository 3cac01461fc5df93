"""Compile a parsed filter into a vectorised predicate over a record batch.

pmacct's nfacctd/sfacctd cannot run a BPF program on a flow record, so for every
record they build a small fake Ethernet frame (MACs, an optional 802.1Q tag, the MPLS
label stack, an IPv4 or IPv6 header with the addresses, protocol and ToS, and a
transport header with the ports and TCP flags; a fixed frame length of 100 bytes, 128
for IPv6 over MPLS) and run libpcap's compiled filter on it. The predicate here gives
the verdict that filter would give on that frame, computed on whole columns at once:

- the frame kind comes from the record: 802.1Q when ``vlan`` is non-zero (nfacctd:
  256 or more, see VLAN_MIN), MPLS when
  ``mpls_stack_depth`` (or, without it, ``mpls_label_top``) is non-zero, IPv6 when an
  address is IPv6, else IPv4;
- a test that libpcap would make at a given depth (after ``vlan``/``mpls`` keywords)
  is true only on frames whose headers sit at that depth, as with libpcap;
- IPv6 ``tcp``/``udp``/``proto N`` also match a next header of 44 (fragment) whose
  following byte (the high byte of the source port in the fake frame) is N, as
  libpcap's code does.
"""
from __future__ import annotations

import numpy as np

from .parser import And, BinOp, FilterError, Leaf, Len, Load, Not, Num, Or, parse

_FRAME_FIELDS = ("src_host", "dst_host", "vlan", "mpls_stack_depth", "mpls_label_top")
_L4 = (6, 17, 132)


class _View:
    """Lazily derived columns of one record array."""

    def __init__(self, records: np.ndarray, vlan_min: int = 1):
        self.r = records
        self.vlan_min = vlan_min
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
        if which not in self.r.dtype.names:
            return np.zeros((self.n, 16), np.uint8), np.zeros(self.n, np.uint8)
        a = self.r[which]
        raw = np.ascontiguousarray(a["addr"]).view(np.uint8).reshape(self.n, 16)
        return raw, a["af"]

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
        """Frames whose L3 header is where a test at this (vlan, mpls) depth reads it."""
        lv, lm = level
        fv, fm = self.get("fv"), self.get("fm")
        ok = fv if lv else ~fv
        return ok & (fm == lm)


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
        vid = lf.args[0]
        out = v.get("fv").copy()
        if vid is not None:
            out &= (v.col("vlan", np.int32) & 0xFFF) == vid
        return out
    if k == "mpls":
        label = lf.args[0]
        lv = lf.level[0]
        out = (v.get("fv") if lv else ~v.get("fv")) & (v.get("fm") >= 1)
        if label is not None:
            out &= v.col("mpls_label_top", np.int64) == label
        return out
    if k == "ethertype":
        num = lf.args[0]
        lv = lf.level[0]
        fv, fm = v.get("fv"), v.get("fm")
        at = fv if lv else ~fv
        if lf.level[1]:
            raise FilterError("'ether proto' after 'mpls' is not supported", lf.pos)
        if num == 0x0800:
            return at & (fm == 0) & v.get("v4")
        if num == 0x86DD:
            return at & (fm == 0) & v.get("v6")
        if num == 0x8847:
            return at & (fm >= 1)
        if num in (0x8100, 0x88A8, 0x9100) and not lv:
            return fv.copy()
        return np.zeros(v.n, bool)
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
    """A compiled filter: ``f(records)`` is a boolean array, one verdict per record."""

    def __init__(self, text: str, vlan_min: int = 1):
        self.text = text
        self.vlan_min = vlan_min
        self.tree = parse(text)
        fields = set(_FRAME_FIELDS)
        for lf in _leaves(self.tree):
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
        return np.asarray(_eval(_View(records, self.vlan_min), self.tree), dtype=bool)

    def __repr__(self):
        return f"Filter({self.text!r})"


# How a daemon's fake frame carries a VLAN: pmacct 1.7.7's nfacctd builds the 802.1Q frame
# only when the first (high) byte of the template's VLAN field is non-zero, so VLAN ids
# below 256 travel in an untagged frame (and "vlan 10" never matches there).
VLAN_MIN = {"nfacctd": 256}


def compile_filter(text: str, daemon: str | None = None) -> Filter:
    return Filter(text, vlan_min=VLAN_MIN.get(daemon, 1))
