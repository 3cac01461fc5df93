"""The tcpdump/libpcap filter language (aggregate_filter, pre_tag_map filter=), compiled
once into a vectorised predicate over record batches. See docs/filters.md.

The parser and compiler are imported on first use: most runs configure no filter, and
the parser's import (its node classes) is a few ms of every daemon's start."""

__all__ = ["Filter", "FilterError", "compile_filter", "config_filter"]

_LAZY = {"Filter": "compiler", "compile_filter": "compiler", "FilterError": "parser"}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def config_filter(text: str, key: str, where: str | None, daemon: str | None = None):
    """Compile a filter given in the configuration; a bad one is a ConfigError naming the
    key, where it was set (file:line) and the position in the expression."""
    from pypmacct.config import ConfigError
    from .compiler import compile_filter
    from .parser import FilterError
    try:
        return compile_filter(text, daemon)
    except FilterError as e:
        pos = f" at position {e.pos + 1}" if e.pos is not None else ""
        raise ConfigError(f"invalid filter for '{key}': {e.message}{pos}: {text!r}",
                          where=where, key=key) from None
