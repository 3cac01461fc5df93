"""NetFlow v5 / v9 / IPFIX decoding: datagrams in, a record batch out.

    dec = NetflowDecoder(NetflowOptions(...), log=Logger(...), stats=Stats())
    batch = dec.decode(datagrams)

``decode`` never raises on input: a malformed datagram is counted in ``stats`` for its
exporter (``bad_datagrams``, ``no_template``...) and logged, rate-limited, with the
exporter address. Templates persist across restarts through ``templates_file``
(``nfacctd_templates_file``, pmacct's JSON-lines format): they are loaded when the
decoder is built and saved whenever a decode() changed them.

A batch holds its records grouped by template (v5 records together), each group in the
order its datagrams arrived. Parsing only notes where records are; each group is then
decoded with one vectorised pass (see ``plan`` and ``collect``).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass

import numpy as np

from ..record import RECORD_DTYPE, Batch, StringTable
from ..runtime.log import Logger
from ..runtime.stats import Stats
from . import netflow_v5 as v5
from .collect import Collector
from .exporters import ExporterStates
from .ie import CustomField
from .netflow_v9 import V9Parser
from .plan import Plan
from .templates import DEFAULT_MAX_PER_EXPORTER, DEFAULT_MAX_TOTAL, TemplateCache

__all__ = ["NetflowDecoder", "NetflowOptions", "CustomField"]

_V5_KEY = "v5"


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
                self.stats.exporter(dg.src).seq_errors += 1
                if seq > expected:
                    st.jumps_f += 1
                else:
                    st.jumps_b += 1
                self.log.limited((dg.src, "seq", aux),
                                 f"expecting flow '{expected}' but received '{seq}' "
                                 f"collector={self.opts.collector_ip}:{self.opts.collector_port} "
                                 f"agent={dg.src}:{aux}", level="INFO")
        st.seqno = seq

    def plan_for(self, tpl) -> Plan:
        plan = tpl.plan
        if plan is None:
            plan = tpl.plan = Plan(tpl, self.opts, self.opts.record_dtype)
        return plan

    # --- the front door ---
    def decode(self, datagrams) -> Batch:
        coll = Collector()
        stats = self.stats
        for dg in datagrams:
            try:
                ctr = stats.exporter(dg.src)
                ctr.datagrams += 1
                p = dg.payload
                if len(p) < 2:
                    self.malformed(dg, "discarding short packet")
                    continue
                version = (p[0] << 8) | p[1]
                if version == 5:
                    self._v5(dg, coll)
                elif version == 9 or version == 10:
                    self.v9.parse(dg, version, coll)
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
        strings = StringTable()
        try:
            records, rec_exp = coll.assemble(self.opts.record_dtype, self._decode_group, strings,
                                             self._group_failed)
        except Exception as e:
            self.errors += 1
            self.log.limited(("assemble",), f"internal error assembling records: {e}", level="ERROR")
            records, rec_exp = np.zeros(0, self.opts.record_dtype), np.zeros(0, np.int64)
        if len(rec_exp):
            counts = np.bincount(rec_exp, minlength=len(coll.exporter_list))
            for i, c in enumerate(counts):
                if c:
                    stats.exporter(coll.exporter_list[i]).records += int(c)
        if self.templates.dirty and self.opts.templates_file and self.opts.save_templates_on_change:
            self.save_templates()
        return Batch(records, strings.strings)

    def _decode_group(self, key, raw, tgt, env):
        if key is _V5_KEY:
            v5.fill(raw, tgt, env, self.opts)
            return None
        return key.plan.fill(raw, tgt, env)

    def _group_failed(self, key, e):
        self.errors += 1
        self.last_error = traceback.format_exc()
        self.log.limited(("group", id(key)), f"internal error decoding {key!r}: "
                         f"{type(e).__name__}: {e}", level="ERROR")

    def _v5(self, dg, coll) -> None:
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
        di = len(coll.dgs)
        coll.dgs.append((5, unix, uptime, seq, eid, dg.ts_us, coll.exporter(dg.src), sampling,
                         (etype << 8) | eid))
        coll.dtypes[_V5_KEY] = v5.RECORD_DTYPE_V5
        coll.chunks.append((_V5_KEY, p[v5.HEADER_LEN:], count, di, None))
