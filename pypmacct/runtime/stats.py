"""Counters the core keeps per exporter and per plugin, logged on SIGUSR1."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields


@dataclass
class ExporterCounters:
    datagrams: int = 0
    records: int = 0
    bad_datagrams: int = 0      # malformed, truncated, unknown version
    no_template: int = 0        # data sets whose template is unknown (records dropped)
    templates: int = 0          # templates and options templates received
    seq_errors: int = 0         # sequence number jumps
    denied: int = 0             # datagrams refused by the allow list

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Stats:
    def __init__(self):
        self.exporters: dict[str, ExporterCounters] = defaultdict(ExporterCounters)

    def exporter(self, addr: str) -> ExporterCounters:
        return self.exporters[addr]

    def totals(self) -> ExporterCounters:
        t = ExporterCounters()
        for c in self.exporters.values():
            for f in fields(t):
                setattr(t, f.name, getattr(t, f.name) + getattr(c, f.name))
        return t
