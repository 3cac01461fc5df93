"""CSV output: values joined by ``print_output_separator`` under a title line.

Values are written as they are (pmacct does not quote or escape CSV fields); AS paths
and communities have their spaces turned into underscores. ``event_csv`` drops the
counter columns.
"""
from __future__ import annotations

from . import values as V
from .columns import BYTES, FLOWS, PACKETS
from .common import Formatter
from .rows import join_lines


class CsvFormatter(Formatter):
    kind = "csv"

    def header(self) -> str:
        names = [c.csv_header for c in self.columns]
        if not self.event:
            names.append(PACKETS[1])
            if self.flows:
                names.append(FLOWS[1])
            names.append(BYTES[1])
        return self.options.separator.join(names) + "\n"

    def _render_chunk(self, keys, values, strings, now):
        n = len(keys)
        sep = self.options.separator.encode("utf-8")
        cells = [self.text(c, keys, values, strings) for c in self.columns]
        if not self.event:
            cells.append(V.uint_text(values["packets"]))
            if self.flows:
                cells.append(V.uint_text(values["flows"]))
            cells.append(V.uint_text(values["bytes"]))
        parts = []
        for i, t in enumerate(cells):
            if i:
                parts.append(sep)
            parts.append(t)
        parts.append(b"\n")
        return join_lines(parts, n)


class EventCsvFormatter(CsvFormatter):
    kind = "event_csv"
    event = True
