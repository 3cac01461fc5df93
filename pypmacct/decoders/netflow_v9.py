"""NetFlow v9 and IPFIX: headers, sets, templates and options, one template engine.

``V9Parser.parse`` walks one datagram: it checks the header and sequence number, learns
templates and options templates, applies options data (sampling rates, exporter address,
VRF and application maps) at once, and hands every data set to the collector as a chunk
to be decoded later, vectorised, with all other data sets of the same template. Records
of templates with variable-length fields are walked here and re-laid out to fixed size.

Malformed input is counted per exporter and logged (rate-limited) with pmacct's wording;
processing of that datagram stops where pmacct's would.
"""
from __future__ import annotations

import struct

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


def _uint(b: bytes) -> int:
    return int.from_bytes(b, "big")


class V9Parser:
    def __init__(self, dec):
        self.dec = dec          # the NetflowDecoder: options, log, stats, caches

    # --- datagram ---
    def parse(self, dg, version: int, coll) -> None:
        """Parse one v9/IPFIX datagram into ``coll``."""
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
            if st.seqno and seq == ((st.seqno + st.inc) & 0xFFFFFFFF) and not dec.opts.disable_checks:
                st.good += 1                      # the common case, inline
                st.packets += 1
                st.bytes += plen
                st.seqno = seq
            else:
                dec.check_sequence(st, dg, seq, sid, plen)
            st.inc = 1
        di = len(coll.dgs)
        coll.dgs.append((version, unix, uptime, seq, sid, dg.ts_us, coll.exporter(src), 0, 0))
        ctx = states.context(src, sid, st)
        chunks = coll.chunks
        tget = dec.templates._t.get
        seq_inc = 0
        try:
            while off < plen:
                if off + 4 > plen:
                    raise Malformed("unable to read next Flowset (incomplete NetFlow v9/IPFIX packet)")
                fid, flen = _SET.unpack_from(p, off)
                end = off + flen
                if fid >= 256 and flen >= 4:
                    if end > plen:
                        raise Malformed("unable to read next Data Flowset (incomplete NetFlow v9/IPFIX packet)")
                    tpl = tget((src, sid, fid))
                    if tpl is None:
                        dec.no_template(dg, sid, fid)
                    elif tpl.options:
                        n = self._options_data(dg, tpl, p, off + 4, end, sid)
                        seq_inc += n
                        if n:
                            ctx = states.context(src, sid, st)
                            if dec.opts.account_options:
                                self._queue(tpl, p, off + 4, end, coll, di, ctx)
                    elif tpl.wire_len:
                        n = (flen - 4) // tpl.wire_len
                        if n:
                            if tpl.plan is None:
                                dec.plan_for(tpl)
                                coll.dtypes[tpl] = tpl.plan.dtype
                            elif tpl not in coll.dtypes:
                                coll.dtypes[tpl] = tpl.plan.dtype
                            chunks.append((tpl, p[off + 4:off + 4 + n * tpl.wire_len], n, di, ctx))
                            seq_inc += n
                    else:
                        seq_inc += self._queue(tpl, p, off + 4, end, coll, di, ctx)
                elif flen == 0:
                    raise Malformed("unable to read next Flowset (NetFlow v9/IPFIX packet claiming flow_len 0!)")
                elif flen < 4:
                    raise Malformed("unable to read next Flowset (NetFlow v9/IPFIX packet (flowsetlen < NfDataHdrV9Sz)")
                elif fid in (0, 2):
                    if end > plen:
                        raise Malformed("unable to read next Template Flowset (incomplete NetFlow v9/IPFIX packet)")
                    self._templates(dg, version, p, off + 4, end, sid)
                elif fid in (1, 3):
                    if end > plen:
                        raise Malformed("unable to read next Options Template Flowset (incomplete NetFlow v9/IPFIX packet)")
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
    def _queue(self, tpl, p, start, end, coll, di, ctx) -> int:
        plan = self.dec.plan_for(tpl)
        coll.dtypes[tpl] = plan.dtype
        if not tpl.vlen:
            n = (end - start) // tpl.reclen
            if n:
                coll.chunks.append((tpl, p[start:start + n * tpl.reclen], n, di, ctx))
            return n
        recs = self._walk_vlen(tpl, p, start, end, coll.vvalues)
        if recs:
            coll.chunks.append((tpl, b"".join(recs), len(recs), di, ctx))
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
