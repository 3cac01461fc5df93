"""JSON output: one object per line, keys and value types as pmacct's encoder writes
them (``{"event_type": "purge", ...}``, ``", "`` and ``": "`` separators, keys in
pmacct's order, numbers unquoted except where pmacct quotes them: tcp_flags, etype,
timestamps, the protocol name).

Lines are put together from per-column texts and fixed key literals rather than by
serialising one dict per row; string values from the string table (labels, AS paths,
communities...) are escaped the way jansson escapes them.
"""
from __future__ import annotations

import numpy as np

from . import values as V
from ..record import SAMPLE_EVENT, SAMPLE_OPTION
from .columns import STR
from .common import Formatter
from .rows import join_lines


def _key(k: str) -> bytes:
    return b', "' + k.encode() + b'": '


class JsonFormatter(Formatter):
    kind = "json"
    json = True

    def _render_chunk(self, keys, values, strings, now):
        n = len(keys)
        parts = [b'{"event_type": "purge"']
        for c in self.columns:
            t = self.text(c, keys, values, strings)
            if c.json_type == STR:
                parts += [_key(c.json_key) + b'"', t, b'"']
            else:
                parts += [_key(c.json_key), t]
        if self.history:
            parts.append(self._stamps(keys["stamp_inserted"], now))
        counters = []
        if self.flows:
            counters += [V.constant(_key("flows"), n), V.uint_text(values["flows"])]
        counters += [V.constant(_key("packets"), n), V.uint_text(values["packets"]),
                     V.constant(_key("bytes"), n), V.uint_text(values["bytes"])]
        # pmacct leaves the counters out of aggregates last fed by an event (NEL/NSEL)
        # or option record
        ftype = values.get("flow_type")
        if ftype is not None:
            no_counters = (ftype == SAMPLE_EVENT) | (ftype == SAMPLE_OPTION)
            if no_counters.any():
                block = V.hstack(counters)
                block[no_counters] = 0
                counters = [block]
        parts += counters + [b"}\n"]
        return join_lines(parts, n)

    def _stamps(self, inserted, now):
        """``, "stamp_inserted": "...", "stamp_updated": "..."``; pmacct leaves both out
        for an aggregate without a time bin."""
        n = len(inserted)
        ins = self.stamp_text(inserted)
        upd = self.stamp_text(np.full(n, now, dtype=np.int64))
        block = V.hstack([V.constant(_key("stamp_inserted") + b'"', n), ins,
                          V.constant(b'"' + _key("stamp_updated") + b'"', n), upd,
                          V.constant(b'"', n)])
        unset = np.asarray(inserted) == 0
        if unset.any():
            block = block.copy()
            block[unset] = 0
        return block


def purge_init(name: str, pid: int) -> bytes:
    """The JSON start marker of a purge (print_markers)."""
    wid = V.json_escape(f"{name}/{pid}")
    return f'{{"event_type": "purge_init", "writer_id": "{wid}"}}\n'.encode()


def purge_close(name: str, pid: int, purged: int, total: int, duration: int) -> bytes:
    """The JSON end marker of a purge (print_markers)."""
    wid = V.json_escape(f"{name}/{pid}")
    return (f'{{"event_type": "purge_close", "writer_id": "{wid}", "purged_entries": {purged}, '
            f'"total_entries": {total}, "duration": {duration}}}\n').encode()
