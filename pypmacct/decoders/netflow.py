"""NetFlow v5 / v9 / IPFIX decoding: datagrams in, a record batch out.

    dec = NetflowDecoder(NetflowOptions(...), log=Logger(...), stats=Stats())
    batch = dec.decode(datagrams)

``decode`` never raises on input: a malformed datagram is counted in ``stats`` for its
exporter (``bad_datagrams``, ``no_template``...) and logged, rate-limited, with the
exporter address. Templates persist across restarts through ``templates_file``
(``nfacctd_templates_file``, pmacct's JSON-lines format): they are loaded when the
decoder is built and saved whenever a decode() changed them.

``NetflowOptions.record_dtype`` is the record the batch holds: ``RECORD_DTYPE`` or any
dtype made of some of its fields (``record.subset_dtype(RECORD_DTYPE, names)``) plus
custom fields. Only the fields it holds are decoded.

A batch holds its records grouped by template (v5 records together), each group in the
order its datagrams arrived. The whole batch is parsed together (headers, sequence
numbers and set boundaries with vectorised steps, templates in arrival order); each
group is then decoded with one vectorised pass (see ``plan`` and ``collect``). With
debug logging on, datagrams are parsed one at a time instead (pmacct logs a line per
datagram); both paths give the same records and state.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass

import numpy as np

from ..record import RECORD_DTYPE, Batch, StringTable
from ..runtime.log import Logger
from ..runtime.stats import Stats
from . import netflow_v5 as v5
from .collect import Collector, window
from .exporters import ExporterStates
from .ie import CustomField
from .netflow_v9 import BatchParse, V9Parser, walk_sets
from .packed import pack
from .plan import Plan
from .templates import DEFAULT_MAX_PER_EXPORTER, DEFAULT_MAX_TOTAL, TemplateCache

_V5_KEY = "v5"
_BE16 = np.dtype(">u2")
_BE32 = np.dtype(">u4")
MAX_EXPORTERS_FAST = 1 << 15      # distinct exporters in one batch the batch path handles


@dataclass
class NetflowOptions:
    """The nfacctd_* keys that change decoding."""
    time_secs: bool = False              # nfacctd_time_secs
    time_new: bool = False               # nfacctd_time_new
    renormalize: bool = False            # nfacctd_renormalize
    disable_checks: bool = True          # nfacctd_disable_checks (pmacct 1.7.7 default: true)
    templates_file: str | None = None    # nfacctd_templates_file
    ext_sampling_rate: int = 0           # nfacctd_ext_sampling_rate
    use_ip_next_hop: bool = False        # use_ip_next_hop
    account_options: bool = False        # nfacctd_account_options
    disable_opt_scope_check: bool = False  # nfacctd_disable_opt_scope_check
    asa_bi_flow: bool = False            # tmp_asa_bi_flow
    custom_fields: tuple = ()            # CustomField per aggregate_primitives entry
    record_dtype: np.dtype = RECORD_DTYPE
    collector_ip: str = "0.0.0.0"        # nfacctd_ip, for log lines only
    collector_port: int = 2100           # nfacctd_port, for log lines only
    max_templates_per_exporter: int = DEFAULT_MAX_PER_EXPORTER
    max_templates: int = DEFAULT_MAX_TOTAL
    save_templates_on_change: bool = True


class NetflowDecoder:
    def __init__(self, opts: NetflowOptions | None = None, log: Logger | None = None,
                 stats: Stats | None = None):
        self.opts = opts or NetflowOptions()
        self.log = log or Logger()
        self.stats = stats if stats is not None else Stats()
        self.templates = TemplateCache(self.opts.max_templates_per_exporter,
                                       self.opts.max_templates)
        self.states = ExporterStates()
        self.v9 = V9Parser(self)
        self.errors = 0                 # internal errors caught (bugs, not bad input)
        self.last_error = ""
        self._v5_steps = None
        if self.opts.templates_file:
            self.load_templates()

    # --- templates file ---
    def load_templates(self) -> int:
        if not self.opts.templates_file:
            return 0
        n = self.templates.load(self.opts.templates_file, self.log)
        self.debug(f"loaded {n} templates from {self.opts.templates_file}")
        return n

    def save_templates(self) -> None:
        if not self.opts.templates_file:
            return
        try:
            self.templates.save(self.opts.templates_file)
        except OSError as e:
            self.log.limited(("tplsave",), f"[{self.opts.templates_file}] unable to save templates: {e}")

    # --- helpers used by the parsers ---
    @property
    def debugging(self) -> bool:
        return self.log.sink.debug

    def debug(self, msg: str) -> None:
        if self.log.sink.debug:
            self.log.debug(msg)

    def no_template(self, dg, sid: int, tid: int) -> None:
        """A data set arrived before (or without) its template: counted and dropped."""
        self.stats.exporter(dg.src).no_template += 1
        self.log.limited((dg.src, "notpl", sid, tid),
                         f"Discarded NetFlow v9/IPFIX packet (R: unknown template {tid} "
                         f"[{dg.src}:{sid}])", level="DEBUG")

    def malformed(self, dg, msg: str, seq: int = 0, key: str | None = None) -> None:
        """Count a bad datagram for its exporter and log it (rate-limited per exporter
        and kind of problem) in pmacct's words."""
        self.stats.exporter(dg.src).bad_datagrams += 1
        tail = f" seq={seq}" if seq else ""
        self.log.limited((dg.src, key or msg),
                         f"{msg}: nfacctd={self.opts.collector_ip}:{self.opts.collector_port} "
                         f"agent={dg.src}:{dg.port}{tail}", level="INFO")

    def check_sequence(self, st, dg, seq: int, aux: int, nbytes: int) -> None:
        """pmacct's check: each datagram's sequence number must be the previous one plus
        the increment (v5: its record count; v9: 1; IPFIX: its data records)."""
        st.packets += 1
        st.bytes += nbytes
        if not st.seqno or self.opts.disable_checks:
            st.good += 1
        else:
            expected = (st.seqno + st.inc) & 0xFFFFFFFF
            if seq == expected:
                st.good += 1
            else:
                self.sequence_jump(st, dg, seq, expected, aux)
        st.seqno = seq

    def sequence_jump(self, st, dg, seq: int, expected: int, aux: int) -> None:
        """A datagram out of sequence: counted (forward or back) and logged as pmacct
        logs it, rate-limited per exporter and domain."""
        self.stats.exporter(dg.src).seq_errors += 1
        if seq > expected:
            st.jumps_f += 1
        else:
            st.jumps_b += 1
        self.log.limited((dg.src, "seq", aux),
                         f"expecting flow '{expected}' but received '{seq}' "
                         f"collector={self.opts.collector_ip}:{self.opts.collector_port} "
                         f"agent={dg.src}:{aux}", level="INFO")

    def plan_for(self, tpl) -> Plan:
        plan = tpl.plan
        if plan is None:
            plan = tpl.plan = Plan(tpl, self.opts, self.opts.record_dtype)
        return plan

    # --- the front door ---
    def decode(self, datagrams) -> Batch:
        pk = pack(datagrams)
        stats = self.stats
        if pk.n:
            counts = np.bincount(pk.exp, minlength=len(pk.srcs))
            for i in np.nonzero(counts)[0].tolist():
                stats.exporter(pk.srcs[i]).datagrams += int(counts[i])
        coll = Collector(pk.buf, pk.n, pk.srcs)
        if self.log.sink.debug or len(pk.srcs) >= MAX_EXPORTERS_FAST:
            self._decode_each(pk, coll)
        elif pk.n:
            try:
                self._decode_all(pk, coll)
            except Exception as e:                  # a bug must not stop the core
                self.errors += 1
                self.last_error = traceback.format_exc()
                self.log.limited(("batch",), f"internal error decoding a batch: "
                                 f"{type(e).__name__}: {e}", level="ERROR")
        strings = StringTable()
        try:
            records, rec_exp = coll.assemble(self.opts.record_dtype, self._decode_group, strings,
                                             self._group_failed)
        except Exception as e:
            self.errors += 1
            self.last_error = traceback.format_exc()
            self.log.limited(("assemble",), f"internal error assembling records: {e}", level="ERROR")
            records, rec_exp = np.zeros(0, self.opts.record_dtype), np.zeros(0, np.int64)
        if len(rec_exp):
            counts = np.bincount(rec_exp, minlength=len(pk.srcs))
            for i in np.nonzero(counts)[0].tolist():
                stats.exporter(pk.srcs[i]).records += int(counts[i])
        if self.templates.dirty and self.opts.templates_file and self.opts.save_templates_on_change:
            self.save_templates()
        return Batch(records, strings.strings)

    def _decode_group(self, key, raw, tgt, env):
        if key is _V5_KEY:
            steps = self._v5_steps
            if steps is None:
                steps = self._v5_steps = v5.compile_fill(frozenset(self.opts.record_dtype.names), self.opts)
            v5.fill(raw, tgt, env, steps)
            return None
        return key.plan.fill(raw, tgt, env)

    def _group_failed(self, key, e):
        self.errors += 1
        self.last_error = traceback.format_exc()
        self.log.limited(("group", id(key)), f"internal error decoding {key!r}: "
                         f"{type(e).__name__}: {e}", level="ERROR")

    # --- one datagram at a time: with debug logging (pmacct's per-packet lines) ---
    def _decode_each(self, pk, coll) -> None:
        for i in range(pk.n):
            dg = pk.dgram(i)
            try:
                p = dg.payload
                if len(p) < 2:
                    self.malformed(dg, "discarding short packet")
                    continue
                version = (p[0] << 8) | p[1]
                if version == 5:
                    self._v5(dg, coll, i, int(pk.exp[i]), int(pk.start[i]))
                elif version == 9 or version == 10:
                    self.v9.parse(dg, version, coll, i, int(pk.exp[i]), int(pk.start[i]))
                else:
                    # pmacct stays silent here when nfacctd_disable_checks is on (its
                    # default); a datagram we drop is always counted and logged
                    self.malformed(dg, "discarding unknown packet")
            except Exception as e:                  # a parser bug must not stop the core
                self.errors += 1
                self.last_error = traceback.format_exc()
                try:
                    self.malformed(dg, f"internal error decoding datagram ({type(e).__name__}: {e})",
                                   key="internal")
                except Exception:
                    pass

    def _v5(self, dg, coll, di: int, exp: int, base: int) -> None:
        p = dg.payload
        if len(p) < v5.HEADER_LEN:
            self.malformed(dg, "discarding short NetFlow v5 packet")
            return
        _, count, uptime, unix, _nsecs, seq, etype, eid, sampling = v5.HEADER.unpack_from(p)
        engine = (eid << 8) | etype
        st = self.states.domain(dg.src, 5, engine)
        if st is not None:
            self.check_sequence(st, dg, seq, engine, len(p))
            st.inc = count
        if count > v5.MAX_RECORDS or v5.HEADER_LEN + count * v5.RECORD_LEN != len(p):
            self.malformed(dg, "discarding malformed NetFlow v5 packet")
            return
        if self.log.sink.debug:
            self.log.debug(f"Received NetFlow packet from [{dg.src}:{dg.port}] version [5] seqno [{seq}]")
        if not count:
            return
        coll.header(di, 5, unix, uptime, seq, eid, dg.ts_us, exp, sampling, (etype << 8) | eid)
        gid = coll.group(_V5_KEY, v5.RECORD_DTYPE_V5)
        coll.add(gid, base + v5.HEADER_LEN, count, di, None, di << 16)

    # --- the whole batch at once ---
    def _decode_all(self, pk, coll) -> None:
        """Headers, sequence numbers and v5 records of every datagram with vectorised
        steps; v9/IPFIX sets through ``netflow_v9.BatchParse``. Log lines about bad
        datagrams come grouped by kind rather than interleaved in arrival order."""
        buf = pk.buf
        n = pk.n
        S, L = pk.start, pk.length
        a = np.frombuffer(buf, np.uint8)
        ver = np.full(n, -1, np.int64)
        ok = L >= 2
        ver[ok] = (a[S[ok]].astype(np.int64) << 8) | a[S[ok] + 1]
        w16 = window(buf, _BE16)
        w32 = window(buf, _BE32)
        h5 = np.nonzero((ver == 5) & (L >= v5.HEADER_LEN))[0]
        h9 = np.nonzero(((ver == 9) & (L >= 20)) | ((ver == 10) & (L >= 16)))[0]
        # bad datagrams we can tell from their first bytes, in arrival order
        short = ~ok
        unknown = ok & (ver != 5) & (ver != 9) & (ver != 10)
        short5 = (ver == 5) & (L < v5.HEADER_LEN)
        short9 = ((ver == 9) & (L < 20)) | ((ver == 10) & (L < 16))
        for i in np.nonzero(short | unknown | short5 | short9)[0].tolist():
            msg = ("discarding short packet" if short[i] else "discarding unknown packet" if unknown[i]
                   else "discarding short NetFlow v5 packet" if short5[i]
                   else "discarding short NetFlow v9/IPFIX packet")
            self.malformed(pk.ref(i), msg)
        d = coll.d
        # --- exporter domains (v5 engines, v9 source ids, IPFIX domains), in arrival order
        hv = np.sort(np.concatenate([h5, h9]))
        if not len(hv):
            return
        is5 = ver[hv] == 5
        s5 = S[hv]
        dom_id = np.empty(len(hv), np.int64)
        q = s5[is5]
        dom_id[is5] = (a[q + 21].astype(np.int64) << 8) | a[q + 20]           # v5 engine
        q9 = ver[hv] == 9
        dom_id[q9] = w32[s5[q9] + 16]                                           # source id
        q10 = ver[hv] == 10
        dom_id[q10] = w32[s5[q10] + 12]                                         # domain
        dkey = (pk.exp[hv] << 33) | (np.where(is5, 0, 1) << 32) | dom_id
        ukey, ufirst, uinv = np.unique(dkey, return_index=True, return_inverse=True)
        states = self.states
        dstates = [None] * len(ukey)
        for u in np.argsort(ufirst).tolist():
            f = int(ufirst[u])
            src = pk.srcs[int(pk.exp[hv[f]])]
            if is5[f]:
                dstates[u] = states.domain(src, 5, int(dom_id[f]))
            else:
                sid = int(dom_id[f])
                dstates[u] = states.domains.get((src, 9, sid)) or states.domain(src, 9, sid)
        dom = np.full(n, -1, np.int64)
        dom[hv] = uinv
        seq = np.zeros(n, np.int64)
        inc = np.zeros(n, np.int64)
        # --- v5
        if len(h5):
            s = S[h5]
            count = w16[s + 2].astype(np.int64)
            seq[h5] = w32[s + 16]
            inc[h5] = count
            bad = (count > v5.MAX_RECORDS) | (v5.HEADER_LEN + count * v5.RECORD_LEN != L[h5])
            for i in h5[bad].tolist():
                self.malformed(pk.ref(i), "discarding malformed NetFlow v5 packet")
            good = ~bad & (count > 0)
            g = h5[good]
            if len(g):
                s = S[g]
                d.version[g] = 5
                d.uptime[g] = w32[s + 4]
                d.unix[g] = w32[s + 8]
                d.seq[g] = seq[g]
                eid = a[s + 21]
                d.sysid[g] = eid
                d.engine[g] = (a[s + 20].astype(np.uint16) << 8) | eid
                d.sampling[g] = w16[s + 22]
                d.arrival[g] = pk.ts[g]
                d.exporter[g] = pk.exp[g]
                gid = coll.group(_V5_KEY, v5.RECORD_DTYPE_V5)
                coll.add_many(gid, s + v5.HEADER_LEN, count[good], g, coll.ctx_id(None), g << 16)
        # --- v9 / IPFIX
        if len(h9):
            s = S[h9]
            is9 = ver[h9] == 9
            sq = np.where(is9, w32[s + 12], w32[s + 8]).astype(np.int64)
            sid = dom_id[np.searchsorted(hv, h9)]
            seq[h9] = sq
            d.version[h9] = ver[h9]
            d.unix[h9] = np.where(is9, w32[s + 8], w32[s + 4])
            d.uptime[h9] = np.where(is9, w32[s + 4], 0)
            d.seq[h9] = sq
            d.sysid[h9] = sid
            d.arrival[h9] = pk.ts[h9]
            d.exporter[h9] = pk.exp[h9]
            sets, term = walk_sets(buf, w16, h9, s + np.where(is9, 20, 16), s + L[h9])
            bp = BatchParse(self.v9, coll, pk, h9, ver[h9], sq, sid, dom[h9], dstates)
            inc[h9] = bp.run(sets, term)
        # --- sequence numbers, per domain in arrival order
        self._sequences(pk, hv, dom[hv], seq[hv], inc[hv], dom_id, dstates)

    def _sequences(self, pk, idx, dom, seq, inc, dom_id, dstates) -> None:
        """pmacct's sequence check for datagrams ``idx`` (see ``check_sequence``), and
        the per-domain counters it keeps."""
        live = np.array([st is not None for st in dstates], bool)[dom]
        if not live.all():
            idx, dom, seq, inc, dom_id = idx[live], dom[live], seq[live], inc[live], dom_id[live]
        if not len(idx):
            return
        o = np.argsort(dom, kind="stable")
        idx, dom, seq, inc, dom_id = idx[o], dom[o], seq[o], inc[o], dom_id[o]
        first = np.ones(len(dom), bool)
        first[1:] = dom[1:] != dom[:-1]
        prev_seq = np.empty_like(seq)
        prev_inc = np.empty_like(inc)
        prev_seq[1:] = seq[:-1]
        prev_inc[1:] = inc[:-1]
        fd = dom[first]
        prev_seq[first] = [dstates[u].seqno for u in fd.tolist()]
        prev_inc[first] = [dstates[u].inc for u in fd.tolist()]
        expected = (prev_seq + prev_inc) & 0xFFFFFFFF
        if self.opts.disable_checks:
            good = np.ones(len(seq), bool)
        else:
            good = (prev_seq == 0) | (seq == expected)
        plen = pk.length[idx]
        last = np.ones(len(dom), bool)
        last[:-1] = first[1:]
        starts = np.nonzero(first)[0]
        npk = np.diff(np.append(starts, len(dom)))
        nbytes = np.add.reduceat(plen, starts)
        ngood = np.add.reduceat(good.astype(np.int64), starts)
        for u, c, b, g, sq, ic in zip(fd.tolist(), npk.tolist(), nbytes.tolist(), ngood.tolist(),
                                      seq[last].tolist(), inc[last].tolist()):
            st = dstates[u]
            st.packets += c
            st.bytes += b
            st.good += g
            st.seqno = sq
            st.inc = ic
        bad = np.nonzero(~good)[0]
        if len(bad):
            bad = bad[np.argsort(idx[bad], kind="stable")]
            for q in bad.tolist():
                self.sequence_jump(dstates[int(dom[q])], pk.ref(int(idx[q])), int(seq[q]),
                                   int(expected[q]), int(dom_id[q]))
