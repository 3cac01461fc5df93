"""Sampling rates learned from NetFlow v9 / IPFIX options data, per exporter.

Each (exporter, source id / observation domain) has an ordered table sampler id ->
rate; options records scoped to the whole system (v9 scope "system") fill a second,
exporter-wide table. Lookups follow pmacct 1.7.7 (xflow_status.c):

- a data record naming a sampler id takes the entry with that id in its own table; if
  the id is 0 and no entry has it, the last entry learned there; failing both, the
  system-wide table's entry with exactly that id;
- a data record naming no sampler is looked up as sampler id 0.

Tables are copy-on-write: ``snapshot()`` hands out an immutable view, so records
decoded later in a batch still see the rates that were valid when they arrived.
"""
from __future__ import annotations

import numpy as np

MAX_SAMPLERS = 4096      # per table: options data is not allowed to grow memory unbounded


class SamplerTable:
    __slots__ = ("_rates", "_frozen")

    def __init__(self):
        self._rates: dict[int, int] = {}
        self._frozen: dict[int, int] | None = None

    def set(self, sampler_id: int, rate: int) -> bool:
        if sampler_id not in self._rates and len(self._rates) >= MAX_SAMPLERS:
            return False
        if self._rates.get(sampler_id) != rate or sampler_id not in self._rates:
            if self._frozen is self._rates:
                self._rates = dict(self._rates)
            self._rates[sampler_id] = rate
        return True

    def snapshot(self) -> dict[int, int]:
        self._frozen = self._rates
        return self._rates

    def __len__(self):
        return len(self._rates)


def lookup(local: dict[int, int], system: dict[int, int], sampler_id: int,
           extra_id: int | None = None) -> int:
    """The rate for one sampler id, pmacct's way; 0 when unknown. ``extra_id`` is a
    last-resort id to try (the template id, for IPFIX options scoped by template)."""
    rate = local.get(sampler_id)
    if rate is not None:
        return rate
    if sampler_id == 0 and local:
        return local[next(reversed(local))]
    rate = system.get(sampler_id)
    if rate is not None:
        return rate
    if extra_id is not None:
        rate = local.get(extra_id, system.get(extra_id))
        if rate is not None:
            return rate
    return 0


def lookup_many(local: dict[int, int], system: dict[int, int], ids: np.ndarray,
                extra_id: int | None = None) -> np.ndarray:
    """``lookup`` over an array of sampler ids."""
    if not local and not system:
        return np.zeros(len(ids), dtype=np.uint64)
    uniq, inv = np.unique(ids, return_inverse=True)
    rates = np.array([lookup(local, system, int(u), extra_id) for u in uniq], dtype=np.uint64)
    return rates[inv]
