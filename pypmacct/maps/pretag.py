"""pre_tag_map: the 1.7.7 map syntax, compiled into vectorised matchers (see docs/maps.md)."""
from __future__ import annotations


def load_global_map(cfg, daemon: str, log):
    """The map every plugin shares (pre_tag_map set globally), or None."""
    return None


def load_plugin_map(pcfg, daemon: str, log, shared_map):
    """A plugin's own pre_tag_map (set as pre_tag_map[name]), or None."""
    return None
