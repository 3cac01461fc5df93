"""Compiled decoding plans: from a template to record columns, one numpy step per field.

``Plan(template, opts, record_dtype)`` looks at which elements the template carries,
picks for every record field the element pmacct 1.7.7 would read (see ``ie``), and
builds a numpy dtype with a named view at each needed offset. ``Plan.fill`` then turns
the records of that template (gathered from any number of data sets and datagrams) into
record columns: every step is a vectorised operation over all of them.

Only the fields of ``record_dtype`` are decoded: a step whose output fields are all
absent from it is not compiled at all, so a narrow record (the fields the plugins need)
costs only what it holds. Any dtype whose fields are a subset of ``RECORD_DTYPE``'s
(with the same field dtypes) plus custom fields works.

Header values (export time, uptime, sequence number, exporter...) come per record
through ``Env``, gathered on first use.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ..record import ADDR_DTYPE, SAMPLE_EVENT, SAMPLE_FLOW, SAMPLE_FLOW_MPLS, SAMPLE_OPTION
from . import ie as E
from .ie import be_uint
from .sampling import lookup_many

US = 1_000_000
_U32 = 1 << 32


class DgColumns:
    """Header values of the datagrams of one decode() call, one array per value,
    indexed by datagram number."""
    __slots__ = ("version", "unix", "uptime", "seq", "sysid", "arrival", "exporter",
                 "sampling", "engine")

    def __init__(self, n: int):
        self.version = np.zeros(n, np.uint16)
        self.unix = np.zeros(n, np.int64)
        self.uptime = np.zeros(n, np.int64)
        self.seq = np.zeros(n, np.uint32)
        self.sysid = np.zeros(n, np.uint32)
        self.arrival = np.zeros(n, np.int64)
        self.exporter = np.zeros(n, np.int64)
        self.sampling = np.zeros(n, np.uint16)
        self.engine = np.zeros(n, np.uint16)


class Env:
    """Per-record header values for one block of records of one group. Each value is
    gathered from the datagram columns the first time a step asks for it."""

    def __init__(self, rdg, rctx, dgs: DgColumns, contexts, vvalues, strings, peers,
                 only_version: int = 0):
        self.n = len(rdg)
        self.only_version = only_version      # 5, 9 or 10 if every record has it, else 0
        self.rdg = rdg                # datagram number of each record
        self.ctx_index = rctx         # index into ``contexts`` of each record
        self.contexts = contexts      # exporters.Context (or None) per distinct context
        self.vvalues = vvalues        # variable-length field values
        self.strings = strings        # record.StringTable
        self._d = dgs
        self._peers = peers           # callable (rdg, rctx) -> ADDR_DTYPE per record

    @cached_property
    def version(self):
        return self._d.version[self.rdg]

    @cached_property
    def unix_secs(self):
        return self._d.unix[self.rdg]

    @cached_property
    def uptime(self):
        return self._d.uptime[self.rdg]

    @cached_property
    def seqno(self):
        return self._d.seq[self.rdg]

    @cached_property
    def sysid(self):
        return self._d.sysid[self.rdg]

    @cached_property
    def arrival(self):
        return self._d.arrival[self.rdg]

    @cached_property
    def sampling(self):
        return self._d.sampling[self.rdg]

    @cached_property
    def engine(self):
        return self._d.engine[self.rdg]

    @cached_property
    def peer(self):
        """The exporter's address per record, or the one options data announced, as
        ``V17`` (an ADDR_DTYPE's bytes)."""
        return self._peers(self.rdg, self.ctx_index)

    @cached_property
    def any_samplers(self) -> bool:
        """Does any context of the batch know a sampling rate?"""
        return any(c is not None and (c.samplers or c.system_samplers) for c in self.contexts)


def _addr_bytes(u1: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 address bytes -> (n,) V16 with the address first."""
    out = np.zeros((u1.shape[0], 16), dtype=np.uint8)
    out[:, :width] = u1[:, :width]
    return out.view("V16").reshape(-1)


# How far "after" its export header a flow may be stamped and still be read as exporter
# clock jitter (that far after the export) rather than as pmacct's unsigned wrap (~49 days
# back).
JITTER_MS = 3_600_000


def flow_age(x: np.ndarray, jitter: int = JITTER_MS) -> np.ndarray:
    """(uptime - switched) as int64, modulo 2^32 as pmacct's unsigned 32-bit arithmetic
    takes it (a flow 30 days old is 30 days old, the counter's wrap is undone), except
    that a difference less than ``jitter`` below 2^32 is that small negative number.
    ``jitter`` is in the counter's unit (ms, or s with ``nfacctd_time_secs``)."""
    d = x & 0xFFFFFFFF
    d[d > _U32 - jitter] -= _U32
    return d


def ms_to_s(d: np.ndarray) -> np.ndarray:
    """Milliseconds (int64, within +-2^32) to whole seconds, rounding toward zero as C
    does (exact through float64 at this range)."""
    return (d / 1000).astype(np.int64)


def col_bytes(tgt: np.ndarray, name: str, start: int, fmt) -> np.ndarray:
    """A 1-D view of ``fmt`` at byte ``start`` of field ``name`` in every row of the
    (contiguous) record array ``tgt``: writes land in the records."""
    off = tgt.dtype.fields[name][1] + start
    return np.ndarray((len(tgt),), dtype=fmt, buffer=tgt, offset=off, strides=(tgt.strides[0],))


def put_addr(tgt: np.ndarray, name: str, af: int, raw_addr: np.ndarray, width: int, sel=None) -> None:
    """Write address ``raw_addr`` (a 1-D ``V<width>`` column) into the address field
    ``name`` with family ``af``, in all rows or the rows of mask ``sel``. The rest of
    the 16 address bytes are left as they are: the output starts zeroed and every
    address field is written at most once per row."""
    afv = col_bytes(tgt, name, 0, np.uint8)
    adv = col_bytes(tgt, name, 1, f"V{width}")
    if sel is None:
        afv[...] = af
        adv[...] = raw_addr
    else:
        afv[sel] = af
        adv[sel] = raw_addr[sel]


class Plan:
    """How to decode the records of one template into ``record_dtype``."""

    def __init__(self, tpl, opts, record_dtype):
        self.tpl = tpl
        self.opts = opts
        self.record_dtype = record_dtype
        self.fields = frozenset(record_dtype.names)
        self._views: list[tuple[str, object, int]] = []
        self._names: dict[tuple, str] = {}
        self.steps: list = []
        self._compile()
        names = [v[0] for v in self._views]
        self.dtype = np.dtype({"names": names, "formats": [v[1] for v in self._views],
                               "offsets": [v[2] for v in self._views],
                               "itemsize": max(tpl.reclen, 1)})

    def want(self, *names) -> bool:
        """Does the record hold any of these fields?"""
        f = self.fields
        return any(n in f for n in names)

    def _step(self, fn) -> None:
        self.steps.append(fn)

    # --- views into the record ---
    def _view(self, offset: int, fmt) -> str:
        key = (offset, str(fmt))
        name = self._names.get(key)
        if name is None:
            name = f"v{len(self._views)}"
            self._names[key] = name
            self._views.append((name, fmt, offset))
        return name

    def _int(self, slot):
        """raw -> unsigned integer column (big-endian value of any width 1..8)."""
        if slot is None or slot.length == 0 or slot.vlen:
            return None
        n = min(slot.length, 8)
        off = slot.offset
        if n in (1, 2, 4, 8):
            name = self._view(off, f">u{n}")
            return lambda raw, name=name: raw[name]
        # odd widths: read a wider word overlapping a neighbour, then shift or mask
        wide = 4 if n == 3 else 8
        reclen = self.tpl.reclen
        if off + wide <= reclen:
            name = self._view(off, f">u{wide}")
            shift = np.uint64(8 * (wide - n)) if wide == 8 else np.uint32(8 * (wide - n))
            return lambda raw, name=name, shift=shift: raw[name] >> shift
        if off + n - wide >= 0:
            name = self._view(off + n - wide, f">u{wide}")
            mask = (1 << (8 * n)) - 1
            return lambda raw, name=name, mask=mask: raw[name] & mask
        name = self._view(off, ("u1", (n,)))
        return lambda raw, name=name: be_uint(raw[name])

    def _bytes(self, slot, n: int):
        """raw -> (records, n) uint8, or None if the slot is shorter than n."""
        if slot is None or slot.vlen or slot.length < n:
            return None
        name = self._view(slot.offset, ("u1", (n,)))
        return lambda raw, name=name: raw[name]

    def _vbytes(self, slot, n: int):
        """raw -> (records,) V<n>: the first n bytes of the slot, or None if shorter."""
        if slot is None or slot.vlen or slot.length < n:
            return None
        name = self._view(slot.offset, f"V{n}")
        return lambda raw, name=name: raw[name]

    def _first(self, chain, lengths=None):
        for ie in chain:
            s = self.tpl.find(ie)
            if s is not None and not s.vlen and s.length and (lengths is None or s.length in lengths):
                return s
        return None

    # --- compile ---
    def _compile(self):
        t, o = self.tpl, self.opts
        want = self.want

        # what kind of records: traffic, event (NEL/NSEL, no byte counters) or option
        if t.options:
            self.mode = "option"
        elif t.has(E.NAT_EVENT) or not any(t.has(x) for x in E.TRAFFIC_COUNTERS):
            self.mode = "event"
        else:
            self.mode = "traffic"
        self._compile_l3()

        # counters
        bchain = E.BYTES_CHAIN + ((E.INITIATOR_OCTETS,) if o.asa_bi_flow else ())
        pchain = E.PACKETS_CHAIN + ((E.RESPONDER_OCTETS,) if o.asa_bi_flow else ())
        self._simple("bytes", self._int(self._first(bchain)))
        self._simple("packets", self._int(self._first(pchain)))
        if want("flows"):
            fl = self._int(self._first((E.FLOWS,)))
            if fl is None:
                self._step(lambda raw, tgt, env, m: tgt.__setitem__("flows", 1))
            else:
                self._step(lambda raw, tgt, env, m: tgt.__setitem__("flows", np.maximum(fl(raw), 1)))

        self._compile_addresses()
        self._simple("proto", self._int(self._first((E.PROTOCOL,))))
        self._simple("tos", self._int(self._first((E.SRC_TOS,))))
        # pmacct 1.7.7 reads tcp flags only when sent in one byte; IPFIX's two-byte
        # tcpControlBits carries the same flags in its low byte (newer pmacct reads it)
        if want("tcp_flags"):
            tf = self._int(self._first((E.TCP_FLAGS,), (1, 2)))
            if tf is not None:
                self._step(lambda raw, tgt, env, m: tgt.__setitem__("tcp_flags", tf(raw) & 0xFF))
        self._simple("src_port", self._int(self._first(E.SRC_PORT_CHAIN)))
        self._simple("dst_port", self._int(self._first(E.DST_PORT_CHAIN)))
        self._simple("in_iface", self._int(self._first(E.IN_IFACE_CHAIN)))
        self._simple("out_iface", self._int(self._first(E.OUT_IFACE_CHAIN)))
        self._simple("src_as", self._int(self._first((E.SRC_AS,), (2, 4))))
        self._simple("dst_as", self._int(self._first((E.DST_AS,), (2, 4))))
        self._simple("peer_src_as", self._int(self._first((E.PEER_SRC_AS,), (2, 4))))
        self._simple("peer_dst_as", self._int(self._first((E.PEER_DST_AS,), (2, 4))))
        self._simple("engine_type", self._int(self._first((E.ENGINE_TYPE,))))
        self._simple("engine_id", self._int(self._first((E.ENGINE_ID,))))
        self._simple("cos", self._int(self._first((E.DOT1Q_PRIORITY,))))
        self._simple("cvlan", self._int(self._first((E.DOT1Q_CUSTOMER_VLAN_ID,
                                                     E.POST_DOT1Q_CUSTOMER_VLAN_ID))))
        self._simple("mpls_pw_id", self._int(self._first((E.PSEUDOWIRE_ID,))))
        self._compile_l2()
        self._compile_mpls()
        self._compile_nat()
        self._compile_times()
        self._compile_export()
        self._compile_dlfs()            # before sampling: its counters get renormalised too
        self._compile_sampling()
        self._compile_misc()
        self._compile_custom()

    def _simple(self, name, reader):
        if reader is not None and name in self.fields:
            self._step(lambda raw, tgt, env, m: tgt.__setitem__(name, reader(raw)))

    def _compile_l3(self):
        """Per record: is it IPv6 (else IPv4) and is it kept at all."""
        t = self.tpl
        has4 = t.has(E.IPV4_SRC_ADDR) or t.has(E.IPV4_DST_ADDR)
        has6 = t.has(E.IPV6_SRC_ADDR) or t.has(E.IPV6_DST_ADDR)
        self.has4, self.has6 = has4, has6
        if self.mode != "traffic" or t.has(E.DATALINK_FRAME_SECTION) or \
                t.has(E.LAYER2_PKT_SECTION_DATA):
            # events, options, and records carrying the packet itself (whose headers
            # say the IP version) are all kept
            self.l3 = lambda raw, n: (np.zeros(n, bool), None)
            return
        ipv = self._int(self._first((E.IP_PROTOCOL_VERSION,)))
        s4 = t.find(E.IPV4_SRC_ADDR)
        first4 = self._bytes(s4, 1) if s4 is not None else None

        def l3(raw, n):
            if has4 and has6:
                is6 = (first4(raw)[:, 0] == 0) if first4 is not None else np.ones(n, bool)
                keep = None
            elif has4:
                is6, keep = np.zeros(n, bool), None
            elif has6:
                is6, keep = np.ones(n, bool), None
            else:
                is6, keep = np.zeros(n, bool), np.zeros(n, bool)
            if ipv is not None:
                v = ipv(raw)
                is6 = np.where(v == 6, True, np.where(v == 4, False, is6))
                explicit = (v == 4) | (v == 6)
                keep = explicit if keep is None else (keep | explicit)
            return is6, keep
        self.l3 = l3

    def _addr_reader(self, chain, width):
        """raw -> V<width> column of the first element of ``chain``, or None."""
        s = self._first(chain)
        if s is None or s.length < width:
            return None
        return self._vbytes(s, width)

    def _set_addr(self, name, r4, r6, event_both=False, v4_only=False):
        """Address field from an IPv4 and/or IPv6 element, chosen by the record's l3."""
        if name not in self.fields:
            return
        if r4 is None and (r6 is None or v4_only):
            return

        def step(raw, tgt, env, m, r4=r4, r6=r6):
            if self.mode != "traffic":
                # option/event records travel as IPv4; events also read IPv6 elements
                if r6 is not None and (event_both and self.mode == "event") and not v4_only:
                    put_addr(tgt, name, 6, r6(raw), 16)
                elif r4 is not None:
                    put_addr(tgt, name, 4, r4(raw), 4)
                return
            is6 = m["is6"]
            if r4 is not None and not m["all6"]:
                put_addr(tgt, name, 4, r4(raw), 4, None if m["all4"] else ~is6)
            if r6 is not None and not v4_only and not m["all4"]:
                put_addr(tgt, name, 6, r6(raw), 16, None if m["all6"] else is6)
        self._step(step)

    def _compile_addresses(self):
        o = self.opts
        A = self._addr_reader
        if self.want("src_host"):
            self._set_addr("src_host", A((E.IPV4_SRC_ADDR, E.IPV4_SRC_PREFIX), 4),
                           A((E.IPV6_SRC_ADDR, E.IPV6_SRC_PREFIX), 16), event_both=True)
        if self.want("dst_host"):
            self._set_addr("dst_host", A((E.IPV4_DST_ADDR, E.IPV4_DST_PREFIX), 4),
                           A((E.IPV6_DST_ADDR, E.IPV6_DST_PREFIX), 16), event_both=True)
        # masks: IPv4 elements for IPv4 records (and events/options), IPv6 ones for IPv6
        for name, i4, i6 in (("src_mask", E.SRC_MASK, E.IPV6_SRC_MASK),
                             ("dst_mask", E.DST_MASK, E.IPV6_DST_MASK)):
            if name not in self.fields:
                continue
            r4 = self._int(self._first((i4,)))
            r6 = self._int(self._first((i6,)))
            if r4 is None and r6 is None:
                continue

            def step(raw, tgt, env, m, name=name, r4=r4, r6=r6):
                if r4 is not None and not m["all6"]:
                    v = r4(raw)
                    if m["all4"]:
                        tgt[name] = v
                    else:
                        tgt[name][~m["is6"]] = v[~m["is6"]]
                if r6 is not None and not m["all4"]:
                    v = r6(raw)
                    if m["all6"]:
                        tgt[name] = v
                    else:
                        tgt[name][m["is6"]] = v[m["is6"]]
            self._step(step)
        # IP next hop (15/62) and BGP next hop (18, 47, 63, 140; 15/62 with use_ip_next_hop)
        if self.want("nexthop"):
            self._set_addr("nexthop", A((E.IPV4_NEXT_HOP,), 4), A((E.IPV6_NEXT_HOP,), 16))
        if not self.want("peer_dst_ip"):
            return
        t = self.tpl
        chain = [(E.BGP_IPV4_NEXT_HOP, 4), (E.MPLS_TOP_LABEL_ADDR, 4), (E.IPV4_NEXT_HOP, 4),
                 (E.BGP_IPV6_NEXT_HOP, 16), (E.MPLS_TOP_LABEL_IPV6_ADDR, 16),
                 (E.IPV6_NEXT_HOP, 16)]
        for ie, width in chain:
            if t.has(ie):
                if ie in (E.IPV4_NEXT_HOP, E.IPV6_NEXT_HOP) and not o.use_ip_next_hop:
                    break           # pmacct stops here: the IP next hop is not a BGP one
                r = A((ie,), width)
                if r is not None:
                    def step(raw, tgt, env, m, r=r, width=width):
                        put_addr(tgt, "peer_dst_ip", 4 if width == 4 else 6, r(raw), width)
                    self._step(step)
                break

    def _compile_l2(self):
        for name, chain in (("src_mac", E.SRC_MAC_CHAIN), ("dst_mac", E.DST_MAC_CHAIN)):
            if name not in self.fields:
                continue
            r = self._vbytes(self._first(chain), 6)
            if r is not None:
                self._step(lambda raw, tgt, env, m, r=r, name=name: tgt.__setitem__(name, r(raw)))
        if self.want("vlan"):
            rin = self._int(self._first((E.SRC_VLAN, E.DOT1Q_VLAN_ID)))
            rout = self._int(self._first((E.DST_VLAN, E.POST_DOT1Q_VLAN_ID)))
            dirn = self._int(self._first((E.DIRECTION,)))
            if dirn is not None:
                if rin is not None or rout is not None:
                    def vlan(raw, tgt, env, m):
                        d = dirn(raw)
                        v = np.zeros(len(d), np.uint64)
                        if rin is not None:
                            v = np.where(d == 0, rin(raw), v)
                        if rout is not None:
                            v = np.where(d == 1, rout(raw), v)
                        tgt["vlan"] = v
                    self._step(vlan)
            else:
                r = self._int(self._first((E.SRC_VLAN, E.DST_VLAN, E.DOT1Q_VLAN_ID, E.POST_DOT1Q_VLAN_ID)))
                self._simple("vlan", r)
        if self.want("etype"):
            et = self._int(self._first((E.ETHERTYPE,), (2,)))

            def etype(raw, tgt, env, m):
                if et is not None:
                    tgt["etype"] = et(raw)
                elif self.mode == "traffic" and not m["all4"]:
                    tgt["etype"] = np.where(m["is6"], 0x86DD, 0x0800)
                else:
                    tgt["etype"] = 0x0800
            self._step(etype)

    def _compile_mpls(self):
        t = self.tpl
        want = self.want
        labels = [self._int(t.find(ie)) if t.length_of(ie) == 3 else None for ie in E.MPLS_LABELS[:9]]
        if labels[0] is not None and want("mpls_label_top"):
            self._step(lambda raw, tgt, env, m, r=labels[0]:
                       tgt.__setitem__("mpls_label_top", r(raw) >> 4))
        if any(r is not None for r in labels) and want("mpls_label_bottom", "mpls_stack_depth"):
            present = [r for r in labels if r is not None]
            w_bottom, w_depth = want("mpls_label_bottom"), want("mpls_stack_depth")

            def stack(raw, tgt, env, m):
                n = len(raw)
                vals = np.empty((len(present), n), np.uint32)
                for i, r in enumerate(present):
                    vals[i] = r(raw)
                bos = (vals & 1).astype(bool)
                anybos = bos.any(axis=0)
                # labels up to and including the first one with the bottom-of-stack bit
                first = np.where(anybos, bos.argmax(axis=0), len(present) - 1)
                cols = np.arange(n)
                last = vals[first, cols] >> 4
                if w_bottom:
                    tgt["mpls_label_bottom"] = np.where(anybos, last, 0)
                if w_depth:
                    tgt["mpls_stack_depth"] = np.where((last != 0) | anybos, first + 1, 0)
            self._step(stack)
        if not want("mpls_vpn_rd"):
            return
        # route distinguisher: VRF ids mapped through options first, then element 90
        rd = self._bytes(self._first((E.MPLS_VPN_RD,)), 8)
        vin = self._int(self._first((E.INGRESS_VRFID,), (1, 2, 3, 4)))
        vout = self._int(self._first((E.EGRESS_VRFID,), (1, 2, 3, 4)))
        dirn = self._int(self._first((E.DIRECTION,)))
        if rd is None and vin is None and vout is None:
            return

        def vpn_rd(raw, tgt, env, m):
            n = len(raw)
            out = np.zeros((n, 8), np.uint8)
            have = np.zeros(n, bool)
            if vin is not None or vout is not None:
                zero = np.zeros(n, np.uint64)
                iv = vin(raw) if vin is not None else zero
                ev = vout(raw) if vout is not None else zero
                d = dirn(raw) if dirn is not None else zero
                use_in = (iv != 0) & ((d == 0) | (ev == 0))
                use_out = (ev != 0) & ((d != 0) | (iv == 0))
                for sel, vals, which in ((use_in, iv, "in_rd"), (use_out, ev, "out_rd")):
                    if not sel.any():
                        continue
                    idx = np.nonzero(sel)[0]
                    for i in idx:                     # VRF-to-RD lookups: few distinct values
                        ctx = env.contexts[env.ctx_index[i]]
                        mp = getattr(ctx, which)
                        vid = int(vals[i])
                        if mp:
                            r = mp.get(vid)
                            if r is not None:
                                out[i] = np.frombuffer(r, np.uint8)
                                have[i] = True
                        else:
                            # no map learned: the RD is "vrf id" typed (pmacct's 0x1000)
                            out[i, 0:2] = (0x10, 0x00)
                            out[i, 4:8] = np.frombuffer(vid.to_bytes(4, "big"), np.uint8)
                            have[i] = True
            if rd is not None:
                r = rd(raw)
                sel = ~have
                out[sel] = r[sel]
            tgt["mpls_vpn_rd"] = out.view("V8").reshape(-1)
        self._step(vpn_rd)

    def _compile_nat(self):
        A = self._addr_reader
        if self.want("post_nat_src_host"):
            self._set_addr("post_nat_src_host", A((E.POST_NAT_IPV4_SRC_ADDR,), 4) or
                           self._asa_addr(E.ASA_XLATE_SRC_ADDR), A((E.POST_NAT_IPV6_SRC_ADDR,), 16))
        if self.want("post_nat_dst_host"):
            self._set_addr("post_nat_dst_host", A((E.POST_NAT_IPV4_DST_ADDR,), 4) or
                           self._asa_addr(E.ASA_XLATE_DST_ADDR), A((E.POST_NAT_IPV6_DST_ADDR,), 16))
        self._simple("post_nat_src_port", self._int(self._first((E.POST_NAT_SRC_PORT, E.ASA_XLATE_SRC_PORT))))
        self._simple("post_nat_dst_port", self._int(self._first((E.POST_NAT_DST_PORT, E.ASA_XLATE_DST_PORT))))
        if self.want("nat_event", "fw_event"):
            ev = self._int(self._first((E.NAT_EVENT, E.ASA_XLATE_EVENT)))
            if ev is not None:
                names = [n for n in ("nat_event", "fw_event") if n in self.fields]

                def nat_event(raw, tgt, env, m):
                    v = ev(raw)
                    for n in names:     # pmacct 1.7.7: fw_event is an alias of nat_event
                        tgt[n] = v
                self._step(nat_event)

    def _asa_addr(self, ie):
        s = self.tpl.find(ie)
        return self._vbytes(s, 4) if s is not None else None

    # --- time ---
    # A time reader is raw, env -> ("su", seconds, microseconds or None) with seconds 0
    # meaning none, or ("ms", milliseconds) for the *Milliseconds elements.
    def _time_reader(self, which: str, order: str):
        """(element, reader) for start or end time, following pmacct's chain.
        ``order`` is 'timestamp' (the timestamp_* primitives) or 'pdata' (the time
        bins), whose chains differ a bit."""
        t = self.tpl
        start = which == "start"
        sysup = E.FIRST_SWITCHED if start else E.LAST_SWITCHED
        msec = E.FIRST_SWITCHED_MSEC if start else E.LAST_SWITCHED_MSEC
        usec = E.FIRST_SWITCHED_USEC if start else E.LAST_SWITCHED_USEC
        secs = E.FIRST_SWITCHED_SEC if start else E.LAST_SWITCHED_SEC
        delta = E.FIRST_SWITCHED_DELTA_MICRO if start else E.LAST_SWITCHED_DELTA_MICRO
        nsec = E.FIRST_SWITCHED_NSEC if start else E.LAST_SWITCHED_NSEC
        cands = []
        if t.has(sysup):
            r = self._int(t.find(sysup))
            init = self._int(t.find(E.SYSTEM_INIT_TIME_MSEC)) if t.length_of(E.SYSTEM_INIT_TIME_MSEC) == 8 else None
            secs_arith = order == "pdata" and self.opts.time_secs

            def f_sysup(raw, env, r=r, init=init):
                v = r(raw).astype(np.int64) if r is not None else np.zeros(len(raw), np.int64)
                only = env.only_version
                sec = None
                if only != 10:
                    # (uptime - switched) in ms (s with time_secs), modulo 2^32 as the
                    # exporter's counter wraps; see flow_age for the jitter window
                    d = flow_age(env.uptime - v, JITTER_MS // 1000 if secs_arith else JITTER_MS)
                    sec9 = env.unix_secs - (d if secs_arith else ms_to_s(d))
                    sec = sec9 if only == 9 else np.where(env.version == 9, sec9, 0)
                if only != 9:
                    if sec is None:
                        sec = np.zeros(len(v), np.int64)
                    if init is not None:
                        secx = (init(raw).astype(np.int64) // 1000) % _U32 + v // 1000
                        sec = secx if only == 10 else np.where(env.version == 10, secx, sec)
                return "su", sec, None
            cands.append((sysup, f_sysup))
        if t.has(msec):
            r = self._int(t.find(msec))
            if r is not None:
                cands.append((msec, lambda raw, env, r=r: ("ms", r(raw).astype(np.int64))))
        if start and t.has(E.OBSERVATION_TIME_MSEC):
            r = self._int(t.find(E.OBSERVATION_TIME_MSEC))
            if r is not None:
                cands.append((E.OBSERVATION_TIME_MSEC, lambda raw, env, r=r: ("ms", r(raw).astype(np.int64))))
        if t.has(usec):
            s = t.find(usec)
            if s.length == 16:
                a, b = self._int_at(s.offset, 8), self._int_at(s.offset + 8, 8)
                cands.append((usec, lambda raw, env, a=a, b=b: ("su", a(raw).astype(np.int64), b(raw).astype(np.int64))))
            elif s.length == 8:       # RFC 7011 dateTimeMicroseconds (NTP format)
                a, b = self._int_at(s.offset, 4), self._int_at(s.offset + 4, 4)
                cands.append((usec, lambda raw, env, a=a, b=b: ("su",) + self._ntp(a(raw), b(raw) & 0xFFFFF800)))
            else:
                cands.append((usec, lambda raw, env: ("su", np.zeros(len(raw), np.int64), None)))
        if t.has(secs):
            s = t.find(secs)
            if s.length in (4, 8):
                r = self._int(s)
                cands.append((secs, lambda raw, env, r=r: ("su", r(raw).astype(np.int64), None)))
        if t.has(delta):
            r = self._int(t.find(delta))
            if r is not None:
                def f_delta(raw, env, r=r):
                    tot = env.unix_secs * US - r(raw).astype(np.int64)
                    return ("su", np.where(env.version == 10, tot // US, 0),
                            np.where(env.version == 10, tot % US, 0))
                cands.append((delta, f_delta))
        if t.has(nsec) and t.length_of(nsec) == 8:        # not read by pmacct 1.7.7
            s = t.find(nsec)
            a, b = self._int_at(s.offset, 4), self._int_at(s.offset + 4, 4)
            cands.append((nsec, lambda raw, env, a=a, b=b: ("su",) + self._ntp(a(raw), b(raw))))
        if order == "pdata" and start:
            # pmacct's time-bin chain tries microseconds before observation time
            ids = [c[0] for c in cands]
            if E.OBSERVATION_TIME_MSEC in ids and usec in ids:
                i, j = ids.index(E.OBSERVATION_TIME_MSEC), ids.index(usec)
                cands[i], cands[j] = cands[j], cands[i]
        if not cands:
            return (None, None)
        # the first element present decides, even if it yields nothing (pmacct stops
        # there too: IPFIX flowStartSysUpTime without systemInitTimeMilliseconds)
        return cands[0]

    def _int_at(self, offset, n):
        name = self._view(offset, f">u{n}")
        return lambda raw, name=name: raw[name]

    @staticmethod
    def _ntp(sec, frac):
        s = sec.astype(np.int64) - 2208988800
        us = (frac.astype(np.int64) * US) >> 32
        return np.where(sec == 0, 0, s), np.where(sec == 0, 0, us)

    def _compile_times(self):
        o = self.opts
        sysup = (E.FIRST_SWITCHED, E.LAST_SWITCHED)
        for w in ("start", "end"):
            w_ts = self.want("ts_" + w)
            w_bin = self.want("time_" + w) and not o.time_new
            if not (w_ts or w_bin):
                continue
            ts = self._time_reader(w, "timestamp")
            pd = self._time_reader(w, "pdata")
            # time bins read the same element as the timestamp primitives unless the
            # chains differ or nfacctd_time_secs changes the arithmetic: then copy
            same = pd[0] == ts[0] and not (o.time_secs and ts[0] in sysup)
            self._step(self._times_step(w, ts[1], pd[1], w_ts, w_bin, same))

    @staticmethod
    def _time_column(f, raw, env, start):
        """Microseconds since the epoch (0: none) from a time reader; the start time
        falls back on the header's export time."""
        if f is None:
            got = ("su", np.zeros(len(raw), np.int64), None)
        else:
            got = f(raw, env)
        if got[0] == "ms":
            # seconds * 10^6 + (ms % 1000) * 1000 is just ms * 1000; under a second
            # (seconds 0) means none
            v = got[1]
            col = v * 1000
            none = (v >= 0) & (v < 1000)
            if none.any():
                col = np.where(none, env.unix_secs * US if start else 0, col)
            return col
        _, sec, us = got
        if start:                       # no time reference: the header export time
            fb = sec == 0
            if fb.any():
                sec = np.where(fb, env.unix_secs, sec)
                if us is not None:
                    us = np.where(fb, 0, us)
        if us is None:
            return sec * US             # seconds 0 gives 0
        return np.where(sec == 0, 0, sec * US + us)

    def _times_step(self, w, f_ts, f_pd, w_ts, w_bin, same):
        column = self._time_column
        start = w == "start"
        ts_name, bin_name = "ts_" + w, "time_" + w

        def times(raw, tgt, env, m):
            col = None
            if w_ts:
                tgt[ts_name] = col = column(f_ts, raw, env, start)
            if w_bin:
                if same:
                    tgt[bin_name] = col if col is not None else column(f_ts, raw, env, start)
                else:
                    tgt[bin_name] = column(f_pd, raw, env, start)
        return times

    def _compile_export(self):
        f = self.fields
        if "ts_export" in f:
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("ts_export", env.unix_secs * US))
        if "ts_arrival" in f:
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("ts_arrival", env.arrival))
        if "export_proto_seqno" in f:
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("export_proto_seqno", env.seqno))
        if "export_proto_version" in f:
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("export_proto_version", env.version))
        if "export_proto_sysid" in f:
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("export_proto_sysid", env.sysid))
        if "peer_src_ip" in f:
            self._step(lambda raw, tgt, env, m:
                       col_bytes(tgt, "peer_src_ip", 0, "V17").__setitem__(Ellipsis, env.peer))
        if "sample_type" in f:
            st = {"traffic": SAMPLE_FLOW, "event": SAMPLE_EVENT, "option": SAMPLE_OPTION}[self.mode]
            # pmacct's class by template: MPLS-labelled traffic apart (records with a packet
            # section are classed by the packet, which pmacct reads as plain IP traffic)
            if self.mode == "traffic" and self.tpl.has(E.MPLS_LABEL_1) and not (
                    self.tpl.has(E.DATALINK_FRAME_SECTION)
                    or self.tpl.has(E.LAYER2_PKT_SECTION_DATA)):
                st = SAMPLE_FLOW_MPLS
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("sample_type", st))
        w_dir, w_sdir = self.want("direction"), self.want("sampling_direction")
        dirn = self._int(self._first((E.DIRECTION,)))
        if dirn is not None:
            if w_dir or w_sdir:
                one_byte = self.tpl.length_of(E.DIRECTION) == 1

                def direction(raw, tgt, env, m):
                    d = dirn(raw)
                    if w_dir:
                        tgt["direction"] = d
                    if w_sdir:
                        if one_byte:
                            tgt["sampling_direction"] = np.where(d == 0, ord("i"), np.where(d == 1, ord("e"), ord("u")))
                        else:
                            tgt["sampling_direction"] = ord("u")
                self._step(direction)
        elif w_sdir:
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("sampling_direction", ord("u")))

    def _compile_sampling(self):
        t, o = self.tpl, self.opts
        sid = None
        if t.has(E.FLOW_SAMPLER_ID) and t.length_of(E.FLOW_SAMPLER_ID) in (1, 2, 4):
            sid = self._int(t.find(E.FLOW_SAMPLER_ID))
        elif not t.has(E.FLOW_SAMPLER_ID) and 1 <= t.length_of(E.SELECTOR_ID) <= 8:
            # pmacct 1.7.7 reads selectorId only when 8 bytes long
            sid = self._int(t.find(E.SELECTOR_ID))
        has_sid_field = sid is not None or t.has(E.FLOW_SAMPLER_ID)
        r34 = self._int(t.find(E.SAMPLING_INTERVAL)) if t.length_of(E.SAMPLING_INTERVAL) in (2, 4) else None
        r50 = self._int(t.find(E.FLOW_SAMPLER_INTERVAL)) if t.length_of(E.FLOW_SAMPLER_INTERVAL) in (2, 4) else None
        inline = (not has_sid_field) and (t.has(E.SAMPLING_INTERVAL) or t.has(E.FLOW_SAMPLER_INTERVAL))
        tid = t.tid

        def rates(raw, env):
            n = len(raw)
            if inline:
                v = np.zeros(n, np.uint64)
                if r34 is not None:
                    v = r34(raw).astype(np.uint64)
                if r50 is not None:
                    v = r50(raw).astype(np.uint64)
                return v
            ids = sid(raw).astype(np.uint64) if sid is not None else np.zeros(n, np.uint64)
            out = np.zeros(n, np.uint64)
            ctxs = env.contexts
            if len(ctxs) == 1:
                c = ctxs[0]
                if c.samplers or c.system_samplers:
                    out = lookup_many(c.samplers, c.system_samplers, ids, tid)
                return out
            for k in np.unique(env.ctx_index):
                c = ctxs[k]
                if c.samplers or c.system_samplers:
                    sel = env.ctx_index == k
                    out[sel] = lookup_many(c.samplers, c.system_samplers, ids[sel], tid)
            return out
        self.rates = rates
        w_rate = self.want("sampling_rate")
        renorm = [n for n in ("packets", "bytes") if n in self.fields] if o.renormalize else []
        if not (w_rate or renorm):
            return

        def sampling(raw, tgt, env, m):
            if not inline and not env.any_samplers:
                # no rate known anywhere: every record reads 0, as the output already
                # does; renormalising multiplies by the configured rate only
                if o.renormalize and o.ext_sampling_rate:
                    for n in renorm:
                        tgt[n] = tgt[n] * np.uint64(o.ext_sampling_rate)
                return
            r = rates(raw, env)
            if o.renormalize:
                mult = np.uint64(o.ext_sampling_rate) if o.ext_sampling_rate else np.where(r > 0, r, 1)
                for n in renorm:
                    tgt[n] = tgt[n] * mult
                if w_rate:
                    tgt["sampling_rate"] = np.where(r > 0, 1, 0)
            else:
                tgt["sampling_rate"] = r
        self._step(sampling)

    def _compile_misc(self):
        t = self.tpl
        # pre_tag_map's flowset_id, fwdstatus and is_bi_flow (pmacct reads them from the
        # template: its id, IE 89 when one octet long, IEs 231 and 232 both present)
        if "flowset_id" in self.fields:
            tid = t.tid
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("flowset_id", tid))
        if "fwd_status" in self.fields:
            fs = self._int(t.find(E.FORWARDING_STATUS)) if t.length_of(E.FORWARDING_STATUS) == 1 else None
            if fs is None:
                self._step(lambda raw, tgt, env, m: tgt.__setitem__("fwd_status", 0xFFFF))
            else:
                self._simple("fwd_status", fs)
        if "bi_flow" in self.fields and t.has(E.INITIATOR_OCTETS) and t.has(E.RESPONDER_OCTETS):
            self._step(lambda raw, tgt, env, m: tgt.__setitem__("bi_flow", 1))
        # application id -> name learned from options: the 'class' primitive
        app = t.find(E.APPLICATION_ID)
        if app is not None and 2 <= app.length <= 5 and not app.vlen and self.want("class"):
            r = self._int(app)
            n = app.length

            def klass(raw, tgt, env, m):
                ids = r(raw) & ((1 << (8 * (n - 1))) - 1)
                out = np.zeros(len(ids), np.int32)
                for k in np.unique(env.ctx_index):
                    ctx = env.contexts[k]
                    apps = ctx.apps if ctx is not None else None
                    if not apps:
                        continue
                    sel = env.ctx_index == k
                    u, inv = np.unique(ids[sel], return_inverse=True)
                    names = np.array([env.strings.intern(apps[int(x)]) if int(x) in apps else 0
                                      for x in u], np.int32)
                    out[sel] = names[inv]
                tgt["class"] = out
            self._step(klass)
        # VXLAN VNI from layer2SegmentId (type 1 in the top octet, VNI in the low 24 bits)
        seg = self._int(t.find(E.LAYER2_SEGMENT_ID)) if t.length_of(E.LAYER2_SEGMENT_ID) == 8 else None
        if seg is not None and self.want("vxlan"):
            def vxlan(raw, tgt, env, m):
                v = seg(raw)
                tgt["vxlan"] = np.where((v >> np.uint64(56)) == 1, v & np.uint64(0xFFFFFF), 0)
            self._step(vxlan)
        # pmacct's own elements (IPFIX, PEN 43874): tag, tag2, label
        for name, ie in (("tag", E.PMACCT_TAG), ("tag2", E.PMACCT_TAG2)):
            s = t.find(ie, E.PMACCT_PEN)
            if s is not None and not s.vlen and 1 <= s.length <= 8:
                self._simple(name, self._int(s))
        s = t.find(E.PMACCT_LABEL, E.PMACCT_PEN)
        if s is not None and self.want("label"):
            self._step(self._string_step("label", s, "str"))

    def _string_step(self, name, slot, semantics, limit=None):
        """Fill a string-table column from a fixed or variable-length element. ``raw``
        is pmacct's hex form (upper case, bytes joined by '-', cut at ``limit``)."""
        if slot.vlen:
            rd = self._int_at(slot.offset, 4)
        else:
            rd = self._bytes(slot, slot.length) if slot.length else None
            if rd is None:
                return lambda raw, tgt, env, m: None

        def conv(b: bytes) -> str:
            if semantics == "raw":
                text = b.hex("-").upper()
                return text[:limit] if limit else text
            return b.split(b"\0", 1)[0].decode("utf-8", "replace")

        def step(raw, tgt, env, m):
            if slot.vlen:
                idx = rd(raw)
                u, inv = np.unique(idx, return_inverse=True)
                vals = [env.vvalues[int(i)] if 0 <= int(i) < len(env.vvalues) else b"" for i in u]
            else:
                b = np.ascontiguousarray(rd(raw)).view(f"S{slot.length}").reshape(-1) \
                    if semantics != "raw" else np.ascontiguousarray(rd(raw)).view(f"V{slot.length}").reshape(-1)
                u, inv = np.unique(b, return_inverse=True)
                vals = [bytes(x) if semantics == "raw" else x for x in u]
            ids = np.array([env.strings.intern(conv(v)) if v else 0 for v in vals], np.int32)
            tgt[name] = ids[inv]
        return step

    def _compile_custom(self):
        for cf in self.opts.custom_fields:
            if cf.name not in self.fields:
                continue
            s = self.tpl.find(cf.field_type, cf.pen, cf.repeat if cf.repeat else None)
            if s is None:
                continue
            if cf.length and not s.vlen and s.length != cf.length and cf.semantics != "raw":
                continue            # a configuration mistake in pmacct's eyes: left empty
            dt = self.record_dtype.fields[cf.name][0]
            if dt == ADDR_DTYPE:
                width = 16 if s.length == 16 else 4
                r = self._bytes(s, width)
                if r is not None:
                    def step(raw, tgt, env, m, r=r, width=width, name=cf.name):
                        tgt[name]["af"] = 4 if width == 4 else 6
                        tgt[name]["addr"] = _addr_bytes(r(raw), width)
                    self._step(step)
            elif dt.kind in "ui" and cf.name not in ("label", "class") and dt.itemsize <= 8 \
                    and not (dt == np.int32 and cf.semantics in ("str", "raw")):
                self._simple(cf.name, self._int(s))
            elif dt.kind == "V":
                r = self._bytes(s, min(s.length, dt.itemsize))
                if r is not None:
                    w = dt.itemsize

                    def step(raw, tgt, env, m, r=r, w=w, name=cf.name):
                        b = r(raw)
                        full = np.zeros((len(b), w), np.uint8)
                        full[:, :b.shape[1]] = b
                        tgt[name] = full.view(f"V{w}").reshape(-1)
                    self._step(step)
            elif dt == np.int32:
                limit = 3 * cf.length if cf.semantics == "raw" and cf.length else None
                self._step(self._string_step(cf.name, s, cf.semantics, limit))

    def _compile_dlfs(self):
        """Records carrying a packet section: parse it and fill what the template lacks."""
        t = self.tpl
        slot = t.find(E.LAYER2_PKT_SECTION_DATA) or t.find(E.DATALINK_FRAME_SECTION)
        if slot is None or self.mode == "option":
            return
        if slot.vlen:
            idx = self._int_at(slot.offset, 4)
        elif slot.length:
            sect = self._view(slot.offset, f"V{slot.length}")
        else:
            return
        has = lambda *ies: any(t.has(i) for i in ies)
        fill_keys = []
        for key, ies in (("src_host", (8, 44, 27, 170)), ("dst_host", (12, 45, 28, 169)),
                         ("src_port", E.SRC_PORT_CHAIN), ("dst_port", E.DST_PORT_CHAIN),
                         ("proto", (4,)), ("tos", (5,)), ("tcp_flags", (6,)),
                         ("src_mac", E.SRC_MAC_CHAIN), ("dst_mac", E.DST_MAC_CHAIN),
                         ("vlan", (58, 59, 243, 254)), ("cos", (244,)), ("etype", (256,)),
                         ("mpls_label_top", (70,)), ("mpls_label_bottom", E.MPLS_LABELS),
                         ("mpls_stack_depth", E.MPLS_LABELS)):
            if not has(*ies) and key in self.fields:
                fill_keys.append(key)
        counters = "packets" in self.fields and "bytes" in self.fields
        if not fill_keys and not counters:
            return
        from .dlfs import parse_frame

        def dlfs(raw, tgt, env, m):
            if slot.vlen:
                frames = [env.vvalues[int(i)] if int(i) < len(env.vvalues) else b"" for i in idx(raw)]
            else:
                frames = [bytes(x) for x in raw[sect]]
            for i, fr in enumerate(frames):
                h = parse_frame(fr)
                row = tgt[i]
                for k in fill_keys:
                    v = h.get(k)
                    if v is None:
                        continue
                    if k in ("src_host", "dst_host"):
                        row[k] = (v[0], v[1] + bytes(16 - len(v[1])))
                    else:
                        row[k] = v
                if counters and row["packets"] == 0 and row["bytes"] == 0 and "ip_len" in h:
                    row["packets"] = 1
                    row["bytes"] = h["ip_len"]
        self._step(dlfs)

    # --- run ---
    def fill(self, raw: np.ndarray, tgt: np.ndarray, env: Env) -> np.ndarray | None:
        """Decode ``raw`` (records of this template) into ``tgt``; returns a keep mask
        when some records are to be dropped (traffic without an IP version)."""
        n = len(raw)
        is6, keep = self.l3(raw, n)
        all6 = bool(is6.all()) if n else False
        all4 = not is6.any() if n else True
        m = {"is6": is6, "all6": all6, "all4": all4}
        for step in self.steps:
            step(raw, tgt, env, m)
        return keep
