"""The nfprobe flow table: packets into bidirectional flows, batch by batch.

pmacct 1.7.7's nfprobe (softflowd's flow tracker) keys a flow on the address family,
both addresses, the protocol, both ports and both interfaces, stored canonically: side 0
is the numerically lower address (so both directions of a conversation meet in one
flow). Per side it sums octets and packets and ORs TCP flags; what the first packet of a
flow carries (MACs, VLAN, masks, ASNs, MPLS label) stays; the ToS is the last packet's
(the other side's is cleared then, as 1.7.7 does); tags and the direction are each
side's first non-zero value. ICMP type and code travel in the destination port.

Everything here works on whole batches: the batch's packets are grouped by flow key
with ``np.unique``, matched against the table's keys in one more ``np.unique``, and the
per-side sums are ``bincount``s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .export import DIRECTION_IN, DIRECTION_OUT, FlowColumns

R_GENERAL, R_TCP, R_TCP_RST, R_TCP_FIN, R_UDP, R_ICMP, R_MAXLIFE, R_OVERBYTES, \
    R_OVERFLOWS, R_FLUSH = range(10)
REASONS = ("general", "tcp", "tcp.rst", "tcp.fin", "udp", "icmp", "maxlife", "overbytes",
           "maxflows", "flush")

IFINDEX_STATIC, IFINDEX_TAG, IFINDEX_TAG2 = 1, 2, 3

KEY_DTYPE = np.dtype([("af", "u1"), ("a0", "V16"), ("a1", "V16"), ("proto", "u1"),
                      ("p0", ">u2"), ("p1", ">u2"), ("i0", ">u4"), ("i1", ">u4")])

_VKEY = np.dtype((np.void, KEY_DTYPE.itemsize))
_M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)


def _key_hash(keys: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each flow key (46 bytes, zero-padded to six words)."""
    n = len(keys)
    raw = np.zeros((n, 48), np.uint8)
    raw[:, :KEY_DTYPE.itemsize] = keys.view(np.uint8).reshape(n, KEY_DTYPE.itemsize)
    w = raw.view(np.uint64)
    h = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for i in range(6):
            h = (h ^ w[:, i]) * _M1
            h ^= h >> np.uint64(31)
        h *= _M2
        h ^= h >> np.uint64(29)
    return h


@dataclass
class Timeouts:
    tcp: int = 3600
    tcp_rst: int = 120
    tcp_fin: int = 300
    udp: int = 300
    icmp: int = 300
    general: int = 3600
    maxlife: int = 604800
    expint: int = 60

    NAMES = {"tcp": "tcp", "tcp.rst": "tcp_rst", "tcp.fin": "tcp_fin", "udp": "udp",
             "icmp": "icmp", "general": "general", "maxlife": "maxlife", "expint": "expint"}

    @classmethod
    def parse(cls, spec: str | None) -> "Timeouts":
        """'name=value:name=value...'; values in seconds, or with softflowd's unit
        letters (s, m, h, d, w) as convtime() reads them."""
        t = cls()
        if not spec:
            return t
        for part in spec.strip().split(":"):
            name, eq, value = part.partition("=")
            name = name.strip()
            if not eq or not value.strip():
                raise ValueError(f"invalid nfprobe_timeouts option: '{part}'")
            if name not in cls.NAMES:
                raise ValueError(f"invalid nfprobe_timeouts option: '{name}' (known: "
                                 f"{', '.join(cls.NAMES)})")
            secs = _convtime(value.strip())
            if secs is None:
                raise ValueError(f"invalid nfprobe_timeouts value: '{value}'")
            if name == "general" and secs == 0:
                raise ValueError("'general' flow timeout must be greater than zero")
            setattr(t, cls.NAMES[name], secs)
        return t


def _convtime(s: str) -> int | None:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total, num = 0, ""
    for ch in s.lower():
        if ch.isdigit():
            num += ch
        elif ch in units and num:
            total += int(num) * units[ch]
            num = ""
        else:
            return None
    if num:
        total += int(num)
    return total


# columns of the table: name -> (dtype, per-side shape)
_COLS = {
    "key": (KEY_DTYPE, ()),
    "af": (np.uint8, ()), "addr": (np.uint8, (2, 16)), "port": (np.uint16, (2,)),
    "proto": (np.uint8, ()), "ifindex": (np.uint32, (2,)),
    "octets": (np.uint64, (2,)), "packets": (np.uint64, (2,)),
    "tcp_flags": (np.uint8, (2,)), "tos": (np.uint8, (2,)), "direction": (np.uint8, (2,)),
    "tag": (np.uint64, (2,)), "tag2": (np.uint64, (2,)), "mac": (np.uint8, (2, 6)),
    "vlan": (np.uint16, ()), "mask": (np.uint8, (2,)), "asn": (np.uint32, (2,)),
    "mpls": (np.uint32, (2,)), "start": (np.int64, ()), "last": (np.int64, ()),
    "seq": (np.uint64, ()), "expires": (np.int64, ()), "reason": (np.uint8, ()),
}


class FlowTable:
    def __init__(self, timeouts: Timeouts, version: int, direction: str | None = None,
                 ifindex_type: int = 0, ifindex_value: int = 0, ifindex_override: bool = False,
                 dont_cache: bool = False):
        self.t = timeouts
        self.version = version
        self.direction = direction           # None, "in", "out", "tag", "tag2"
        self.ifindex_type = ifindex_type
        self.ifindex_value = ifindex_value
        self.ifindex_override = ifindex_override
        self.dont_cache = dont_cache
        self.n = 0
        self.cap = 0
        self._sh = np.zeros(0, np.uint64)     # key hashes of the table's flows, sorted
        self._sr = np.zeros(0, np.int64)      # ... and their rows
        self.c: dict[str, np.ndarray] = {}
        self._grow(1024)
        self.next_seq = 1
        self.bad_packets = 0
        self.total_packets = 0
        self.expired_by_reason = [0] * len(REASONS)

    def __len__(self):
        return self.n

    def _grow(self, need: int) -> None:
        if need <= self.cap:
            return
        cap = max(need, 2 * self.cap, 1024)
        for name, (dt, shape) in _COLS.items():
            new = np.zeros((cap,) + shape, dt)
            if self.n:
                new[:self.n] = self.c[name][:self.n]
            self.c[name] = new
        self.cap = cap

    # --- packets in ----------------------------------------------------------------
    def add(self, r: np.ndarray) -> None:
        """Account a batch of packet records (fields: src_host, dst_host, proto, ...)."""
        names = r.dtype.names
        af = r["src_host"]["af"]
        good = (af == 4) | (af == 6)
        if not good.all():
            self.bad_packets += int((~good).sum())
            r = r[good]
            af = af[good]
        n = len(r)
        if n == 0:
            return
        self.total_packets += n

        def col(name, dt=np.int64):
            return r[name].astype(dt) if name in names else np.zeros(n, dt)

        src = np.frombuffer(r["src_host"]["addr"].tobytes(), np.uint8).reshape(n, 16)
        dst = np.frombuffer(r["dst_host"]["addr"].tobytes(), np.uint8).reshape(n, 16)
        sw = src.view(">u8").reshape(n, 2)
        dw = dst.view(">u8").reshape(n, 2)
        ndx = (sw[:, 0] > dw[:, 0]) | ((sw[:, 0] == dw[:, 0]) & (sw[:, 1] > dw[:, 1]))
        proto = col("proto")
        sport, dport = col("src_port"), col("dst_port")
        ported = (proto == 6) | (proto == 17)
        icmp = (proto == 1) | (proto == 58)
        icmp_tc = (col("icmp_type") << 8) | col("icmp_code")
        p_src = np.where(ported, sport, 0)
        p_dst = np.where(ported, dport, np.where(icmp, icmp_tc, 0))
        tag, tag2 = col("tag", np.uint64), col("tag2", np.uint64)
        # direction of each packet
        pdir = np.zeros(n, np.int64)
        if self.direction == "in":
            pdir[:] = DIRECTION_IN
        elif self.direction == "out":
            pdir[:] = DIRECTION_OUT
        elif self.direction in ("tag", "tag2"):
            tv = tag if self.direction == "tag" else tag2
            pdir = np.where(tv == 1, DIRECTION_IN, np.where(tv == 2, DIRECTION_OUT, 0))
        # interfaces: the packet's own, else (or with override) nfprobe_ifindex's
        in_if, out_if = col("in_iface"), col("out_iface")
        if self.ifindex_type:
            if self.ifindex_type == IFINDEX_STATIC:
                val = np.full(n, self.ifindex_value, np.int64)
            else:
                val = ((tag if self.ifindex_type == IFINDEX_TAG else tag2)
                       & np.uint64(0xFFFFFFFF)).astype(np.int64)
            for ifs, d in ((in_if, DIRECTION_IN), (out_if, DIRECTION_OUT)):
                take = (pdir == d) & (val != 0)
                if not self.ifindex_override:
                    take &= ifs == 0
                ifs[take] = val[take]
        keys = np.zeros(n, KEY_DTYPE)
        keys["af"] = af
        side = ndx[:, None]
        a0 = np.where(side, dst, src)
        a1 = np.where(side, src, dst)
        keys["a0"] = np.ascontiguousarray(a0).view("V16").reshape(-1)
        keys["a1"] = np.ascontiguousarray(a1).view("V16").reshape(-1)
        keys["proto"] = proto
        keys["p0"] = np.where(ndx, p_dst, p_src)
        keys["p1"] = np.where(ndx, p_src, p_dst)
        keys["i0"] = np.where(ndx, out_if, in_if)
        keys["i1"] = np.where(ndx, in_if, out_if)

        # rows: existing flows or new ones (in order of first appearance)
        if self.dont_cache:
            first = np.arange(n)
            grp = np.arange(n)
            ng = n
            row_of_group = np.full(ng, -1, np.int64)
        else:
            h = _key_hash(keys)
            first, grp, row_of_group = self._lookup(keys, h)
            ng = len(first)
        new_g = np.nonzero(row_of_group < 0)[0]
        new_g = new_g[np.argsort(first[new_g], kind="stable")]
        nn = len(new_g)
        self._grow(self.n + nn)
        rows_new = np.arange(self.n, self.n + nn)
        row_of_group[new_g] = rows_new
        if not self.dont_cache and nn:
            hn = h[first[new_g]]
            o = np.argsort(hn, kind="stable")
            at = np.searchsorted(self._sh, hn[o])
            self._sh = np.insert(self._sh, at, hn[o])
            self._sr = np.insert(self._sr, at, rows_new[o])
        c = self.c
        fi = first[new_g]                    # first packet of each new flow
        sf = ndx[fi].astype(np.int64)
        of = 1 - sf
        c["key"][rows_new] = keys[fi]
        c["af"][rows_new] = af[fi]
        c["addr"][rows_new, 0] = a0[fi]
        c["addr"][rows_new, 1] = a1[fi]
        c["port"][rows_new, 0] = keys["p0"][fi]
        c["port"][rows_new, 1] = keys["p1"][fi]
        c["proto"][rows_new] = proto[fi]
        c["ifindex"][rows_new, 0] = keys["i0"][fi]
        c["ifindex"][rows_new, 1] = keys["i1"][fi]
        if "src_mac" in names:
            sm = np.frombuffer(r["src_mac"].tobytes(), np.uint8).reshape(n, 6)
            c["mac"][rows_new, sf] = sm[fi]
        if "dst_mac" in names:
            dm = np.frombuffer(r["dst_mac"].tobytes(), np.uint8).reshape(n, 6)
            c["mac"][rows_new, of] = dm[fi]
        c["vlan"][rows_new] = col("vlan")[fi]
        c["mask"][rows_new, sf] = col("src_mask")[fi]
        c["mask"][rows_new, of] = col("dst_mask")[fi]
        c["asn"][rows_new, sf] = col("src_as")[fi]
        c["asn"][rows_new, of] = col("dst_as")[fi]
        c["mpls"][rows_new, sf] = col("mpls_label_top")[fi]
        ts = col("time_start")
        c["start"][rows_new] = ts[fi]
        c["seq"][rows_new] = np.arange(self.next_seq, self.next_seq + nn)
        self.next_seq += nn
        c["expires"][rows_new] = 0 if self.dont_cache else 1
        c["reason"][rows_new] = R_GENERAL
        if self.direction in ("in", "out"):
            c["direction"][rows_new, sf] = pdir[fi]
        self.n += nn

        # per-side sums
        # (groups are the batch's flows, one row each: sums go by group, then to rows)
        row = row_of_group[grp]
        s = ndx.astype(np.int64)
        cell = row * 2 + s
        gcell = grp * 2 + s
        for name, vals in (("octets", col("bytes")), ("packets", col("packets"))):
            add = np.bincount(gcell, weights=vals.astype(np.float64), minlength=2 * ng)
            c[name][row_of_group] += add.reshape(ng, 2).astype(np.uint64)
        tf = c["tcp_flags"][:self.n].reshape(-1)
        np.bitwise_or.at(tf, cell, col("tcp_flags").astype(np.uint8))
        # the last packet of each flow: its ToS on its side, the other side's cleared
        lastpos = np.full(ng, -1, np.int64)
        np.maximum.at(lastpos, grp, np.arange(n))
        touched = row_of_group
        lp = lastpos
        c["tos"][touched] = 0
        # (1.7.7 never sets the ToS of IPv6 flows)
        c["tos"][touched, s[lp]] = np.where(af[lp] == 4, col("tos")[lp], 0)
        c["last"][touched] = ts[lp]
        # each side's first non-zero tag, tag2 and (tag modes) direction
        firsts = [("tag", tag), ("tag2", tag2)]
        if self.direction in ("tag", "tag2"):
            firsts.append(("direction", pdir))
        for name, vals in firsts:
            nz = np.nonzero(vals != 0)[0]
            if len(nz) == 0:
                continue
            ucell, at = np.unique(cell[nz], return_index=True)
            flat = c[name][:self.n].reshape(-1)
            empty = flat[ucell] == 0
            flat[ucell[empty]] = vals[nz[at[empty]]]
        self._update_expiry(touched)

    def _lookup(self, keys: np.ndarray, h: np.ndarray):
        """Group the batch by flow and find each group's row (-1: new flow):
        (first packet of each group, group of each packet, row of each group).

        By key hash: one sort of the batch's hashes and a binary search into the
        table's sorted hashes, with every match checked on the whole key. Should two
        keys ever share a hash, the batch is grouped on the whole keys instead."""
        kv = keys.view(_VKEY).reshape(-1)
        uh, first, grp = np.unique(h, return_index=True, return_inverse=True)
        grp = grp.reshape(-1)
        ok = bool((kv == kv[first[grp]]).all())
        row_of_group = np.full(len(uh), -1, np.int64)
        if ok and len(self._sh):
            pos = np.searchsorted(self._sh, uh)
            pc = np.minimum(pos, len(self._sh) - 1)
            hit = (pos < len(self._sh)) & (self._sh[pc] == uh)
            cand = self._sr[pc[hit]]
            tk = self.c["key"][cand].view(_VKEY).reshape(-1)
            ok = bool((tk == kv[first[hit]]).all())
            row_of_group[hit] = cand
        if ok:
            return first, grp, row_of_group
        # exact grouping on the whole keys (a hash collision)
        uk, first, grp = np.unique(kv, return_index=True, return_inverse=True)
        grp = grp.reshape(-1)
        row_of_group = np.full(len(uk), -1, np.int64)
        if self.n:
            tk = self.c["key"][:self.n].view(_VKEY).reshape(-1)
            both = np.concatenate([tk, uk])
            _, inv = np.unique(both, return_inverse=True)
            inv = inv.reshape(-1)
            table_of = np.full(len(both), -1, np.int64)
            table_of[inv[:self.n]] = np.arange(self.n)
            row_of_group = table_of[inv[self.n:]]
        return first, grp, row_of_group

    def _update_expiry(self, rows: np.ndarray) -> None:
        c, t = self.c, self.t
        live = rows[c["expires"][rows] != 0]
        if len(live) == 0:
            return
        octets = c["octets"][live]
        limit = np.uint64(1 << 63) if self.version in (9, 10) else np.uint64(1 << 31)
        over = (octets > limit).any(axis=1)
        start_s = c["start"][live] // 1_000_000
        last_s = c["last"][live] // 1_000_000
        maxlife = (t.maxlife != 0) & (last_s - start_s > t.maxlife)
        proto = c["proto"][live]
        af = c["af"][live]
        flags = c["tcp_flags"][live]
        tcp = proto == 6
        rst = tcp & (t.tcp_rst != 0) & ((flags & 0x04) != 0).any(axis=1)
        fin = tcp & (t.tcp_fin != 0) & ((flags & 0x01) != 0).all(axis=1)
        tcp_t = tcp & (t.tcp != 0)
        udp = (proto == 17) & (t.udp != 0)
        icmp = (t.icmp != 0) & (((af == 4) & (proto == 1)) | ((af == 6) & (proto == 58)))
        conds = [over, maxlife, rst, fin, tcp_t, udp, icmp]
        reasons = [R_OVERBYTES, R_MAXLIFE, R_TCP_RST, R_TCP_FIN, R_TCP, R_UDP, R_ICMP]
        secs = [0, 0, t.tcp_rst, t.tcp_fin, t.tcp, t.udp, t.icmp]
        reason = np.select(conds, reasons, R_GENERAL)
        timeout = np.select(conds, secs, t.general)
        immediate = over | maxlife
        c["reason"][live] = reason
        c["expires"][live] = np.where(immediate, 0, last_s + timeout)

    # --- expiry -----------------------------------------------------------------------
    def next_check(self) -> float | None:
        """When 1.7.7 would next scan for expired flows (expint-clustered), or None."""
        if self.n == 0:
            return None
        e = self.c["expires"][:self.n]
        if (e == 0).any():
            return 0.0
        m = int(e.min())
        iv = self.t.expint
        if iv > 1 and m % iv:
            m += iv - m % iv
        return float(m) + 1.0

    def force(self, count: int) -> None:
        """Mark the ``count`` flows nearest expiry (then the oldest) for immediate export."""
        if count <= 0 or self.n == 0:
            return
        order = self._order()
        pick = order[:count]
        self.c["expires"][pick] = 0
        self.c["reason"][pick] = R_OVERFLOWS

    def _order(self) -> np.ndarray:
        c = self.c
        return np.lexsort((c["seq"][:self.n], c["expires"][:self.n]))

    def expire(self, mode: str, now: float = 0.0) -> FlowColumns:
        """Remove and return the expired flows in 1.7.7's order (expiry time, then
        creation). mode: 'all' (shutdown), 'forced' (immediate ones only: savefiles),
        'normal' (immediate ones and those whose time has passed)."""
        c = self.c
        if self.n == 0:
            return self._columns(np.zeros(0, np.int64))
        order = self._order()
        e = c["expires"][order]
        if mode == "all":
            sel = order
            c["reason"][sel] = R_FLUSH
        elif mode == "forced":
            sel = order[e == 0]
        else:
            sel = order[(e == 0) | (e < int(now))]
        for rsn, cnt in zip(*np.unique(c["reason"][sel], return_counts=True)):
            self.expired_by_reason[int(rsn)] += int(cnt)
        out = self._columns(sel)
        keep = np.ones(self.n, bool)
        keep[sel] = False
        idx = np.nonzero(keep)[0]
        if len(self._sh):
            newrow = np.cumsum(keep) - 1
            stay = keep[self._sr]
            self._sh = self._sh[stay]
            self._sr = newrow[self._sr[stay]]
        for name in _COLS:
            c[name][:len(idx)] = c[name][idx]
        # clear the freed tail: new flows start from zeros
        for name in _COLS:
            c[name][len(idx):self.n] = np.zeros_like(c[name][len(idx):self.n])
        self.n = len(idx)
        return out

    def _columns(self, sel: np.ndarray) -> FlowColumns:
        c = self.c
        return FlowColumns(**{name: c[name][sel].copy() for name in (
            "af", "addr", "port", "proto", "ifindex", "octets", "packets", "tcp_flags",
            "tos", "direction", "tag", "tag2", "mac", "vlan", "mask", "asn", "mpls",
            "start", "last")})
