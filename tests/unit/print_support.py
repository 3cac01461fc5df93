"""Helpers for the print plugin and output format tests: a stand-in plugin config,
record builders, and running a plugin in-process."""
from __future__ import annotations

import ipaddress
import socket

import itertools

import numpy as np

from pypmacct.aggregate import KeyBuilder
from pypmacct.primitives import parse_aggregate
from pypmacct.record import Batch, empty_records

PRINT_DEFAULTS = {
    "print_refresh_time": 60,
    "print_cache_entries": 16411,
    "print_output": "formatted",
    "print_max_writers": 10,
    "print_history": None,
    "print_history_roundoff": None,
    "print_history_offset": 0,
    "print_startup_delay": 0,
    "timestamps_utc": False,
}


class FakePcfg:
    """What a plugin reads from its configuration: ``.name``, ``.type``, ``.get(key)``."""

    def __init__(self, name="a", type_="print", daemon="nfacctd", **keys):
        self.name = name
        self.type = type_
        self._keys = dict(PRINT_DEFAULTS)
        agg = keys.pop("aggregate", "src_host,dst_host")
        if isinstance(agg, str):
            agg = parse_aggregate(agg, daemon)
        self._keys["aggregate"] = tuple(agg)
        self._keys.update(keys)

    def get(self, key):
        return self._keys.get(key)


def addr(text: str | None):
    """(af, 16 raw bytes) for an address string; None gives the unset address."""
    if text is None or text == "":
        return 0, b"\0" * 16
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return 4, ip.packed.ljust(16, b"\0")
    return 6, ip.packed


_ARRIVALS = itertools.count()


def records(rows: list[dict]) -> np.ndarray:
    """Records from dicts of field -> value; address fields take strings, MACs take
    'aa:bb:..' strings, times are microseconds. ``arrival_seq`` increases across calls,
    as the core numbers records."""
    r = empty_records(len(rows))
    r["arrival_seq"] = [next(_ARRIVALS) for _ in rows]
    for i, row in enumerate(rows):
        for k, v in row.items():
            if r.dtype[k].names == ("af", "addr"):
                af, raw = addr(v)
                r[k]["af"][i] = af
                r[k]["addr"][i] = np.void(raw)
            elif k.endswith("_mac"):
                r[k][i] = np.void(bytes(int(x, 16) for x in v.split(":")))
            elif k == "mpls_vpn_rd":
                r[k][i] = np.void(v)
            else:
                r[k][i] = v
    return r


def keys_for(primitives, rows, strings=("",)):
    """(key_dtype, keys, values) as a plugin's cache would drain them (no summing)."""
    kb = KeyBuilder(parse_aggregate(primitives, "nfacctd") if isinstance(primitives, str)
                    else primitives)
    keys, values, _seq = kb.build(records(rows))
    return kb, keys, values


def batch(rows: list[dict], strings=None) -> Batch:
    return Batch(records(rows), list(strings) if strings else [""])
