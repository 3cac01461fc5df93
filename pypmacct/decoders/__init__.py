"""Decoders: datagrams or packets in, record batches out.

The NetFlow v5 / v9 / IPFIX decoder (``NetflowDecoder``, ``NetflowOptions``,
``CustomField``) lives in ``netflow`` and is reachable from here as before; it is
imported on first use, so that sfacctd, pmacctd and uacctd do not pay at start-up for
the NetFlow modules (templates, information elements, plans: ~15 ms) they never use.
"""
from __future__ import annotations

__all__ = ["NetflowDecoder", "NetflowOptions", "CustomField"]

_NETFLOW_NAMES = frozenset(__all__) | {"MAX_EXPORTERS_FAST"}


def __getattr__(name: str):
    if name in _NETFLOW_NAMES:
        from . import netflow
        return getattr(netflow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
