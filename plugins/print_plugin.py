"""The print plugin: purges aggregates to stdout or files as text, CSV or JSON."""
from __future__ import annotations

import sys

from pypmacct.output import make_formatter

from .base import AggregatingPlugin


class PrintPlugin(AggregatingPlugin):
    type_name = "print"
    title = "Print Plugin"
    refresh_key = "print_refresh_time"
    history_key = "print_history"
    roundoff_key = "print_history_roundoff"
    offset_key = "print_history_offset"
    cache_entries_key = "print_cache_entries"

    def __init__(self, pcfg, ctx):
        super().__init__(pcfg, ctx)
        self.output = pcfg.get("print_output") or "formatted"
        self.formatter = make_formatter(self.output, self.primitives, self.keys.key_dtype, pcfg)
        self.path = pcfg.get("print_output_file")
        self._header_written = False

    def purge(self, keys, values, final: bool) -> None:
        self.log.info(f"*** Purging cache - START ***")
        text = self.formatter.render(keys, values, self.strings.strings)
        header = self.formatter.header()
        if self.path:
            with open(self.path, "w") as f:
                if header:
                    f.write(header)
                f.write(text)
        else:
            out = sys.stdout
            if header and not self._header_written:
                out.write(header)
                self._header_written = True
            out.write(text)
            out.flush()
        self.log.info(f"*** Purging cache - END (QN: {len(keys)}/{len(keys)}) ***")
