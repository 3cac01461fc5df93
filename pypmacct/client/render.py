"""Text of the ``pmacct`` client's tables (``-s``, ``-M``): formatted, csv, json,
event_formatted and event_csv, laid out as 1.7.7's client lays them out (see
:mod:`pypmacct.client.columns`). Rendering is vectorised by column, like the print
plugin's formats, whose value-to-text conversions it reuses.
"""
from __future__ import annotations

import re

import numpy as np

from pypmacct.output import OutputOptions, make_formatter
from pypmacct.output import values as V
from pypmacct.output.common import Formatter
from pypmacct.output.formatted import column_lines
from pypmacct.output.rows import join_lines

from . import columns as C

_FLOWS_FIRST = re.compile(rb', "flows": (\d+), "packets": (\d+)')
# the client names the source-side BGP attributes its own way
_CLIENT_JSON_KEYS = tuple((f'"{a}": '.encode(), f'"{b}": '.encode()) for a, b in (
    ("comms_src", "src_comms"), ("ecomms_src", "src_ecomms"), ("lcomms_src", "src_lcomms"),
    ("as_path_src", "src_as_path"), ("local_pref_src", "src_local_pref"),
    ("med_src", "src_med")))
FORMATS = ("formatted", "csv", "json", "event_formatted", "event_csv")
CHUNK = 16384


class _Texts(Formatter):
    """Only the value-to-text machinery of the output formats."""

    def __init__(self, options: OutputOptions):     # noqa: D107 - no column checks
        self.options = options


class TableRenderer:
    """Lines for the aggregates of one table reply."""

    def __init__(self, fmt: str, primitives, key_dtype: np.dtype, *, all_fields=False,
                 sep=",", num_protos=False, since_epoch=False, utc=False, custom=()):
        self.fmt = fmt
        # the registry's custom primitives that this table's keys carry
        fields = set(key_dtype.names or ())
        self.custom = [p for p in custom if p.name in fields]
        self.primitives = tuple(primitives)
        self.key_dtype = key_dtype
        self.all_fields = all_fields and fmt != "json"
        self.csv = fmt in ("csv", "event_csv")
        self.event = fmt.startswith("event_")
        self.sep = sep.encode()
        self.options = OutputOptions(num_protos=num_protos, since_epoch=since_epoch,
                                     rfc3339=True, utc=utc)
        self.texts = _Texts(self.options)
        self.flows = "flows" in self.primitives or self.all_fields
        self.json = None
        if fmt == "json":
            from pypmacct.maps.custom_primitives import columns_for
            from pypmacct.output.columns import set_custom
            set_custom(columns_for(self.custom))   # JSON: the print plugin's columns
            self.json = make_formatter("json", self.primitives, key_dtype, self.options)
        self.cells = C.value_cells(self.primitives, self.all_fields, self.csv, self.custom)

    # ---- title line -----------------------------------------------------------------
    def header(self) -> bytes:
        if self.fmt == "json":
            return b""
        heads = C.header_cells(self.primitives, self.all_fields, self.csv, self.custom)
        counters = [] if self.event else [
            (n, t, w) for n, t, w in C.COUNTER_CELLS if n != "flows" or self.flows]
        if self.csv:
            titles = [t for _, t, _ in heads] + [t for _, t, _ in counters]
            return self.sep.join(t.encode() for t in titles) + b"\n"
        line = "".join(t.ljust(w) for _, t, w in heads)
        line += "".join(t.ljust(w) for _, t, w in counters)
        return line.encode() + b"\n"

    # ---- lines ------------------------------------------------------------------------
    def lines(self, keys: np.ndarray, values: dict, strings) -> bytes:
        out = []
        for a in range(0, len(keys), CHUNK):
            b = a + CHUNK
            out.append(self._chunk(keys[a:b], {k: v[a:b] for k, v in values.items()},
                                   strings))
        return b"".join(out)

    def _chunk(self, keys, values, strings) -> bytes:
        n = len(keys)
        if n == 0:
            return b""
        if self.json is not None:
            body = self.json.render_bytes(keys, values, strings)
            body = body.replace(b'{"event_type": "purge", ', b"{").replace(
                b'{"event_type": "purge"}', b"{}")
            for ours, theirs in _CLIENT_JSON_KEYS:
                body = body.replace(ours, theirs)
            if self.flows:      # the client writes packets, flows, bytes
                body = _FLOWS_FIRST.sub(rb', "packets": \2, "flows": \1', body)
            return body
        present = set(keys.dtype.names or ())
        if self.all_fields:
            keys = _widen(keys)
        texts = [(c, self._text(c, keys, values, strings, present)) for c in self.cells]
        counters = []
        if not self.event:
            counters.append(V.uint_text(values["packets"], True))
            if self.flows:
                counters.append(V.uint_text(values["flows"], True))
            counters.append(V.uint_text(values["bytes"], True))
        if self.csv:
            parts = []
            for t in [t for _, t in texts] + counters:
                if parts:
                    parts.append(self.sep)
                parts.append(t)
            parts.append(b"\n")
            return join_lines(parts, n)
        cells = [(t, c.width, c.gap.encode()) for c, t in texts]
        special = False
        for i, (c, t) in enumerate(texts):
            if c.name == "tunnel_proto":
                # 1.7.7: a protocol name takes "%-10s" and 7 spaces, a number "%-10u"
                # and 2 (the line then shifts by 5)
                special = True
                num = np.asarray(keys[c.column.field]) >= V.PROTOCOLS_NUMBER \
                    if not self.options.num_protos else np.ones(len(keys), dtype=bool)
                k = np.where(num, 2, 7)
                suffix = (np.arange(7) < k[:, None]).astype(np.uint8) * np.uint8(0x20)
                cells[i] = (V.hstack([V.ljust(t, 10), suffix]), 0, b"")
        last = None
        if counters:
            last = counters[-1]
            cells += [(t, 20, b"  ") for t in counters[:-1]]
        return column_lines(cells, last, n, aligned=not special)

    def _text(self, cell: C.Cell, keys, values, strings, present) -> np.ndarray:
        col = cell.column
        n = len(keys)
        if col.source == "value" and col.field not in values:
            t = V.uint_text(np.zeros(n, dtype=np.uint8), True)
        elif col.source == "key" and col.field not in keys.dtype.names:
            t = V.empty(n)
        elif col.kind == "char" and col.field not in present:
            t = V.empty(n)     # -a: a direction the table does not keep prints empty
        else:
            t = self.texts.text(col, keys, values, strings, compact=True)
            if col.kind == "timestamp" and not self.options.since_epoch:
                zero = np.asarray(keys[col.field]) == 0
                if zero.any():   # the client prints an unset time as the epoch
                    t = _set_rows(t, zero, self._epoch())
        empty = cell.csv_empty if self.csv else cell.fmt_empty
        if col.kind == "class":
            empty = b"unknown"
        if empty and t.shape[0]:
            t = V.where_empty(t, empty)
        return t


    def _epoch(self) -> bytes:
        import time
        utc = self.options.utc
        tm = time.gmtime(0) if utc else time.localtime(0)
        tz = V.to_list(V._tz_suffix(V.utc_offsets(np.zeros(1, dtype=np.int64), utc)))[0]
        return (time.strftime("%Y-%m-%dT%H:%M:%S", tm) + ".000000" + tz).encode()


def _set_rows(m: np.ndarray, rows: np.ndarray, text: bytes) -> np.ndarray:
    out = np.zeros((m.shape[0], max(m.shape[1], len(text))), dtype=np.uint8)
    out[:, :m.shape[1]] = m
    out[rows] = 0
    out[rows, :len(text)] = np.frombuffer(text, dtype=np.uint8)
    return out


_FULL = None


def _full_dtype():
    """The key dtype of an aggregate on every primitive (for -a)."""
    global _FULL
    if _FULL is None:
        from pypmacct.aggregate import KeyBuilder
        names = [c.name for c in C.VALUES]
        prims = set()
        for c in C.VALUES:
            prims.update(p for p in c.primitives if not p.startswith("sum_"))
        prims.discard("tcpflags")
        prims.discard("flows")
        _FULL = KeyBuilder(sorted(prims)).key_dtype
        del names
    return _FULL


def _widen(keys: np.ndarray) -> np.ndarray:
    """The keys with every primitive's field (unset ones zero), for -a; fields of
    custom primitives are kept as they are."""
    full = _full_dtype()
    extra = [(f, keys.dtype.fields[f][0]) for f in keys.dtype.names or ()
             if f not in full.names]
    if extra:
        full = np.dtype([(f, full.fields[f][0]) for f in full.names] + extra)
    out = np.zeros(len(keys), dtype=full)
    for f in keys.dtype.names or ():
        out[f] = keys[f]
    return out
