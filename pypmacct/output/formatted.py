"""Formatted output: fixed-width, space-padded columns under a title line.

Every cell is the value left-justified to the column's width followed by the column's
own spacing, exactly as pmacct lays it out; a value longer than its width is printed
whole and shifts the rest of its line. Unset addresses print as ``::`` here.
``event_formatted`` drops the counter columns.
"""
from __future__ import annotations

from . import values as V
from .columns import BYTES, COUNTER_WIDTH, FLOWS, PACKETS
from .common import Formatter, FormatterError
from .rows import join_lines

VLEN_ERROR = ("variable-length primitives, ie. label as_path std_comm etc., are not supported "
              "in print plugin with formatted output. Please switch to one of the other "
              "supported output formats (ie. csv, json, avro).")


class FormattedFormatter(Formatter):
    kind = "formatted"

    def __init__(self, primitives, key_dtype, options=None):
        super().__init__(primitives, key_dtype, options)
        vlen = [c.name for c in self.columns if c.variable_length]
        if vlen:
            raise FormatterError(VLEN_ERROR)

    def header(self) -> str:
        cells = [c.fmt_header for c in self.columns]
        if not self.event:
            cells.append(PACKETS[0])
            if self.flows:
                cells.append(FLOWS[0])
            cells.append(BYTES[0])
        return "".join(cells) + "\n"

    def _render_chunk(self, keys, values, strings, now):
        n = len(keys)
        parts = []
        for c in self.columns:
            empty = c.fmt_empty.encode() if c.fmt_empty else b""
            t = self.text(c, keys, values, strings, empty)
            parts.append(V.ljust(t, c.fmt_width))
            parts.append(c.fmt_gap.encode())
        if not self.event:
            parts.append(V.ljust(V.uint_text(values["packets"]), COUNTER_WIDTH))
            parts.append(b"  ")
            if self.flows:
                parts.append(V.ljust(V.uint_text(values["flows"]), COUNTER_WIDTH))
                parts.append(b"  ")
            parts.append(V.uint_text(values["bytes"]))
        parts.append(b"\n")
        return join_lines(parts, n)


class EventFormattedFormatter(FormattedFormatter):
    kind = "event_formatted"
    event = True
