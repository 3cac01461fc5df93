"""What the output formats share: options, the column set, value lookup, chunking."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import values as V
from .columns import Column, select, select_json, unknown_primitives
from .rows import chunks

CHUNK_ROWS = 16384

KINDS = ("formatted", "csv", "json", "event_formatted", "event_csv")


class FormatterError(ValueError):
    """A primitive/format combination that cannot be printed (a start-up error)."""


def _separator(value) -> str:
    if value is None or value == "":
        return ","
    if value == "\\s":
        return " "
    if value == "\\t":
        return "\t"
    return str(value)


@dataclass
class OutputOptions:
    """Presentation options, named after the config keys they come from."""
    separator: str = ","              # print_output_separator (\s and \t understood)
    num_protos: bool = False          # print_num_protos / *_num_protos
    since_epoch: bool = False         # timestamps_since_epoch
    rfc3339: bool = False             # timestamps_rfc3339
    utc: bool = False                 # timestamps_utc

    def __post_init__(self):
        self.separator = _separator(self.separator)

    @classmethod
    def from_config(cls, pcfg, num_protos_key: str = "print_num_protos") -> "OutputOptions":
        def get(key, default=None):
            try:
                v = pcfg.get(key)
            except KeyError:
                return default
            return default if v is None else v
        return cls(separator=get("print_output_separator", ","),
                   num_protos=bool(get(num_protos_key, False)),
                   since_epoch=bool(get("timestamps_since_epoch", False)),
                   rfc3339=bool(get("timestamps_rfc3339", False)),
                   utc=bool(get("timestamps_utc", False)))


class Formatter:
    """Turns drained aggregates (key rows + value columns) into lines of text.

    ``render_bytes(keys, values, strings)`` returns the lines (no header); ``header()``
    the title line, or ``""`` for formats without one. ``keys`` are rows of the key dtype
    the formatter was built for; their string fields index ``strings``. ``values``
    holds ``packets``, ``bytes``, ``flows`` and, when tcpflags is aggregated, the OR-ed
    ``tcp_flags``.
    """

    kind = ""
    json = False
    event = False

    def __init__(self, primitives, key_dtype: np.dtype, options: OutputOptions | None = None):
        self.primitives = tuple(primitives)
        self.key_dtype = key_dtype
        self.options = options or OutputOptions()
        unknown = unknown_primitives(self.primitives)
        if unknown:
            raise FormatterError(f"primitive(s) {', '.join(unknown)} cannot be printed by the "
                                 f"{self.kind} output")
        self.columns: list[Column] = (select_json(self.primitives) if self.json
                                      else select(self.primitives))
        for c in self.columns:
            if c.source == "key" and c.field not in key_dtype.names:
                raise FormatterError(f"key has no field '{c.field}' for column {c.name}")
        self.flows = "flows" in self.primitives
        self.history = "stamp_inserted" in (key_dtype.names or ())

    # --- public -------------------------------------------------------------------
    def header(self) -> str:
        return ""

    def header_bytes(self) -> bytes:
        return self.header().encode("utf-8")

    def render(self, keys, values, strings=("",), now: float | None = None) -> str:
        return self.render_bytes(keys, values, strings, now).decode("utf-8")

    def render_bytes(self, keys, values, strings=("",), now: float | None = None) -> bytes:
        return b"".join(self.render_chunks(keys, values, strings, now))

    def render_chunks(self, keys, values, strings=("",), now: float | None = None):
        """The lines, a block of rows at a time (for writing without one big join)."""
        n = len(keys)
        now = int(time.time() if now is None else now)
        for a, b in chunks(n, CHUNK_ROWS):
            vals = {k: v[a:b] for k, v in values.items()}
            yield self._render_chunk(keys[a:b], vals, strings, now)

    # --- for subclasses ---------------------------------------------------------------
    def _render_chunk(self, keys, values, strings, now: int) -> bytes:
        raise NotImplementedError

    def raw(self, col: Column, keys, values) -> np.ndarray:
        if col.source == "value":
            v = values.get(col.field)
            return v if v is not None else np.zeros(len(keys), dtype=np.uint8)
        return keys[col.field]

    def text(self, col: Column, keys, values, strings, empty: bytes = b"",
             compact: bool = False) -> np.ndarray:
        """The column's texts for these rows (JSON strings escaped, no quotes); unset
        addresses give ``empty``. NUL padding may be anywhere unless ``compact``."""
        o = self.options
        a = self.raw(col, keys, values)
        k = col.kind
        if k == "uint":
            return V.uint_text(a, compact)
        if k == "addr":
            return V.addr_text(a, empty, compact)
        if k == "nexthop":
            if "flow_af" in values:
                return V.nexthop_text(a, values["flow_af"], empty, compact)
            return V.addr_text(a, empty, compact)
        if k == "timestamp":
            return V.timestamp_text(a, usec=True, since_epoch=o.since_epoch,
                                    rfc3339=o.rfc3339, utc=o.utc, compact=compact)
        if k == "proto":
            return V.proto_text(a, o.num_protos)
        if k == "mac":
            return V.mac_text(a)
        if k == "hex":
            return V.hex_text(a)
        if k == "rd":
            return V.rd_text(a)
        if k == "roa":
            return V.roa_text(a)
        if k == "char":
            return V.char_text(a)
        if k == "class":
            return V.string_text(a, strings, V.class_name, self.json)
        if k == "string":
            return V.string_text(a, strings, None, self.json)
        if k == "bgp_string":
            return V.string_text(a, strings, V.bgp_underscores, self.json)
        if k == "cp_hex":
            return V.per_unique(np.asarray(a, dtype=np.uint64), lambda v: b"%x" % int(v))
        if k in ("cp_ip4", "cp_ip6"):
            return V.per_unique(a["addr"], _cp_ip4 if k == "cp_ip4" else _cp_ip6)
        if k == "float":
            return V.json_real_text(a) if self.json else V.float_text(a)
        raise FormatterError(f"no text conversion for column kind '{k}'")

    def stamp_text(self, seconds) -> np.ndarray:
        """stamp_inserted / stamp_updated: seconds resolution, no fraction."""
        o = self.options
        us = np.asarray(seconds, dtype=np.int64) * 1_000_000
        return V.timestamp_text(us, usec=False, since_epoch=o.since_epoch,
                                rfc3339=o.rfc3339, utc=o.utc)


def _cp_ip4(raw) -> bytes:
    """A custom 'ip' primitive of 4 bytes: printed as IPv4 even when absent (0.0.0.0)."""
    import ipaddress
    return str(ipaddress.IPv4Address(bytes(raw)[:4])).encode()


def _cp_ip6(raw) -> bytes:
    import ipaddress
    return str(ipaddress.IPv6Address(bytes(raw)[:16])).encode()
