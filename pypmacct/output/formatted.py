"""Formatted output: fixed-width, space-padded columns under a title line.

Every cell is the value left-justified to the column's width followed by the column's
own spacing, exactly as pmacct lays it out; a value longer than its width is printed
whole and shifts the rest of its line. Unset addresses print as ``::`` here.
``event_formatted`` drops the counter columns.
"""
from __future__ import annotations

import numpy as np

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
        cells = []          # (compact text, width, literal after it)
        for c in self.columns:
            empty = c.fmt_empty.encode() if c.fmt_empty else b""
            cells.append((self.text(c, keys, values, strings, empty, compact=True),
                          c.fmt_width, c.fmt_gap.encode()))
        last = None
        if not self.event:
            cells.append((V.uint_text(values["packets"], True), COUNTER_WIDTH, b"  "))
            if self.flows:
                cells.append((V.uint_text(values["flows"], True), COUNTER_WIDTH, b"  "))
            last = V.uint_text(values["bytes"], True)
        return column_lines(cells, last, n)


def column_lines(cells, last, n: int, aligned: bool = True) -> bytes:
    """Lines of ``cells`` (compact text, column width, literal after it) and an unpadded
    ``last`` text. When every text fits its column (and ``aligned``), the columns are
    laid at fixed offsets; else each text is padded to its width, so a wider value
    shifts the rest of its line, as printf's ``%-Ns`` does."""
    if aligned and all(t.shape[1] <= w or not t[:, w:].any() for t, w, _ in cells):
        return fixed_lines(cells, last, n)
    parts = []
    for t, w, gap in cells:
        parts += [V.ljust(t, w), gap]
    if last is not None:
        parts.append(last)
    parts.append(b"\n")
    return join_lines(parts, n)


def fixed_lines(cells, last, n: int) -> bytes:
    """Lines of cells that fit their widths: each compact text is laid into its
    space-filled column, so that only the unpadded last cell leaves NULs to delete."""
    width = sum(w + len(gap) for _, w, gap in cells)
    tail = (last.shape[1] if last is not None else 0) + 1
    buf = np.empty((n, width + tail), dtype=np.uint8)
    buf[:, :width] = 0x20
    off = 0
    for t, w, gap in cells:
        k = min(w, t.shape[1])
        t = t[:, :k]
        buf[:, off:off + k] = t | ((t == 0) * np.uint8(0x20))
        off += w
        if gap.strip(b" "):
            buf[:, off:off + len(gap)] = np.frombuffer(gap, dtype=np.uint8)
        off += len(gap)
    end = buf[:, width:]
    end[:] = 0
    length = 0
    if last is not None:
        end[:, :last.shape[1]] = last
        length = np.count_nonzero(last, axis=1)
    end[np.arange(n), length] = 0x0A
    return buf.tobytes().translate(None, b"\0")


class EventFormattedFormatter(FormattedFormatter):
    kind = "event_formatted"
    event = True
