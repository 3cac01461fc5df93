"""What nfacctd remembers per exporter between datagrams: sequence numbers, and what
options data taught it (sampling rates, the exporter's own address, VRF id to route
distinguisher maps, application names).

State is kept per (exporter address, source id / observation domain) and, for options
scoped to the whole system, per exporter. ``context()`` returns an immutable snapshot of
what a data record from that domain may use; it is rebuilt only after a change.
"""
from __future__ import annotations

from typing import NamedTuple

from .sampling import SamplerTable

MAX_ENTRIES = 4096       # per map, for VRF and application maps learned from options
MAX_DOMAINS = 1 << 16    # (exporter, domain) pairs tracked at all


class Context(NamedTuple):
    samplers: dict          # sampler id -> rate, this domain
    system_samplers: dict   # sampler id -> rate, system scope
    exporter_addr: tuple | None   # (af, 16-byte addr) from options, or None
    in_rd: dict             # ingress vrf id -> 8-byte RD (network order)
    out_rd: dict
    apps: dict              # application id (int) -> name


EMPTY_CONTEXT = Context({}, {}, None, {}, {}, {})


class DomainState:
    __slots__ = ("seqno", "inc", "samplers", "exporter_addr", "in_rd", "out_rd", "apps",
                 "version", "good", "jumps_f", "jumps_b", "packets", "bytes", "ctx", "ctx_key")

    def __init__(self):
        self.seqno = 0
        self.inc = 1
        self.samplers = SamplerTable()
        self.exporter_addr = None
        self.in_rd: dict = {}
        self.out_rd: dict = {}
        self.apps: dict = {}
        self.version = 0
        self.good = self.jumps_f = self.jumps_b = self.packets = self.bytes = 0
        self.ctx = None          # cached Context for data records of this domain
        self.ctx_key = None

    def touch(self):
        self.version += 1

    def set_map(self, name: str, key, value) -> None:
        d = getattr(self, name)
        if d.get(key) == value:
            return
        if key not in d and len(d) >= MAX_ENTRIES:
            return
        d = dict(d)                 # copy-on-write: snapshots keep the old one
        d[key] = value
        setattr(self, name, d)
        self.touch()


class ExporterStates:
    """All per-domain states, plus the context cache."""

    def __init__(self):
        self.domains: dict[tuple, DomainState] = {}
        self._ctx: dict[tuple, tuple] = {}

    def domain(self, exporter: str, kind: int, domain: int) -> DomainState | None:
        """``kind`` separates the v5 engine key (5), v9/IPFIX domains (9) and the
        system-wide scope (0)."""
        key = (exporter, kind, domain)
        st = self.domains.get(key)
        if st is None:
            if len(self.domains) >= MAX_DOMAINS:
                return None
            st = self.domains[key] = DomainState()
        return st

    def system(self, exporter: str) -> DomainState | None:
        return self.domain(exporter, 0, 0)

    def context(self, exporter: str, domain: int, local: DomainState | None = None) -> Context:
        if local is None:
            local = self.domains.get((exporter, 9, domain))
        system = self.domains.get((exporter, 0, 0))
        if local is None and system is None:
            return EMPTY_CONTEXT
        lv = local.version if local is not None else -1
        sv = system.version if system is not None else -1
        if local is not None:
            if local.ctx_key is not None and local.ctx_key[0] == lv and local.ctx_key[1] == sv:
                return local.ctx
        else:
            cached = self._ctx.get((exporter, domain))
            if cached is not None and cached[0] == lv and cached[1] == sv:
                return cached[2]
        ctx = Context(
            local.samplers.snapshot() if local is not None else {},
            system.samplers.snapshot() if system is not None else {},
            local.exporter_addr if local is not None else None,
            # pmacct looks VRF maps up in the system-wide entry; we try the domain first
            {**(system.in_rd if system is not None else {}), **(local.in_rd if local is not None else {})},
            {**(system.out_rd if system is not None else {}), **(local.out_rd if local is not None else {})},
            {**(system.apps if system is not None else {}), **(local.apps if local is not None else {})},
        )
        if local is not None:
            local.ctx, local.ctx_key = ctx, (lv, sv)
            return ctx
        if len(self._ctx) >= MAX_DOMAINS:
            self._ctx.clear()
        self._ctx[(exporter, domain)] = (lv, sv, ctx)
        return ctx
