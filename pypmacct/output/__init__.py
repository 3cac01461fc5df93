"""Output formats shared by the print plugin and, later, the memory table client, the
message brokers and the databases that use the same JSON keys.

``make_formatter(kind, primitives, key_dtype, options)`` returns a :class:`Formatter`
for ``formatted``, ``csv``, ``json``, ``event_formatted`` or ``event_csv``:

- ``header()``: the title line (``""`` for JSON);
- ``render(keys, values, strings)`` / ``render_bytes(...)``: the lines for a batch of
  aggregates, vectorised by column.

``options`` is an :class:`OutputOptions` or a plugin configuration to read one from.
"""
from __future__ import annotations

from .columns import COLUMNS, JSON_ORDER, Column
from .common import KINDS, Formatter, FormatterError, OutputOptions
from .csv import CsvFormatter, EventCsvFormatter
from .formatted import EventFormattedFormatter, FormattedFormatter
from .json import JsonFormatter

_CLASSES = {
    "formatted": FormattedFormatter,
    "event_formatted": EventFormattedFormatter,
    "csv": CsvFormatter,
    "event_csv": EventCsvFormatter,
    "json": JsonFormatter,
}


def make_formatter(kind, primitives, key_dtype, options=None) -> Formatter:
    kind = (kind or "formatted").lower()
    cls = _CLASSES.get(kind)
    if cls is None:
        raise FormatterError(f"output format '{kind}' is not supported (supported: "
                             f"{', '.join(KINDS)})")
    if options is not None and not isinstance(options, OutputOptions):
        options = OutputOptions.from_config(options)
    return cls(primitives, key_dtype, options)


__all__ = ["make_formatter", "Formatter", "FormatterError", "OutputOptions", "Column",
           "COLUMNS", "JSON_ORDER", "KINDS"]
