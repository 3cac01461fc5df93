"""NetFlow v9 and IPFIX: headers, sets, templates and options, one template engine.

Two ways through a batch, with the same results:

- ``walk_sets`` + ``BatchParse`` (the usual one): the sets of all datagrams are found
  with vectorised steps; template and options template sets are applied in arrival
  order; data sets are resolved to their templates in bulk between template changes
  and handed to the collector as chunks, without a Python step per set. Options data
  (sampling rates, exporter address, VRF and application maps) is applied in order as
  it comes, and data after it sees what it changed.
- ``V9Parser.parse`` walks one datagram at a time (with debug logging, which has a line
  per datagram as pmacct's).

Records of templates with variable-length fields are walked one by one either way and
re-laid out to fixed size. Malformed input is counted per exporter and logged
(rate-limited) with pmacct's wording; processing of that datagram stops where pmacct's
would.
"""
from __future__ import annotations

import struct

import numpy as np

from . import ie as E
from .templates import MAX_FIELDS, Field, Template

_H9 = struct.Struct("!HHIIII")       # version, count, uptime, secs, seq, source id
_H10 = struct.Struct("!HHIII")       # version, length, secs, seq, domain
_SET = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_IDX = struct.Struct("!I")


class Malformed(Exception):
    pass


# why a datagram's walk stops (pmacct's words)
M_INCOMPLETE = "unable to read next Flowset (incomplete NetFlow v9/IPFIX packet)"
M_DATA = "unable to read next Data Flowset (incomplete NetFlow v9/IPFIX packet)"
M_ZERO = "unable to read next Flowset (NetFlow v9/IPFIX packet claiming flow_len 0!)"
M_SHORTSET = "unable to read next Flowset (NetFlow v9/IPFIX packet (flowsetlen < NfDataHdrV9Sz)"
M_TEMPLATE = "unable to read next Template Flowset (incomplete NetFlow v9/IPFIX packet)"
M_OPTIONS = "unable to read next Options Template Flowset (incomplete NetFlow v9/IPFIX packet)"


def _uint(b: bytes) -> int:
    return int.from_bytes(b, "big")


class V9Parser:
    def __init__(self, dec):
        self.dec = dec          # the NetflowDecoder: options, log, stats, caches
        self.changes = 0        # templates stored or withdrawn (identical resends aside)
        # template sets known to hold only identical resends (see BatchParse.run)
        self.resends: dict[tuple, int] = {}
        self.resends_gen = -1

    # --- datagram, one at a time (debug logging on: the reference path) ---
    def parse(self, dg, version: int, coll, di: int, exp: int, base: int) -> None:
        """Parse one v9/IPFIX datagram (number ``di`` of the batch, exporter index
        ``exp``, payload at ``base`` in the batch buffer) into ``coll``."""
        dec = self.dec
        p = dg.payload
        plen = len(p)
        src = dg.src
        if version == 9:
            if plen < 20:
                dec.malformed(dg, "discarding short NetFlow v9/IPFIX packet")
                return
            _, _count, uptime, unix, seq, sid = _H9.unpack_from(p)
            off = 20
        else:
            if plen < 16:
                dec.malformed(dg, "discarding short NetFlow v9/IPFIX packet")
                return
            _, _length, unix, seq, sid = _H10.unpack_from(p)
            uptime = 0
            off = 16
        if dec.debugging:
            dec.log.debug(f"Received NetFlow/IPFIX packet from [{src}:{dg.port}] version [{version}] seqno [{seq}]")
        states = dec.states
        st = states.domains.get((src, 9, sid))
        if st is None:
            st = states.domain(src, 9, sid)
        if st is not None:
            dec.check_sequence(st, dg, seq, sid, plen)
            st.inc = 1
        coll.header(di, version, unix, uptime, seq, sid, dg.ts_us, exp)
        ctx = states.context(src, sid, st)
        tget = dec.templates._t.get
        seq_inc = 0
        order = di << 16
        try:
            while off < plen:
                if off + 4 > plen:
                    raise Malformed(M_INCOMPLETE)
                fid, flen = _SET.unpack_from(p, off)
                end = off + flen
                order += 1
                if fid >= 256 and flen >= 4:
                    if end > plen:
                        raise Malformed(M_DATA)
                    tpl = tget((src, sid, fid))
                    if tpl is None:
                        dec.no_template(dg, sid, fid)
                    elif tpl.options:
                        n = self._options_data(dg, tpl, p, off + 4, end, sid)
                        seq_inc += n
                        if n:
                            ctx = states.context(src, sid, st)
                            if dec.opts.account_options:
                                self._queue(tpl, p, off + 4, end, coll, di, ctx, order, base)
                    else:
                        seq_inc += self._queue(tpl, p, off + 4, end, coll, di, ctx, order, base)
                elif flen == 0:
                    raise Malformed(M_ZERO)
                elif flen < 4:
                    raise Malformed(M_SHORTSET)
                elif fid in (0, 2):
                    if end > plen:
                        raise Malformed(M_TEMPLATE)
                    self._templates(dg, version, p, off + 4, end, sid)
                elif fid in (1, 3):
                    if end > plen:
                        raise Malformed(M_OPTIONS)
                    self._options_templates(dg, version, p, off + 4, end, sid)
                else:
                    if end > plen:
                        if dec.debugging:
                            dec.log.debug(f"unable to read unsupported Flowset (ID: '{fid}').")
                        break
                off = end
        except Malformed as e:
            dec.malformed(dg, str(e), seq)
            return
        if version == 10 and st is not None:
            st.inc = seq_inc

    # --- data ---
    def _queue(self, tpl, p, start, end, coll, di, ctx, order, base) -> int:
        """Queue the records of a data set at ``p[start:end]`` (``p`` lies at ``base`` in
        the batch buffer); returns how many."""
        plan = self.dec.plan_for(tpl)
        gid = coll.group(tpl, plan.dtype)
        if not tpl.vlen:
            if not tpl.reclen:
                return 0
            n = (end - start) // tpl.reclen
            if n:
                coll.add(gid, base + start, n, di, ctx, order)
            return n
        recs = self._walk_vlen(tpl, p, start, end, coll.vvalues)
        if recs:
            coll.add_bytes(gid, b"".join(recs), len(recs), di, ctx, order)
        return len(recs)

    @staticmethod
    def _walk_vlen(tpl, p, pos, end, vvalues) -> list[bytes]:
        """Records of a template with variable-length fields, re-laid out to fixed size
        (each variable field becomes a 4-byte index into ``vvalues``). Stops at the first
        record that does not fit, as pmacct does."""
        out = []
        segs = tpl.segments
        minlen = max(tpl.min_len, 1)
        while end - pos >= minlen:
            parts = []
            q = pos
            for seg in segs:
                if seg[0] == "fixed":
                    n = seg[1]
                    if q + n > end:
                        return out
                    parts.append(p[q:q + n])
                    q += n
                else:
                    if q >= end:
                        return out
                    ln = p[q]
                    q += 1
                    if ln == 255:
                        if q + 2 > end:
                            return out
                        ln = _U16.unpack_from(p, q)[0]
                        q += 2
                    if q + ln > end:
                        return out
                    parts.append(_IDX.pack(len(vvalues)))
                    vvalues.append(bytes(p[q:q + ln]))
                    q += ln
            out.append(b"".join(parts))
            pos = q
        return out

    def _records(self, tpl, p, start, end):
        """(bytes of each record, variable values) for options records, fixed or not."""
        if not tpl.vlen:
            rl = tpl.reclen
            return [(p[s:s + rl], None) for s in range(start, end - rl + 1, rl)] if rl else []
        vals: list[bytes] = []
        recs = self._walk_vlen(tpl, p, start, end, vals)
        return [(r, vals) for r in recs]

    def _options_data(self, dg, tpl, p, start, end, sid) -> int:
        """Apply options records at once (they change how later records decode)."""
        dec = self.dec
        o = dec.opts
        recs = self._records(tpl, p, start, end)
        if not recs:
            return 0
        f = tpl.find
        s_sid = f(E.FLOW_SAMPLER_ID)
        s_sel = f(E.SELECTOR_ID)
        s_34, s_50 = f(E.SAMPLING_INTERVAL), f(E.FLOW_SAMPLER_INTERVAL)
        s_305, s_306 = f(E.SAMPLING_PKT_INTERVAL), f(E.SAMPLING_PKT_SPACE)
        s_309, s_310 = f(E.SAMPLING_SIZE), f(E.SAMPLING_POPULATION)
        s_145 = f(E.SCOPE_TEMPLATE_ID)
        s_app, s_name = f(E.APPLICATION_ID), f(E.APPLICATION_NAME)
        s_e4, s_e6 = f(E.EXPORTER_IPV4_ADDRESS), f(E.EXPORTER_IPV6_ADDRESS)
        s_vin, s_vout, s_rd = f(E.INGRESS_VRFID), f(E.EGRESS_VRFID), f(E.MPLS_VPN_RD)
        system_scope = tpl.has(E.SCOPE_SYSTEM)
        is_sampling = s_sid is not None or (s_34 is not None and s_34.length == 4) or \
            (s_305 is not None and s_305.length == 4) or \
            (s_309 is not None and s_310 is not None and 1 <= s_309.length <= 8 and
             1 <= s_310.length <= 8)
        is_app = s_app is not None and 2 <= s_app.length <= 5 and s_name is not None
        is_exp = (s_e4 is not None and s_e4.length == 4) or (s_e6 is not None and s_e6.length == 16)
        is_vrf = s_vin is not None and s_vin.length == 4 and s_rd is not None and s_rd.length == 8
        if not (is_sampling or is_app or is_exp or is_vrf):
            return len(recs)
        states = dec.states
        local = states.domain(dg.src, 9, sid)
        system = states.system(dg.src)
        to_system = o.disable_opt_scope_check or system_scope
        target = system if to_system else local
        if target is None:
            return len(recs)

        def val(rec, slot, vals):
            if slot is None:
                return None
            if slot.vlen:
                i = _IDX.unpack_from(rec, slot.offset)[0]
                return vals[i] if vals is not None and i < len(vals) else b""
            return rec[slot.offset:slot.offset + slot.length]

        for rec, vals in recs:
            if is_sampling:
                sampler = 0
                if not to_system and tpl.version == 10 and s_145 is not None:
                    sampler = _uint(val(rec, s_145, vals))
                if s_sid is not None and s_sid.length in (1, 2, 4):
                    sampler = _uint(val(rec, s_sid, vals))
                elif s_sid is None and s_sel is not None and 1 <= s_sel.length <= 8:
                    # pmacct 1.7.7 reads selectorId only when 8 bytes long
                    sampler = _uint(val(rec, s_sel, vals)) & 0xFFFFFFFF
                rate = 0
                if s_34 is not None and s_34.length in (1, 2, 4):
                    rate = _uint(val(rec, s_34, vals))
                if s_50 is not None and s_50.length in (1, 2, 4):
                    rate = _uint(val(rec, s_50, vals))
                elif s_305 is not None and s_306 is not None and s_305.length == 4 and s_306.length == 4:
                    interval = _uint(val(rec, s_305, vals))
                    space = _uint(val(rec, s_306, vals))
                    if interval:
                        rate = (interval + space) // interval
                elif s_309 is not None and s_310 is not None and 1 <= s_309.length <= 8 \
                        and 1 <= s_310.length <= 8:
                    # random n-out-of-N (RFC 5477), not read by pmacct 1.7.7
                    size = _uint(val(rec, s_309, vals))
                    population = _uint(val(rec, s_310, vals))
                    if size:
                        rate = population // size
                if target.samplers.set(sampler, rate & 0xFFFFFFFF):     # pmacct keeps 32 bits
                    target.touch()
            ent = system if (system_scope and not o.disable_opt_scope_check) or o.disable_opt_scope_check else local
            if ent is None:
                continue
            if is_app:
                raw_id = val(rec, s_app, vals)
                name = val(rec, s_name, vals)
                if raw_id and name:
                    cid = _uint(raw_id[1:])
                    text = bytes(name).split(b"\0", 1)[0][:31].decode("utf-8", "replace")
                    ent.set_map("apps", cid, text)
            if is_exp:
                if s_e4 is not None and s_e4.length == 4:
                    addr = (4, bytes(val(rec, s_e4, vals)) + bytes(12))
                else:
                    addr = (6, bytes(val(rec, s_e6, vals)))
                if ent.exporter_addr != addr:
                    ent.exporter_addr = addr
                    ent.touch()
            if is_vrf:
                vin = _uint(val(rec, s_vin, vals))
                vout = _uint(val(rec, s_vout, vals)) if s_vout is not None and s_vout.length == 4 else 0
                rd = bytes(val(rec, s_rd, vals))
                if vin:
                    ent.set_map("in_rd", vin, rd)
                if vout:
                    ent.set_map("out_rd", vout, rd)
        return len(recs)

    # --- templates ---
    def _store(self, dg, tpl: Template) -> None:
        dec = self.dec
        self.changes += 1
        dec.stats.exporter(dg.src).templates += 1
        if tpl.reclen == 0:
            raise Malformed("unable to read Data Template (zero-length records)")
        res = dec.templates.put(tpl)
        if res == "full":
            dec.log.limited((dg.src, "tplfull"),
                            f"template cache full for agent={dg.src}: template {tpl.tid} dropped")
        elif res in ("new", "changed"):
            if dec.debugging:
                dec.log.debug(f"NfV{tpl.version} agent {dg.src}:{tpl.domain} {'options ' if tpl.options else ''}"
                              f"template ID {tpl.tid} ({len(tpl.fields)} fields, record size "
                              f"{'tbd' if tpl.vlen else tpl.reclen}) {res}")

    def _fields(self, p, pos, end, count, version):
        fields = []
        for _ in range(count):
            if pos + 4 > end:
                raise Malformed("unable to read Data Template (malformed)")
            ftype, flen = _SET.unpack_from(p, pos)
            pos += 4
            pen = 0
            if version == 10 and ftype & 0x8000:
                if pos + 4 > end:
                    raise Malformed("unable to read Data Template (malformed)")
                pen = _U32.unpack_from(p, pos)[0]
                pos += 4
                ftype &= 0x7FFF
            fields.append(Field(ftype, flen, pen))
        return fields, pos

    def _same(self, dg, sid, tid, p, pos, end) -> int:
        """If the template at ``pos`` is a byte-identical resend of the cached one, the
        number of bytes to skip; else 0."""
        old = self.dec.templates._t.get((dg.src, sid, tid))
        if old is not None and old.wire and pos + len(old.wire) <= end and \
                p[pos:pos + len(old.wire)] == old.wire:
            self.dec.stats.exporter(dg.src).templates += 1
            return len(old.wire)
        return 0

    def _templates(self, dg, version, p, pos, end, sid):
        dec = self.dec
        while end - pos >= 4:
            tid, count = _SET.unpack_from(p, pos)
            skip = self._same(dg, sid, tid, p, pos, end) if count else 0
            if skip:
                pos += skip
                continue
            if count == 0:
                if tid < 256 and tid != 2:
                    break                                # padding
                pos += 4
                dec.stats.exporter(dg.src).templates += 1
                self.changes += 1
                if tid == 2:
                    dec.templates.withdraw_all(dg.src, sid, options=False)
                else:
                    dec.templates.withdraw(dg.src, sid, tid)
                continue
            if tid < 256:
                raise Malformed(f"unable to read Data Template (bad template ID {tid})")
            if count > MAX_FIELDS:
                raise Malformed("insert_template(): unable to read Data Template (too long)")
            begin = pos
            fields, pos = self._fields(p, pos + 4, end, count, version)
            tpl = Template(dg.src, sid, tid, fields, options=False, version=version)
            tpl.wire = bytes(p[begin:pos])
            self._store(dg, tpl)

    def _options_templates(self, dg, version, p, pos, end, sid):
        dec = self.dec
        while True:
            if end - pos >= 6:
                skip = self._same(dg, sid, _U16.unpack_from(p, pos)[0], p, pos, end)
                if skip:
                    pos += skip
                    continue
            begin = pos
            if version == 10:
                if end - pos < 4:
                    break
                tid, count = _SET.unpack_from(p, pos)
                if count == 0:
                    if tid < 256 and tid != 3:
                        break
                    pos += 4
                    dec.stats.exporter(dg.src).templates += 1
                    self.changes += 1
                    if tid == 3:
                        dec.templates.withdraw_all(dg.src, sid, options=True)
                    else:
                        dec.templates.withdraw(dg.src, sid, tid)
                    continue
                if end - pos < 6:
                    raise Malformed("insert_opt_template(): unable to read Options Template Flowset (malformed)")
                scope = _U16.unpack_from(p, pos + 4)[0]
                if tid < 256:
                    raise Malformed(f"unable to read Options Template (bad template ID {tid})")
                if scope > count:
                    raise Malformed("insert_opt_template(): unable to read Options Template Flowset (malformed)")
                total = count
                pos += 6
            else:
                if end - pos < 6:
                    break
                tid, slen, olen = struct.unpack_from("!HHH", p, pos)
                if tid == 0 and slen == 0 and olen == 0:
                    break                                # padding
                if tid < 256:
                    raise Malformed(f"unable to read Options Template (bad template ID {tid})")
                scope = slen // 4
                total = scope + olen // 4
                pos += 6
            if total > MAX_FIELDS:
                raise Malformed("insert_opt_template(): unable to read Options Template (too long)")
            if total == 0:
                raise Malformed("insert_opt_template(): unable to read Options Template Flowset (malformed)")
            fields, pos = self._fields(p, pos, end, total, version)
            tpl = Template(dg.src, sid, tid, fields, options=True, scope_count=scope, version=version)
            tpl.wire = bytes(p[begin:pos])
            self._store(dg, tpl)


# --- many datagrams at once (the fast path) ---------------------------------------------

K_DATA, K_TEMPLATE, K_OPTIONS = 0, 1, 2
_TERMS = (None, M_INCOMPLETE, M_DATA, M_ZERO, M_SHORTSET, M_TEMPLATE, M_OPTIONS)
_VECTOR_STEPS = 24          # sets walked vectorised per datagram; the rest one by one


def _walk_one(p, off: int, plen: int, sets: list, d: int, k: int) -> int:
    """Walk the remaining sets of one datagram (p: the batch buffer, ``plen`` the end of
    the datagram in it) as the vectorised walk does; returns the termination code."""
    u = _SET.unpack_from
    while off < plen:
        if off + 4 > plen:
            return 1
        fid, flen = u(p, off)
        end = off + flen
        if fid >= 256 and flen >= 4:
            if end > plen:
                return 2
            sets.append((d, k, off, fid, flen, K_DATA))
        elif flen == 0:
            return 3
        elif flen < 4:
            return 4
        elif fid in (0, 2):
            if end > plen:
                return 5
            sets.append((d, k, off, fid, flen, K_TEMPLATE))
        elif fid in (1, 3):
            if end > plen:
                return 6
            sets.append((d, k, off, fid, flen, K_OPTIONS))
        elif end > plen:
            return 0                        # an unsupported set cut short: stop quietly
        off = end
        k += 1
    return 0


def walk_sets(buf, w16, dgi: np.ndarray, first: np.ndarray, end: np.ndarray):
    """The sets of many v9/IPFIX datagrams, following pmacct's walk: returns the sets
    (datagram number, position in its datagram, offset, set id, length, kind) ordered
    by datagram then position, and per datagram a termination code (0: walked to the
    end; else an index into ``_TERMS``: the datagram is malformed there)."""
    n = len(dgi)
    term = np.zeros(n, np.int8)
    cur = first.copy()
    parts = []
    act = np.nonzero(cur < end)[0]
    k = 0
    while len(act) and k < _VECTOR_STEPS:
        c = cur[act]
        e = end[act]
        short = c + 4 > e
        if short.any():
            term[act[short]] = 1
            keep = ~short
            act, c, e = act[keep], c[keep], e[keep]
        fid = w16[c].astype(np.int64)
        flen = w16[c + 2].astype(np.int64)
        send = c + flen
        over = send > e
        data = (fid >= 256) & (flen >= 4)
        okl = flen >= 4
        tpl = ~data & okl & ((fid == 0) | (fid == 2))
        opt = ~data & okl & ((fid == 1) | (fid == 3))
        t = np.zeros(len(act), np.int8)
        t[data & over] = 2
        t[~data & (flen == 0)] = 3
        t[~data & (flen > 0) & (flen < 4)] = 4
        t[tpl & over] = 5
        t[opt & over] = 6
        quiet = ~data & okl & ~tpl & ~opt & over
        rec = (data | tpl | opt) & ~over
        if rec.any():
            kind = np.where(data, K_DATA, np.where(tpl, K_TEMPLATE, K_OPTIONS))[rec]
            parts.append((act[rec], np.full(int(rec.sum()), k, np.int64), c[rec], fid[rec],
                          flen[rec], kind))
        bad = t > 0
        if bad.any():
            term[act[bad]] = t[bad]
        go = ~bad & ~quiet
        act = act[go]
        cur[act] = send[go]
        act = act[cur[act] < end[act]]
        k += 1
    if len(act):                             # datagrams with many sets: one by one
        rest: list = []
        for i in act.tolist():
            term[i] = _walk_one(buf, int(cur[i]), int(end[i]), rest, i, k)
        if rest:
            parts.append(tuple(np.array(c, np.int64) for c in zip(*rest)))
    if not parts:
        z = np.zeros(0, np.int64)
        return (z, z, z, z, z, z), term
    cols = tuple(np.concatenate(c) for c in zip(*parts))
    # parts come position by position, each in datagram order: a stable sort by
    # datagram leaves every datagram's sets in position order
    o = np.argsort(cols[0], kind="stable")
    return tuple(c[o] for c in cols), term


class BatchParse:
    """One decode() call's v9/IPFIX datagrams, parsed together.

    Sets are walked vectorised. Template and options template sets are then applied in
    arrival order; data sets are resolved to their templates in bulk, between template
    changes (an identical resend changes nothing). Data sets of options templates are
    applied in order as they come (they may change sampling rates and such); data sets
    of fixed-length templates become chunks without a Python step per set.
    """

    def __init__(self, parser: V9Parser, coll, pk, idx, version, seq, sid, dom, dstates):
        self.p = parser
        self.dec = parser.dec
        self.coll = coll
        self.pk = pk
        self.idx = idx                  # batch datagram number of each parsed datagram
        self.version = version          # per parsed datagram
        self.seq = seq
        self.sid = sid
        self.dom = dom                  # index into ``dstates`` per parsed datagram
        self.dstates = dstates          # DomainState (or None) per exporter domain
        self.cut: dict[int, int] = {}   # parsed datagram -> position of the set that stopped it
        self.seq_inc = np.zeros(len(idx), np.int64)
        self._dg: dict[tuple, object] = {}   # (exporter, port) -> DgRef

    def dgram(self, j: int):
        """Who sent parsed datagram ``j`` (for counters and log lines)."""
        i = int(self.idx[j])
        key = (int(self.pk.exp[i]), int(self.pk.port[i]))
        g = self._dg.get(key)
        if g is None:
            g = self._dg[key] = self.pk.ref(i)
        return g

    def st(self, j: int):
        return self.dstates[self.dom[j]]

    def run(self, sets, term) -> np.ndarray:
        """Apply the sets; returns each datagram's sequence increment (IPFIX: its data
        records; v9: 1; 1 for a datagram that turned out malformed)."""
        dec = self.dec
        sd, sk, soff, sfid, sflen, skind = sets
        self.sets = sets
        self.nsets = len(sd)
        cache = dec.templates
        parser = self.p
        resends = parser.resends
        buf = self.pk.buf
        ctrl = np.nonzero(skind != K_DATA)[0]
        pos = 0
        cache.journal = journal = []
        try:
            for ci in ctrl.tolist():
                j = int(sd[ci])
                k = int(sk[ci])
                c = self.cut.get(j)
                if c is not None and k > c:
                    continue
                mark = len(journal)
                dg = self.dgram(j)
                off, flen = int(soff[ci]), int(sflen[ci])
                # exporters resend their templates all the time: a set seen before, made
                # only of identical resends while the cache has not changed since, is
                # counted and skipped
                if parser.resends_gen != cache.generation:
                    resends.clear()
                    parser.resends_gen = cache.generation
                rkey = (dg.src, int(self.sid[j]), int(self.version[j]), int(skind[ci]),
                        buf[off + 4:off + flen])
                known = resends.get(rkey)
                if known is not None:
                    dec.stats.exporter(dg.src).templates += known
                    continue
                ctr = dec.stats.exporter(dg.src)
                before = (ctr.templates, parser.changes)
                try:
                    if skind[ci] == K_TEMPLATE:
                        parser._templates(dg, int(self.version[j]), buf, off + 4, off + flen,
                                          int(self.sid[j]))
                    else:
                        parser._options_templates(dg, int(self.version[j]), buf, off + 4,
                                                  off + flen, int(self.sid[j]))
                except Malformed as e:
                    dec.malformed(dg, str(e), int(self.seq[j]))
                    self.cut[j] = k
                except Exception as e:
                    self._internal(j, k, e)
                else:
                    if parser.changes == before[1] and cache.generation == parser.resends_gen:
                        if len(resends) >= 4096:
                            resends.clear()
                        resends[rkey] = ctr.templates - before[0]
                if len(journal) > mark:
                    # the cache changed: what came before it saw the old templates
                    old: dict = {}
                    for key, tpl in journal[mark:]:
                        old.setdefault(key, tpl)
                    self.flush(pos, ci, old)
                    pos = ci + 1
                    del journal[:]
            self.flush(pos, self.nsets, None)
        finally:
            cache.journal = None
        inc = np.where(self.version == 10, self.seq_inc, 1)
        malformed = term > 0
        if self.cut:
            malformed[list(self.cut)] = True
        inc[malformed] = 1
        for j in np.nonzero(term > 0)[0].tolist():
            if j not in self.cut:
                dec.malformed(self.dgram(j), _TERMS[term[j]], int(self.seq[j]))
        return inc

    def _internal(self, j: int, k: int, e: Exception) -> None:
        """An unexpected error on one set: counted and logged, the rest of its datagram
        skipped (as the one-at-a-time path does)."""
        import traceback
        dec = self.dec
        dec.errors += 1
        dec.last_error = traceback.format_exc()
        self.cut[j] = k
        try:
            dec.malformed(self.dgram(j), f"internal error decoding datagram ({type(e).__name__}: {e})",
                          key="internal")
        except Exception:
            pass

    def flush(self, a: int, b: int, old: dict | None) -> None:
        """Resolve and queue the data sets among sets [a, b): the template cache is as it
        was for all of them (with ``old`` entries restored)."""
        if b <= a:
            return
        sd, sk, soff, sfid, sflen, skind = (c[a:b] for c in self.sets)
        data = skind == K_DATA
        if self.cut:
            for j, kc in self.cut.items():
                data &= ~((sd == j) & (sk > kc))
        pos = np.nonzero(data)[0]
        if not len(pos):
            return
        dec = self.dec
        coll = self.coll
        pk = self.pk
        d = sd[pos]
        exp = pk.exp[self.idx[d]]
        sid = self.sid[d].astype(np.int64)
        fid = sfid[pos]
        key = (exp << 48) | (sid << 16) | fid
        ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
        tget = dec.templates._t.get
        srcs = pk.srcs
        # per distinct (exporter, domain, template id): 0 no template, 1 fixed, 2 other
        ukind = np.zeros(len(ukey), np.int8)
        ugid = np.zeros(len(ukey), np.int64)
        ulen = np.ones(len(ukey), np.int64)
        utpl = []
        for u, f in enumerate(first.tolist()):
            tk = (srcs[int(exp[f])], int(sid[f]), int(fid[f]))
            tpl = old[tk] if old is not None and tk in old else tget(tk)
            utpl.append(tpl)
            if tpl is None:
                continue
            if tpl.options or tpl.vlen or not tpl.wire_len:
                ukind[u] = 2
                continue
            try:
                plan = dec.plan_for(tpl)
            except Exception:
                ukind[u] = 2            # the one-by-one walk below reports it
                continue
            ukind[u] = 1
            ugid[u] = coll.group(tpl, plan.dtype)
            ulen[u] = tpl.wire_len
        kind = ukind[inv]
        bulk = kind == 1
        nrec = np.where(bulk, (sflen[pos] - 4) // ulen[inv], 0)
        # (exporter, domain) of the bulk sets, for their contexts
        ekey = (exp << 32) | sid
        ekeys = {}
        if bulk.any():
            uk, ui = np.unique(ekey[bulk], return_index=True)
            bq0 = np.nonzero(bulk)[0]
            for kk, f in zip(uk.tolist(), ui.tolist()):
                ekeys.setdefault(int(exp[bq0[f]]), []).append((kk, int(sid[bq0[f]]), int(d[bq0[f]])))
        # sets that need a Python step, in order. Options data may change contexts:
        # before each, the contexts of its exporter's domains are noted for the bulk
        # sets before it; where it changed something, a new context segment starts
        splits: list[int] = []
        seg_maps: list[dict] = []
        cur: dict = {}
        states = dec.states
        for q in np.nonzero(~bulk)[0].tolist():
            j = int(d[q])
            k = int(sk[pos[q]])
            c = self.cut.get(j)
            if c is not None and k > c:
                continue
            tpl = utpl[inv[q]]
            dg = self.dgram(j)
            s = int(sid[q])
            if tpl is None:
                dec.no_template(dg, s, int(fid[q]))
                continue
            off = int(soff[pos[q]])
            end = off + int(sflen[pos[q]])
            di = int(self.idx[j])
            order = (di << 16) + k
            src = dg.src
            try:
                if tpl.options:
                    for kk, ks, kj in ekeys.get(int(exp[q]), ()):
                        if kk not in cur:
                            cur[kk] = self._context(int(exp[q]), ks, kj)
                    before = self._versions(src, s)
                    n = self.p._options_data(dg, tpl, pk.buf, off + 4, end, s)
                    self.seq_inc[j] += n
                    if n:
                        ctx = states.context(src, s, self.st(j))
                        if dec.opts.account_options:
                            self.p._queue(tpl, pk.buf, off + 4, end, coll, di, ctx, order, 0)
                    if self._versions(src, s) != before:
                        splits.append(q + 1)
                        seg_maps.append(cur)
                        cur = {}
                else:
                    n = self.p._queue(tpl, pk.buf, off + 4, end, coll, di,
                                      states.context(src, s, self.st(j)), order, 0)
                    self.seq_inc[j] += n
            except Exception as e:
                self._internal(j, k, e)
                # sets after it in its datagram are dropped, bulk ones included
                later = (d == j) & (sk[pos] > k)
                bulk &= ~later
                nrec = np.where(later, 0, nrec)
        if not bulk.any():
            return
        seg_maps.append(cur)
        # a domain's context in a segment: as noted there, else as noted in the next
        # segment that noted it, else as it is now
        latest = {}
        for e, lst in ekeys.items():
            for kk, ks, kj in lst:
                latest[kk] = self._context(e, ks, kj)
        seg_ctx: list[dict] = [None] * len(seg_maps)
        for i in range(len(seg_maps) - 1, -1, -1):
            latest = {**latest, **seg_maps[i]}
            seg_ctx[i] = {kk: coll.ctx_id(ctx) for kk, ctx in latest.items()}
        bq = np.nonzero(bulk)[0]
        bk = ekey[bq]
        if len(seg_ctx) == 1 and len(seg_ctx[0]) == 1:
            ctx_ids = next(iter(seg_ctx[0].values()))
        else:
            seg = np.searchsorted(np.asarray(splits, np.int64), bq, side="right")
            uk, uinv = np.unique(bk, return_inverse=True)
            table = np.array([[m[int(kk)] for kk in uk] for m in seg_ctx], np.int64)
            ctx_ids = table[seg, uinv]
        bd = d[bq]
        di = self.idx[bd]
        n = nrec[bq]
        self.seq_inc += np.bincount(bd, weights=n, minlength=len(self.seq_inc)).astype(np.int64)
        coll.add_many(ugid[inv[bq]], soff[pos[bq]] + 4, n, di, ctx_ids, (di << 16) + sk[pos[bq]])

    def _context(self, e: int, s: int, j: int):
        return self.dec.states.context(self.pk.srcs[e], s, self.st(j))

    def _versions(self, src: str, sid: int):
        st = self.dec.states.domains
        a = st.get((src, 9, sid))
        b = st.get((src, 0, 0))
        return (a.version if a is not None else -1, b.version if b is not None else -1)
