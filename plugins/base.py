"""The interface every plugin implements, and the shared base of aggregating plugins.

A plugin object is built in the core process from its configuration, so that the core
knows which record fields to ship to it (``wire_fields``). The core then forks; in the
child, the plugin host calls ``start()`` once, ``ingest()`` for every batch read from
the ring, ``on_deadline()`` when ``next_deadline()`` passes, and ``finish()`` once at
the end (shutdown purge).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from pypmacct.aggregate import KeyBuilder
from pypmacct.cache import LAST, OR, SUM, AggregationCache
from pypmacct.record import RECORD_DTYPE, Batch, StringTable
from pypmacct.runtime.log import Logger
from pypmacct.timebins import TimeBins, refresh_deadline


@dataclass
class PluginContext:
    daemon: str                       # "nfacctd", ...
    record_dtype: np.dtype = RECORD_DTYPE
    core_pid: int = field(default_factory=os.getpid)
    pidfile: str | None = None        # the core's pid file, if any


def setting(pcfg, key, default=None):
    """A plugin setting, or ``default`` when it is unset (or not a key of this plugin)."""
    try:
        v = pcfg.get(key)
    except KeyError:
        return default
    return default if v is None else v


class Plugin:
    type_name = ""     # as in 'plugins:' (print, memory, ...)
    title = ""         # process title: "<daemon>: <title> [<name>]"

    def __init__(self, pcfg, ctx: PluginContext):
        self.cfg = pcfg
        self.ctx = ctx
        self.name = pcfg.name
        self.log = Logger(pcfg.name, self.type_name)

    # --- core side -----------------------------------------------------------
    def wire_fields(self) -> frozenset:
        """Record fields the core must send to this plugin."""
        raise NotImplementedError

    # --- plugin process side ---------------------------------------------------
    def start(self) -> None:
        pass

    def ingest(self, batch: Batch) -> None:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        return None

    def on_deadline(self, now: float) -> None:
        pass

    def reload(self) -> None:
        """SIGUSR2: reload maps."""

    def finish(self) -> None:
        pass


class AggregatingPlugin(Plugin):
    """Keeps a cache of aggregates and purges it on refresh deadlines.

    Subclasses implement ``purge(keys, values, final)``; ``keys`` are rows of
    ``self.keys.key_dtype`` whose string fields index ``self.strings``.
    """

    # the config keys each plugin reads these settings from (print_*, sql_*, ...);
    # refresh_key is required, the others may stay None (history_key None: no time
    # bins in the key, as in the memory table)
    refresh_key: str = ""
    history_key = None
    roundoff_key = None
    offset_key = None
    startup_delay_key = None
    cache_entries_key = None

    def __init__(self, pcfg, ctx: PluginContext):
        super().__init__(pcfg, ctx)
        self.primitives = tuple(pcfg.get("aggregate"))
        self.utc = bool(pcfg.get("timestamps_utc"))
        self.refresh_time = int(pcfg.get(self.refresh_key))
        history = pcfg.get(self.history_key) if self.history_key else None
        self.time_bins = None
        if history:
            self.time_bins = TimeBins.from_config(
                history, pcfg.get(self.roundoff_key), int(pcfg.get(self.offset_key) or 0),
                self.utc)
        self.keys = KeyBuilder(self.primitives, ctx.record_dtype, self.time_bins,
                               self.extra_key_fields())
        ops = {"packets": SUM, "bytes": SUM, "flows": SUM, "flow_type": LAST}
        if self.keys.track_flow_af:
            ops["flow_af"] = LAST
        if self.keys.or_tcp_flags:
            ops["tcp_flags"] = OR
        self.cache = AggregationCache(self.keys.key_dtype, ops)
        self.strings = StringTable()
        self.cache_limit = int(pcfg.get(self.cache_entries_key)) if self.cache_entries_key else 0
        self._deadline = None

    def extra_key_fields(self) -> tuple:
        """Record fields a subclass needs in the key besides the primitives."""
        return ()

    def wire_fields(self) -> frozenset:
        return self.keys.input_fields

    def start(self) -> None:
        now = int(time.time())
        if self.time_bins is not None:
            self.time_bins.init(now)
        delay = int(self.cfg.get(self.startup_delay_key) or 0) if self.startup_delay_key else 0
        roundoff = self.cfg.get(self.roundoff_key) if self.roundoff_key else None
        self._deadline = refresh_deadline(now, self.refresh_time, delay, roundoff, self.utc)

    def _string_lut(self, strings: list[str]) -> np.ndarray | None:
        if not self.keys.string_key_fields:
            return None
        return np.fromiter((self.strings.intern(s) for s in strings), dtype=np.int32,
                           count=len(strings))

    def ingest(self, batch: Batch) -> None:
        keys, values, seq = self.keys.build(batch.records, self._string_lut(batch.strings))
        self.cache.add(keys, values, seq)
        if self.cache_limit and self.cache.upper_bound() >= self.cache_limit:
            if len(self.cache) >= self.cache_limit:
                self.on_cache_full()

    def on_cache_full(self) -> None:
        """The cache reached its configured size: purge early (pmacct does the same)."""
        self.log.warn(f"cache full ({self.cache_limit} entries): purging early")
        self._purge(final=False)

    def next_deadline(self) -> float | None:
        return self._deadline

    def on_deadline(self, now: float) -> None:
        while self._deadline is not None and self._deadline <= now:
            self._deadline += self.refresh_time
        self._purge(final=False)

    def finish(self) -> None:
        self._purge(final=True)

    def _purge(self, final: bool) -> None:
        keys, values = self.cache.drain()
        self.purge(keys, values, final)
        self.strings = StringTable()  # the cache is empty: nothing refers to old ids

    def take_strings(self) -> list[str]:
        """Hand over the string table the drained keys refer to and start a new one.
        Call right after ``cache.drain()``; rows put back with ``requeue`` are moved
        to the new table, so the table only ever holds strings still in use."""
        old = self.strings.strings
        self._old_strings = old
        self.strings = StringTable()
        return old

    def requeue(self, keys: np.ndarray, values: dict) -> None:
        """Put drained aggregates back into the cache (for a later purge)."""
        if len(keys) == 0:
            return
        old = getattr(self, "_old_strings", None)
        if self.keys.string_key_fields and old is not None:
            keys = keys.copy()
            for f in self.keys.string_key_fields:
                ids = np.unique(keys[f])
                lut = np.zeros(int(ids.max()) + 1, dtype=np.int32)
                lut[ids] = [self.strings.intern(old[i]) for i in ids.tolist()]
                keys[f] = lut[keys[f]]
        self.cache.add(keys, values)

    def purge(self, keys: np.ndarray, values: dict, final: bool) -> None:
        raise NotImplementedError
