"""The tcpdump/libpcap filter language (aggregate_filter, pre_tag_map filter=), compiled
once into a vectorised predicate over record batches. See docs/filters.md."""
from .compiler import Filter, compile_filter
from .parser import FilterError

__all__ = ["Filter", "FilterError", "compile_filter", "config_filter"]


def config_filter(text: str, key: str, where: str | None, daemon: str | None = None):
    """Compile a filter given in the configuration; a bad one is a ConfigError naming the
    key, where it was set (file:line) and the position in the expression."""
    from pypmacct.config import ConfigError
    try:
        return compile_filter(text, daemon)
    except FilterError as e:
        pos = f" at position {e.pos + 1}" if e.pos is not None else ""
        raise ConfigError(f"invalid filter for '{key}': {e.message}{pos}: {text!r}",
                          where=where, key=key) from None
